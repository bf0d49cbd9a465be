#!/usr/bin/env python3
"""Write Tests/DistillationTests/Fixtures/distillation_loss.safetensors (pinned to torch 2.13.0+cpu).

Run:  python3 Scripts/make_distillation_fixtures.py      (deterministic; seed 4242)

Hinton-style distillation loss. Inputs float32; expected values computed in float64 (float32
inputs up-cast) and stored F64; scalars have shape [1].

Cases caseK, K = 0..5, (classes C, batch B, temperature T, hard_weight, soft_weight), also in
metadata "cases":
  case0 (10, 8, 1.0, 0.5, 0.5)   case1 (10, 8, 4.0, 0.5, 0.5)   case2 (10, 8, 20.0, 0.1, 0.9)
  case3 (3, 5, 2.5, 1.0, 0.0)    case4 (3, 5, 2.5, 0.0, 1.0)    case5 (100, 4, 8.0, 0.3, 0.7)

Tensors per case (zs = student logits, zt = teacher logits, y = labels):
  caseK.student          F32 [B,C]  zs = standard normal * 3
  caseK.teacher          F32 [B,C]  zt = standard normal * 3
  caseK.labels           I64 [B]    y in 0..C-1
  caseK.hard             F64 [1]    F.cross_entropy(zs, y)   (mean over batch, T = 1)
  caseK.soft_kl          F64 [1]    F.kl_div(F.log_softmax(zs/T,1), F.softmax(zt/T,1),
                                             reduction='batchmean')    (NOT multiplied by T^2)
  caseK.soft_ce          F64 [1]    mean_b( -sum_c softmax(zt/T)[b,c] * log_softmax(zs/T)[b,c] )
                                    (NOT multiplied by T^2; = soft_kl + teacher entropy)
  caseK.loss             F64 [1]    hard_weight*hard + soft_weight*soft_kl*T*T
  caseK.grad             F64 [B,C]  d loss / d zs
  caseK.grad_soft_scaled F64 [B,C]  d (soft_kl*T*T) / d zs  (= T*(softmax(zs/T)-softmax(zt/T))/B)
"""
import torch
import torch.nn.functional as F

from fixture_common import check_torch_version, f32, f64, i64, save

SEED = 4242
OUT = "Tests/DistillationTests/Fixtures/distillation_loss.safetensors"
CASES = [(10, 8, 1.0, 0.5, 0.5), (10, 8, 4.0, 0.5, 0.5), (10, 8, 20.0, 0.1, 0.9),
         (3, 5, 2.5, 1.0, 0.0), (3, 5, 2.5, 0.0, 1.0), (100, 4, 8.0, 0.3, 0.7)]


def soft_kl(zs, zt, T):
    return F.kl_div(F.log_softmax(zs / T, 1), F.softmax(zt / T, 1), reduction="batchmean")


def main():
    check_torch_version()
    torch.manual_seed(SEED)
    tensors, meta_cases = {}, []
    for k, (C, B, T, hw, sw) in enumerate(CASES):
        name = f"case{k}"
        gen = torch.Generator().manual_seed(SEED + k)
        zs32 = torch.randn(B, C, generator=gen) * 3
        zt32 = torch.randn(B, C, generator=gen) * 3
        y = torch.randint(0, C, (B,), generator=gen, dtype=torch.int64)
        zt = zt32.double()

        zs = zs32.double().requires_grad_(True)
        hard = F.cross_entropy(zs, y)
        kl = soft_kl(zs, zt, T)
        ce = (-(F.softmax(zt / T, 1) * F.log_softmax(zs / T, 1)).sum(1)).mean()
        loss = hw * hard + sw * kl * T * T
        (grad,) = torch.autograd.grad(loss, zs)

        zs2 = zs32.double().requires_grad_(True)
        (grad_soft,) = torch.autograd.grad(soft_kl(zs2, zt, T) * T * T, zs2)
        ref = T * (torch.softmax(zs32.double() / T, 1) - torch.softmax(zt / T, 1)) / B
        assert torch.allclose(ref, grad_soft, atol=1e-14), name

        tensors[f"{name}.student"] = f32(zs32)
        tensors[f"{name}.teacher"] = f32(zt32)
        tensors[f"{name}.labels"] = i64(y)
        tensors[f"{name}.hard"] = f64(hard.reshape(1))
        tensors[f"{name}.soft_kl"] = f64(kl.reshape(1))
        tensors[f"{name}.soft_ce"] = f64(ce.reshape(1))
        tensors[f"{name}.loss"] = f64(loss.reshape(1))
        tensors[f"{name}.grad"] = f64(grad)
        tensors[f"{name}.grad_soft_scaled"] = f64(grad_soft)
        meta_cases.append({"name": name, "classes": C, "batch": B, "temperature": T,
                           "hard_weight": hw, "soft_weight": sw})
    meta = {
        "cases": meta_cases,
        "loss": "hard_weight * cross_entropy(zs, y) + soft_weight * T^2 * kl_div(log_softmax(zs/T), softmax(zt/T), batchmean)",
        "soft_kl_scaling": "soft_kl and soft_ce are unscaled (no T^2); loss and grad_soft_scaled include T^2",
        "dtype_note": "inputs F32 (labels I64); expected outputs computed in float64 from the F32 inputs, stored F64",
    }
    save(tensors, OUT, "Scripts/make_distillation_fixtures.py", SEED, meta)


if __name__ == "__main__":
    main()
