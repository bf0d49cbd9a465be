#!/usr/bin/env python3
"""PyTorch -> SwiftDistill round trip for a convolutional model: a resnet8 trained in PyTorch, saved as a
SwiftDistill model file, whose logits `ModelCheckpoint.read` must reproduce.

Writes (under Tests/DistillationTests/Fixtures/):
  torch_resnet8.safetensors        the preset resnet8 (Scripts/torch_models.py preset("resnet8"), [1, 28, 28], 10
                                   classes; the description ModelPresets gives) after 5 SGD steps (lr 0.05, momentum
                                   0.9, batch 16, cross-entropy) on seeded synthetic data in training mode, so the
                                   batch norms' running statistics moved and num_batches_tracked = 5; written by
                                   torch_models.save_model (F32 tensors, num_batches_tracked I64, metadata format
                                   distill-model/2 and the description under "model")
  torch_resnet8_batch.safetensors  x [8,1,28,28] F32 in [0,1); logits [8,10] F64: the evaluation-mode logits of the
                                   trained model on x, computed in float64 from the saved float32 state

Run: python3 Scripts/make_torch_cnn_fixture.py   (a few seconds; seeded, reproducible)
"""
import torch
import torch.nn.functional as F

from fixture_common import check_torch_version, canonicalize_header, f32, f64, fixture_path, save
import torch_models

SEED = 20250301
FIX = "Tests/DistillationTests/Fixtures"
STEPS = 5


def main():
    check_torch_version()
    torch.manual_seed(SEED)
    description = torch_models.preset("resnet8", (1, 28, 28), 10)
    model = torch_models.build(description)
    gen = torch.Generator().manual_seed(SEED + 1)
    # Synthetic data: class k brightens a class-specific 8x8 patch (so the loss falls over the few steps).
    labels = torch.randint(0, 10, (STEPS * 16,), generator=gen)
    images = torch.rand(STEPS * 16, 1, 28, 28, generator=gen) * 0.5
    for i, k in enumerate(labels.tolist()):
        r, c = 2 + 8 * (k // 4), 2 + 6 * (k % 4)
        images[i, 0, r:r + 8, c:c + 6] += 0.5
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    losses = []
    for step in range(STEPS):
        xb, yb = images[step * 16:(step + 1) * 16], labels[step * 16:(step + 1) * 16]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        losses.append(round(loss.item(), 4))
    print(f"training losses: {losses}")
    path = fixture_path(f"{FIX}/torch_resnet8.safetensors")
    torch_models.save_model(model, description, path,
                            metadata={"writer": "Scripts/make_torch_cnn_fixture.py", "torch_version": torch.__version__,
                                      "training": f"{STEPS} SGD steps, lr 0.05, momentum 0.9, batch 16"})
    canonicalize_header(path)

    # The file as SwiftDistill will read it: reload strictly, evaluate in float64.
    loaded, _, _ = torch_models.load_model(path)
    assert loaded.state_dict()["1.num_batches_tracked"].item() == STEPS
    x = torch.rand(8, 1, 28, 28, generator=gen)
    model64 = loaded.double().eval()
    with torch.no_grad():
        logits = model64(x.double())
        assert (model.eval()(x).double() - logits).abs().max() < 1e-4
    save({"x": f32(x), "logits": f64(logits)}, f"{FIX}/torch_resnet8_batch.safetensors", "make_torch_cnn_fixture.py", SEED,
         {"model": "torch_resnet8.safetensors (resnet8, evaluation mode)", "training_losses": losses})


if __name__ == "__main__":
    main()
