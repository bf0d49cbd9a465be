#!/usr/bin/env python3
"""Write Tests/OptimizersTests/Fixtures/optimizers.safetensors (pinned to torch 2.13.0+cpu).

Run:  python3 Scripts/make_optimizer_fixtures.py      (deterministic; seed 1234)
      python3 Scripts/make_optimizer_fixtures.py --only adam_amsgrad
          regenerates only the named cases' tensors and keeps every other tensor of the committed file
          (float64 results can differ in the last bit between CPUs, e.g. adam_wd.p0.steps on AVX-512)

Inputs are float32; every expected value is computed in float64 (the float32 inputs are
up-cast first) and stored as F64.

Tensors
-------
Optimizer trajectories, for each case name <c> in metadata "cases":
  <c>.p0.init   F32 [3,4]   initial value of parameter p0 (seeded standard normal)
  <c>.p1.init   F32 [4]     initial value of parameter p1
  <c>.g0        F32 [3,4]   fixed "data gradient" g0 (seeded standard normal)
  <c>.g1        F32 [4]     fixed "data gradient" g1
  <c>.p0.steps  F64 [6,3,4] p0 after optimizer step 1..6 (row k = after step k+1)
  <c>.p1.steps  F64 [6,4]   p1 after optimizer step 1..6
  At step k = 0..5 the loss is  d**k * (sum(g0*p0) + sum(g1*p1) + 0.05*(sum(p0**2)+sum(p1**2))),
  i.e. grad p = d**k * (g + 0.1*p) (computed by autograd in float64, then optimizer.step()), where
  d is the case's "grad_decay" (metadata "cases"; 1 except for adam_amsgrad). adam_amsgrad's
  gradient falls (d = 0.2, beta2 0.99) so that its second moment v falls below its running
  maximum vmax and the maximum changes the update (the script checks vmax > v at the end).
  Each case uses its own seeded init/gradients (seed + case index) so they are all stored.

Learning-rate schedules (each [10] F64 = param_groups[0]['lr'] read BEFORE the optimizer
step of epochs 0..9, then optimizer.step(); scheduler.step()); base lr 0.1, SGD:
  schedule.step            StepLR(step_size=3, gamma=0.1)
  schedule.cosine          CosineAnnealingLR(T_max=10, eta_min=0.001)
  schedule.warmup_cosine   SequentialLR([LinearLR(start_factor=0.1, total_iters=3),
                                         CosineAnnealingLR(T_max=7)], milestones=[3])
  (metadata "schedules" describes them, including the closed-form values for comparison)

Gradient-norm clipping (torch.nn.utils.clip_grad_norm_, max_norm in metadata "clip_max_norm",
norm_type 2, over both tensors together):
  clip.grads_in.0   F32 [3,4]   gradient of parameter 0 before clipping
  clip.grads_in.1   F32 [4]     gradient of parameter 1 before clipping
  clip.grads_out.0  F64 [3,4]   after clipping
  clip.grads_out.1  F64 [4]
  clip.total_norm   F64 [1]     returned total norm (of the unclipped gradients)

Max-norm constraint (each ROW of an nn.Linear weight [out,in] = one hidden unit's incoming
weights, rescaled to L2 norm <= c; c in metadata "maxnorm_c" = 1.5):
  maxnorm.w_in        F32 [5,7]  row norms (metadata "maxnorm_row_norms_in"): some above c, some below
  maxnorm.w_out       F64 [5,7]  torch.renorm(w, p=2, dim=0, maxnorm=c) -- PyTorch's version:
                                 rows with norm > c are multiplied by c/(norm + 1e-7)
                                 (so they end up a hair BELOW c)
  maxnorm.w_out_exact F64 [5,7]  w * min(1, c/||row||) -- the exact mathematical projection
"""
import argparse
import json
import math

import torch
from safetensors import safe_open

from fixture_common import check_torch_version, f32, f64, fixture_path, save

SEED = 1234
OUT = "Tests/OptimizersTests/Fixtures/optimizers.safetensors"
STEPS = 6

