"""SwiftDistill -> PyTorch round trip: load a model written by `distill train` / `distill distill` (ModelCheckpoint)
into a plain torch nn.Sequential with load_state_dict(strict=True), and compare its logits with ours.

Usage:
  python3 Scripts/check_student_in_torch.py [MODEL.safetensors [OUR_LOGITS.safetensors]]
    defaults: Tests/DistillationTests/Fixtures/swift_student.safetensors and swift_student_logits.safetensors
    (written by the Swift test RoundTripTorchTests.testWriteStudentFixture with DISTILL_WRITE_ROUNDTRIP_FIXTURES=1)

The nn.Sequential is built from the file's `architecture` metadata (JSON list: {"linear": {"inputCount",
"outputCount"}}, {"relu": {}}, {"dropout": {"probability"}}), so the indices match the tensor names exactly.
Prints the max |torch - swift| of the logits on OUR_LOGITS's batch `x`, and (with the default paths) writes
Tests/DistillationTests/Fixtures/torch_student_logits.safetensors: x [16,784] F32, logits [16,10] F64 (the eval-mode
torch logits computed in float64 from the float32 weights), metadata strict="True".
"""
import json
import os
import sys

import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file

from fixture_common import check_torch_version, f32, f64, save

FIX = "Tests/DistillationTests/Fixtures"


def build(architecture):
    layers = []
    for spec in architecture:
        (kind, args), = spec.items()
        if kind == "linear":
            layers.append(nn.Linear(args["inputCount"], args["outputCount"]))
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "dropout":
            layers.append(nn.Dropout(args["probability"]))
        elif kind == "flatten":
            layers.append(nn.Flatten())
        else:
            raise SystemExit(f"unsupported layer {kind}")
    return nn.Sequential(*layers)


def main():
    check_torch_version()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    default = len(sys.argv) < 2
    model_path = sys.argv[1] if not default else os.path.join(root, FIX, "swift_student.safetensors")
    ours_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, FIX, "swift_student_logits.safetensors")
    with safe_open(model_path, "pt") as f:
        meta = f.metadata() or {}
    print(f"{model_path}: format={meta.get('format')} role={meta.get('role')}")
    model = build(json.loads(meta["architecture"]))
    state = load_file(model_path)
    model.load_state_dict(state, strict=True)  # raises on any missing/unexpected name or shape
    model.eval()
    ours = load_file(ours_path)
    x = ours["x"]
    with torch.no_grad():
        h = x.to(torch.float64)
        for layer in model:
            if isinstance(layer, nn.Linear):
                h = h @ layer.weight.to(torch.float64).T + layer.bias.to(torch.float64)
            elif isinstance(layer, nn.ReLU):
                h = torch.relu(h)
        assert (model(x).to(torch.float64) - h).abs().max() < 1e-4
    diff = (h - ours["logits"].to(torch.float64)).abs().max().item()
    print(f"load_state_dict(strict=True) ok; max |torch - swift| logits = {diff:.3g}")
    if default:
        save({"x": f32(x), "logits": f64(h)}, f"{FIX}/torch_student_logits.safetensors", "check_student_in_torch.py", 0,
             {"strict": "True", "model": "swift_student.safetensors"})
    if diff > 1e-5:
        raise SystemExit("logits differ by more than 1e-5")


if __name__ == "__main__":
    main()
