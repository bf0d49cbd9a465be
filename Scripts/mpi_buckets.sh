#!/usr/bin/env bash
# Seconds per epoch of 2 processes x 1 thread against the gradient bucket size (--bucket-mb; 0 = one allreduce
# after the backward pass), alternating the sizes ROUNDS times: the 784-800-800-10 student on MNIST (EPOCHS epochs,
# median) over shared memory and, with NETNS=1 (the README's namespaces), over TCP; ResNet-8 (RESNET=1, 1 epoch).
# Usage: Scripts/mpi_buckets.sh [ROUNDS] [EPOCHS]   (from the package root, after swift build -c release)
set -euo pipefail
rounds=${1:-2}
epochs=${2:-2}
d=$PWD/.build/release/distill
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sizes=(${SIZES:-0 0.25 1 4})
seconds() { python3 -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["seconds_per_epoch"])' "$1"; }
shm() { mpirun --allow-run-as-root --oversubscribe -np 2 "$d" "$@" > "$tmp/r.json" 2>/dev/null; seconds "$tmp/r.json"; }
tcp() {
    NETNS_HOSTS="10.77.0.1=distilltest1 10.77.0.2=distilltest2" ip netns exec distilltest1 unshare --uts sh -c \
        "hostname distilltest1; mpirun --allow-run-as-root -np 2 --hostfile $PWD/Scripts/netns_hosts \
        --mca plm_rsh_agent $PWD/Scripts/netns_agent.sh --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 \
        --mca oob_tcp_if_include 10.77.0.0/24 -x NETNS_HOSTS $d $* > $tmp/r.json 2>/dev/null"
    seconds "$tmp/r.json"
}
student=(train --hidden 800,800 --epochs "$epochs" --seed 0 --threads 1 --force --json --output "$tmp/m.safetensors")
resnet=(train --model resnet8 --epochs 1 --seed 0 --threads 1 --force --json --output "$tmp/m.safetensors")
for round in $(seq "$rounds"); do
    for size in "${sizes[@]}"; do
        line="round $round, --bucket-mb $size: student shm $(shm "${student[@]}" --bucket-mb "$size") s"
        [ "${NETNS:-0}" = 1 ] && line+=", student tcp $(tcp "${student[@]}" --bucket-mb "$size") s"
        [ "${RESNET:-0}" = 1 ] && line+=", resnet8 shm $(shm "${resnet[@]}" --bucket-mb "$size") s"
        echo "$line"
    done
done
