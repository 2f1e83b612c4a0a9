#!/usr/bin/python3
"""Fixtures for the adversarial engine tests (run with Debian's /usr/bin/python3).

Trains a small MLP on scikit-learn's 8x8 digits, exports it to ONNX with a
dynamic batch dimension, saves 200 held-out samples as data.npz (x float32
[N,64] in [0,1], y int64) and a safetensors copy, and computes reference
robust accuracies with PyTorch using exactly the engine's definitions:

  FGSM  x' = clip(x + eps * sign(grad CE(f(x), y)))
  PGD   no random start, alpha = 2.5*eps/steps, sign steps projected to the
        eps-ball and [0,1]; a sample stops as soon as it is misclassified
        (its adversarial example is kept); initially wrong samples are never
        perturbed.

Writes expected.json. Tests never need torch: the outputs are committed.
"""
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)
np.random.seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = (digits.data / 16.0).astype(np.float32)
Y = digits.target.astype(np.int64)
perm = np.random.permutation(len(X))
X, Y = X[perm], Y[perm]
xtr, ytr = torch.tensor(X[:1400]), torch.tensor(Y[:1400])
xte, yte = X[1400:1600], Y[1400:1600]

model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
opt = torch.optim.Adam(model.parameters(), lr=0.01)
for epoch in range(60):
    for i in range(0, len(xtr), 100):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xtr[i:i + 100]), ytr[i:i + 100])
        loss.backward()
        opt.step()
model.eval()

torch.onnx.export(model, torch.zeros(1, 64), os.path.join(HERE, "digits_mlp.onnx"),
                  input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
np.savez(os.path.join(HERE, "data.npz"), x=xte, y=yte)


def save_safetensors(path, tensors):
    header, data, off = {}, b"", 0
    for name, arr in tensors.items():
        b = arr.tobytes()
        dt = {np.float32: "F32", np.int64: "I64"}[arr.dtype.type]
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        data += b
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


save_safetensors(os.path.join(HERE, "data.safetensors"), {"x": xte, "y": yte})

x = torch.tensor(xte)
y = torch.tensor(yte)


def grad(xa):
    xa = xa.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(xa), y)
    (g,) = torch.autograd.grad(loss, xa)
    return g


def fgsm(eps):
    xa = torch.clamp(x + eps * torch.sign(grad(x)), 0, 1)
    return (model(xa).argmax(1) == y).float().mean().item()


def pgd(eps, steps):
    alpha = 2.5 * eps / steps
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    broken = ~correct
    best = x.clone()
    cur = x.clone()
    for step in range(steps + 1):
        g = grad(cur)
        with torch.no_grad():
            pred = model(cur).argmax(1)
            newly = (~broken) & (pred != y)
            best[newly] = cur[newly]
            broken |= newly
            if broken.all() or step == steps:
                break
            nxt = cur + alpha * torch.sign(g)
            nxt = torch.min(torch.max(nxt, x - eps), x + eps).clamp(0, 1)
            cur = torch.where(broken[:, None], cur, nxt)
    final = torch.where(broken[:, None], best, cur)
    with torch.no_grad():
        return (model(final).argmax(1) == y).float().mean().item()


with torch.no_grad():
    clean = (model(x).argmax(1) == y).float().mean().item()
expected = {"clean_accuracy": clean, "samples": len(xte), "fgsm": {}, "pgd": {}}
for eps in (0.05, 0.1, 0.2):
    expected["fgsm"][str(eps)] = fgsm(eps)
    expected["pgd"][str(eps)] = pgd(eps, 20)
with open(os.path.join(HERE, "expected.json"), "w") as f:
    json.dump(expected, f, indent=2, sort_keys=True)
print(json.dumps(expected, indent=2))


# Degenerate models built directly with onnx.helper (no training needed).
import onnx
from onnx import TensorProto, helper, numpy_helper

W = np.random.RandomState(1).randn(64, 10).astype(np.float32)


def classifier(name, nodes, inits):
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(HERE, name + ".onnx"))


# Logits that do not depend on the input: every gradient is exactly zero,
# so an attack "succeeds" at nothing - the engine must say so.
classifier("zero_grad", [
    helper.make_node("Mul", ["input", "zero"], ["masked"]),
    helper.make_node("MatMul", ["masked", "W"], ["mm"]),
    helper.make_node("Add", ["mm", "b"], ["logits"]),
], [numpy_helper.from_array(np.zeros((1, 64), np.float32), "zero"),
    numpy_helper.from_array(W, "W"),
    numpy_helper.from_array(np.arange(10, dtype=np.float32), "b")])

# A NaN hidden in the bias: logits are NaN for every input.
bias = np.zeros(10, np.float32)
bias[3] = np.nan
classifier("nan_bias", [
    helper.make_node("MatMul", ["input", "W"], ["mm"]),
    helper.make_node("Add", ["mm", "b"], ["logits"]),
], [numpy_helper.from_array(W, "W"), numpy_helper.from_array(bias, "b")])

# Hostile inputs: a truncated model and a data file that lies about its size.
raw = open(os.path.join(HERE, "digits_mlp.onnx"), "rb").read()
open(os.path.join(HERE, "truncated.onnx"), "wb").write(raw[: len(raw) // 2])
st = open(os.path.join(HERE, "data.safetensors"), "rb").read()
open(os.path.join(HERE, "truncated.safetensors"), "wb").write(st[: len(st) - 1000])


# A residual CNN with batch norm on the same digits as 1x8x8 images, for the
# PGD regression test (many steps, restarts, gradients through branches).
class ResCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        h = self.stem(x)
        h = torch.relu(h + self.block(h))
        return self.head(h.mean(dim=(2, 3)))


torch.manual_seed(1)
cnn = ResCNN()
opt = torch.optim.Adam(cnn.parameters(), lr=0.01)
ximg = xtr.reshape(-1, 1, 8, 8)
for epoch in range(15):
    for i in range(0, len(ximg), 100):
        opt.zero_grad()
        nn.functional.cross_entropy(cnn(ximg[i:i + 100]), ytr[i:i + 100]).backward()
        opt.step()
cnn.eval()
torch.onnx.export(cnn, torch.zeros(1, 1, 8, 8), os.path.join(HERE, "digits_rescnn.onnx"),
                  input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
np.savez(os.path.join(HERE, "data_img.npz"), x=xte[:64].reshape(-1, 1, 8, 8), y=yte[:64])
# The same data stored as float16 (a common way to ship evaluation sets):
# valid data, not a malformed file.
np.savez(os.path.join(HERE, "data_f16.npz"), x=np.load(os.path.join(HERE, "data.npz"))["x"]
         .astype(np.float16), y=np.load(os.path.join(HERE, "data.npz"))["y"])

# User mistakes (tool errors, exit 1): wrong sample size, labels out of range.
np.savez(os.path.join(HERE, "data_wrong_shape.npz"), x=xte[:10, :32], y=yte[:10])
np.savez(os.path.join(HERE, "data_bad_labels.npz"), x=xte[:10], y=np.full(10, 12, np.int64))
