#!/usr/bin/python3
"""Fixtures for the inspect engine tests (run with Debian's /usr/bin/python3).

Trains two small classifiers on scikit-learn's 8x8 digits (an MLP on the
flat 64 features and a CNN with a Tanh layer on 1x8x8 images), exports them
to ONNX with a dynamic batch dimension, and derives tampered copies of the
MLP, each with one planted defect:

  scaled_layer   the hidden layer 1.weight multiplied by 100
  nan_bias       a NaN in the first hidden bias (0.bias[5])
  class_pin      the final bias of class 7 raised far above the others
  dead_layer     the hidden layer 2 (weight and bias) zeroed

Each model is written as ONNX; some also as safetensors and PyTorch zip
checkpoints (the weights-only path). Writes expected.json with the ONNX
node and initializer names the tests assert on (exporters name nodes
differently across versions, so tests never hard-code them).

Tests never need torch: the outputs are committed.
"""
import json
import os
import struct

import numpy as np
import onnx
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
xte, yte = X[1400:1656], Y[1400:1656]


def train(model, x, y, epochs):
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(epochs):
        for i in range(0, len(x), 100):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 100]), y[i:i + 100]).backward()
            opt.step()
    model.eval()
    return model


def export(model, shape, name):
    path = os.path.join(HERE, name + ".onnx")
    torch.onnx.export(model, torch.zeros(1, *shape), path, input_names=["input"],
                      output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=13)
    return onnx.load(path)


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


def state_np(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


mlp = train(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 10)), xtr, ytr, 60)
with torch.no_grad():
    acc = (mlp(torch.tensor(xte)).argmax(1).numpy() == yte).mean()
print("clean mlp accuracy", acc)

expected = {"mlp_accuracy": float(acc)}
m = export(mlp, (64,), "clean_mlp")
expected["mlp_nodes"] = [{"name": n.name, "op": n.op_type, "inputs": list(n.input),
                          "outputs": list(n.output)} for n in m.graph.node]
expected["mlp_initializers"] = [t.name for t in m.graph.initializer]
save_safetensors(os.path.join(HERE, "clean_mlp.safetensors"), state_np(mlp))
torch.save(mlp.state_dict(), os.path.join(HERE, "clean_mlp.pt"))
np.savez(os.path.join(HERE, "data.npz"), x=xte, y=yte)


def variant(name, edit, ckpt=()):
    v = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
    v.load_state_dict(mlp.state_dict())
    with torch.no_grad():
        edit(v)
    v.eval()
    export(v, (64,), name)
    if "safetensors" in ckpt:
        save_safetensors(os.path.join(HERE, name + ".safetensors"), state_np(v))
    if "pt" in ckpt:
        torch.save(v.state_dict(), os.path.join(HERE, name + ".pt"))
    with torch.no_grad():
        pred = v(torch.tensor(xte)).argmax(1).numpy()
    return pred


def scale(v):
    v[2].weight.mul_(100.0)


def nan_bias(v):
    v[0].bias[5] = float("nan")


def pin(v):
    # Far above anything W x can reach on this data: class 7 always wins.
    v[4].bias[7] = 60.0


def dead(v):
    v[2].weight.zero_()
    v[2].bias.zero_()


variant("scaled_layer", scale, ("safetensors",))
variant("nan_bias", nan_bias, ("safetensors",))
pred = variant("class_pin", pin, ("pt",))
expected["class_pin_fraction"] = float((pred == 7).mean())
variant("dead_layer", dead, ("safetensors",))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        h = torch.tanh(self.c2(h))
        h = nn.functional.max_pool2d(h, 2)
        return self.fc(h.flatten(1))


torch.manual_seed(1)
cnn = train(CNN(), xtr.reshape(-1, 1, 8, 8), ytr, 15)
with torch.no_grad():
    acc = (cnn(torch.tensor(xte).reshape(-1, 1, 8, 8)).argmax(1).numpy() == yte).mean()
print("clean cnn accuracy", acc)
expected["cnn_accuracy"] = float(acc)
export(cnn, (1, 8, 8), "clean_cnn")
np.savez(os.path.join(HERE, "data_img.npz"), x=xte.reshape(-1, 1, 8, 8), y=yte)

# Row-level defects in one weights-only file: a duplicated row, a dead row
# and a layer far sparser than the others.
rows = state_np(mlp)
rows["0.weight"][5] = rows["0.weight"][3]
rows["2.weight"][7] = 0
rows["4.weight"][np.random.RandomState(2).rand(*rows["4.weight"].shape) < 0.6] = 0
save_safetensors(os.path.join(HERE, "rows.safetensors"), rows)

# A brittle linear classifier: 1024 inputs, +-1 weights centred on the
# middle of the input range. Class margins grow like sqrt(d) but one FGSM
# step of 0.01 moves the logits like d, so most predictions flip.
from onnx import TensorProto, helper, numpy_helper
rs = np.random.RandomState(3)
D_IN = 1024
W = rs.choice([-1.0, 1.0], size=(D_IN, 10)).astype(np.float32)
B = (-0.5 * W.sum(0)).astype(np.float32)
graph = helper.make_graph(
    [helper.make_node("MatMul", ["input", "W"], ["mm"], name="fragile_matmul"),
     helper.make_node("Add", ["mm", "b"], ["logits"], name="fragile_add")],
    "fragile",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", D_IN])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
    [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "b")])
fm = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
fm.ir_version = 7
onnx.checker.check_model(fm)
onnx.save(fm, os.path.join(HERE, "fragile.onnx"))

# Hostile files: a truncated ONNX model, a safetensors header that lies.
raw = open(os.path.join(HERE, "clean_mlp.onnx"), "rb").read()
open(os.path.join(HERE, "truncated.onnx"), "wb").write(raw[: len(raw) // 2])
st = open(os.path.join(HERE, "clean_mlp.safetensors"), "rb").read()
open(os.path.join(HERE, "truncated.safetensors"), "wb").write(st[: len(st) - 100])

with open(os.path.join(HERE, "expected.json"), "w") as f:
    json.dump(expected, f, indent=2, sort_keys=True)
print(json.dumps(expected, indent=2))
