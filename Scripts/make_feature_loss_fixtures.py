#!/usr/bin/env python3
"""Write Tests/DistillationTests/Fixtures/feature_losses.safetensors (pinned to torch 2.13.0+cpu).

Run:  python3 Scripts/make_feature_loss_fixtures.py      (deterministic; seed 2025)

Inputs are float32; expected values and gradients are computed with torch autograd in float64 (float32 inputs
up-cast) and stored F64. Scalars (losses) have shape [1].

Tensors
-------
Decoupled KD (Zhao et al., CVPR 2022), reference: mdistiller's dkd_loss. B = 6, C = 10; row 2 holds large
logits (student target at -60 against others up to +80, teacher target at +90: q_y and 1 - p_y underflow float32).
  dkd.student   F32 [6,10]   student logits
  dkd.teacher   F32 [6,10]   teacher logits
  dkd.labels    I64 [6]      target classes
For each setting tag in metadata "dkd_settings" (T4: T=4, alpha=1, beta=8; T1: T=1, alpha=0.5, beta=2):
  dkd.<tag>.tckd  F64 [1]      T^2 * mean_b KL(b_t || b_s), binary (target, rest) distributions at T
  dkd.<tag>.nckd  F64 [1]      T^2 * mean_b KL(p^ || q^), distributions over the non-target classes at T
  dkd.<tag>.loss  F64 [1]      alpha * tckd + beta * nckd
  dkd.<tag>.grad  F64 [6,10]   d loss / d student logits
The non-target distributions are the exact ones (softmax over the C - 1 non-target classes, built by gathering
those columns); the script checks that mdistiller's form (softmax(z/T - 1000 * onehot(y)), kl_div with reduction
"sum" / B) gives the same value and gradient on these inputs to 1e-12.

Attention transfer (Zagoruyko & Komodakis, ICLR 2017), reference: mdistiller's single_stage_at_loss, p = 2:
  at.student    F32 [3,4,5,5]  student feature map
  at.teacher    F32 [3,5,5,5]  teacher feature map (more channels, same spatial size)
  at.loss       F64 [1]        (at(f_s) - at(f_t)).pow(2).mean(), at(f) = F.normalize(f.pow(2).mean(1).flatten(1))
  at.grad       F64 [3,4,5,5]  d at.loss / d at.student

FitNets hint loss (Romero et al., ICLR 2015):
  hint.student  F32 [4,3,2,2]  (regressed) student features
  hint.teacher  F32 [4,3,2,2]  teacher features
  hint.loss     F64 [1]        F.mse_loss(student, teacher) (mean over all elements)
  hint.grad     F64 [4,3,2,2]  d hint.loss / d hint.student

Similarity-preserving KD (Tung & Mori, ICCV 2019), reference: mdistiller's similarity_loss:
  sp.student    F32 [5,3,4,4]  student features (flattened per example)
  sp.teacher    F32 [5,7]      teacher features (another size and rank; only the batch matches)
  sp.loss       F64 [1]        ((normalize(G_t) - normalize(G_s))^2).sum() / B^2, G = F F^T
  sp.grad       F64 [5,3,4,4]  d sp.loss / d sp.student
"""
import torch
import torch.nn.functional as F

from fixture_common import check_torch_version, f32, f64, i64, save

SEED = 2025
OUT = "Tests/DistillationTests/Fixtures/feature_losses.safetensors"
DKD_SETTINGS = {"T4": {"temperature": 4.0, "alpha": 1.0, "beta": 8.0},
                "T1": {"temperature": 1.0, "alpha": 0.5, "beta": 2.0}}


def dkd_exact(zs, zt, y, alpha, beta, T):
    """DKD with the exact non-target distributions, all in log space (float64)."""
    B, C = zs.shape
    s, u = zs / T, zt / T
    gt = F.one_hot(y, C).bool()
    rest_index = torch.stack([torch.tensor([j for j in range(C) if j != int(y[b])]) for b in range(B)])
    ls_all, lu_all = torch.logsumexp(s, 1), torch.logsumexp(u, 1)
    s_rest, u_rest = s.gather(1, rest_index), u.gather(1, rest_index)
    ls_rest, lu_rest = torch.logsumexp(s_rest, 1), torch.logsumexp(u_rest, 1)
    log_bs = torch.stack([s[gt] - ls_all, ls_rest - ls_all], 1)  # log (q_y, 1 - q_y)
    log_bt = torch.stack([u[gt] - lu_all, lu_rest - lu_all], 1)
    tckd = (log_bt.exp() * (log_bt - log_bs)).sum() / B * T * T
    log_qhat = s_rest - ls_rest.unsqueeze(1)
    log_phat = u_rest - lu_rest.unsqueeze(1)
    nckd = (log_phat.exp() * (log_phat - log_qhat)).sum() / B * T * T
    return alpha * tckd + beta * nckd, tckd, nckd


def dkd_mdistiller(zs, zt, y, alpha, beta, T):
    """The reference formula as mdistiller writes it (mask by -1000), for the cross-check only."""
    B, C = zs.shape
    gt = F.one_hot(y, C).to(zs.dtype)
    other = 1 - gt
    ps, pt = F.softmax(zs / T, 1), F.softmax(zt / T, 1)
    bs = torch.stack([(ps * gt).sum(1), (ps * other).sum(1)], 1)
    bt = torch.stack([(pt * gt).sum(1), (pt * other).sum(1)], 1)
    tckd = F.kl_div(torch.log(bs), bt, reduction="sum") * T ** 2 / B
    pt2 = F.softmax(zt / T - 1000.0 * gt, 1)
    ls2 = F.log_softmax(zs / T - 1000.0 * gt, 1)
    nckd = F.kl_div(ls2, pt2, reduction="sum") * T ** 2 / B
    return alpha * tckd + beta * nckd