# Every hyper-parameter explicit (these are exactly what is passed to torch.optim).
CASES = [
    dict(name="sgd", optimizer="sgd", lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0),
    dict(name="sgd_momentum", optimizer="sgd", lr=0.1, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.0),
    dict(name="sgd_nesterov", optimizer="sgd", lr=0.1, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.0),
    dict(name="sgd_wd", optimizer="sgd", lr=0.1, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.01),
    dict(name="sgd_dampening", optimizer="sgd", lr=0.1, momentum=0.9, dampening=0.5, nesterov=False, weight_decay=0.0),
    dict(name="adam", optimizer="adam", lr=0.01, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.0, amsgrad=False),
    # Adam weight_decay = classic L2 (added to the gradient), not decoupled.
    dict(name="adam_wd", optimizer="adam", lr=0.01, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.01, amsgrad=False),
    # A falling gradient (x0.2 per step): with a constant one v only grows and max(vmax, v) is always v. beta2 0.99 lets
    # v fall up to 1% a step; at 0.999 the maximum moved the trajectory by only ~1.3e-5 (the test's tolerance is 1e-5),
    # at 0.99 plain Adam's trajectory differs from this one by ~2e-4.
    dict(name="adam_amsgrad", optimizer="adam", lr=0.01, betas=[0.9, 0.99], eps=1e-8, weight_decay=0.0, amsgrad=True,
         grad_decay=0.2),
    # AdamW's default weight_decay is 0.01; 0.1 makes the decoupled decay clearly visible.
    dict(name="adamw", optimizer="adamw", lr=0.01, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.1, amsgrad=False),
    # AdamW(lr=0.001) with every other argument at its default (wd 0.01).
    dict(name="adamw_default", optimizer="adamw", lr=0.001, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.01, amsgrad=False),
]


def full_case_meta(c):
    """Fill in every field (irrelevant ones get the value that torch uses / a neutral value)."""
    return {
        "name": c["name"], "optimizer": c["optimizer"], "lr": c["lr"],
        "momentum": c.get("momentum", 0.0), "dampening": c.get("dampening", 0.0),
        "nesterov": c.get("nesterov", False), "weight_decay": c.get("weight_decay", 0.0),
        "betas": c.get("betas", [0.9, 0.999]), "eps": c.get("eps", 1e-8),
        "amsgrad": c.get("amsgrad", False), "grad_decay": c.get("grad_decay", 1.0),
    }


def make_optimizer(c, params):
    if c["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=c["lr"], momentum=c["momentum"], dampening=c["dampening"],
                               nesterov=c["nesterov"], weight_decay=c["weight_decay"], foreach=False)
    if c["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=c["lr"], betas=tuple(c["betas"]), eps=c["eps"],
                                weight_decay=c["weight_decay"], amsgrad=c["amsgrad"], foreach=False)
    if c["optimizer"] == "adamw":
        if c["name"] == "adamw_default":
            opt = torch.optim.AdamW(params, lr=c["lr"])  # literally the defaults
            g = opt.param_groups[0]
            assert (g["weight_decay"], tuple(g["betas"]), g["eps"], g["amsgrad"]) == \
                (c["weight_decay"], tuple(c["betas"]), c["eps"], c["amsgrad"]), "AdamW defaults changed"
            return opt
        return torch.optim.AdamW(params, lr=c["lr"], betas=tuple(c["betas"]), eps=c["eps"],
                                 weight_decay=c["weight_decay"], amsgrad=c["amsgrad"], foreach=False)
    raise ValueError(c)


