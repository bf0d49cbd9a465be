#!/usr/bin/env python3
"""PyTorch reference benchmark for SwiftDistill (pinned to torch 2.13.0+cpu).

Usage
-----
  python3 Scripts/torch_bench.py --quick                 # ~1-2 min smoke run, table output
  python3 Scripts/torch_bench.py --json                  # full run, one JSON object on stdout
  python3 Scripts/torch_bench.py --phase student --epochs 1
  python3 Scripts/torch_bench.py --scaling --json        # also batch-size / width scaling tables

Flags
  --data-dir DIR     MNIST gzip IDX files (train-images-idx3-ubyte.gz, ...); default
                     <repo>/Data/mnist if present, else /work/shared/data/mnist
  --threads N        torch.set_num_threads(N) (default 2)
  --epochs N         timed epochs per training phase (default 3); the median is reported
  --max-batches N    time only the first N batches of each epoch and scale to a full epoch
  --quick            = --epochs 1 --max-batches 20, fewer inference/latency repeats,
                       smaller scaling runs (1024 examples / 0.5 s per point)
  --phase NAME       run one phase in this process (student, teacher, distill_online,
                     distill_cached, distill_store, inference, latency, lenet5, resnet8,
                     lenet5_inference, resnet8_inference, scaling)
  --json             print a single JSON object instead of tables
  --scaling          also run the scaling tables (student training step vs batch size / width)
  --teacher FILE     the distillation phases' trained teacher (safetensors, F32 or F16, tensors
                     1.weight ... 7.bias as nn.Sequential names them); default
                     <repo>/Data/teachers/bench-teacher.safetensors
  --random-teacher   a randomly initialised teacher instead (the benchmark's former teacher)

What is measured (all training: batch 128, SGD lr 0.05 momentum 0.9, cross-entropy; the
60000x784 float32 training set in [0,1] is one tensor in memory, shuffled each epoch with
torch.randperm and batches taken by indexing -- no DataLoader; the last partial batch is used)
  student         784-800-800-10 ReLU MLP
  teacher         Dropout(0.2)-784-1200-ReLU-Dropout(0.5)-1200-ReLU-Dropout(0.5)-10, random
                  +-2 pixel shift per image (zero fill, vectorised pad+gather), max-norm 3.5 on
                  every Linear weight row after each step (torch.renorm in no_grad)
  distill_online  student + teacher (the 1200-1200 net trained, loaded from --teacher; eval mode, no_grad)
                  run on each batch; loss = 0.5*CE + 0.5*400*KL(softmax(t/20) || softmax(s/20))
                  (F.kl_div batchmean)
  distill_store   same loss, teacher logits precomputed for all 60000 examples (not timed)
                  and gathered by the batch indices
  distill_cached  the same in PyTorch (an in-memory precompute is what caching is there); for
                  ours it is distill's default without jitter (CachedTeacher); setup_seconds
                  is the precompute
  inference       eval-mode student forward over the 10000 test images in batches of 1000
                  (seconds per whole pass, median of several)
  latency         eval-mode student forward of one image, median of 200 calls (ms)
  lenet5, resnet8 the CNN presets (ModelPresets.swift) trained on [128, 1, 28, 28] batches, cross-entropy
                  on labels, SGD lr 0.05 momentum 0.9 (resnet8 with batch norm in training mode)
  lenet5_inference, resnet8_inference
                  eval-mode forward of the 10000 test images in batches of 1000 (s per pass)
Timings need an otherwise idle machine: with other processes on the cores, torch's OpenMP
threads spin-wait and a 2-thread run can be 10x slower than a 1-thread run. The report
records the load average and OMP_WAIT_POLICY; under load prefer OMP_WAIT_POLICY=PASSIVE
(inherited by the phase subprocesses) or compare with --threads 1.

Each phase runs in its own subprocess (this script with --phase) so that peak_rss_bytes
(ru_maxrss*1024) is that phase's own peak (it includes the interpreter, torch and the dataset).

GFLOP/s counts 2*m*n*k per matmul: forward, grad-weight and grad-input for every Linear
except the first layer's grad-input (not needed). distill_online adds the teacher forward.
Bias adds, activations, dropout, softmax and optimizer updates are not counted. The CNN phases count
2 x multiply-adds of every convolution and linear layer the same way (forward, weight gradient, input
gradient except the first layer's).
"""
import argparse
import gzip
import json
import os
import resource
import statistics
import re
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PINNED_TORCH = "2.13.0"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_PHASES = ["student", "teacher", "distill_online", "distill_cached", "distill_store"]
CNN_MODELS = ["lenet5", "resnet8"]
CNN_TRAIN_PHASES = CNN_MODELS
CNN_INFERENCE_PHASES = [m + "_inference" for m in CNN_MODELS]
FEATURE_PHASES = ["features"]
ALL_PHASES = TRAIN_PHASES + ["inference", "latency"] + CNN_TRAIN_PHASES + FEATURE_PHASES + CNN_INFERENCE_PHASES
BATCH = 128
LR, MOMENTUM = 0.05, 0.9
STUDENT_DIMS = [(784, 800), (800, 800), (800, 10)]
TEACHER_DIMS = [(784, 1200), (1200, 1200), (1200, 10)]
MAX_NORM = 3.5
DISTILL_T, DISTILL_ALPHA = 20.0, 0.5