def dkd(tensors):
    gen = torch.Generator().manual_seed(SEED)
    B, C = 6, 10
    zs = torch.randn(B, C, generator=gen) * 2.0
    zt = torch.randn(B, C, generator=gen) * 3.0
    y = torch.tensor([3, 0, 7, 9, 1, 3], dtype=torch.int64)
    zs[2] = torch.tensor([80.0, -80.0, 75.0, 0.0, -80.0, 80.0, 10.0, -60.0, 40.0, -5.0])
    zt[2] = torch.tensor([-20.0, 5.0, 30.0, -80.0, 0.0, 10.0, -40.0, 90.0, 2.0, 60.0])
    tensors["dkd.student"] = f32(zs)
    tensors["dkd.teacher"] = f32(zt)
    tensors["dkd.labels"] = i64(y)
    zs, zt = f32(zs).double(), f32(zt).double()  # the stored float32 values, up-cast
    for tag, c in DKD_SETTINGS.items():
        z64 = zs.clone().requires_grad_(True)
        loss, tckd, nckd = dkd_exact(z64, zt, y, c["alpha"], c["beta"], c["temperature"])
        loss.backward()
        tensors[f"dkd.{tag}.tckd"] = f64(tckd.reshape(1))
        tensors[f"dkd.{tag}.nckd"] = f64(nckd.reshape(1))
        tensors[f"dkd.{tag}.loss"] = f64(loss.reshape(1))
        tensors[f"dkd.{tag}.grad"] = f64(z64.grad)
        # Cross-check against mdistiller's form.
        zm = zs.clone().requires_grad_(True)
        ref = dkd_mdistiller(zm, zt, y, c["alpha"], c["beta"], c["temperature"])
        ref.backward()
        assert abs(ref.item() - loss.item()) <= 1e-12 * max(1.0, abs(loss.item())), (tag, ref.item(), loss.item())
        assert torch.allclose(zm.grad, z64.grad, rtol=0, atol=1e-12), tag
        assert abs(z64.grad.sum(1)).max() < 1e-12, tag  # rows sum to zero


def attention_map(f):
    return F.normalize(f.pow(2).mean(1).reshape(f.size(0), -1))


def at(tensors):
    gen = torch.Generator().manual_seed(SEED + 1)
    fs = torch.randn(3, 4, 5, 5, generator=gen).relu() + 0.1 * torch.randn(3, 4, 5, 5, generator=gen)
    ft = torch.randn(3, 5, 5, 5, generator=gen).relu() * 2.0
    tensors["at.student"] = f32(fs)
    tensors["at.teacher"] = f32(ft)
    fs64 = f32(fs).double().requires_grad_(True)
    ft64 = f32(ft).double()
    loss = (attention_map(fs64) - attention_map(ft64)).pow(2).mean()
    loss.backward()
    tensors["at.loss"] = f64(loss.reshape(1))
    tensors["at.grad"] = f64(fs64.grad)
    # Summing over channels instead of averaging gives the same normalised map.
    summed = F.normalize(ft64.pow(2).sum(1).reshape(3, -1))
    assert torch.allclose(summed, attention_map(ft64), rtol=0, atol=1e-15)


def hint(tensors):
    gen = torch.Generator().manual_seed(SEED + 2)
    u = torch.randn(4, 3, 2, 2, generator=gen)
    v = torch.randn(4, 3, 2, 2, generator=gen) * 1.5
    tensors["hint.student"] = f32(u)
    tensors["hint.teacher"] = f32(v)
    u64 = f32(u).double().requires_grad_(True)
    loss = F.mse_loss(u64, f32(v).double())
    loss.backward()
    tensors["hint.loss"] = f64(loss.reshape(1))
    tensors["hint.grad"] = f64(u64.grad)


def similarity_loss(fs, ft):
    """mdistiller's SP.similarity_loss."""
    b = fs.shape[0]
    fs, ft = fs.view(b, -1), ft.view(b, -1)
    gs = F.normalize(torch.mm(fs, fs.t()))
    gt = F.normalize(torch.mm(ft, ft.t()))
    return ((gt - gs) * (gt - gs)).view(-1, 1).sum(0) / (b * b)


def sp(tensors):
    gen = torch.Generator().manual_seed(SEED + 3)
    fs = torch.randn(5, 3, 4, 4, generator=gen).relu()
    ft = torch.randn(5, 7, generator=gen).relu() * 2.0
    tensors["sp.student"] = f32(fs)
    tensors["sp.teacher"] = f32(ft)
    fs64 = f32(fs).double().requires_grad_(True)
    loss = similarity_loss(fs64, f32(ft).double())
    loss.backward()
    tensors["sp.loss"] = f64(loss.reshape(1))
    tensors["sp.grad"] = f64(fs64.grad)


def main():
    check_torch_version()
    torch.manual_seed(SEED)
    tensors = {}
    dkd(tensors)
    at(tensors)
    hint(tensors)
    sp(tensors)
    meta = {
        "dkd_settings": DKD_SETTINGS,
        "dkd_large_logit_row": "2",
        "dkd_reference": "mdistiller dkd_loss; non-target distributions exact (softmax over the non-target classes)",
        "at_reference": "mdistiller single_stage_at_loss, p = 2, equal spatial sizes",
        "hint_reference": "F.mse_loss, reduction mean",
        "sp_reference": "mdistiller SP.similarity_loss (one layer pair)",
        "dtype_note": "inputs F32 (labels I64); expected outputs computed in float64 from the F32 inputs, stored F64",
    }
    save(tensors, OUT, "Scripts/make_feature_loss_fixtures.py", SEED, meta)


if __name__ == "__main__":
    main()
