#!/usr/bin/env python3
"""Loading a large CSV: `distill data inspect` against pandas.read_csv (C engine) and, when it installs, PyArrow's
reader, on the same file and machine, alternated, each in a fresh process (so each peak RSS is its own).

    python3 Scripts/csv_bench.py [--rows 1000000] [--columns 50] [--rounds 3] [--file /tmp/csv-bench.csv]

The file (made once, seeded): `--columns` float features with 6-7 significant digits and an integer label in 0..9,
with a header; about 500 MB for 1,000,000 x 50. Prints the median seconds and peak RSS of each reader, the ratios
ours / pandas (and ours / pyarrow), and peak RSS over the float32 size of the data.
"""
import argparse, json, os, random, statistics, subprocess, sys, time

READERS = {
    "pandas": "import pandas as pd, resource, time, sys, json\n"
              "t = time.perf_counter(); df = pd.read_csv(sys.argv[1], engine='c'); s = time.perf_counter() - t\n"
              "print(json.dumps({'seconds': s, 'rows': len(df), 'peak_rss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))",
    "pyarrow": "import pyarrow.csv as pc, resource, time, sys, json\n"
               "t = time.perf_counter(); tb = pc.read_csv(sys.argv[1]); s = time.perf_counter() - t\n"
               "print(json.dumps({'seconds': s, 'rows': tb.num_rows, 'peak_rss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))",
}


def make(path, rows, columns):
    rng = random.Random(7)
    with open(path, "w") as f:
        f.write(",".join(f"f{j}" for j in range(columns)) + ",label\n")
        for _ in range(rows):
            f.write(",".join(f"{rng.gauss(0, 3):.6g}" for _ in range(columns)) + f",{rng.randrange(10)}\n")


def ours(distill, path, threads):
    out = subprocess.run([distill, "data", "inspect", path, "--threads", str(threads), "--json"], check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out)
    return {"seconds": r["seconds"], "rows": r["examples"], "peak_rss_bytes": r["peak_rss_bytes"], "float32_bytes": r["float32_bytes"]}


def python_reader(name, path):
    out = subprocess.run([sys.executable, "-c", READERS[name], path], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--columns", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--file", default="/tmp/csv-bench.csv")
    p.add_argument("--distill", default=".build/release/distill")
    a = p.parse_args()
    if not os.path.exists(a.file):
        print(f"making {a.file} ({a.rows} x {a.columns})", file=sys.stderr)
        make(a.file, a.rows, a.columns)
    readers = ["ours", "pandas"]
    try:
        subprocess.run([sys.executable, "-c", "import pyarrow.csv"], check=True, capture_output=True)
        readers.append("pyarrow")
    except subprocess.CalledProcessError:
        print("pyarrow not importable: only pandas as the anchor", file=sys.stderr)
    results = {r: [] for r in readers}
    for _ in range(a.rounds):
        for r in readers:
            results[r].append(ours(a.distill, a.file, a.threads) if r == "ours" else python_reader(r, a.file))
    size = os.path.getsize(a.file)
    float32 = results["ours"][0]["float32_bytes"]
    summary = {"file": a.file, "bytes": size, "rows": results["ours"][0]["rows"], "threads": a.threads, "rounds": a.rounds}
    for r in readers:
        summary[r] = {"seconds": statistics.median(x["seconds"] for x in results[r]),
                      "peak_rss_bytes": statistics.median(x["peak_rss_bytes"] for x in results[r]),
                      "all_seconds": [x["seconds"] for x in results[r]]}
    for r in readers[1:]:
        summary[f"ours_over_{r}"] = summary["ours"]["seconds"] / summary[r]["seconds"]
    summary["ours_peak_over_float32"] = summary["ours"]["peak_rss_bytes"] / float32
    print(json.dumps(summary, indent=1))
    print(f"{size / 1e6:.0f} MB, {summary['rows']} rows; median of {a.rounds}:", file=sys.stderr)
    for r in readers:
        print(f"  {r:8s} {summary[r]['seconds']:7.2f} s  peak RSS {summary[r]['peak_rss_bytes'] / 2**20:6.0f} MiB", file=sys.stderr)
    for r in readers[1:]:
        print(f"  ours / {r}: {summary[f'ours_over_{r}']:.2f}", file=sys.stderr)
    print(f"  ours: peak RSS / float32 data = {summary['ours_peak_over_float32']:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