# ----------------------------------------------------------------------------- data
def default_data_dir():
    local = os.path.join(REPO_ROOT, "Data", "mnist")
    return local if os.path.isdir(local) else "/work/shared/data/mnist"


def read_idx(path, header_bytes):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header_bytes)


def load_mnist(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"), 16).reshape(-1, 784)
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"), 8)
    # [N,784] float32 in [0,1]; one float32 allocation (in-place divide) to keep peak RSS low
    x = torch.from_numpy(images.copy()).to(torch.float32).div_(255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    return x.contiguous(), y


# ----------------------------------------------------------------------------- models
def make_student(width=800):
    return nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10))


def make_teacher():
    return nn.Sequential(nn.Dropout(0.2), nn.Linear(784, 1200), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(1200, 1200), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1200, 10))


class Residual(nn.Module):
    """body(x) + shortcut(x) (identity when empty), as SwiftDistill's `residual` layer names its parameters."""

    def __init__(self, body, shortcut):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        return self.body(x) + (self.shortcut(x) if len(self.shortcut) else x)


def make_lenet5(classes=10):
    """ModelPresets.lenet5 on 1x28x28: conv5x5(6, pad 2)-ReLU-maxpool2-conv5x5(16)-ReLU-maxpool2-120-84-classes."""
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, classes))


def make_resnet(n=1, classes=10):
    """ModelPresets.resnet<6n+2> on 1x28x28: conv3x3(16)-BN-ReLU, three stages of n basic blocks (16, 32, 64
    channels, stride 2 and a 1x1 conv + BN shortcut at the start of stages 2 and 3), global average pooling, linear."""
    layers = [nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    channels = 16
    for stage, width in enumerate([16, 32, 64]):
        for block in range(n):
            stride = 2 if stage > 0 and block == 0 else 1
            body = nn.Sequential(nn.Conv2d(channels, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                 nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
            shortcut = nn.Sequential() if stride == 1 and channels == width else nn.Sequential(
                nn.Conv2d(channels, width, 1, stride, bias=False), nn.BatchNorm2d(width))
            layers += [Residual(body, shortcut), nn.ReLU()]
            channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes)]
    return nn.Sequential(*layers)


def make_cnn(name):
    return make_lenet5() if name == "lenet5" else make_resnet(1)


def conv_macs(model, shape=(1, 1, 28, 28)):
    """Multiply-adds per example of every Conv2d and Linear forward (hooks on one dummy pass)."""
    total = [0, 0]  # convolutions, linears

    def conv_hook(m, inp, out):
        total[0] += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, inp, out):
        total[1] += m.in_features * m.out_features
    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model.eval()(torch.zeros(shape))
    for h in hooks:
        h.remove()
    return total


