#!/usr/bin/env bash
# Seconds per epoch (median over EPOCHS epochs, MNIST's 60,000 training images) for the README's scaling table:
# 1 process x 1 thread, 1 process x 2 threads, 2 processes x 1 thread (mpirun, shared memory) and, when the
# namespaces of the README exist (NETNS=1), 2 processes in two network namespaces joined by a veth pair (TCP).
# Usage: Scripts/mpi_scaling.sh [EPOCHS]   (from the package root, after swift build -c release)
set -euo pipefail
epochs=${1:-2}
d=$PWD/.build/release/distill
tmp=$(mktemp -d)
mpi=(mpirun --allow-run-as-root --oversubscribe)
export NETNS_HOSTS=${NETNS_HOSTS:-"10.77.0.1=distilltest1 10.77.0.2=distilltest2"}
teacher=${TEACHER:-Data/teachers/bench-teacher.safetensors}
declare -A jobs=(
    [student]="train --hidden 800,800"
    [teacher]="train --hidden 1200,1200 --input-dropout 0.2 --hidden-dropout 0.5 --jitter 2 --max-norm 3.5"
    [distillation]="distill --teacher $teacher --no-teacher-cache --hidden 800,800"
)
seconds() { python3 -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["seconds_per_epoch"])' "$1"; }
for job in student teacher distillation; do
    args=(${jobs[$job]} --epochs "$epochs" --seed 0 --force --json)
    "$d" "${args[@]}" --threads 1 --output "$tmp/a.safetensors" > "$tmp/a.json" 2>/dev/null
    "$d" "${args[@]}" --threads 2 --output "$tmp/b.safetensors" > "$tmp/b.json" 2>/dev/null
    "${mpi[@]}" -np 2 "$d" "${args[@]}" --threads 1 --output "$tmp/c.safetensors" > "$tmp/c.json" 2>/dev/null
    line="$job: 1x1 $(seconds "$tmp/a.json") s, 1x2 $(seconds "$tmp/b.json") s, 2x1 $(seconds "$tmp/c.json") s"
    if [ "${NETNS:-0}" = 1 ]; then
        ip netns exec distilltest1 unshare --uts sh -c "hostname distilltest1; mpirun --allow-run-as-root -np 2 \
            --hostfile $PWD/Scripts/netns_hosts --mca plm_rsh_agent $PWD/Scripts/netns_agent.sh --mca btl tcp,self \
            --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 -x NETNS_HOSTS \
            $d ${args[*]} --threads 1 --output $tmp/d.safetensors" > "$tmp/d.json" 2>/dev/null
        line+=", 2x1 over TCP $(seconds "$tmp/d.json") s"
    fi
    echo "$line"
done
rm -rf "$tmp"