def optimizer_cases(tensors, only=None):
    for idx, c in enumerate(CASES):
        if only is not None and c["name"] not in only:
            continue
        gen = torch.Generator().manual_seed(SEED + idx)
        p0_init = torch.randn(3, 4, generator=gen, dtype=torch.float32)
        p1_init = torch.randn(4, generator=gen, dtype=torch.float32)
        g0 = torch.randn(3, 4, generator=gen, dtype=torch.float32)
        g1 = torch.randn(4, generator=gen, dtype=torch.float32)
        p0 = torch.nn.Parameter(p0_init.double().clone())
        p1 = torch.nn.Parameter(p1_init.double().clone())
        g0d, g1d = g0.double(), g1.double()
        opt = make_optimizer(c, [p0, p1])
        decay = c.get("grad_decay", 1.0)
        s0, s1 = [], []
        for k in range(STEPS):
            opt.zero_grad()
            loss = (g0d * p0).sum() + (g1d * p1).sum() + 0.05 * ((p0 ** 2).sum() + (p1 ** 2).sum())
            if decay != 1.0:
                loss = decay ** k * loss
            loss.backward()
            opt.step()
            s0.append(p0.detach().clone())
            s1.append(p1.detach().clone())
        n = c["name"]
        if c.get("amsgrad"):
            # The case must exercise the maximum: somewhere the running max is above the current second moment.
            above = sum(int((opt.state[p]["max_exp_avg_sq"] > opt.state[p]["exp_avg_sq"]).sum()) for p in (p0, p1))
            assert above > 0, f"{n}: max_exp_avg_sq == exp_avg_sq everywhere; AMSGrad's maximum never takes effect"
            print(f"{n}: max_exp_avg_sq > exp_avg_sq in {above} of 16 elements after {STEPS} steps")
        tensors[f"{n}.p0.init"] = f32(p0_init)
        tensors[f"{n}.p1.init"] = f32(p1_init)
        tensors[f"{n}.g0"] = f32(g0)
        tensors[f"{n}.g1"] = f32(g1)
        tensors[f"{n}.p0.steps"] = f64(torch.stack(s0))
        tensors[f"{n}.p1.steps"] = f64(torch.stack(s1))


