#!/usr/bin/python3
"""Adversarial attacks: mlsec vs PyTorch, same models, data and threads, one run.

    /usr/bin/python3 bench/adversarial/run_bench.py [--mlsec build/bin/mlsec]
        [--threads 1,2] [--models mlp,lenet,resnet] [--samples 512]

Uses the engine benchmark's models (bench/engine/run_bench.py: MLP 784-256-256-10,
LeNet 1x28x28, ResNet-8 3x32x32; fixed seed), exported to ONNX with a dynamic
batch, and random inputs labelled with the model's own predictions (every
sample is attacked). For each attack it times `mlsec adversarial` end to end
(process start, model load and report included) and the same attack in
PyTorch, and prints samples/s and the ratio:

  FGSM     one gradient step, eps 0.03
  PGD-20   20 sign steps, alpha 2.5*eps/20, no random start
  CW-100   100 Adam steps, one binary-search round, c = 1

mlsec stops PGD per sample once it is misclassified (PyTorch here runs all 20
steps, as torchattacks does), so gradient evaluations per sample are printed
for both: the ratio mixes engine speed with that algorithmic saving.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "engine"))
from run_bench import MODELS, torch_blas  # noqa: E402

EPS, PGD_STEPS, CW_STEPS = 0.03, 20, 100


def torch_attack(model, x0, y, attack):
    if attack == "fgsm":
        x = x0.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
        return (x0 + EPS * g.sign()).clamp(0, 1), 1
    if attack == "pgd":
        x, alpha = x0.clone(), 2.5 * EPS / PGD_STEPS
        for _ in range(PGD_STEPS):
            x.requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
            with torch.no_grad():
                x = torch.min(torch.max(x + alpha * g.sign(), x0 - EPS), x0 + EPS).clamp(0, 1)
        return x, PGD_STEPS
    # CW-L2, one binary-search round
    w = torch.atanh((x0 * 2 - 1).clamp(-0.999999, 0.999999)).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=0.01)
    onehot = F.one_hot(y, 10).bool()
    for _ in range(CW_STEPS):
        xa = (torch.tanh(w) + 1) / 2
        z = model(xa)
        other = z.masked_fill(onehot, -1e9).max(1).values
        loss = ((xa - x0) ** 2).flatten(1).sum(1) + torch.clamp(z[onehot] - other, min=0)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    return (torch.tanh(w) + 1) / 2, CW_STEPS


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsec", default="build/bin/mlsec")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default="mlp,lenet,resnet")
    ap.add_argument("--samples", type=int, default=1024)
    args = ap.parse_args()
    blas, libs = torch_blas()
    print(f"torch {torch.__version__}; BLAS libraries loaded: {', '.join(libs) or '(none found)'}")
    tmp = tempfile.mkdtemp(prefix="mlsec-advbench-")
    print(f"\n{'model':7} {'thr':>3} {'attack':7} {'mlsec/s':>10} {'torch/s':>10} {'ratio':>7}"
          f"  {'grads/sample mlsec':>18} {'torch':>6}")
    for name in args.models.split(","):
        cls, shape = MODELS[name]
        batch = shape[0]
        n = args.samples if name != "resnet" else max(batch, args.samples // 4)
        torch.manual_seed(0)
        model = cls().eval()
        for p in model.parameters():
            p.requires_grad_(False)
        path = os.path.join(tmp, name + ".onnx")
        torch.onnx.export(model, torch.rand(*shape), path, opset_version=13, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "b"}, "logits": {0: "b"}})
        g = torch.Generator().manual_seed(7)
        x = torch.rand((n,) + tuple(shape[1:]), generator=g)
        with torch.no_grad():
            y = model(x).argmax(1)
        data = os.path.join(tmp, name + ".npz")
        np.savez(data, x=x.numpy(), y=y.numpy().astype(np.int64))
        for t in [int(v) for v in args.threads.split(",")]:
            torch.set_num_threads(t)
            for attack in ("fgsm", "pgd", "cw"):
                cmd = [args.mlsec, "adversarial", "--model", path, "--data", data, "--attack", attack,
                       "--epsilon", str(EPS), "--pgd-steps", str(PGD_STEPS), "--cw-steps", str(CW_STEPS),
                       "--cw-binary-search", "1", "--batch-size", str(batch), "--threads", str(t),
                       "--json", "--fail-on", "critical"]
                t0 = time.perf_counter()
                out = subprocess.run(cmd, capture_output=True, text=True)
                ours_t = time.perf_counter() - t0
                if out.returncode not in (0, 2):
                    print(out.stderr, file=sys.stderr)
                    return 1
                rep = json.loads(out.stdout)
                res = rep["artifacts"][0]["details"]["attacks"][0]
                ours_grads = res["gradient_evaluations"] * batch / n
                # Same work as mlsec: clean accuracy, the attack, adversarial accuracy.
                t0 = time.perf_counter()
                steps = 0
                for s in range(0, n, batch):
                    xb, yb = x[s:s + batch], y[s:s + batch]
                    with torch.no_grad():
                        model(xb).argmax(1).eq(yb).sum()
                    xa, k = torch_attack(model, xb, yb, attack)
                    with torch.no_grad():
                        model(xa).argmax(1).eq(yb).sum()
                    steps += k
                torch_t = time.perf_counter() - t0
                ours, theirs = n / ours_t, n / torch_t
                print(f"{name:7} {t:>3} {attack:7} {ours:>10.1f} {theirs:>10.1f} {ours / theirs:>6.2f}x"
                      f"  {ours_grads:>18.1f} {steps * batch / n:>6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
