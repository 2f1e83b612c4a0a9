#!/usr/bin/python3
"""Tensor engine vs PyTorch, same models, same thread counts, one invocation.

    /usr/bin/python3 bench/engine/run_bench.py [--bin build/bin/mlsec-bench-engine]
                     [--seconds 1.0] [--threads 1,2] [--models mlp,lenet,resnet]

Builds the three benchmark models in torch (fixed seed), exports them to
ONNX (opset 13, eval mode) in a temporary directory, then for each model and
thread count times forward, forward+backward (one FGSM step) and PGD-20 in
samples/s with the C engine (mlsec-bench-engine) and with PyTorch, and prints
both with the ratio engine/torch. Also prints which BLAS torch runs on.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time



def _blas_env():
    """Picks OPENBLAS_CORETYPE before torch loads OpenBLAS (it reads it once,
    at load). Debian's OpenBLAS 0.3.21 falls back to generic Prescott
    kernels on CPUs it does not know; both engines then get the same fix."""
    if "--coretype" in sys.argv:
        v = sys.argv[sys.argv.index("--coretype") + 1]
    else:
        v = "auto"
    if v == "none" or "OPENBLAS_CORETYPE" in os.environ:
        return
    if v == "auto":
        b = sys.argv[sys.argv.index("--bin") + 1] if "--bin" in sys.argv else "build/bin/mlsec-bench-engine"
        info = json.loads(subprocess.run([b, "--blas-info"], check=True, capture_output=True,
                                         text=True).stdout)
        v = info["hint"]
    if v:
        os.environ["OPENBLAS_CORETYPE"] = v
        os.execv(sys.executable, [sys.executable] + sys.argv)


_blas_env()

import torch  # noqa: E402  (after OPENBLAS_CORETYPE is settled)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

EPS, ALPHA, PGD_STEPS = 0.03, 0.01, 20


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                 nn.Linear(256, 10))

    def forward(self, x):
        return self.net(x)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.f1, self.f2, self.f3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = torch.flatten(x, 1)
        return self.f3(F.relu(self.f2(F.relu(self.f1(x)))))


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.sc = None
        if stride != 1 or cin != cout:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.sc is None else self.sc(x)))


class ResNet(nn.Module):
    """ResNet-8 style: 16-32-64 channels, one basic block per stage."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layers = nn.Sequential(Basic(16, 16, 1), Basic(16, 32, 2), Basic(32, 64, 2))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


MODELS = {"mlp": (MLP, (128, 784)), "lenet": (LeNet, (128, 1, 28, 28)), "resnet": (ResNet, (64, 3, 32, 32))}


def torch_blas():
    cfg = torch.__config__.show()
    blas = [l.strip() for l in cfg.splitlines() if "BLAS" in l]
    torch.mm(torch.randn(64, 64), torch.randn(64, 64))
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            if "blas" in p or "lapack" in p or "mkl" in p:
                libs.add(os.path.realpath(p))
    return blas, sorted(libs)


def time_torch(model, shape, mode, secs):
    g = torch.Generator().manual_seed(12345)
    x0 = torch.rand(*shape, generator=g)
    y = torch.arange(shape[0]) % 10

    def once():
        if mode == "forward":
            with torch.no_grad():
                model(x0)
            return
        steps, a = (1, EPS) if mode == "fgsm" else (PGD_STEPS, ALPHA)
        x = x0.clone()
        for _ in range(steps):
            x.requires_grad_(True)
            loss = F.cross_entropy(model(x), y)
            (grad,) = torch.autograd.grad(loss, x)
            with torch.no_grad():
                x = torch.min(torch.max(x + a * grad.sign(), x0 - EPS), x0 + EPS).clamp(0, 1)

    for budget in (secs * 0.2, secs):
        iters, t0 = 0, time.perf_counter()
        while True:
            once()
            iters += 1
            el = time.perf_counter() - t0
            if el >= budget:
                break
    return iters * shape[0] / el


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bin/mlsec-bench-engine")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default="mlp,lenet,resnet")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--coretype", default="auto",
                    help="OPENBLAS_CORETYPE for both engines: auto (fix generic fallbacks), none, or a name")
    args = ap.parse_args()
    blas, libs = torch_blas()
    print(f"torch {torch.__version__}; {'; '.join(blas) or 'BLAS: (not reported)'}")
    print("torch BLAS libraries loaded:", ", ".join(libs) or "(none found)")
    info = json.loads(subprocess.run([args.bin, "--blas-info"], check=True, capture_output=True,
                                     text=True).stdout)
    print(f"OpenBLAS core: {info['core']} (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')},"
          f" same for both engines); torch intra-op threads follow --threads; torch conv uses oneDNN")
    tmp = tempfile.mkdtemp(prefix="mlsec-bench-")
    results = []
    print(f"\n{'model':8} {'thr':>3} {'mode':8} {'mlsec/s':>12} {'torch/s':>12} {'ratio':>7}")
    for name in args.models.split(","):
        cls, shape = MODELS[name]
        torch.manual_seed(0)
        model = cls().eval()
        for p in model.parameters():
            p.requires_grad_(False)
        path = os.path.join(tmp, name + ".onnx")
        torch.onnx.export(model, torch.rand(*shape), path, opset_version=13, input_names=["x"],
                          output_names=["logits"])
        for t in [int(v) for v in args.threads.split(",")]:
            torch.set_num_threads(t)
            out = subprocess.run([args.bin, path, "--batch", str(shape[0]), "--threads", str(t),
                                  "--seconds", str(args.seconds)], check=True, capture_output=True,
                                 text=True).stdout
            ours = {r["mode"]: r["samples_per_s"] for r in map(json.loads, out.splitlines())}
            for mode in ("forward", "fgsm", "pgd20"):
                theirs = time_torch(model, shape, mode, args.seconds)
                r = ours[mode] / theirs
                results.append({"model": name, "threads": t, "mode": mode, "mlsec": ours[mode],
                                "torch": theirs, "ratio": r})
                print(f"{name:8} {t:>3} {mode:8} {ours[mode]:>12.1f} {theirs:>12.1f} {r:>6.2f}x",
                      flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "torch_blas": libs, "results": results}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
