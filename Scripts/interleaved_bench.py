#!/usr/bin/env python3
"""Ours against PyTorch on a noisy machine: runs `distill bench --phase P` and `Scripts/torch_bench.py --phase P`
alternately, N pairs per phase, each a fresh process timing --epochs epochs (median inside the process), and prints
every pair, the median of each side and the median of the per-pair ratios. On a VM whose speed drifts by +-15-20 %
from minute to minute, the per-pair ratio (two processes a few seconds apart) is steadier than one run of each.

    swift build -c release
    python3 Scripts/interleaved_bench.py --pairs 5 --phases student,distill_online,inference
    python3 Scripts/interleaved_bench.py --blas openblas,mkl    # ours on each library, one torch run per pair
    python3 Scripts/interleaved_bench.py --blas openblas,openblas+dense   # also ours with --dense-inputs
    python3 Scripts/interleaved_bench.py --tuned-torch            # also PyTorch with glibc's allocator tuned

PyTorch's training phases at glibc's default malloc settings spend a large share of a student epoch in page faults:
`zero_grad(set_to_none=True)` frees the multi-megabyte gradients every step and glibc hands the top of the heap back
to the kernel (`MALLOC_TRIM_THRESHOLD_`), so the next step faults it in again. `--tuned-torch` adds a second PyTorch
run per pair with TUNED_MALLOC below in its environment (heap kept, big blocks not mmapped): what a user who knows
this gets. The default run stays the headline (what `pip install torch` gives); both ratios are printed.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# glibc malloc settings for --tuned-torch: never trim the heap, keep 64 MiB of slack at its top, and serve blocks up to
# 32 MiB (every tensor here) from the heap rather than fresh mmaps.
TUNED_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(1 << 31), "MALLOC_TOP_PAD_": str(64 << 20),
                "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}


def run(command, env=None):
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT,
                         env=None if env is None else {**os.environ, **env}).stdout
    return json.loads(out.strip().splitlines()[-1])


def seconds(report):
    for key in ("seconds_per_epoch", "secondsPerEpoch", "seconds_per_pass", "secondsPerPass"):
        if report.get(key) is not None:
            return report[key]
    for key in ("latency_milliseconds", "latency_ms"):
        if report.get(key) is not None:
            return report[key] / 1e3
    raise KeyError(f"no timing in {report}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--phases", default="student,distill_online,inference")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--distill", default=str(ROOT / ".build/release/distill"))
    p.add_argument("--blas", default="openblas",
                   help="comma-separated `distill --blas` libraries to time in every pair; LIB+dense runs LIB with --dense-inputs")
    p.add_argument("--tuned-torch", action="store_true",
                   help="also time PyTorch with glibc's allocator tuned (TUNED_MALLOC) in every pair")
    p.add_argument("--json-output", help="also write every measurement here")
    p.add_argument("--random-teacher", action="store_true",
                   help="the distillation phases use a randomly initialised teacher on both sides (default: the "
                        "shipped trained one, Data/teachers/bench-teacher.safetensors)")
    args = p.parse_args()
    common = ["--phase", None, "--json", "--threads", str(args.threads), "--epochs", str(args.epochs)]
    if args.random_teacher:
        common.append("--random-teacher")
    results = {}
    for phase in args.phases.split(","):
        common[1] = phase
        rows = []
        libraries = args.blas.split(",")
        torches = ["torch"] + (["torch-tuned"] if args.tuned_torch else [])
        sides = [f"ours-{b}" for b in libraries] + torches
        for i in range(args.pairs):
            # Rotate who goes first so a drift within a pair does not always favour one side.
            order = sides[i % len(sides):] + sides[:i % len(sides)]
            pair = {}
            for side in order:
                if side.startswith("ours-"):
                    library, _, variant = side[5:].partition("+")
                    pair[side] = seconds(run([args.distill, "bench"] + common + ["--blas", library]
                                             + (["--dense-inputs"] if variant == "dense" else [])))
                else:
                    pair[side] = seconds(run([sys.executable, "Scripts/torch_bench.py"] + common + ["--data-dir", "Data/mnist"],
                                             env=TUNED_MALLOC if side == "torch-tuned" else None))
            for b in libraries:
                pair["ratio-" + b] = pair["ours-" + b] / pair["torch"]
                if args.tuned_torch:
                    pair[f"ratio-{b}-tuned"] = pair["ours-" + b] / pair["torch-tuned"]
            rows.append(pair)
            print(f"{phase} pair {i + 1}: " + ", ".join(f"{k} {v:.5g}" for k, v in pair.items()), flush=True)
        summary = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        ratio_keys = [k[len("ratio-"):] for k in rows[0] if k.startswith("ratio-")]
        for b in ratio_keys:
            summary["range-" + b] = [min(r["ratio-" + b] for r in rows), max(r["ratio-" + b] for r in rows)]
        results[phase] = {"pairs": rows, "median": summary}
        print(f"{phase} medians: " + ", ".join(f"{k} {v:.5g}" for k, v in summary.items() if not k.startswith("range"))
              + "; ratio ranges " + ", ".join(f"{b} {summary['range-' + b][0]:.3f}-{summary['range-' + b][1]:.3f}" for b in ratio_keys),
              flush=True)
    if args.json_output:
        Path(args.json_output).write_text(json.dumps({"threads": args.threads, "epochs": args.epochs, "blas": libraries,
                                                      "pairs": args.pairs, "random_teacher": args.random_teacher, "tuned_torch_malloc": TUNED_MALLOC if args.tuned_torch else None,
                                                      "phases": results}, indent=1))


if __name__ == "__main__":
    main()