def schedules(tensors):
    base_lr, epochs = 0.1, 10

    def run(make_sched):
        p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        opt = torch.optim.SGD([p], lr=base_lr)
        sched = make_sched(opt)
        lrs = []
        for _ in range(epochs):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return torch.tensor(lrs, dtype=torch.float64)

    S = torch.optim.lr_scheduler
    tensors["schedule.step"] = run(lambda o: S.StepLR(o, step_size=3, gamma=0.1))
    tensors["schedule.cosine"] = run(lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001))
    tensors["schedule.warmup_cosine"] = run(lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.1, total_iters=3), S.CosineAnnealingLR(o, T_max=7)], milestones=[3]))

    # Closed forms, for documentation and as a cross-check of torch's (recursive) implementation.
    closed = {
        "schedule.step": [base_lr * 0.1 ** (e // 3) for e in range(epochs)],
        "schedule.cosine": [0.001 + (base_lr - 0.001) * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(epochs)],
        "schedule.warmup_cosine": [base_lr * (0.1 + 0.9 * e / 3) if e < 3 else
                                   base_lr * (1 + math.cos(math.pi * (e - 3) / 7)) / 2 for e in range(epochs)],
    }
    for k, v in closed.items():
        diff = (tensors[k] - torch.tensor(v, dtype=torch.float64)).abs().max().item()
        print(f"{k}: torch vs closed form max diff {diff:.3g}")
    meta = [
        {"name": "schedule.step", "base_lr": base_lr, "epochs": epochs, "scheduler": "StepLR",
         "step_size": 3, "gamma": 0.1, "formula": "lr = base_lr * gamma ** (epoch // step_size)"},
        {"name": "schedule.cosine", "base_lr": base_lr, "epochs": epochs, "scheduler": "CosineAnnealingLR",
         "T_max": 10, "eta_min": 0.001,
         "formula": "lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2"},
        {"name": "schedule.warmup_cosine", "base_lr": base_lr, "epochs": epochs, "scheduler": "SequentialLR",
         "milestones": [3],
         "schedulers": [{"scheduler": "LinearLR", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 3},
                        {"scheduler": "CosineAnnealingLR", "T_max": 7, "eta_min": 0.0}],
         "formula": "epoch < 3: base_lr * (0.1 + 0.9 * epoch / 3); else base_lr * (1 + cos(pi * (epoch - 3) / 7)) / 2"},
    ]
    for m in meta:
        m["closed_form"] = closed[m["name"]]
        m["note"] = "value k = param_groups[0]['lr'] read before optimizer.step() of epoch k; scheduler.step() after it"
    return meta


def clipping(tensors, max_norm=1.0):
    gen = torch.Generator().manual_seed(SEED + 100)
    g0 = torch.randn(3, 4, generator=gen, dtype=torch.float32)
    g1 = torch.randn(4, generator=gen, dtype=torch.float32)
    p0 = torch.nn.Parameter(torch.zeros(3, 4, dtype=torch.float64))
    p1 = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    p0.grad, p1.grad = g0.double().clone(), g1.double().clone()
    total = torch.nn.utils.clip_grad_norm_([p0, p1], max_norm=max_norm, norm_type=2.0, foreach=False)
    assert total.item() > max_norm, "fixture should actually clip"
    tensors["clip.grads_in.0"] = f32(g0)
    tensors["clip.grads_in.1"] = f32(g1)
    tensors["clip.grads_out.0"] = f64(p0.grad)
    tensors["clip.grads_out.1"] = f64(p1.grad)
    tensors["clip.total_norm"] = f64(total.reshape(1))
    return max_norm


def maxnorm(tensors, c=1.5):
    gen = torch.Generator().manual_seed(SEED + 200)
    row_norms = [0.5, 1.2, 1.5 * 1.5, 3.0, 1.0]  # rows 2 and 3 exceed c, the others do not
    w = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    w = w / w.norm(dim=1, keepdim=True) * torch.tensor(row_norms, dtype=torch.float64)[:, None]
    w = w.float()  # the stored input is float32; everything below uses its exact float64 value
    wd = w.double()
    norms = wd.norm(dim=1)
    tensors["maxnorm.w_in"] = f32(w)
    tensors["maxnorm.w_out"] = f64(torch.renorm(wd, p=2, dim=0, maxnorm=c))
    tensors["maxnorm.w_out_exact"] = f64(wd * torch.clamp(c / norms, max=1.0)[:, None])
    return c, norms.tolist()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated case names: regenerate only these cases' tensors, keep the "
                                       "rest of the committed file")
    args = parser.parse_args()
    only = None
    if args.only:
        only = set(args.only.split(","))
        unknown = only - {c["name"] for c in CASES}
        if unknown:
            parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    check_torch_version()
    torch.manual_seed(SEED)
    tensors = {}
    optimizer_cases(tensors, only)
    sched_meta = schedules(tensors)
    clip_max = clipping(tensors)
    c, norms = maxnorm(tensors)
    meta = {
        "cases": [full_case_meta(x) for x in CASES],
        "steps": str(STEPS),
        "loss": ("step k = 0..5: grad_decay**k * (sum(g0*p0) + sum(g1*p1) + 0.05*(sum(p0**2)+sum(p1**2)))  "
                 "(grad = grad_decay**k * (g + 0.1*p); grad_decay per case)"),
        "schedules": sched_meta,
        "clip_max_norm": str(clip_max),
        "clip_norm_type": "2.0",
        "maxnorm_c": str(c),
        "maxnorm_row_norms_in": norms,
        "maxnorm_note": ("maxnorm.w_out = torch.renorm(w, p=2, dim=0, maxnorm=c): rows with norm > c scaled by "
                         "c/(norm+1e-7); maxnorm.w_out_exact = w * min(1, c/norm) (exact projection)"),
        "semantics": ("torch.optim semantics (verified against a hand-written float64 reference): "
                      "SGD: g += wd*p; buf = g on the first step, else buf = momentum*buf + (1-dampening)*g; "
                      "d = g + momentum*buf if nesterov else buf; p -= lr*d. "
                      "Adam: g += wd*p (L2); m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; "
                      "amsgrad: vmax = max(vmax, v) and v := vmax; "
                      "p -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps). "
                      "AdamW: p *= 1 - lr*wd first (decoupled), then the Adam update without L2."),
        "dtype_note": "inputs F32; expected outputs computed in float64 from the F32 inputs, stored F64",
    }
    if only is not None:
        regenerated = {f"{n}.{t}" for n in only for t in ("p0.init", "p1.init", "g0", "g1", "p0.steps", "p1.steps")}
        with safe_open(fixture_path(OUT), "pt") as committed:
            for name in committed.keys():
                if name not in regenerated:
                    tensors[name] = committed.get_tensor(name)
    save(tensors, OUT, "Scripts/make_optimizer_fixtures.py", SEED, meta)


if __name__ == "__main__":
    main()
