"""PyTorch modules from SwiftDistill model descriptions, and SwiftDistill model files from PyTorch state dicts.

A model description (the JSON `ModelCheckpoint` stores in the `model` metadata entry, Sources/NeuralNet/
ModelDescription.swift) is {"inputShape": [...], "layers": [{"kind": ..., settings...}, ...]}. `build(description)`
returns an `nn.Sequential` whose `state_dict()` names equal SwiftDistill's `namedState` exactly:

  linear        nn.Linear(inputCount, outputCount)
  relu          nn.ReLU()
  dropout       nn.Dropout(probability)
  flatten       nn.Flatten()
  identity      nn.Identity()
  sequential    nn.Sequential(*layers)                 names <index>.<name>
  conv2d        nn.Conv2d(inChannels, outChannels, kernelSize, stride, padding, dilation, groups, bias)
  maxPool2d     nn.MaxPool2d(kernelSize, stride (default kernelSize), padding, dilation)
  avgPool2d     nn.AvgPool2d(kernelSize, stride (default kernelSize), padding, count_include_pad=countIncludePad)
  globalAvgPool GlobalAvgPool(): x.mean((2, 3))         (no state)
  batchNorm1d   nn.BatchNorm1d(numFeatures, eps, momentum, affine)   running_mean, running_var, num_batches_tracked
  batchNorm2d   nn.BatchNorm2d(...)
  residual      Residual(body, shortcut): body(x) + shortcut(x), both nn.Sequential (an empty shortcut is the
                identity); names body.<i>.<name>, shortcut.<i>.<name>

The returned module reshapes its input to [batch] + inputShape first (as SwiftDistill's Sequential does when a
batch holds the same number of values per example in another shape).

Model files: `save_model(model, description, path)` writes the state dict as safetensors (floating tensors as F32,
num_batches_tracked as I64) with metadata format "distill-model/2", model (the description JSON), input_count and
class_count, which `ModelCheckpoint.read` loads. `load_model(path)` builds the module from a model file's `model`
metadata and loads its tensors with `load_state_dict(strict=True)`.

Run as a script: `python3 Scripts/torch_models.py MODEL.safetensors` loads a model file and prints its state dict.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file, save_file

FORMAT = "distill-model/2"

KINDS = ["linear", "relu", "dropout", "flatten", "identity", "sequential", "conv2d", "maxPool2d", "avgPool2d",
         "globalAvgPool", "batchNorm1d", "batchNorm2d", "residual"]


class GlobalAvgPool(nn.Module):
    """The mean of each channel over every position: [B, C, H, W] -> [B, C]."""

    def forward(self, x):
        return x.mean(tuple(range(2, x.dim())))


class Residual(nn.Module):
    """body(x) + shortcut(x); an empty shortcut is the identity."""

    def __init__(self, body, shortcut):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        return self.body(x) + (self.shortcut(x) if len(self.shortcut) else x)


class DescribedModel(nn.Sequential):
    """nn.Sequential that first reshapes its input to [batch] + input_shape (state-dict names unchanged)."""

    def __init__(self, input_shape, layers):
        super().__init__(*layers)
        self.input_shape = list(input_shape)

    def forward(self, x):
        if list(x.shape[1:]) != self.input_shape:
            x = x.reshape(x.shape[0], *self.input_shape)
        return super().forward(x)


def _pair(value):
    if isinstance(value, list):
        if len(value) != 2:
            raise ValueError(f"expected a whole number or a list of two, got {value}")
        return tuple(int(v) for v in value)
    return (int(value), int(value))


def _check(layer, allowed):
    unknown = sorted(set(layer) - set(allowed) - {"kind"})
    if unknown:
        raise ValueError(f"layer '{layer['kind']}': unknown setting '{unknown[0]}'")


def conv(i, o, k, stride=1, padding=0, bias=True):
    """A conv2d description with only the non-default settings (as Conv2d.description writes it)."""
    d = {"kind": "conv2d", "inChannels": i, "outChannels": o, "kernelSize": k}
    if stride != 1:
        d["stride"] = stride
    if padding != 0:
        d["padding"] = padding
    if not bias:
        d["bias"] = False
    return d


def preset(name, input_shape=(1, 28, 28), class_count=10):
    """The description ModelPresets.description(named:inputShape:classCount:) gives: lenet5 or resnet<6n+2>."""
    c, h, w = input_shape
    relu = {"kind": "relu"}
    if name == "lenet5":
        features = [conv(c, 6, 5, padding=2), relu, {"kind": "maxPool2d", "kernelSize": 2},
                    conv(6, 16, 5), relu, {"kind": "maxPool2d", "kernelSize": 2}, {"kind": "flatten"}]
        flat = 16 * ((h // 2 - 4) // 2) * ((w // 2 - 4) // 2)
        return {"inputShape": list(input_shape), "layers": features + [
            {"kind": "linear", "inputCount": flat, "outputCount": 120}, relu,
            {"kind": "linear", "inputCount": 120, "outputCount": 84}, relu,
            {"kind": "linear", "inputCount": 84, "outputCount": class_count}]}
    if name.startswith("resnet") and name[6:].isdigit() and (int(name[6:]) - 2) % 6 == 0 and int(name[6:]) >= 8:
        n = (int(name[6:]) - 2) // 6
        layers = [conv(c, 16, 3, padding=1, bias=False), {"kind": "batchNorm2d", "numFeatures": 16}, relu]
        channels = 16
        for stage, width in enumerate([16, 32, 64]):
            for block in range(n):
                stride = 2 if stage > 0 and block == 0 else 1
                body = [conv(channels, width, 3, stride=stride, padding=1, bias=False),
                        {"kind": "batchNorm2d", "numFeatures": width}, relu,
                        conv(width, width, 3, padding=1, bias=False), {"kind": "batchNorm2d", "numFeatures": width}]
                residual = {"kind": "residual", "body": body}
                if stride != 1 or channels != width:
                    residual["shortcut"] = [conv(channels, width, 1, stride=stride, bias=False),
                                            {"kind": "batchNorm2d", "numFeatures": width}]
                layers += [residual, relu]
                channels = width
        layers += [{"kind": "globalAvgPool"}, {"kind": "linear", "inputCount": 64, "outputCount": class_count}]
        return {"inputShape": list(input_shape), "layers": layers}
    raise ValueError(f"unknown preset '{name}'")


def build_layer(layer):
    """One nn.Module for one layer description (a dict with "kind")."""
    kind = layer.get("kind")
    if kind == "linear":
        _check(layer, ["inputCount", "outputCount"])
        return nn.Linear(int(layer["inputCount"]), int(layer["outputCount"]))
    if kind == "relu":
        _check(layer, [])
        return nn.ReLU()
    if kind == "dropout":
        _check(layer, ["probability"])
        return nn.Dropout(float(layer["probability"]))
    if kind == "flatten":
        _check(layer, [])
        return nn.Flatten()
    if kind == "identity":
        _check(layer, [])
        return nn.Identity()
    if kind == "sequential":
        _check(layer, ["layers"])
        return nn.Sequential(*[build_layer(inner) for inner in layer["layers"]])
    if kind == "conv2d":
        _check(layer, ["inChannels", "outChannels", "kernelSize", "stride", "padding", "dilation", "groups", "bias"])
        return nn.Conv2d(int(layer["inChannels"]), int(layer["outChannels"]), _pair(layer["kernelSize"]),
                         stride=_pair(layer.get("stride", 1)), padding=_pair(layer.get("padding", 0)),
                         dilation=_pair(layer.get("dilation", 1)), groups=int(layer.get("groups", 1)),
                         bias=bool(layer.get("bias", True)))
    if kind == "maxPool2d":
        _check(layer, ["kernelSize", "stride", "padding", "dilation"])
        kernel = _pair(layer["kernelSize"])
        return nn.MaxPool2d(kernel, stride=_pair(layer.get("stride", list(kernel))), padding=_pair(layer.get("padding", 0)),
                            dilation=_pair(layer.get("dilation", 1)))
    if kind == "avgPool2d":
        _check(layer, ["kernelSize", "stride", "padding", "countIncludePad"])
        kernel = _pair(layer["kernelSize"])
        return nn.AvgPool2d(kernel, stride=_pair(layer.get("stride", list(kernel))), padding=_pair(layer.get("padding", 0)),
                            count_include_pad=bool(layer.get("countIncludePad", True)))
    if kind == "globalAvgPool":
        _check(layer, [])
        return GlobalAvgPool()
    if kind in ("batchNorm1d", "batchNorm2d"):
        _check(layer, ["numFeatures", "eps", "momentum", "affine"])
        cls = nn.BatchNorm1d if kind == "batchNorm1d" else nn.BatchNorm2d
        return cls(int(layer["numFeatures"]), eps=float(layer.get("eps", 1e-5)), momentum=float(layer.get("momentum", 0.1)),
                   affine=bool(layer.get("affine", True)))
    if kind == "residual":
        _check(layer, ["body", "shortcut"])
        return Residual(nn.Sequential(*[build_layer(inner) for inner in layer["body"]]),
                        nn.Sequential(*[build_layer(inner) for inner in layer.get("shortcut", [])]))
    raise ValueError(f"unknown layer kind '{kind}' (known: {', '.join(KINDS)})")


def build(description):
    """The module for a model description (dict, or its JSON text)."""
    if isinstance(description, str):
        description = json.loads(description)
    return DescribedModel(description["inputShape"], [build_layer(layer) for layer in description["layers"]])


def output_shape(model, description):
    """Per-example output shape of `model` on the description's input shape (one zero example, eval mode)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        shape = list(model(torch.zeros(1, *description["inputShape"])).shape[1:])
    model.train(was_training)
    return shape


