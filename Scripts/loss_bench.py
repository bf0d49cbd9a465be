#!/usr/bin/env python3
"""PyTorch's distillation loss at many classes, forward and backward, for `distill bench --loss` (which runs ours
in its own process and alternates the two sides):

    kl_div(log_softmax(zs / T, 1), softmax(zt / T, 1), reduction="batchmean") * T^2 + cross_entropy(zs, y)

With --top-k K the teacher is its K largest logits per row (precomputed, untimed) and the soft term is DistillKit's
sparse KL with missing probability "zero": the student's log_softmax(zs / T) gathered at the K classes against
log_softmax over the K kept teacher logits / T.

Prints one JSON line {"classes": C, "rows": B, "seconds": median, "torch_version": ...}: the median of --repeats
timed calls after two untimed ones, on --threads threads. Inputs: standard normal logits (seeded), labels uniform.
"""
import argparse, json, statistics, time
import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, required=True)
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--top-k", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    zs = (torch.randn(a.rows, a.classes, generator=g) * 3).requires_grad_()
    zt = torch.randn(a.rows, a.classes, generator=g) * 4
    y = torch.randint(0, a.classes, (a.rows,), generator=g)
    t = a.temperature

    top_values, top_ids = torch.topk(zt, a.top_k, dim=1) if a.top_k else (None, None)

    def step():
        zs.grad = None
        if a.top_k:
            student = F.log_softmax(zs / t, 1).gather(1, top_ids)
            teacher = F.log_softmax(top_values / t, 1)
            soft = (teacher.exp() * (teacher - student)).sum() / a.rows
            loss = soft * t * t + F.cross_entropy(zs, y)
        else:
            loss = F.kl_div(F.log_softmax(zs / t, 1), F.softmax(zt / t, 1), reduction="batchmean") * t * t + F.cross_entropy(zs, y)
        loss.backward()
        return loss.item()

    for _ in range(2):
        step()
    times = []
    for _ in range(a.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"classes": a.classes, "rows": a.rows, "seconds": statistics.median(times), "all_seconds": times,
                      "torch_version": torch.__version__, "threads": a.threads, "top_k": a.top_k}))


if __name__ == "__main__":
    main()
