#!/usr/bin/python3
"""Generates the tensor-engine parity fixtures with Debian's torch + onnx.

Run with /usr/bin/python3 (Debian python3-torch 1.13, python3-onnx 1.12):
    /usr/bin/python3 tests/data/tensor/make_fixtures.py tests/data/tensor

For every model in the zoo it writes, next to the script:
    <name>.onnx          the torch.onnx.export output (eval mode)
    <name>.in.f32        the input batch, raw little-endian float32
    <name>.labels.i64    one label per sample, raw int64
    <name>.logits.f32    torch's logits for that batch
    <name>.grad.f32      d mean-cross-entropy / d input
    <name>.cwgrad.f32    d mean Carlini-Wagner margin (kappa 0) / d input
The C tests (tests/tensor/) compare the engine against these; they never
need torch. Weights are small so the committed files stay small.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(1234)
np.random.seed(1234)


class MLP(nn.Module):
    """tanh, sigmoid and (exact, erf-based) gelu layers."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3, self.l4 = (nn.Linear(20, 32), nn.Linear(32, 32),
                                              nn.Linear(32, 24), nn.Linear(24, 10))

    def forward(self, x):
        x = torch.tanh(self.l1(x))
        x = torch.sigmoid(self.l2(x))
        x = F.gelu(self.l3(x))
        return self.l4(x)


class LeNet(nn.Module):
    """LeNet on 1x28x28; view(x.size(0), -1) makes the exporter emit the
    Shape/Gather/Unsqueeze/Concat/Reshape plumbing when the batch is dynamic."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 4, 5), nn.Conv2d(4, 8, 5)
        self.f1, self.f2 = nn.Linear(8 * 4 * 4, 32), nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.f2(F.relu(self.f1(x)))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = nn.Conv2d(cin, cout, 3, stride, 1)
        self.b = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None
        # BatchNorm after the residual sum: not foldable into a Conv, so the
        # export keeps a BatchNormalization node.
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        s = x if self.skip is None else self.skip(x)
        return F.relu(self.bn(self.b(F.relu(self.a(x))) + s))


class ResCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 1, 1)
        self.b1, self.b2 = Block(8, 8, 1), Block(8, 16, 2)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.b2(self.b1(F.relu(self.stem(x))))
        x = self.pool(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class DepthwiseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, 1, 1)
        self.dw = nn.Conv2d(8, 8, 3, 2, 1, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.dil = nn.Conv2d(16, 16, 3, 1, 2, dilation=2, groups=4)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu6(self.c1(x))
        x = F.relu6(self.dw(x))
        x = F.leaky_relu(self.pw(x), 0.1)
        x = F.max_pool2d(x, 3, 2, 1, ceil_mode=True)
        x = F.pad(self.dil(x), (1, 1, 1, 1))
        return self.fc(x.mean(dim=(2, 3)))


class Attention(nn.Module):
    """One self-attention block with a mean-pooled classifier head."""

    def __init__(self, d=16, heads=2):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 5)

    def forward(self, x):
        b, t, d = x.shape
        q = self.q(x).reshape(b, t, self.h, self.dh).transpose(1, 2)
        k = self.k(x).reshape(b, t, self.h, self.dh).transpose(1, 2)
        v = self.v(x).reshape(b, t, self.h, self.dh).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-2, -1) / self.dh ** 0.5, dim=-1)
        y = (a @ v).transpose(1, 2).reshape(b, t, d)
        x = self.norm(x + self.o(y))
        return self.head(x.mean(dim=1))


class ConvTNet(nn.Module):
    """Encoder/decoder head: Conv down, ConvTranspose up (stride, output
    padding, groups), then a classifier."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, 2, 1)
        self.up = nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.fc = nn.Linear(6, 10)

    def forward(self, x):
        x = torch.relu(self.up(torch.relu(self.down(x))))
        return self.fc(x.mean(dim=(2, 3)))


def randomize_bn(m):
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
            assert n


def cw_loss(z, y, kappa=0.0):
    zy = z.gather(1, y[:, None])[:, 0]
    other = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), float("-inf")).max(1).values
    return torch.clamp(zy - other, min=-kappa).mean()


ZOO = [
    # name, model, input shape (batch first), opset, dynamic batch
    ("mlp", MLP, (4, 20), 13, False),
    ("lenet", LeNet, (4, 1, 28, 28), 11, True),
    ("rescnn", ResCNN, (4, 3, 16, 16), 13, False),
    ("dwnet", DepthwiseNet, (4, 3, 16, 16), 12, False),
    ("attn", Attention, (4, 8, 16), 17, False),
    ("convt", ConvTNet, (4, 3, 12, 12), 13, False),
]


def main(out):
    os.makedirs(out, exist_ok=True)
    for name, cls, shape, opset, dyn in ZOO:
        model = cls().eval()
        randomize_bn(model)
        x = torch.randn(*shape)
        classes = 5 if name == "attn" else 10
        y = torch.randint(0, classes, (shape[0],))
        path = os.path.join(out, name + ".onnx")
        kw = {}
        if dyn:
            kw["dynamic_axes"] = {"x": {0: "batch"}, "logits": {0: "batch"}}
        torch.onnx.export(model, (x,), path, opset_version=opset, input_names=["x"],
                          output_names=["logits"], **kw)
        xg = x.clone().requires_grad_(True)
        z = model(xg)
        F.cross_entropy(z, y).backward()
        xc = x.clone().requires_grad_(True)
        cw_loss(model(xc), y).backward()
        x.numpy().astype("<f4").tofile(os.path.join(out, name + ".in.f32"))
        y.numpy().astype("<i8").tofile(os.path.join(out, name + ".labels.i64"))
        z.detach().numpy().astype("<f4").tofile(os.path.join(out, name + ".logits.f32"))
        xg.grad.numpy().astype("<f4").tofile(os.path.join(out, name + ".grad.f32"))
        xc.grad.numpy().astype("<f4").tofile(os.path.join(out, name + ".cwgrad.f32"))
        print(name, "opset", opset, "logits", tuple(z.shape))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
