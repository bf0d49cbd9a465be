#!/usr/bin/env python3
"""Ours against PyTorch on a noisy machine: runs `distill bench --phase P` and `Scripts/torch_bench.py --phase P`
alternately, N pairs per phase, each a fresh process timing --epochs epochs (median inside the process), and prints
every pair, the median of each side and the median of the per-pair ratios. On a VM whose speed drifts by +-15-20 %
from minute to minute, the per-pair ratio (two processes a few seconds apart) is steadier than one run of each.

    swift build -c release
    python3 Scripts/interleaved_bench.py --pairs 5 --phases student,distill_online,inference
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(command):
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def seconds(report):
    for key in ("seconds_per_epoch", "secondsPerEpoch", "seconds_per_pass", "secondsPerPass"):
        if report.get(key) is not None:
            return report[key]
    if report.get("latency_milliseconds") is not None:
        return report["latency_milliseconds"] / 1e3
    raise KeyError(f"no timing in {report}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--phases", default="student,distill_online,inference")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--distill", default=str(ROOT / ".build/release/distill"))
    p.add_argument("--json-output", help="also write every measurement here")
    args = p.parse_args()
    common = ["--phase", None, "--json", "--threads", str(args.threads), "--epochs", str(args.epochs)]
    results = {}
    for phase in args.phases.split(","):
        common[1] = phase
        rows = []
        for i in range(args.pairs):
            # Alternate who goes first so a drift within a pair does not always favour one side.
            order = ["ours", "torch"] if i % 2 == 0 else ["torch", "ours"]
            pair = {}
            for side in order:
                if side == "ours":
                    pair[side] = seconds(run([args.distill, "bench"] + common))
                else:
                    pair[side] = seconds(run([sys.executable, "Scripts/torch_bench.py"] + common + ["--data-dir", "Data/mnist"]))
            pair["ratio"] = pair["ours"] / pair["torch"]
            rows.append(pair)
            print(f"{phase} pair {i + 1}: ours {pair['ours']:.4f} s, torch {pair['torch']:.4f} s, ratio {pair['ratio']:.3f}", flush=True)
        summary = {key: statistics.median(r[key] for r in rows) for key in ("ours", "torch", "ratio")}
        summary["ratio_range"] = [min(r["ratio"] for r in rows), max(r["ratio"] for r in rows)]
        results[phase] = {"pairs": rows, "median": summary}
        print(f"{phase}: median ours {summary['ours']:.4f} s, torch {summary['torch']:.4f} s, median ratio "
              f"{summary['ratio']:.3f} (range {summary['ratio_range'][0]:.3f}-{summary['ratio_range'][1]:.3f})", flush=True)
    if args.json_output:
        Path(args.json_output).write_text(json.dumps({"threads": args.threads, "epochs": args.epochs,
                                                      "pairs": args.pairs, "phases": results}, indent=1))


if __name__ == "__main__":
    main()
