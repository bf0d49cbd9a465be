#!/usr/bin/env bash
# The oneDNN network stage (ConvolutionalStageTimingTests, ours and Sequential.infer) against ONNX Runtime on the
# lenet5 and resnet8 fixtures (Tests/ExportTests/Fixtures/*.onnx), the two alternated ROUNDS times (default 5) at
# THREADS threads (default 2), each side a fresh process. Both sides time random 1x28x28 images: 10,000 in batches of
# 1,000 (median of 5 passes) and one image (median of 200 calls after warm-up). Prints one JSON line per measurement;
# compare the medians over the rounds. DISTILL_TIMING_SHARED_POOL=1 adds our one-image variants (one thread, oneDNN's
# OpenMP pool; the linear layers on one thread or split over the helpers). Build first: swift build -c release --build-tests
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-2}
ORT='
import json, sys, time, numpy as np, onnxruntime as ort
name, threads = sys.argv[1], int(sys.argv[2])
o = ort.SessionOptions()
o.intra_op_num_threads = threads
s = ort.InferenceSession(f"Tests/ExportTests/Fixtures/{name}.onnx", o, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(11)
batches = [rng.random((1000, 1, 28, 28), dtype=np.float32) for _ in range(10)]
one = rng.random((1, 1, 28, 28), dtype=np.float32)
s.run(None, {"input": batches[0]})
passes = []
for _ in range(5):
    t = time.perf_counter()
    for b in batches: s.run(None, {"input": b})
    passes.append(time.perf_counter() - t)
for _ in range(20): s.run(None, {"input": one})
calls = []
for _ in range(200):
    t = time.perf_counter(); s.run(None, {"input": one}); calls.append(time.perf_counter() - t)
print("ORT " + json.dumps({"model": name, "threads": threads, "ort_seconds_per_10000": sorted(passes)[2],
                           "ort_latency_ms": sorted(calls)[100] * 1e3, "ort": ort.__version__}))
'
for round in $(seq 1 "$ROUNDS"); do
    DISTILL_TIMING=1 DISTILL_TIMING_THREADS=$THREADS swift test -c release --skip-build \
        --filter ConvolutionalStageTimingTests 2>&1 | grep '^TIMING' | sed "s/^/round $round /"
    for model in lenet5 resnet8; do
        python3 -c "$ORT" "$model" "$THREADS" | sed "s/^/round $round /"
    done
done
