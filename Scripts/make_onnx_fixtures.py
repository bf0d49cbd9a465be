#!/usr/bin/env python3
"""The ONNX export fixtures of Tests/ExportTests.

MLP: a small student trained on the embedded digits (standardised features, named classes), its ONNX export by
`distill export`, checked by onnx.checker, and ONNX Runtime's logits for a fixed batch of raw rows.

CNNs: three model files written here with PyTorch (torch 2.13, seed 0) in the `distill-model/2` format, each the
state dict of an `nn.Sequential` built from the model description:
  * lenet5: the `lenet5` preset on 1x28x28 images (ModelPresets.swift), with an input standardisation (per-pixel
    mean and std in the data description, so the graph starts with Sub and Div on [1, 28, 28]);
  * resnet8: the `resnet8` preset on 1x28x28 images;
  * kinds: every layer kind with the settings the presets leave out: a convolution with [h, w] kernel, stride,
    padding and dilation and two groups, one without bias, batch norms without affine parameters, 1-D batch norm,
    max pooling with padding and dilation, average pooling with and without count_include_pad, a residual block
    with an identity shortcut, a nested sequence, dropout.
Weights are PyTorch's default initialisation, batch-norm scales and shifts are drawn (U(0.5, 1.5), N(0, 0.2)), and
the running statistics come from three training-mode passes over MNIST test batches (momentum 0.1,
num_batches_tracked 3) with the mean then shifted by N(0, 0.05): non-trivial, and of the scale the activations
have. Each is exported by `distill export`, checked by onnx.checker (full_check), and run by ONNX Runtime on the
first 16 MNIST test images (raw, /255); the file `ort_<name>.safetensors` holds that input, ORT's logits and
PyTorch's eval-mode logits (float64) for a third opinion.

    swift build -c release && python3 Scripts/make_onnx_fixtures.py [--cnn-only]

Writes Tests/ExportTests/Fixtures/{student.safetensors, student.onnx, ort.safetensors} and, for each CNN,
{<name>.safetensors, <name>.onnx, ort_<name>.safetensors}; prints ORT's version and, per CNN, the largest
difference between ORT's and PyTorch's logits (our logits are compared with ORT's by the Swift test).
Needs torch, onnx, onnxruntime, numpy and safetensors (PyPI).
"""
import gzip, json, os, subprocess, sys
import numpy as np
import torch
from torch import nn
import onnx, onnxruntime as ort
from safetensors.numpy import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join("Tests", "ExportTests", "Fixtures")
DISTILL = os.path.join(".build", "release", "distill")


def main():
    os.chdir(ROOT)   # relative paths in the model file's metadata
    os.makedirs(OUT, exist_ok=True)
    if "--cnn-only" not in sys.argv[1:]:
        student()
    images = mnist_images()
    for name, description, data in [("lenet5", lenet5(), mnist_data(standardized=True)), ("resnet8", resnet8(), mnist_data()),
                                    ("kinds", kinds(), mnist_data())]:
        cnn(name, description, data, images)


def student():
    model = os.path.join(OUT, "student.safetensors")
    onnx_file = os.path.join(OUT, "student.onnx")
    digits = os.path.join("Data", "digits", "digits.csv.gz")
    subprocess.run([DISTILL, "train", "--data", digits, "--hidden", "24,12", "--epochs", "15", "--seed", "3", "--threads", "1",
                    "--output", model, "--run-dir", "/tmp/onnx-fixture.run", "--force"], check=True)
    subprocess.run([DISTILL, "export", model, "--output", onnx_file, "--probabilities", "--force"], check=True)
    m = onnx.load(onnx_file)
    onnx.checker.check_model(m, full_check=True)
    rows = np.loadtxt(gzip.open(digits), delimiter=",", dtype=np.float32)
    batch = rows[:32, :64].copy()
    session = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    logits, probabilities = session.run(None, {"input": batch})
    save_file({"input": batch, "logits": logits.astype(np.float32), "probabilities": probabilities.astype(np.float32)},
              os.path.join(OUT, "ort.safetensors"),
              metadata={"onnxruntime": ort.__version__, "onnx": onnx.__version__, "checker": "full_check passed"})
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}: checker passed; {len(batch)} rows", file=sys.stderr)


# --- CNN fixtures ----------------------------------------------------------------------------------------------