def cnn_train_flops_per_example(model):
    """Forward + weight-gradient + input-gradient products (2 x MACs each), the first layer without its input
    gradient -- as `distill bench` counts them."""
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        out = first(torch.zeros(1, first.in_channels, 28, 28))
    first_macs = out[0].numel() * (first.in_channels // first.groups) * first.kernel_size[0] * first.kernel_size[1]
    conv, linear = conv_macs(model)
    return 6 * (conv + linear) - 2 * first_macs


def cnn_forward_flops_per_example(model):
    conv, linear = conv_macs(model)
    return 2 * (conv + linear)


def default_teacher_file():
    return os.path.join(REPO_ROOT, "Data", "teachers", "bench-teacher.safetensors")


def read_safetensors(path):
    """{name: float32 tensor} from a safetensors file (F32 or F16), without the safetensors package."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise SystemExit(f"{path}: too short for a safetensors file")
    n = int.from_bytes(raw[:8], "little")
    if 8 + n > len(raw):
        raise SystemExit(f"{path}: header length {n} runs past the end of the file ({len(raw)} bytes)")
    data = raw[8 + n:]
    out = {}
    try:
        header = json.loads(raw[8:8 + n])
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = {"F32": np.float32, "F16": np.float16}.get(info["dtype"])
            if dtype is None:
                raise SystemExit(f"{path}: tensor {name} has dtype {info['dtype']}, expected F32 or F16")
            lo, hi = info["data_offsets"]
            if not 0 <= lo <= hi <= len(data):
                raise SystemExit(f"{path}: tensor {name}'s data offsets {lo}-{hi} lie outside the {len(data)} data bytes")
            values = np.frombuffer(data[lo:hi], dtype=dtype).astype(np.float32).reshape(info["shape"])
            out[name] = torch.from_numpy(values.copy())
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SystemExit(f"{path}: not a valid safetensors file ({type(e).__name__}: {e})")
    return out


def load_teacher(args):
    """The distillation phases' teacher, in eval mode: the trained one from --teacher (the same file as ours), or
    with --random-teacher a randomly initialised one (drawn after the student either way)."""
    teacher = make_teacher()
    if not args.random_teacher:
        path = args.teacher or default_teacher_file()
        if not os.path.exists(path):
            raise SystemExit(f"no benchmark teacher at {path}: pass --teacher FILE or --random-teacher")
        state = read_safetensors(path)
        try:
            teacher.load_state_dict(state)
        except RuntimeError as e:
            raise SystemExit(f"{path}: not a 784-1200-1200-10 teacher: {e}")
    return teacher.eval()


def train_flops_per_example(dims):
    """forward + grad-weight + grad-input (no grad-input for the first layer)."""
    return sum(6 * i * o for i, o in dims) - 2 * dims[0][0] * dims[0][1]


def forward_flops_per_example(dims):
    return sum(2 * i * o for i, o in dims)


def random_shift(x, max_shift=2):
    """Shift every 28x28 image by its own random (dy, dx) in [-2, 2]^2 with zero fill.

    out[b, i, j] = in[b, i - dy, j - dx] (0 outside), done as pad-by-2 + one gather.
    """
    b = x.shape[0]
    img = F.pad(x.view(b, 28, 28), (max_shift,) * 4)  # [B,32,32]
    dy = torch.randint(-max_shift, max_shift + 1, (b, 1))
    dx = torch.randint(-max_shift, max_shift + 1, (b, 1))
    base = torch.arange(28).unsqueeze(0) + max_shift
    rows = (base - dy).unsqueeze(2)  # [B,28,1]
    cols = (base - dx).unsqueeze(1)  # [B,1,28]
    bidx = torch.arange(b).view(b, 1, 1)
    return img[bidx, rows, cols].reshape(b, 784)


def distill_loss(s, t, y):
    T = DISTILL_T
    soft = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * (T * T)
    return DISTILL_ALPHA * F.cross_entropy(s, y) + (1 - DISTILL_ALPHA) * soft


# ----------------------------------------------------------------------------- timing
def run_epochs(step, n_train, epochs, max_batches, warmup_batches=3):
    """Time `epochs` epochs of step(idx). Returns (median seconds per full epoch, batches timed).

    With max_batches, only the first max_batches batches of each epoch are timed and the time is
    scaled by (examples per epoch / examples timed).
    """
    perm = torch.randperm(n_train)
    for k in range(warmup_batches):  # untimed warm-up (allocator, thread pool, kernels)
        step(perm[k * BATCH:(k + 1) * BATCH])
    times = []
    timed_batches = 0
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n_train)
        n_batches = (n_train + BATCH - 1) // BATCH
        if max_batches:
            n_batches = min(n_batches, max_batches)
        done = 0
        for k in range(n_batches):
            idx = perm[k * BATCH:(k + 1) * BATCH]
            step(idx)
            done += idx.numel()
        dt = time.perf_counter() - t0
        times.append(dt * n_train / done)
        timed_batches = n_batches
    return statistics.median(times), timed_batches, times


def timed_epochs(step, n_train, args, flops):
    """A training phase's figures: `run_epochs` of step(idx), with `flops` per example."""
    spe, timed_batches, all_times = run_epochs(step, n_train, args.epochs, args.max_batches)
    eps = n_train / spe
    return {"seconds_per_epoch": spe, "examples_per_second": eps, "gflops": flops * eps / 1e9,
            "epoch_seconds": all_times, "epochs_timed": args.epochs,
            "batches_timed_per_epoch": timed_batches, "flops_per_example": flops}


def train_phase(name, args, x, y):
    torch.manual_seed(0)
    n = x.shape[0]
    student = make_student()
    if name == "teacher":
        model = make_teacher()
        linears = [m for m in model if isinstance(m, nn.Linear)]
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        model.train()

        def step(idx):
            xb = random_shift(x[idx])
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for lin in linears:
                    lin.weight.renorm_(p=2, dim=0, maxnorm=MAX_NORM)  # in place; 2x faster than copy_(renorm)
        flops = train_flops_per_example(TEACHER_DIMS)
    else:
        opt = torch.optim.SGD(student.parameters(), lr=LR, momentum=MOMENTUM)
        student.train()
        flops = train_flops_per_example(STUDENT_DIMS)
        if name == "student":
            def step(idx):
                loss = F.cross_entropy(student(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        elif name == "distill_online":
            teacher = load_teacher(args)
            flops += forward_flops_per_example(TEACHER_DIMS)

            def step(idx):
                xb = x[idx]
                with torch.no_grad():
                    t = teacher(xb)
                loss = distill_loss(student(xb), t, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        elif name in ("distill_store", "distill_cached"):
            teacher = load_teacher(args)
            t0 = time.perf_counter()
            with torch.inference_mode():  # precompute once, not in the epochs (timed as setup_seconds)
                t_all = torch.cat([teacher(x[i:i + 1000]) for i in range(0, n, 1000)])
            setup_seconds = time.perf_counter() - t0

            def step(idx):
                loss = distill_loss(student(x[idx]), t_all[idx], y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        else:
            raise ValueError(name)
    res = timed_epochs(step, n, args, flops)
    if name in ("distill_store", "distill_cached"):
        res["setup_seconds"] = setup_seconds
    return res


def cnn_train_phase(name, args, x, y):
    """One of CNN_TRAIN_PHASES: the model trained on [N, 1, 28, 28] batches (labels, SGD lr 0.05 momentum 0.9)."""
    torch.manual_seed(0)
    n = x.shape[0]
    images = x.view(n, 1, 28, 28)
    model = make_cnn(name)
    flops = cnn_train_flops_per_example(model)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step(idx):
        loss = F.cross_entropy(model(images[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return timed_epochs(step, n, args, flops)


def dkd_loss(zs, zt, y, alpha, beta, t):
    """Decoupled KD (Zhao et al. 2022) as mdistiller computes it: TCKD on the (target, rest) probabilities, NCKD on
    the non-target classes (the target masked out with -1000), both KL at temperature t, scaled by t^2, batch mean."""
    gt = F.one_hot(y, zs.shape[1]).to(zs.dtype)
    ps, pt = F.softmax(zs / t, 1), F.softmax(zt / t, 1)
    bs = torch.stack([(ps * gt).sum(1), (ps * (1 - gt)).sum(1)], 1)
    bt = torch.stack([(pt * gt).sum(1), (pt * (1 - gt)).sum(1)], 1)
    tckd = F.kl_div(torch.log(bs), bt, reduction="sum") * t * t / zs.shape[0]
    nckd = F.kl_div(F.log_softmax(zs / t - 1000.0 * gt, 1), F.softmax(zt / t - 1000.0 * gt, 1),
                    reduction="sum") * t * t / zs.shape[0]
    return alpha * tckd + beta * nckd


def attention_map(f):
    return F.normalize(f.pow(2).mean(1).view(f.size(0), -1))


def similarity_loss(fs, ft):
    b = fs.shape[0]
    gs = F.normalize(torch.mm(fs.view(b, -1), fs.view(b, -1).t()))
    gt = F.normalize(torch.mm(ft.view(b, -1), ft.view(b, -1).t()))
    return ((gt - gs) ** 2).sum() / (b * b)


def features_phase(args, x, y):
    """`features`: an epoch of LeNet-5 distilled from a ResNet-8 (random weights, evaluation mode) with decoupled KD
    (T 4, alpha 1, beta 2) plus cross-entropy, a FitNets hint (student layer 2 through a 1x1 convolution against
    teacher layer 6), attention transfer (1 -> 4, 2 -> 6) and similarity-preserving KD (10 -> 8), all weights 1, as
    mdistiller-style code runs it: the teacher's forward pass with its features, then the student's step."""
    torch.manual_seed(0)
    n = x.shape[0]
    images = x.view(n, 1, 28, 28)
    teacher = make_resnet(1).eval()
    student = make_lenet5()
    student.train()
    regressor = nn.Conv2d(6, 32, 1)
    flops = cnn_train_flops_per_example(student) + cnn_forward_flops_per_example(teacher)
    opt = torch.optim.SGD(list(student.parameters()) + list(regressor.parameters()), lr=LR, momentum=MOMENTUM)

    def run(model, inputs, keep):
        outputs = {}
        for i, layer in enumerate(model):
            inputs = layer(inputs)
            if i in keep:
                outputs[i] = inputs
        return inputs, outputs

    def step(idx):
        xb, yb = images[idx], y[idx]
        with torch.no_grad():
            zt, ft = run(teacher, xb, {4, 6, 8})
        zs, fs = run(student, xb, {1, 2, 10})
        loss = F.cross_entropy(zs, yb) + dkd_loss(zs, zt, yb, 1.0, 2.0, 4.0)
        loss = loss + F.mse_loss(regressor(fs[2]), ft[6])
        loss = loss + (attention_map(fs[1]) - attention_map(ft[4])).pow(2).mean()
        loss = loss + (attention_map(fs[2]) - attention_map(ft[6])).pow(2).mean()
        loss = loss + similarity_loss(fs[10], ft[8])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return timed_epochs(step, n, args, flops)


def cnn_inference_phase(name, args, xt):
    """`<model>_inference`: eval-mode forward of the 10,000 test images in batches of 1000."""
    torch.manual_seed(0)
    model = make_cnn(name).eval()
    flops = cnn_forward_flops_per_example(model)
    images = xt.view(-1, 1, 28, 28)
    reps = 3 if args.quick else 7
    times = []
    with torch.inference_mode():
        model(images[:1000])  # warm-up
        for _ in range(reps):
            t0 = time.perf_counter()
            for i in range(0, images.shape[0], 1000):
                model(images[i:i + 1000])
            times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    n = images.shape[0]
    return {"seconds_per_pass": s, "examples_per_second": n / s, "gflops": flops * n / s / 1e9, "repeats": reps,
            "pass_seconds": times, "flops_per_example": flops}


def inference_phase(args, xt):
    torch.manual_seed(0)
    model = make_student().eval()
    reps = 3 if args.quick else 7
    times = []
    with torch.inference_mode():
        model(xt[:1000])  # warm-up
        for _ in range(reps):
            t0 = time.perf_counter()
            for i in range(0, xt.shape[0], 1000):
                model(xt[i:i + 1000])
            times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    n = xt.shape[0]
    return {"seconds_per_pass": s, "examples_per_second": n / s,
            "gflops": forward_flops_per_example(STUDENT_DIMS) * n / s / 1e9, "repeats": reps,
            "pass_seconds": times}


def latency_phase(args, xt):
    torch.manual_seed(0)
    model = make_student().eval()
    calls = 50 if args.quick else 200
    one = xt[:1].clone()
    times = []
    with torch.inference_mode():
        for _ in range(10):
            model(one)
        for _ in range(calls):
            t0 = time.perf_counter()
            model(one)
            times.append(time.perf_counter() - t0)
    return {"latency_ms": statistics.median(times) * 1e3, "calls": calls,
            "p90_ms": sorted(times)[int(0.9 * calls)] * 1e3}


def time_student_steps(width, batch, n_examples, max_seconds, x, y):
    """Seconds per example of a student (784-W-W-10) training step at this batch size.

    Times up to n_examples examples (at least 3 steps), stopping early once max_seconds have
    elapsed so that tiny batches on a busy machine stay bounded."""
    torch.manual_seed(0)
    model = make_student(width)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    steps = max(3, n_examples // batch)
    idx_all = torch.randint(0, x.shape[0], (steps + 1, batch))

    def step(idx):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    step(idx_all[0])  # warm-up
    t0 = time.perf_counter()
    done = 0
    for k in range(1, steps + 1):
        step(idx_all[k])
        done += 1
        if done >= 3 and time.perf_counter() - t0 > max_seconds:
            break
    dt = time.perf_counter() - t0
    return dt / (done * batch), done


def scaling_phase(args, x, y):
    n_ex = 1024 if args.quick else 4096
    max_s = 0.5 if args.quick else 2.0
    batch_rows, width_rows = [], []
    for b in [1, 4, 16, 64, 128, 256, 1024]:
        spe, steps = time_student_steps(800, b, n_ex, max_s, x, y)
        batch_rows.append({"batch": b, "seconds_per_example": spe, "steps": steps,
                           "gflops": train_flops_per_example(STUDENT_DIMS) / spe / 1e9})
    for w in [30, 100, 300, 800, 1200, 2400]:
        spe, steps = time_student_steps(w, BATCH, n_ex, max_s, x, y)
        dims = [(784, w), (w, w), (w, 10)]
        width_rows.append({"width": w, "seconds_per_example": spe, "steps": steps,
                           "gflops": train_flops_per_example(dims) / spe / 1e9})
    return {"batch": batch_rows, "width": width_rows, "examples_per_point": n_ex,
            "max_seconds_per_point": max_s}


# ----------------------------------------------------------------------------- driver
def run_phase_here(args):
    torch.set_num_threads(args.threads)
    if args.phase in TRAIN_PHASES or args.phase in CNN_TRAIN_PHASES or args.phase in FEATURE_PHASES or args.phase == "scaling":
        x, y = load_mnist(args.data_dir, "train")
    else:
        x, y = load_mnist(args.data_dir, "test")
    if args.phase in TRAIN_PHASES:
        res = train_phase(args.phase, args, x, y)
    elif args.phase in CNN_TRAIN_PHASES:
        res = cnn_train_phase(args.phase, args, x, y)
    elif args.phase in FEATURE_PHASES:
        res = features_phase(args, x, y)
    elif args.phase in CNN_INFERENCE_PHASES:
        res = cnn_inference_phase(args.phase[:-len("_inference")], args, x)
    elif args.phase == "inference":
        res = inference_phase(args, x)
    elif args.phase == "latency":
        res = latency_phase(args, x)
    elif args.phase == "scaling":
        res = scaling_phase(args, x, y)
    else:
        raise SystemExit(f"unknown phase {args.phase}")
    res["loadavg_1min"] = os.getloadavg()[0]
    res["torch_version"] = torch.__version__
    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    res["torch_blas"] = blas.group(1) if blas else "unknown"
    res["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return res


def child_args(args, phase):
    a = [sys.executable, os.path.abspath(__file__), "--phase", phase, "--json",
         "--data-dir", args.data_dir, "--threads", str(args.threads), "--epochs", str(args.epochs)]
    if args.max_batches:
        a += ["--max-batches", str(args.max_batches)]
    if args.quick:
        a.append("--quick")
    if args.random_teacher:
        a.append("--random-teacher")
    elif args.teacher:
        a += ["--teacher", args.teacher]
    return a


def run_child(args, phase):
    t0 = time.perf_counter()
    p = subprocess.run(child_args(args, phase), capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit(f"phase {phase} failed (rc={p.returncode})")
    if not args.json:
        print(f"  [{phase}: {time.perf_counter() - t0:.1f} s wall]", file=sys.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def warn_if_loaded():
    """Timings are only meaningful on an otherwise idle machine. With other processes on the
    cores, multi-threaded (OpenMP, spin-waiting) runs can be 10x slower; running with
    OMP_WAIT_POLICY=PASSIVE or --threads 1 is far less sensitive to that."""
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"WARNING: 1-min load average {load:.2f} on {os.cpu_count()} CPUs -- other processes are "
              f"running, timings will be pessimistic (see OMP_WAIT_POLICY=PASSIVE / --threads 1)",
              file=sys.stderr)


def fmt_bytes(b):
    return f"{b / 2**20:.0f} MiB"


def print_tables(report):
    print(f"PyTorch {report['torch_version']}  threads={report['threads']}  "
          f"epochs={report['epochs']}  max_batches={report['max_batches']}  quick={report['quick']}  "
          f"OMP_WAIT_POLICY={report.get('omp_wait_policy') or '(unset)'}")
    if "loadavg_start" in report:
        print(f"load average (1/5/15 min) at start {report['loadavg_start']}, "
              f"end {report.get('loadavg_end')}, {report.get('cpu_count')} CPUs")
    ph = report["phases"]
    if ph:
        print(f"\n{'phase':16s} {'s/epoch':>9s} {'examples/s':>11s} {'GFLOP/s':>8s} {'peak RSS':>9s}")
    for name in TRAIN_PHASES + CNN_TRAIN_PHASES + FEATURE_PHASES:
        if name in ph:
            r = ph[name]
            print(f"{name:16s} {r['seconds_per_epoch']:9.2f} {r['examples_per_second']:11.0f} "
                  f"{r['gflops']:8.1f} {fmt_bytes(r['peak_rss_bytes']):>9s}")
    if "inference" in ph:
        r = ph["inference"]
        print(f"{'inference':16s} {r['seconds_per_pass']:9.3f} {r['examples_per_second']:11.0f} "
              f"{r['gflops']:8.1f} {fmt_bytes(r['peak_rss_bytes']):>9s}   (s per 10000-image pass)")
    for name in CNN_INFERENCE_PHASES:
        if name in ph:
            r = ph[name]
            print(f"{name:16s} {r['seconds_per_pass']:9.3f} {r['examples_per_second']:11.0f} "
                  f"{r['gflops']:8.1f} {fmt_bytes(r['peak_rss_bytes']):>9s}   (s per 10000-image pass)")
    if "latency" in ph:
        r = ph["latency"]
        print(f"{'latency':16s} {r['latency_ms']:9.3f} ms (median of {r['calls']}, p90 {r['p90_ms']:.3f} ms)"
              f"  peak RSS {fmt_bytes(r['peak_rss_bytes'])}")
    sc = report.get("scaling")
    if sc:
        print(f"\nstudent training step vs batch size (up to {sc['examples_per_point']} examples or "
              f"{sc['max_seconds_per_point']} s per point)")
        print(f"{'batch':>6s} {'us/example':>11s} {'GFLOP/s':>8s} {'steps':>6s}")
        for r in sc["batch"]:
            print(f"{r['batch']:6d} {r['seconds_per_example'] * 1e6:11.1f} {r['gflops']:8.1f} {r['steps']:6d}")
        print(f"\nstudent 784-W-W-10 training step vs width (batch {BATCH})")
        print(f"{'width':>6s} {'us/example':>11s} {'GFLOP/s':>8s} {'steps':>6s}")
        for r in sc["width"]:
            print(f"{r['width']:6d} {r['seconds_per_example'] * 1e6:11.1f} {r['gflops']:8.1f} {r['steps']:6d}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=default_data_dir(), help="MNIST gzip IDX folder (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--epochs", type=int, default=None, help="timed epochs per phase, median reported (default 3; 1 with --quick)")
    ap.add_argument("--max-batches", type=int, default=None, help="time only the first N batches per epoch, scaled to a full epoch (20 with --quick)")
    ap.add_argument("--quick", action="store_true", help="short smoke run (~1-2 min)")
    ap.add_argument("--phase", choices=ALL_PHASES + ["scaling"], help="run one phase only (in this process)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--scaling", action="store_true", help="also run the batch-size / width scaling tables")
    ap.add_argument("--teacher", default=None, help="the distillation phases' trained teacher (default: %s)" % default_teacher_file())
    ap.add_argument("--random-teacher", action="store_true", help="a randomly initialised teacher instead")
    args = ap.parse_args()
    if args.teacher and args.random_teacher:
        ap.error("--teacher and --random-teacher: pass one of them")
    if args.epochs is None:
        args.epochs = 1 if args.quick else 3
    if args.max_batches is None and args.quick:
        args.max_batches = 20

    if torch.__version__.split("+")[0] != PINNED_TORCH:
        print(f"WARNING: benchmark pinned to torch {PINNED_TORCH}, running {torch.__version__}", file=sys.stderr)

    # --phase X alone (or --phase scaling): run X in this process (what the subprocesses do).
    # --phase X --scaling: X and the scaling tables, each in a subprocess.
    # no --phase: every phase (+ scaling with --scaling), each in a subprocess.
    in_process = args.phase == "scaling" or (args.phase is not None and not args.scaling)
    phases = [args.phase] if args.phase else ALL_PHASES

    report = {"torch_version": torch.__version__, "threads": args.threads, "epochs": args.epochs,
              "max_batches": args.max_batches, "quick": args.quick, "batch": BATCH,
              "data_dir": args.data_dir, "cpu_count": os.cpu_count(),
              "distill_teacher": "random" if args.random_teacher else (args.teacher or default_teacher_file()),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
              "loadavg_start": list(os.getloadavg()), "phases": {}}
    warn_if_loaded()
    if in_process:
        res = run_phase_here(args)
        if args.json:
            print(json.dumps(res))
            return
        if args.phase == "scaling":
            report["scaling"] = res
        else:
            report["phases"][args.phase] = res
        print_tables(report)
        return

    for ph in phases:
        report["phases"][ph] = run_child(args, ph)
    if args.scaling:
        report["scaling"] = run_child(args, "scaling")
    report["loadavg_end"] = list(os.getloadavg())
    if args.json:
        print(json.dumps(report))
    else:
        print_tables(report)


if __name__ == "__main__":
    main()
