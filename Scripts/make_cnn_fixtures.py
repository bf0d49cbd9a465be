#!/usr/bin/env python3
"""Write Tests/NeuralNetTests/Fixtures/cnn.safetensors (pinned to torch 2.13.0+cpu).

Run:  python3 Scripts/make_cnn_fixtures.py      (deterministic; seed 2025; a few seconds)

Inputs and parameters are float32 (F32); expected values are computed in float64 from the float32 values (the
module cast with .double()) and stored F64; counters (num_batches_tracked) are I64 with shape [] as in a state
dict. Every case's layer (or model) description is in the metadata, as JSON, under the case's prefix, so the
tests build the layer from the same description SwiftDistill reads. "Upstream" is a fixed F32 tensor u of the
output's shape; gradients are of sum(output * u) unless stated.

Convolutions, prefix conv.<tag> (metadata "conv.<tag>" = the conv2d description; "conv_tags" the tags):
  plain (3x3), stride2_pad1, dilation2, groups2, pointwise (1x1), nonsquare (kernel [3,5] stride [2,1] padding
  [1,2]), nobias
  .x F32 [B,C,H,W]  .weight F32  .bias F32 (absent for nobias)  .upstream F32
  .y F64  .grad.x F64  .grad.weight F64  .grad.bias F64 (absent for nobias)

Pooling, prefix pool.<tag> (metadata "pool.<tag>" = the layer description; "pool_tags"):
  max_k2, max_k3s2p1, max_d2 (kernel 3 stride 2 dilation 2), avg_pad1_include, avg_pad1_exclude (kernel 3 stride 2
  padding 1, count_include_pad true / false), avg_k2, global (x.mean((2,3)))
  .x F32  .upstream F32  .y F64  .grad.x F64

Batch norm, prefix bn.<tag> (metadata "bn.<tag>" = the description): bn2d (x [4,3,5,5]), bn1d (x [6,4]), bn1d_seq
(x [4,3,5], BatchNorm1d over [C, L]) with non-default weight / bias:
  .x .weight .bias .upstream F32; training mode: .train.y .train.grad.x .train.grad.weight .train.grad.bias F64
  running statistics (fresh layer, momentum 0.1): three training batches .batch0 .batch1 .batch2 F32, then
  .running_mean .running_var F64 and .num_batches_tracked I64 [] (= 3); then evaluation mode on .x:
  .eval.y F64 (and .eval.grad.x .eval.grad.weight .eval.grad.bias F64)

Residual blocks, prefix res.<tag> (metadata "res.<tag>"): projection (3 -> 4 channels, stride 2, 1x1 conv + BN
shortcut) and identity (4 channels, empty shortcut), training mode; batch-norm weights / biases randomised:
  .x .upstream F32, .state.<name> F32 (the block's state dict; counters I64), .y F64, .grad.x F64,
  .grad.<parameter> F64

Whole models, prefix model.<name> for lenet5 and resnet8 (metadata "model.<name>" = the preset's description,
the one ModelPresets gives for [1, 28, 28] and 10 classes); resnet8's running statistics are randomised (mean
N(0, 0.1), var U(0.5, 1.5), num_batches_tracked 7) so evaluation mode differs from training mode:
  .x F32 [4,1,28,28]  .labels I64 [4]  .state.<name> (F32; counters I64)
  .eval.logits F64 (evaluation mode)  .train.logits F64 (training mode)  .train.loss F64 [1] (cross-entropy, mean)
  .grad.<parameter> F64 (d loss / d parameter, training mode)
  .after.<buffer> F64 (resnet8: running_mean / running_var after that training-mode forward)
"""
import json

import torch
import torch.nn as nn
import torch.nn.functional as F

from fixture_common import check_torch_version, f32, f64, i64, save
import torch_models

SEED = 2025
OUT = "Tests/NeuralNetTests/Fixtures/cnn.safetensors"

CONV_CASES = {
    "plain": ([2, 3, 7, 8], {"inChannels": 3, "outChannels": 4, "kernelSize": 3}),
    "stride2_pad1": ([2, 3, 9, 7], {"inChannels": 3, "outChannels": 4, "kernelSize": 3, "stride": 2, "padding": 1}),
    "dilation2": ([2, 2, 9, 10], {"inChannels": 2, "outChannels": 3, "kernelSize": 3, "dilation": 2, "padding": 1}),
    "groups2": ([2, 4, 6, 6], {"inChannels": 4, "outChannels": 6, "kernelSize": 3, "padding": 1, "groups": 2}),
    "pointwise": ([2, 5, 4, 5], {"inChannels": 5, "outChannels": 3, "kernelSize": 1}),
    "nonsquare": ([2, 3, 9, 11], {"inChannels": 3, "outChannels": 4, "kernelSize": [3, 5], "stride": [2, 1],
                                  "padding": [1, 2]}),
    "nobias": ([2, 3, 6, 6], {"inChannels": 3, "outChannels": 4, "kernelSize": 3, "padding": 1, "bias": False}),
}

