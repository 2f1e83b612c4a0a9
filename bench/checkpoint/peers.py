#!/usr/bin/python3
"""Peer measurements for bench/checkpoint/run.sh (Debian /usr/bin/python3).

  peers.py gen-ckpt OUT GIB     write a ~GIB GiB fp32 torch.save checkpoint
  peers.py gen-pickle OUT MIB   write a ~MIB MiB pickle of small Python objects
  peers.py torch-triage FILE    torch.load + per-tensor NaN/Inf/max/histogram
"""
import pickle
import sys
import time


def gen_ckpt(out, gib):
    import torch
    torch.manual_seed(0)
    n = int(gib * (1 << 30) / 4)
    per = 1 << 24  # 64 MiB tensors
    sd = {}
    i = 0
    while n > 0:
        k = min(per, n)
        sd["layer%d.weight" % i] = torch.randn(k) * 0.02
        n -= k
        i += 1
    torch.save(sd, out)


def gen_pickle(out, mib):
    rows = []
    size = 0
    i = 0
    while size < mib * (1 << 20):
        row = {"id": i, "name": "item-%d" % i, "score": i * 0.5, "tags": ["a", "b", str(i)],
               "nested": {"x": i, "y": [i, i + 1]}}
        rows.append(row)
        i += 1
        if i % 10000 == 0:
            size = len(pickle.dumps(rows, protocol=4))
    with open(out, "wb") as f:
        pickle.dump(rows, f, protocol=4)


def torch_triage(path):
    import torch
    t0 = time.time()
    c0 = time.process_time()
    sd = torch.load(path)
    for name, t in sd.items():
        if not torch.is_floating_point(t):
            continue
        nan = torch.isnan(t).sum().item()
        inf = torch.isinf(t).sum().item()
        fin = t[torch.isfinite(t)]
        mx = fin.abs().max().item() if fin.numel() else 0.0
        hist = torch.histc(fin.float(), bins=64)
    print("torch_seconds=%.4f torch_cpu_seconds=%.4f" % (time.time() - t0, time.process_time() - c0))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen-ckpt":
        gen_ckpt(sys.argv[2], float(sys.argv[3]))
    elif cmd == "gen-pickle":
        gen_pickle(sys.argv[2], float(sys.argv[3]))
    elif cmd == "torch-triage":
        torch_triage(sys.argv[2])
