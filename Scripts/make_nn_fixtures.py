#!/usr/bin/env python3
"""Write Tests/NeuralNetTests/Fixtures/nn.safetensors (pinned to torch 2.13.0+cpu).

Run:  python3 Scripts/make_nn_fixtures.py      (deterministic; seed 2024)

Inputs are float32; expected values are computed in float64 (float32 inputs up-cast) and
stored F64. Scalars (losses) have shape [1].

Tensors
-------
MLP  nn.Sequential(Linear(6,5), ReLU(), Linear(5,4), ReLU(), Linear(4,3)), default PyTorch
init after torch.manual_seed(SEED) (state_dict names; nn.Linear weight is [out, in] and
y = x @ W^T + b):
  model.0.weight F32 [5,6]   model.0.bias F32 [5]
  model.2.weight F32 [4,5]   model.2.bias F32 [4]
  model.4.weight F32 [3,4]   model.4.bias F32 [3]
  x        F32 [7,6]  input (standard normal)
  y        I64 [7]    class labels in 0..2
  logits   F64 [7,3]  model(x) in float64
  loss     F64 [1]    F.cross_entropy(logits, y)  (mean over the batch)
  grad.model.0.weight ... grad.model.4.bias  F64  d loss / d parameter (same shapes as above)
  grad.x   F64 [7,6]  d loss / d x

Temperature softmax / cross-entropy, for T in metadata "ce_temperatures" = [1, 2.5, 20]
(tensor-name tag "T1", "T2.5", "T20" = f"T{T:g}"; see metadata "ce_tags"):
  ce.z              F32 [5,7]  logits; row 3 contains large logits (+-80, +75) to test
                               numerical stability (naive exp overflows in float32)
  ce.y              I64 [5]    labels in 0..6
  ce.T<T>.log_softmax F64 [5,7] F.log_softmax(z / T, dim=1)
  ce.T<T>.loss      F64 [1]    F.cross_entropy(z / T, y)  (mean)
  ce.T<T>.grad      F64 [5,7]  d ce.T<T>.loss / d z  (= (softmax(z/T) - onehot(y)) / (T * batch))

nn.Linear default init statistics (metadata only): weight ~ kaiming_uniform_(a=sqrt(5)) which
is U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  "linear_bound_784"       = 1/sqrt(784) = 1/28
  "linear_std_784"         = bound/sqrt(3) (std of that uniform)
  "linear_empirical_784"   = JSON of min/max/std of an actual seeded nn.Linear(784, 300)
"""
import math

import torch
import torch.nn.functional as F

from fixture_common import check_torch_version, f32, f64, i64, save

SEED = 2024
OUT = "Tests/NeuralNetTests/Fixtures/nn.safetensors"
TEMPERATURES = [1.0, 2.5, 20.0]


def mlp(tensors):
    torch.manual_seed(SEED)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4),
                                torch.nn.ReLU(), torch.nn.Linear(4, 3))
    x = torch.randn(7, 6)
    y = torch.tensor([0, 1, 2, 2, 1, 0, 1], dtype=torch.int64)
    for name, p in model.state_dict().items():
        tensors[f"model.{name}"] = f32(p)
    tensors["x"] = f32(x)
    tensors["y"] = i64(y)
    model64 = model.double()  # same values, float64 arithmetic
    x64 = x.double().requires_grad_(True)
    logits = model64(x64)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    tensors["logits"] = f64(logits)
    tensors["loss"] = f64(loss.reshape(1))
    for name, p in model64.named_parameters():
        tensors[f"grad.model.{name}"] = f64(p.grad)
    tensors["grad.x"] = f64(x64.grad)


def temperature_ce(tensors):
    gen = torch.Generator().manual_seed(SEED + 1)
    z = torch.randn(5, 7, generator=gen) * 2.0
    z[3] = torch.tensor([80.0, -80.0, 75.0, 0.0, -80.0, 80.0, 10.0])  # large-logit row
    y = torch.tensor([1, 6, 0, 2, 4], dtype=torch.int64)
    tensors["ce.z"] = f32(z)
    tensors["ce.y"] = i64(y)
    tags = {}
    for T in TEMPERATURES:
        tag = f"T{T:g}"
        tags[tag] = T
        z64 = z.double().requires_grad_(True)
        ls = F.log_softmax(z64 / T, dim=1)
        loss = F.cross_entropy(z64 / T, y)
        loss.backward()
        tensors[f"ce.{tag}.log_softmax"] = f64(ls)
        tensors[f"ce.{tag}.loss"] = f64(loss.reshape(1))
        tensors[f"ce.{tag}.grad"] = f64(z64.grad)
        # cross-check the closed-form gradient
        ref = (torch.softmax(z.double() / T, 1) - F.one_hot(y, 7).double()) / (T * z.shape[0])
        assert torch.allclose(ref, z64.grad, atol=1e-15), tag
    return tags


def linear_init_stats():
    bound = 1.0 / math.sqrt(784)
    torch.manual_seed(SEED + 2)
    lin = torch.nn.Linear(784, 300)
    w, b = lin.weight.detach().double(), lin.bias.detach().double()
    emp = {"out_features": 300, "in_features": 784,
           "weight_min": w.min().item(), "weight_max": w.max().item(), "weight_std": w.std().item(),
           "weight_mean": w.mean().item(), "bias_min": b.min().item(), "bias_max": b.max().item()}
    assert emp["weight_max"] <= bound and emp["weight_min"] >= -bound
    return bound, emp


def main():
    check_torch_version()
    torch.manual_seed(SEED)
    tensors = {}
    mlp(tensors)
    tags = temperature_ce(tensors)
    bound, emp = linear_init_stats()
    meta = {
        "model": "nn.Sequential(Linear(6,5), ReLU(), Linear(5,4), ReLU(), Linear(4,3)); y = x @ W^T + b",
        "model_layers": [{"name": "model.0", "in": 6, "out": 5}, {"name": "model.2", "in": 5, "out": 4},
                         {"name": "model.4", "in": 4, "out": 3}],
        "loss_reduction": "mean",
        "ce_temperatures": TEMPERATURES,
        "ce_tags": tags,
        "ce_large_logit_row": "3",
        "linear_bound_784": repr(bound),
        "linear_std_784": repr(bound / math.sqrt(3.0)),
        "linear_init": ("weight: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); "
                        "bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))"),
        "linear_empirical_784": emp,
        "dtype_note": "inputs F32 (labels I64); expected outputs computed in float64 from the F32 inputs, stored F64",
    }
    save(tensors, OUT, "Scripts/make_nn_fixtures.py", SEED, meta)


if __name__ == "__main__":
    main()