POOL_CASES = {
    "max_k2": ([2, 3, 6, 7], {"kind": "maxPool2d", "kernelSize": 2}),
    "max_k3s2p1": ([2, 3, 7, 8], {"kind": "maxPool2d", "kernelSize": 3, "stride": 2, "padding": 1}),
    "max_d2": ([2, 2, 9, 9], {"kind": "maxPool2d", "kernelSize": 3, "stride": 2, "dilation": 2}),
    "avg_pad1_include": ([2, 3, 7, 6], {"kind": "avgPool2d", "kernelSize": 3, "stride": 2, "padding": 1}),
    "avg_pad1_exclude": ([2, 3, 7, 6], {"kind": "avgPool2d", "kernelSize": 3, "stride": 2, "padding": 1,
                                        "countIncludePad": False}),
    "avg_k2": ([2, 3, 6, 7], {"kind": "avgPool2d", "kernelSize": 2}),
    "global": ([2, 3, 5, 4], {"kind": "globalAvgPool"}),
}

BN_CASES = {
    "bn2d": ([4, 3, 5, 5], {"kind": "batchNorm2d", "numFeatures": 3}),
    "bn1d": ([6, 4], {"kind": "batchNorm1d", "numFeatures": 4}),
    "bn1d_seq": ([4, 3, 5], {"kind": "batchNorm1d", "numFeatures": 3}),
}

RES_CASES = {
    "projection": ([2, 3, 8, 8], {"kind": "residual",
                                  "body": [torch_models.conv(3, 4, 3, stride=2, padding=1, bias=False),
                                           {"kind": "batchNorm2d", "numFeatures": 4}, {"kind": "relu"},
                                           torch_models.conv(4, 4, 3, padding=1, bias=False),
                                           {"kind": "batchNorm2d", "numFeatures": 4}],
                                  "shortcut": [torch_models.conv(3, 4, 1, stride=2, bias=False),
                                               {"kind": "batchNorm2d", "numFeatures": 4}]}),
    "identity": ([2, 4, 6, 5], {"kind": "residual",
                                "body": [torch_models.conv(4, 4, 3, padding=1), {"kind": "relu"},
                                         torch_models.conv(4, 4, 3, padding=1, bias=False),
                                         {"kind": "batchNorm2d", "numFeatures": 4}]}),
}


def state_into(tensors, prefix, module):
    for name, t in module.state_dict().items():
        tensors[f"{prefix}.{name}"] = i64(t) if name.endswith("num_batches_tracked") else f32(t)


def randomise_batch_norms(module, gen, running=False):
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                if m.affine:
                    m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=gen))
                    m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
                if running:
                    m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                    m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
                    m.num_batches_tracked.fill_(7)


def grads_of(module, prefix, tensors, x64, y, u):
    (y * u.double()).sum().backward()
    tensors[f"{prefix}.grad.x"] = f64(x64.grad)
    for name, p in module.named_parameters():
        tensors[f"{prefix}.grad.{name}"] = f64(p.grad)


def convolutions(tensors, gen, meta):
    for tag, (shape, settings) in CONV_CASES.items():
        description = {"kind": "conv2d", **settings}
        meta[f"conv.{tag}"] = description
        layer = torch_models.build_layer(description)
        with torch.no_grad():  # weights of order 1 so outputs are not tiny
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 0.5)
        x = torch.randn(shape, generator=gen)
        prefix = f"conv.{tag}"
        tensors[f"{prefix}.x"] = f32(x)
        tensors[f"{prefix}.weight"] = f32(layer.weight)
        if layer.bias is not None:
            tensors[f"{prefix}.bias"] = f32(layer.bias)
        layer64 = layer.double()
        x64 = x.double().requires_grad_(True)
        y = layer64(x64)
        u = torch.randn(y.shape, generator=gen)
        tensors[f"{prefix}.upstream"] = f32(u)
        tensors[f"{prefix}.y"] = f64(y)
        grads_of(layer64, prefix, tensors, x64, y, u)
        # Cross-check against the functional form with the float32 values.
        ref = F.conv2d(x.double(), layer.weight.double(), None if layer.bias is None else layer.bias.double(),
                       layer.stride, layer.padding, layer.dilation, layer.groups)
        assert torch.allclose(ref, y, atol=1e-12), tag


def poolings(tensors, gen, meta):
    for tag, (shape, description) in POOL_CASES.items():
        meta[f"pool.{tag}"] = description
        layer = torch_models.build_layer(description)
        x = torch.randn(shape, generator=gen)  # continuous values: no ties in a max-pooling window
        x64 = x.double().requires_grad_(True)
        y = layer(x64)
        u = torch.randn(y.shape, generator=gen)
        prefix = f"pool.{tag}"
        tensors[f"{prefix}.x"] = f32(x)
        tensors[f"{prefix}.upstream"] = f32(u)
        tensors[f"{prefix}.y"] = f64(y)
        (y * u.double()).sum().backward()
        tensors[f"{prefix}.grad.x"] = f64(x64.grad)


