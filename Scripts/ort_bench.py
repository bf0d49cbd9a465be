#!/usr/bin/env python3
"""Inference against the deployment anchor: our library (`distill bench --phase inference|latency --model FILE`)
against ONNX Runtime running the same model exported by `distill export`, on the same machine and threads, each
measurement a fresh process, the sides alternated; medians and ratios.

    swift build -c release && python3 Scripts/ort_bench.py [--model student.safetensors ...] [--cnn] [--mlp] [--rounds 5] [--threads 2] [--quick] [--json]

`distill bench --onnxruntime [--phases cnn] [--model FILE] [--quick]` runs this script with its own executable.

Without --model or --cnn a 784-800-800-10 student is trained for one epoch on the embedded MNIST (its weights are
what is timed, not its accuracy). --model may be given several times; --cnn adds the lenet5 and resnet8 model files
of Tests/ExportTests/Fixtures (random weights, 1x28x28 input; lenet5's graph starts with the standardisation, which
our bench phases leave out). ONNX Runtime runs twice: at its default session options, and tuned (intra-op threads
set to --threads, sequential execution, all graph optimisations, no spinning between calls). Throughput: the
10,000 MNIST test images in batches of 1,000, median of 7 passes (3 with --quick); latency: one image, median of
200 calls (50 with --quick), as our phases.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

ORT = r'''
import json, sys, time, gzip, os, numpy as np, onnxruntime as ort
model, phase, threads, tuned, data_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "tuned", sys.argv[5]
quick = len(sys.argv) > 6 and sys.argv[6] == "quick"
o = ort.SessionOptions()
if tuned:
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    o.add_session_config_entry("session.intra_op.allow_spinning", "0")
else:
    o.intra_op_num_threads = threads
s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
raw = gzip.open(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")).read()
x = (np.frombuffer(raw, np.uint8, offset=16).astype(np.float32) / 255)
x = x.reshape([10000] + [int(d) for d in s.get_inputs()[0].shape[1:]])  # the model's sample shape, e.g. [1, 28, 28]
if phase == "inference":
    batches = [x[i:i + 1000] for i in range(0, 10000, 1000)]
    s.run(None, {"input": batches[0]})
    times = []
    for _ in range(3 if quick else 7):
        t = time.perf_counter()
        for b in batches: s.run(None, {"input": b})
        times.append(time.perf_counter() - t)
    print(json.dumps({"seconds_per_pass": sorted(times)[len(times) // 2], "ort": ort.__version__}))
else:
    one = x[:1]
    for _ in range(10): s.run(None, {"input": one})
    times = []
    for _ in range(50 if quick else 200):
        t = time.perf_counter(); s.run(None, {"input": one}); times.append(time.perf_counter() - t)
    print(json.dumps({"latency_ms": sorted(times)[len(times) // 2] * 1e3, "ort": ort.__version__}))
'''


def run(cmd):
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def bench(model, a, work, tag):
    onnx_file = os.path.join(work, f"{tag}.onnx")
    subprocess.run([a.distill, "export", model, "--output", onnx_file], check=True, capture_output=True)
    quick = ["--quick"] if a.quick else []
    results = {"model": model}
    for phase, key, ours_key in [("inference", "seconds_per_pass", "seconds_per_pass"), ("latency", "latency_ms", "latency_milliseconds")]:
        samples = {"ours": [], "ort": [], "ort_tuned": []}
        for _ in range(a.rounds):
            samples["ours"].append(run([a.distill, "bench", "--phase", phase, "--model", model, "--threads", str(a.threads), "--json"] + quick)[ours_key])
            samples["ort"].append(run([sys.executable, "-c", ORT, onnx_file, phase, str(a.threads), "default", a.data_dir, "quick" if a.quick else "full"])[key])
            samples["ort_tuned"].append(run([sys.executable, "-c", ORT, onnx_file, phase, str(a.threads), "tuned", a.data_dir, "quick" if a.quick else "full"])[key])
        medians = {k: statistics.median(v) for k, v in samples.items()}
        results[phase] = {"median": medians, "samples": samples,
                          "ours_over_ort": medians["ours"] / medians["ort"], "ours_over_ort_tuned": medians["ours"] / medians["ort_tuned"]}
    return results


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", action="append", default=[])
    p.add_argument("--cnn", action="store_true", help="time the lenet5 and resnet8 fixtures of Tests/ExportTests")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="3 passes and 50 latency calls per measurement (ours: bench --quick)")
    p.add_argument("--distill", default=".build/release/distill")
    p.add_argument("--data-dir", default="Data/mnist")
    p.add_argument("--mlp", action="store_true", help="time the trained 784-800-800-10 student too when --model or --cnn is given")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.add_argument("--json-output", help="also write the JSON report to this file")
    a = p.parse_args()
    work = tempfile.mkdtemp()
    models = list(a.model)
    if a.cnn:
        models += [os.path.join("Tests", "ExportTests", "Fixtures", f"{n}.safetensors") for n in ("lenet5", "resnet8")]
    if not models or a.mlp:
        model = os.path.join(work, "student.safetensors")
        subprocess.run([a.distill, "train", "--hidden", "800,800", "--epochs", "1", "--output", model, "--run-dir", os.path.join(work, "run")],
                       check=True, capture_output=True)
        models.insert(0, model)
    import onnxruntime
    results = {"onnxruntime": onnxruntime.__version__, "threads": a.threads, "rounds": a.rounds, "quick": a.quick,
               "models": [bench(m, a, work, f"model{i}") for i, m in enumerate(models)]}
    if a.json_output:
        with open(a.json_output, "w") as f: json.dump(results, f, indent=1)
    if a.json:
        print(json.dumps(results, indent=1))
        return
    print(f"ONNX Runtime {onnxruntime.__version__} (CPU provider), {a.threads} threads, medians of {a.rounds} alternated rounds"
          f"{' (quick)' if a.quick else ''}; tuned = sequential, all graph optimisations, no spinning")
    print("\n| model | measure | ours | ORT default | ORT tuned | ours / ORT | ours / ORT tuned |\n|---|---|---|---|---|---|---|")
    for r in results["models"]:
        name = "student (trained 1 epoch)" if r["model"].startswith(work) else os.path.basename(r["model"])
        for phase, label, fmt in [("inference", "10,000 images, batches of 1,000", "{:.4f} s"), ("latency", "one image", "{:.4f} ms")]:
            m = r[phase]["median"]
            print(f"| {name} | {label} | {fmt.format(m['ours'])} | {fmt.format(m['ort'])} | {fmt.format(m['ort_tuned'])} | "
                  f"{r[phase]['ours_over_ort']:.2f} | {r[phase]['ours_over_ort_tuned']:.2f} |")

if __name__ == "__main__":
    main()