def state_tensors(model):
    """The state dict as safetensors-ready tensors: floats as float32, num_batches_tracked as int64."""
    out = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        out[name] = t.to(torch.int64).contiguous() if name.endswith("num_batches_tracked") else t.to(torch.float32).contiguous()
    return out


def save_model(model, description, path, metadata=None):
    """Writes `model`'s state dict as a SwiftDistill model file (format distill-model/2)."""
    if isinstance(description, str):
        description = json.loads(description)
    meta = dict(metadata or {})
    meta["format"] = FORMAT
    meta["model"] = json.dumps(description, sort_keys=True, separators=(",", ":"))
    meta["input_count"] = str(math.prod(description["inputShape"]))
    meta["class_count"] = str(math.prod(output_shape(model, description)))
    save_file(state_tensors(model), path, metadata=meta)
    os.chmod(path, 0o644)


def read_description(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    if "model" not in meta:
        raise ValueError(f"{path}: no 'model' metadata (format {meta.get('format')!r}); not a distill-model/2 file")
    return json.loads(meta["model"]), meta


def load_model(path):
    """(module, description, metadata) for a SwiftDistill model file; strict load (names, shapes, dtypes cast)."""
    description, meta = read_description(path)
    model = build(description)
    state = load_file(path)
    model.load_state_dict(state, strict=True)
    return model, description, meta


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: python3 Scripts/torch_models.py MODEL.safetensors")
    model, description, meta = load_model(sys.argv[1])
    print(f"{sys.argv[1]}: format={meta.get('format')} input {description['inputShape']}")
    for name, t in model.state_dict().items():
        print(f"  {name:40s} {str(t.dtype).replace('torch.', ''):8s} {list(t.shape)}")


if __name__ == "__main__":
    main()