def batch_norms(tensors, gen, meta):
    for tag, (shape, description) in BN_CASES.items():
        meta[f"bn.{tag}"] = description
        prefix = f"bn.{tag}"
        layer = torch_models.build_layer(description)
        randomise_batch_norms(layer, gen)
        channels = shape[1]
        view = [1, channels] + [1] * (len(shape) - 2)
        # Per-channel offsets and scales, so the statistics differ by channel.
        offset = torch.randn(view, generator=gen) * 2
        scale = 0.5 + torch.rand(view, generator=gen) * 2

        def batch():
            return torch.randn(shape, generator=gen) * scale + offset

        x = batch()
        tensors[f"{prefix}.x"] = f32(x)
        tensors[f"{prefix}.weight"] = f32(layer.weight)
        tensors[f"{prefix}.bias"] = f32(layer.bias)
        # Training mode: output and gradients (a copy, so the running statistics below start fresh).
        train64 = torch_models.build_layer(description).double()
        train64.load_state_dict(layer.state_dict())
        train64.train()
        x64 = x.double().requires_grad_(True)
        y = train64(x64)
        u = torch.randn(y.shape, generator=gen)
        tensors[f"{prefix}.upstream"] = f32(u)
        tensors[f"{prefix}.train.y"] = f64(y)
        grads_of(train64, f"{prefix}.train", tensors, x64, y, u)
        # Running statistics over three training batches, then evaluation mode.
        run64 = torch_models.build_layer(description).double()
        run64.load_state_dict(layer.state_dict())
        run64.train()
        with torch.no_grad():
            for k in range(3):
                b = batch()
                tensors[f"{prefix}.batch{k}"] = f32(b)
                run64(b.double())
        tensors[f"{prefix}.running_mean"] = f64(run64.running_mean)
        tensors[f"{prefix}.running_var"] = f64(run64.running_var)
        tensors[f"{prefix}.num_batches_tracked"] = i64(run64.num_batches_tracked)
        assert run64.num_batches_tracked.item() == 3
        run64.eval()
        x64 = x.double().requires_grad_(True)
        y = run64(x64)
        tensors[f"{prefix}.eval.y"] = f64(y)
        grads_of(run64, f"{prefix}.eval", tensors, x64, y, u)


def residuals(tensors, gen, meta):
    for tag, (shape, description) in RES_CASES.items():
        meta[f"res.{tag}"] = description
        prefix = f"res.{tag}"
        block = torch_models.build_layer(description)
        randomise_batch_norms(block, gen)
        state_into(tensors, f"{prefix}.state", block)
        x = torch.randn(shape, generator=gen)
        tensors[f"{prefix}.x"] = f32(x)
        block64 = block.double().train()
        x64 = x.double().requires_grad_(True)
        y = block64(x64)
        u = torch.randn(y.shape, generator=gen)
        tensors[f"{prefix}.upstream"] = f32(u)
        tensors[f"{prefix}.y"] = f64(y)
        grads_of(block64, prefix, tensors, x64, y, u)


def models(tensors, gen, meta):
    for name in ["lenet5", "resnet8"]:
        description = torch_models.preset(name, (1, 28, 28), 10)
        meta[f"model.{name}"] = description
        prefix = f"model.{name}"
        torch.manual_seed(SEED + len(name))
        model = torch_models.build(description)
        randomise_batch_norms(model, gen, running=True)
        state_into(tensors, f"{prefix}.state", model)
        x = torch.rand(4, 1, 28, 28, generator=gen)
        labels = torch.tensor([3, 7, 0, 9], dtype=torch.int64)
        tensors[f"{prefix}.x"] = f32(x)
        tensors[f"{prefix}.labels"] = i64(labels)
        model64 = model.double()
        model64.eval()
        with torch.no_grad():
            tensors[f"{prefix}.eval.logits"] = f64(model64(x.double()))
        model64.train()
        logits = model64(x.double())
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        tensors[f"{prefix}.train.logits"] = f64(logits)
        tensors[f"{prefix}.train.loss"] = f64(loss.reshape(1))
        for pname, p in model64.named_parameters():
            tensors[f"{prefix}.grad.{pname}"] = f64(p.grad)
        if name == "resnet8":
            for bname, b in model64.named_buffers():
                if not bname.endswith("num_batches_tracked"):
                    tensors[f"{prefix}.after.{bname}"] = f64(b)


def main():
    check_torch_version()
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    tensors, meta = {}, {}
    convolutions(tensors, gen, meta)
    poolings(tensors, gen, meta)
    batch_norms(tensors, gen, meta)
    residuals(tensors, gen, meta)
    models(tensors, gen, meta)
    meta["conv_tags"] = list(CONV_CASES)
    meta["pool_tags"] = list(POOL_CASES)
    meta["bn_tags"] = list(BN_CASES)
    meta["res_tags"] = list(RES_CASES)
    meta["model_names"] = ["lenet5", "resnet8"]
    meta["dtype_note"] = ("inputs and parameters F32, counters I64; expected outputs computed in float64 from the F32 "
                          "values, stored F64; gradients of sum(output * upstream), models: of the mean cross-entropy")
    save(tensors, OUT, "Scripts/make_cnn_fixtures.py", SEED, meta)


if __name__ == "__main__":
    main()
