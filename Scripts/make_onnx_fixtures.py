#!/usr/bin/env python3
"""The ONNX export fixtures of Tests/ExportTests: a small student trained on the embedded digits (standardised
features, named classes), its ONNX export by `distill export`, checked by onnx.checker, and ONNX Runtime's logits
for a fixed batch of raw rows.

    swift build -c release && python3 Scripts/make_onnx_fixtures.py

Writes Tests/ExportTests/Fixtures/{student.safetensors, student.onnx, ort.safetensors}; prints ORT's version and the
largest difference between our logits (`distill` is not run on the batch here; the Swift test does that) and ORT's.
Needs onnx, onnxruntime, numpy and safetensors (PyPI).
"""
import gzip, os, subprocess, sys
import numpy as np
import onnx, onnxruntime as ort
from safetensors.numpy import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join("Tests", "ExportTests", "Fixtures")
DISTILL = os.path.join(".build", "release", "distill")


def main():
    os.chdir(ROOT)   # relative paths in the model file's metadata
    os.makedirs(OUT, exist_ok=True)
    model = os.path.join(OUT, "student.safetensors")
    onnx_file = os.path.join(OUT, "student.onnx")
    digits = os.path.join("Data", "digits", "digits.csv.gz")
    subprocess.run([DISTILL, "train", "--data", digits, "--hidden", "24,12", "--epochs", "15", "--seed", "3", "--threads", "1",
                    "--output", model, "--run-dir", "/tmp/onnx-fixture.run", "--force"], check=True)
    subprocess.run([DISTILL, "export", model, "--output", onnx_file, "--probabilities", "--force"], check=True)
    m = onnx.load(onnx_file)
    onnx.checker.check_model(m, full_check=True)
    rows = np.loadtxt(gzip.open(digits), delimiter=",", dtype=np.float32)
    batch = rows[:32, :64].copy()
    session = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    logits, probabilities = session.run(None, {"input": batch})
    save_file({"input": batch, "logits": logits.astype(np.float32), "probabilities": probabilities.astype(np.float32)},
              os.path.join(OUT, "ort.safetensors"),
              metadata={"onnxruntime": ort.__version__, "onnx": onnx.__version__, "checker": "full_check passed"})
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}: checker passed; {len(batch)} rows", file=sys.stderr)


if __name__ == "__main__":
    main()
