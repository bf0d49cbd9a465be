#!/usr/bin/env python3
"""SwiftDistill -> PyTorch round trip for a convolutional model: load a model file written by `ModelCheckpoint`
(format distill-model/2, e.g. a resnet8 with batch norms) into PyTorch with load_state_dict(strict=True), built by
Scripts/torch_models.py from the file's `model` description, and compare its evaluation-mode logits with ours.

Usage:
  python3 Scripts/check_cnn_in_torch.py [MODEL.safetensors [OUR_LOGITS.safetensors]]
    defaults: Tests/DistillationTests/Fixtures/swift_resnet8.safetensors and swift_resnet8_logits.safetensors
    (written by the Swift test CNNRoundTripTorchTests.testWriteSwiftResNetFixture with
    DISTILL_WRITE_ROUNDTRIP_FIXTURES=1)

Checks that every num_batches_tracked is stored as I64 and that the state dict names match exactly (strict load).
Prints the max |torch - swift| of the logits on OUR_LOGITS's batch `x`, and (with the default paths) writes
Tests/DistillationTests/Fixtures/torch_swift_resnet8_logits.safetensors: x F32, logits F64 (the evaluation-mode
torch logits computed in float64 from the file's float32 state), metadata strict="True".
Exits non-zero when the logits differ by more than 1e-5.
"""
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from fixture_common import check_torch_version, f32, f64, save
import torch_models

FIX = "Tests/DistillationTests/Fixtures"


def main():
    check_torch_version()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    default = len(sys.argv) < 2
    model_path = sys.argv[1] if not default else os.path.join(root, FIX, "swift_resnet8.safetensors")
    ours_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, FIX, "swift_resnet8_logits.safetensors")
    model, description, meta = torch_models.load_model(model_path)  # strict: raises on any name or shape mismatch
    print(f"{model_path}: format={meta.get('format')} input {description['inputShape']}, "
          f"{len(model.state_dict())} state tensors")
    with safe_open(model_path, "pt") as f:
        for name in f.keys():
            if name.endswith("num_batches_tracked"):
                dtype = f.get_tensor(name).dtype
                assert dtype == torch.int64, f"{name} stored as {dtype}, expected int64"
    ours = load_file(ours_path)
    x = ours["x"]
    model64 = model.double().eval()
    with torch.no_grad():
        logits = model64(x.double())
    diff = (logits - ours["logits"].double()).abs().max().item()
    print(f"load_state_dict(strict=True) ok; max |torch - swift| logits = {diff:.3g}")
    if default:
        save({"x": f32(x), "logits": f64(logits)}, f"{FIX}/torch_swift_resnet8_logits.safetensors", "check_cnn_in_torch.py", 0,
             {"strict": "True", "model": "swift_resnet8.safetensors"})
    if diff > 1e-5:
        raise SystemExit("logits differ by more than 1e-5")


if __name__ == "__main__":
    main()
