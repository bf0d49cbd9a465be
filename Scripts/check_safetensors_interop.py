#!/usr/bin/env python3
"""Cross-checks SwiftDistill's safetensors writer/reader against the reference `safetensors` package.

Usage (from the package root; needs python3 with `safetensors` and `numpy`, no torch; `.ci/run` runs these four
steps when `pip install safetensors numpy` works):

    DISTILL_INTEROP_OUT=/tmp/swift.safetensors swift test --filter testWriteInteropFileWhenRequested
    python3 Scripts/check_safetensors_interop.py check /tmp/swift.safetensors
    python3 Scripts/check_safetensors_interop.py write /tmp/python.safetensors
    DISTILL_INTEROP_IN=/tmp/python.safetensors swift test --filter testReadInteropFileWhenRequested

`check` loads the Swift-written file with the reference loader (`safetensors.deserialize`, which keeps every dtype,
bfloat16 included, as raw little-endian bytes), compares every tensor's dtype, shape and bytes, and also checks
that the reference writer produces byte-identical output for the same tensors and metadata. `write` produces the
file the Swift test `testReadInteropFileWhenRequested` verifies. Any mismatch exits non-zero.
"""
import json
import sys

import numpy as np
import safetensors
from safetensors import deserialize, safe_open


def bf16(values):
    """bfloat16 bytes of `values` (the upper half of each float32; exact for the values used here)."""
    bits = np.asarray(values, dtype="<f4").view("<u4")
    assert (bits & 0xFFFF == 0).all(), "not exactly representable in bfloat16"
    return (bits >> 16).astype("<u2")


def entry(dtype, array):
    """(safetensors dtype, reference-serializer dtype name, shape, little-endian bytes)."""
    names = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64", "I64": "int64",
             "I32": "int32", "U8": "uint8", "BOOL": "bool"}
    return dtype, names[dtype], list(array.shape), array.tobytes()


# The tensors `testWriteInteropFileWhenRequested` writes.
EXPECTED = {
    "weight": entry("F32", np.array([[1, -2, 0.5], [3.25, -0.125, 100]], dtype="<f4")),
    "half": entry("F16", np.array([1.0 / 3.0, 65504, -0.0], dtype="<f2")),
    "brain": entry("BF16", bf16([1, -3])),
    "labels": entry("I64", np.array([0, 7, -3, 9_000_000_000], dtype="<i8")),
    "mask": entry("U8", np.array([1, 0, 255], dtype="u1")),
}
METADATA = {"format": "pt", "note": "swift"}

# The tensors `testReadInteropFileWhenRequested` expects.
PYTHON_FILE = {
    "f32": entry("F32", (np.arange(6, dtype="<f4").reshape(2, 3) / 4).astype("<f4")),
    "f16": entry("F16", np.array([0.1, -2.5, 65504], dtype="<f2")),
    "bf16": entry("BF16", bf16([1.5, -7])),
    "f64": entry("F64", np.array([0.5], dtype="<f8")),
    "i64": entry("I64", np.array([[1, -2], [3, 2**40]], dtype="<i8")),
    "i32": entry("I32", np.array([-5], dtype="<i4")),
    "u8": entry("U8", np.array([0, 200], dtype="u1")),
    "bool": entry("BOOL", np.array([True, False])),
    "scalar": entry("F32", np.array(3.0, dtype="<f4")),
}
PYTHON_METADATA = {"source": "python"}


def reference_bytes(tensors, metadata):
    """The reference writer's file for `tensors` (safetensors' own serializer: TensorSpec pointers in
    recent releases, dicts of bytes before)."""
    if hasattr(safetensors, "TensorSpec"):
        buffers = {k: np.frombuffer(data, dtype=np.uint8) for k, (_, _, _, data) in tensors.items()}
        specs = {k: safetensors.TensorSpec(dtype=name, shape=shape, data_ptr=buffers[k].ctypes.data,
                                          data_len=len(data))
                 for k, (_, name, shape, data) in tensors.items()}
        return bytes(safetensors.serialize(specs, metadata=metadata))
    specs = {k: {"dtype": name, "shape": shape, "data": data} for k, (_, name, shape, data) in tensors.items()}
    return bytes(safetensors.serialize(specs, metadata=metadata))


def check(path):
    with open(path, "rb") as f:
        ours = f.read()
    loaded = dict(deserialize(ours))
    assert set(loaded) == set(EXPECTED), f"names {sorted(loaded)} != {sorted(EXPECTED)}"
    for name, (dtype, _, shape, data) in EXPECTED.items():
        got = loaded[name]
        assert got["dtype"] == dtype, f"{name}: dtype {got['dtype']} != {dtype}"
        assert list(got["shape"]) == shape, f"{name}: shape {got['shape']} != {shape}"
        assert bytes(got["data"]) == data, f"{name}: bytes differ"
    with safe_open(path, framework="numpy") as f:
        assert f.metadata() == METADATA, f"metadata {f.metadata()} != {METADATA}"
    reference = reference_bytes(EXPECTED, METADATA)
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
    data = reference_bytes(PYTHON_FILE, PYTHON_METADATA)
    # What was written must read back as written (through the reference loader).
    back = dict(deserialize(data))
    for name, (dtype, _, shape, raw) in PYTHON_FILE.items():
        assert (back[name]["dtype"], list(back[name]["shape"]), bytes(back[name]["data"])) == (dtype, shape, raw), name
    with open(path, "wb") as f:
        f.write(data)
    print(f"wrote {path} (safetensors {safetensors.__version__})")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("check", "write"):
        sys.exit(__doc__)
    (check if sys.argv[1] == "check" else write)(sys.argv[2])
