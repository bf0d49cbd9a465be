#!/usr/bin/env python3
"""Compares the tensors of two safetensors files (float32): prints the largest absolute difference and the largest
difference relative to each tensor's largest magnitude; exits 1 when a file's tensors differ in names or shapes, or
when --bound is given and the relative difference exceeds it. Standard library only."""
import json, struct, sys, argparse

def read(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == '__metadata__' or info['dtype'] != 'F32':
            continue
        a, b = info['data_offsets']
        out[name] = (info['shape'], struct.unpack('<%df' % ((b - a) // 4), data[a:b]))
    return out

p = argparse.ArgumentParser()
p.add_argument('a'); p.add_argument('b')
p.add_argument('--bound', type=float, help='fail when the largest relative difference exceeds this')
args = p.parse_args()
x, y = read(args.a), read(args.b)
if x.keys() != y.keys() or any(x[k][0] != y[k][0] for k in x):
    print('the files hold different tensors'); sys.exit(1)
absolute = relative = 0.0
for k in x:
    scale = max(max(abs(v) for v in x[k][1]), 1e-30)
    d = max(abs(u - v) for u, v in zip(x[k][1], y[k][1]))
    absolute = max(absolute, d); relative = max(relative, d / scale)
identical = all(x[k][1] == y[k][1] for k in x)
print(f'largest difference {absolute:.3g} (relative to the tensor\'s largest weight {relative:.3g}){", bit-identical" if identical else ""}')
if args.bound is not None and relative > args.bound:
    print(f'exceeds the bound {args.bound:g}'); sys.exit(1)
