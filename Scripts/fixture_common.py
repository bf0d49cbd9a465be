"""Shared helpers for the SwiftDistill fixture scripts (imported by make_*_fixtures.py).

Conventions (all fixtures):
  * safetensors files written with safetensors.torch.save_file(tensors, path, metadata)
  * every tensor is contiguous; inputs are float32 (F32), labels int64 (I64),
    expected outputs are computed in float64 and stored as F64
  * "scalar" results (losses, norms) are stored with shape [1]
  * metadata values are strings; structured info is a JSON string; every file has
    "torch_version", "seed" and "script"
"""
import json
import os
import struct
import sys
import warnings

import torch
from safetensors.torch import save_file

PINNED_TORCH = "2.13.0"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def check_torch_version():
    """Fixtures are pinned to torch 2.13; warn loudly (but continue) on any other version."""
    v = torch.__version__.split("+")[0]
    if v != PINNED_TORCH:
        msg = (f"WARNING: fixtures are pinned to torch {PINNED_TORCH} but torch {torch.__version__} "
               f"is installed; regenerated values may differ in the last bits.")
        warnings.warn(msg)
        print(msg, file=sys.stderr)


def fixture_path(rel):
    """Path relative to the repository root (so the scripts can be run from anywhere)."""
    p = os.path.join(REPO_ROOT, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def f64(t):
    return t.detach().to(torch.float64).contiguous().clone()


def i64(t):
    return t.detach().to(torch.int64).contiguous().clone()


def canonicalize_header(path):
    """Make the file byte-for-byte reproducible.

    safetensors serialises "__metadata__" from a Rust HashMap, so its key order (and hence the
    file bytes) changes from run to run even though the data is identical.  Rewrite the JSON
    header with sorted keys (same tensor offsets, so the data section is untouched), padded
    with spaces to a multiple of 8 bytes exactly as safetensors itself does.
    """
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + data)
    os.chmod(path, 0o644)  # safetensors creates the file 0600


def save(tensors, rel_path, script, seed, extra_meta):
    """Validate and write a fixture; print a one-line summary per tensor (max |value|)."""
    meta = {"torch_version": torch.__version__, "seed": str(seed), "script": script}
    for k, v in extra_meta.items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    for name, t in tensors.items():
        assert t.is_contiguous(), name
        assert t.dtype in (torch.float32, torch.float64, torch.int64), (name, t.dtype)
        if t.is_floating_point():
            assert torch.isfinite(t).all(), f"non-finite values in {name}"
    path = fixture_path(rel_path)
    save_file(tensors, path, metadata=meta)
    canonicalize_header(path)
    print(f"wrote {rel_path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")
    for name in sorted(tensors):
        t = tensors[name]
        mx = t.abs().max().item() if t.numel() else float("nan")
        print(f"  {name:40s} {str(t.dtype).replace('torch.', ''):8s} {list(t.shape)!s:14s} max|x|={mx:.6g}")
    return path
