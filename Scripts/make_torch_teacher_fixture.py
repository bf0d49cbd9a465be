"""PyTorch -> SwiftDistill round trip: plain PyTorch state dicts that `ModelCheckpoint.read` must load.

Writes (under Tests/DistillationTests/Fixtures/):
  torch_teacher.safetensors          save_file(model.state_dict()) of a seeded
                                     nn.Sequential(Linear(784,64), ReLU(), Linear(64,10));
                                     tensors 0.weight [64,784], 0.bias [64], 2.weight [10,64], 2.bias [10] (F32);
                                     NO metadata at all (exactly what a PyTorch user would save)
  torch_teacher_dropout.safetensors  the same for a Hinton-style teacher with index gaps:
                                     nn.Sequential(Dropout(0.2), Linear(784,64), ReLU(), Dropout(0.5), Linear(64,10));
                                     tensors 1.weight, 1.bias, 4.weight, 4.bias (F32), no metadata
  torch_teacher_batch.safetensors    x [16,784] F32 in [0,1) (a fixed input batch);
                                     logits [16,10] F64 and logits_dropout [16,10] F64: the eval-mode outputs of the
                                     two models on x, computed in float64 from the float32 weights

Run: python3 Scripts/make_torch_teacher_fixture.py   (about a second; seeded, reproducible)
"""
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

from fixture_common import check_torch_version, f32, f64, fixture_path, save

SEED = 20240607


def plain_save(model, rel):
    path = fixture_path(rel)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)  # no metadata, like a user would
    os.chmod(path, 0o644)
    print(f"wrote {rel}: {sorted(model.state_dict().keys())}, {os.path.getsize(path)} bytes")


def eval_logits64(model, x):
    m64 = [layer for layer in model]
    with torch.no_grad():
        h = x.to(torch.float64)
        for layer in m64:
            if isinstance(layer, nn.Linear):
                h = h @ layer.weight.to(torch.float64).T + layer.bias.to(torch.float64)
            elif isinstance(layer, nn.ReLU):
                h = torch.relu(h)
            # Dropout: identity in eval mode
    return h


def main():
    check_torch_version()
    torch.manual_seed(SEED)
    plain = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    hinton = nn.Sequential(nn.Dropout(0.2), nn.Linear(784, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 10))
    plain.eval()
    hinton.eval()
    g = torch.Generator().manual_seed(SEED + 1)
    x = torch.rand(16, 784, generator=g, dtype=torch.float32)

    plain_save(plain, "Tests/DistillationTests/Fixtures/torch_teacher.safetensors")
    plain_save(hinton, "Tests/DistillationTests/Fixtures/torch_teacher_dropout.safetensors")

    logits = eval_logits64(plain, x)
    logits_dropout = eval_logits64(hinton, x)
    with torch.no_grad():  # sanity: agrees with the module's own float32 forward
        assert (plain(x).to(torch.float64) - logits).abs().max() < 1e-4
        assert (hinton(x).to(torch.float64) - logits_dropout).abs().max() < 1e-4
    save({"x": f32(x), "logits": f64(logits), "logits_dropout": f64(logits_dropout)},
         "Tests/DistillationTests/Fixtures/torch_teacher_batch.safetensors",
         "make_torch_teacher_fixture.py", SEED,
         {"models": "torch_teacher.safetensors: Sequential(Linear(784,64), ReLU(), Linear(64,10)); "
                    "torch_teacher_dropout.safetensors: Sequential(Dropout(0.2), Linear(784,64), ReLU(), Dropout(0.5), Linear(64,10)); eval mode"})


if __name__ == "__main__":
    main()
