#!/usr/bin/env python3
"""PyTorch reference for the hinton-mnist distilled student, from the SAME teacher file our run uses.

Distils a 784-800-800-10 student from a teacher written by SwiftDistill (any ModelCheckpoint, e.g. the
`hinton-teacher-full-seed0-*.safetensors` that `distill reproduce hinton-mnist --preset full` caches in its work
directory), with the preset's recipe: SGD lr 0.1, momentum 0.9, cosine annealing to 0 stepped per epoch over 30
epochs, batch 128, loss 0.5 * CE(labels) + 0.5 * T^2 * CE(softmax(z_t / T), softmax(z_s / T)) at T = 20 on the
teacher's un-augmented logits, PyTorch's default initialisation. Prints test errors per epoch and at the end, so the
two implementations can be compared on identical inputs (the teacher's logits are recomputed here in float32).

    python3 Scripts/torch_distill_reference.py TEACHER.safetensors [--seed 0] [--validation 5000] [--epochs 30]
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_student_in_torch import build  # noqa: E402
from torch_bench import load_mnist  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("teacher")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--validation", type=int, default=5000, help="training images held out (the last ones after a seeded shuffle)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--temperature", type=float, default=20)
    p.add_argument("--hard", type=float, default=0.5)
    p.add_argument("--soft", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Data/mnist"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    with safe_open(args.teacher, "pt") as f:
        meta = f.metadata() or {}
    teacher = build(json.loads(meta["architecture"]))
    teacher.load_state_dict(load_file(args.teacher), strict=True)
    teacher.eval()

    x, y = load_mnist(args.data_dir, "train")
    xt, yt = load_mnist(args.data_dir, "t10k")
    order = torch.randperm(len(x))
    train_idx = order[: len(x) - args.validation]
    x, y = x[train_idx], y[train_idx]
    with torch.no_grad():
        teacher_logits = torch.cat([teacher(x[i:i + 1000]) for i in range(0, len(x), 1000)])
        print(f"teacher test errors {(teacher(xt).argmax(1) != yt).sum().item()}")

    student = nn.Sequential(nn.Linear(784, 800), nn.ReLU(), nn.Linear(800, 800), nn.ReLU(), nn.Linear(800, 10))
    opt = torch.optim.SGD(student.parameters(), lr=args.lr, momentum=0.9)
    T = args.temperature
    for epoch in range(args.epochs):
        for group in opt.param_groups:
            group["lr"] = 0.5 * args.lr * (1 + math.cos(math.pi * epoch / args.epochs))
        student.train()
        perm = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            zs = student(x[idx])
            soft = -(F.softmax(teacher_logits[idx] / T, dim=1) * F.log_softmax(zs / T, dim=1)).sum(1).mean()
            loss = args.hard * F.cross_entropy(zs, y[idx]) + args.soft * T * T * soft
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        student.eval()
        with torch.no_grad():
            errors = (student(xt).argmax(1) != yt).sum().item()
        print(f"epoch {epoch + 1}/{args.epochs} loss {total / len(x):.4f} test errors {errors}", flush=True)
    print(json.dumps({"seed": args.seed, "test_errors": errors}))


if __name__ == "__main__":
    main()