def conv(cin, cout, k, stride=1, padding=0, dilation=1, groups=1, bias=True):
    d = {"kind": "conv2d", "inChannels": cin, "outChannels": cout, "kernelSize": k}
    for key, value, default in [("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1), ("groups", groups, 1)]:
        if value != default:
            d[key] = value
    if not bias:
        d["bias"] = False
    return d


def bn(kind, n, affine=True):
    d = {"kind": kind, "numFeatures": n}
    if not affine:
        d["affine"] = False
    return d


RELU, FLATTEN = {"kind": "relu"}, {"kind": "flatten"}


def lenet5():
    """ModelPresets.lenet5 on [1, 28, 28] with 10 classes."""
    return {"inputShape": [1, 28, 28], "layers": [
        conv(1, 6, 5, padding=2), RELU, {"kind": "maxPool2d", "kernelSize": 2},
        conv(6, 16, 5), RELU, {"kind": "maxPool2d", "kernelSize": 2}, FLATTEN,
        {"kind": "linear", "inputCount": 400, "outputCount": 120}, RELU,
        {"kind": "linear", "inputCount": 120, "outputCount": 84}, RELU,
        {"kind": "linear", "inputCount": 84, "outputCount": 10}]}


def resnet8():
    """ModelPresets.resnet (n = 1) on [1, 28, 28] with 10 classes."""
    layers = [conv(1, 16, 3, padding=1, bias=False), bn("batchNorm2d", 16), RELU]
    channels = 16
    for stage, width in enumerate([16, 32, 64]):
        stride = 2 if stage > 0 else 1
        block = {"kind": "residual", "body": [conv(channels, width, 3, stride=stride, padding=1, bias=False), bn("batchNorm2d", width), RELU,
                                              conv(width, width, 3, padding=1, bias=False), bn("batchNorm2d", width)]}
        if stride != 1 or channels != width:
            block["shortcut"] = [conv(channels, width, 1, stride=stride, bias=False), bn("batchNorm2d", width)]
        layers += [block, RELU]
        channels = width
    return {"inputShape": [1, 28, 28], "layers": layers + [{"kind": "globalAvgPool"}, {"kind": "linear", "inputCount": 64, "outputCount": 10}]}


def kinds():
    """Every layer kind, with the settings the presets do not use."""
    return {"inputShape": [1, 28, 28], "layers": [
        conv(1, 4, 3, padding=1), bn("batchNorm2d", 4, affine=False), RELU,                       # [4, 28, 28]
        conv(4, 6, [3, 5], stride=2, padding=[1, 2], dilation=[1, 2], groups=2),                 # [6, 14, 12]
        {"kind": "maxPool2d", "kernelSize": 3, "stride": 2, "padding": 1, "dilation": 2},        # [6, 6, 5]
        {"kind": "residual", "body": [conv(6, 6, 3, padding=1, bias=False), bn("batchNorm2d", 6), RELU, conv(6, 6, 1)]},
        {"kind": "avgPool2d", "kernelSize": 3, "stride": 1, "padding": 1, "countIncludePad": False},  # [6, 6, 5]
        {"kind": "avgPool2d", "kernelSize": 2, "padding": 1},                                     # [6, 4, 3]
        FLATTEN,
        {"kind": "sequential", "layers": [{"kind": "linear", "inputCount": 72, "outputCount": 32}, bn("batchNorm1d", 32)]},
        RELU, {"kind": "dropout", "probability": 0.5},
        {"kind": "linear", "inputCount": 32, "outputCount": 10}]}


class Residual(nn.Module):
    def __init__(self, body, shortcut):
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x):
        return self.body(x) + self.shortcut(x)   # an empty nn.Sequential is the identity


class GlobalAvgPool(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


def pair(v):
    return tuple(v) if isinstance(v, list) else (v, v)


def torch_layers(layers):
    modules = []
    for d in layers:
        k = d["kind"]
        if k == "conv2d":
            modules.append(nn.Conv2d(d["inChannels"], d["outChannels"], pair(d["kernelSize"]), stride=pair(d.get("stride", 1)),
                                     padding=pair(d.get("padding", 0)), dilation=pair(d.get("dilation", 1)), groups=d.get("groups", 1),
                                     bias=d.get("bias", True)))
        elif k == "maxPool2d":
            modules.append(nn.MaxPool2d(pair(d["kernelSize"]), stride=pair(d.get("stride", d["kernelSize"])), padding=pair(d.get("padding", 0)),
                                        dilation=pair(d.get("dilation", 1))))
        elif k == "avgPool2d":
            modules.append(nn.AvgPool2d(pair(d["kernelSize"]), stride=pair(d.get("stride", d["kernelSize"])), padding=pair(d.get("padding", 0)),
                                        count_include_pad=d.get("countIncludePad", True)))
        elif k in ("batchNorm1d", "batchNorm2d"):
            cls = nn.BatchNorm1d if k == "batchNorm1d" else nn.BatchNorm2d
            modules.append(cls(d["numFeatures"], affine=d.get("affine", True)))
        elif k == "residual":
            modules.append(Residual(torch_layers(d["body"]), torch_layers(d.get("shortcut", []))))
        elif k == "sequential":
            modules.append(torch_layers(d["layers"]))
        elif k == "linear":
            modules.append(nn.Linear(d["inputCount"], d["outputCount"]))
        elif k == "relu":
            modules.append(nn.ReLU())
        elif k == "flatten":
            modules.append(nn.Flatten())
        elif k == "dropout":
            modules.append(nn.Dropout(d["probability"]))
        elif k == "globalAvgPool":
            modules.append(GlobalAvgPool())
        else:
            raise ValueError(k)
    return nn.Sequential(*modules)


def mnist_images():
    raw = gzip.open(os.path.join("Data", "mnist", "t10k-images-idx3-ubyte.gz")).read()
    return (np.frombuffer(raw, np.uint8, offset=16).astype(np.float32) / 255).reshape(10000, 1, 28, 28)


def mnist_data(standardized=False):
    d = {"format": "idx", "sample_shape": [1, 28, 28], "source": "Data/mnist", "class_names": [str(i) for i in range(10)]}
    if standardized:
        i = np.arange(784)
        d["standardization"] = {"mean": [float(np.float32(0.1307 + 0.02 * np.sin(k))) for k in i],
                                "std": [float(np.float32(0.3081 + 0.05 * np.cos(k))) for k in i]}
    return d


def cnn(name, description, data, images):
    torch.manual_seed(0)
    model = torch_layers(description["layers"])
    standardization = data.get("standardization")
    def prepare(x):
        x = torch.from_numpy(x)
        if standardization:
            mean = torch.tensor(standardization["mean"], dtype=torch.float32).reshape(1, 1, 28, 28)
            std = torch.tensor(standardization["std"], dtype=torch.float32).reshape(1, 1, 28, 28)
            x = (x - mean) / std
        return x
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in norms:
            if m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
        model.train()
        for b in range(3):   # running statistics of the scale the activations have
            model(prepare(images[1000 + 256 * b:1000 + 256 * (b + 1)]))
        for m in norms:
            m.running_mean.add_(torch.randn_like(m.running_mean) * 0.05)
    model.eval()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors = {k: (v.numpy().astype(np.int64) if k.endswith("num_batches_tracked") else v.numpy().astype(np.float32)) for k, v in state.items()}
    model_file = os.path.join(OUT, f"{name}.safetensors")
    onnx_file = os.path.join(OUT, f"{name}.onnx")
    classes = 10
    save_file(tensors, model_file, metadata={
        "format": "distill-model/2", "model": json.dumps(description, sort_keys=True, separators=(",", ":")),
        "input_count": "784", "class_count": str(classes), "data": json.dumps(data, sort_keys=True, separators=(",", ":")),
        "role": f"fixture: {name} with random weights (Scripts/make_onnx_fixtures.py)"})
    subprocess.run([DISTILL, "export", model_file, "--output", onnx_file, "--force"], check=True)
    m = onnx.load(onnx_file)
    onnx.checker.check_model(m, full_check=True)
    batch = images[:16].copy()
    session = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": batch})
    with torch.no_grad():
        reference = model.double()(prepare(batch).double()).numpy()
    save_file({"input": batch, "logits": logits.astype(np.float32), "torch_logits": reference},
              os.path.join(OUT, f"ort_{name}.safetensors"),
              metadata={"onnxruntime": ort.__version__, "onnx": onnx.__version__, "torch": torch.__version__, "checker": "full_check passed",
                        "nodes": json.dumps(sorted({n.op_type for n in m.graph.node}))})
    scale = np.abs(reference).max()
    print(f"{name}: checker passed; nodes {sorted({n.op_type for n in m.graph.node})}; max |ORT - torch| / max |torch| = "
          f"{np.abs(logits - reference).max() / scale:.3g} (max |logit| {scale:.3g})", file=sys.stderr)


if __name__ == "__main__":
    main()
