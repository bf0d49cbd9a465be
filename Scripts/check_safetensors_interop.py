#!/usr/bin/env python3
"""Cross-checks SwiftDistill's safetensors writer/reader against the reference `safetensors` package.

Usage (from the package root; needs python3 with `safetensors` and `torch`; not used by `swift test` itself):

    DISTILL_INTEROP_OUT=/tmp/swift.safetensors swift test --filter testWriteInteropFileWhenRequested
    python3 Scripts/check_safetensors_interop.py check /tmp/swift.safetensors
    python3 Scripts/check_safetensors_interop.py write /tmp/python.safetensors
    DISTILL_INTEROP_IN=/tmp/python.safetensors swift test --filter testReadInteropFileWhenRequested

`check` loads the Swift-written file with the reference loader, compares every value, and also checks that the
reference writer produces byte-identical output for the same tensors and metadata. `write` produces the file the
Swift test `testReadInteropFileWhenRequested` verifies.
"""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

EXPECTED = {
    "weight": torch.tensor([[1, -2, 0.5], [3.25, -0.125, 100]], dtype=torch.float32),
    "half": torch.tensor([1.0 / 3.0, 65504, -0.0], dtype=torch.float16),
    "brain": torch.tensor([1, -3], dtype=torch.bfloat16),
    "labels": torch.tensor([0, 7, -3, 9_000_000_000], dtype=torch.int64),
    "mask": torch.tensor([1, 0, 255], dtype=torch.uint8),
}
METADATA = {"format": "pt", "note": "swift"}


def check(path):
    loaded = load_file(path)
    assert set(loaded) == set(EXPECTED), f"names {sorted(loaded)} != {sorted(EXPECTED)}"
    for name, want in EXPECTED.items():
        got = loaded[name]
        assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
        assert got.shape == want.shape, f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
        assert torch.equal(got.view(torch.uint8) if got.dtype != torch.uint8 else got,
                           want.view(torch.uint8) if want.dtype != torch.uint8 else want), f"{name}: bytes differ"
    with safe_open(path, framework="pt") as f:
        assert f.metadata() == METADATA, f"metadata {f.metadata()} != {METADATA}"
    with open(path, "rb") as f:
        ours = f.read()
    reference = save(EXPECTED, metadata=METADATA)
    if ours == reference:
        print(f"OK: {path} loads correctly and is byte-identical to the reference writer's output")
        return
    # The reference writer emits __metadata__ keys in HashMap (random) order; everything else must match exactly.
    def split(blob):
        n = int.from_bytes(blob[:8], "little")
        return json.loads(blob[8:8 + n]), n, blob[8 + n:]
    (h1, n1, d1), (h2, n2, d2) = split(ours), split(reference)
    assert h1 == h2, f"headers differ:\n  ours:      {h1}\n  reference: {h2}"
    assert list(h1) == list(h2), f"tensor order differs: {list(h1)} vs {list(h2)}"
    assert n1 == n2 and d1 == d2, "data regions differ"
    print(f"OK: {path} loads correctly; header (up to metadata key order) and data match the reference writer")

def write(path):
    tensors = {
        "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4,
        "f16": torch.tensor([0.1, -2.5, 65504], dtype=torch.float16),
        "bf16": torch.tensor([1.5, -7], dtype=torch.bfloat16),
        "f64": torch.tensor([0.5], dtype=torch.float64),
        "i64": torch.tensor([[1, -2], [3, 2**40]], dtype=torch.int64),
        "i32": torch.tensor([-5], dtype=torch.int32),
        "u8": torch.tensor([0, 200], dtype=torch.uint8),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(3.0),
    }
    from safetensors.torch import save_file
    save_file(tensors, path, metadata={"source": "python"})
    print(f"wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("check", "write"):
        sys.exit(__doc__)
    (check if sys.argv[1] == "check" else write)(sys.argv[2])
