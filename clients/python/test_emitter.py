"""Tests for mlsec_poison_emitter (stdlib unittest; torch optional).

    python3 -m unittest -v test_emitter          # from clients/python
    MLSEC_BIN_DIR=build/bin python3 clients/python/test_emitter.py   # + end to end
"""

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mlsec_poison_emitter as pe  # noqa: E402

REQUIRED = {"rank", "step", "global_l2", "global_linf", "mean", "std", "parameter_count"}


class FakeScalar:
    def __init__(self, v):
        self.v = v

    def item(self):
        return self.v


class FakeTensor:
    """The few tensor methods the emitter uses, over a list of floats."""

    def __init__(self, values):
        self.values = list(values)

    def numel(self):
        return len(self.values)

    def norm(self, p):
        assert p == 2
        return FakeScalar(math.sqrt(sum(v * v for v in self.values)))

    def abs(self):
        return FakeTensor(abs(v) for v in self.values)

    def max(self):
        return FakeScalar(max(self.values))

    def mean(self):
        return FakeScalar(sum(self.values) / len(self.values))

    def std(self):
        m = sum(self.values) / len(self.values)
        return FakeScalar(math.sqrt(sum((v - m) ** 2 for v in self.values) / (len(self.values) - 1)))


class FakeParam:
    def __init__(self, grad):
        self.grad = grad


class FakeModel:
    def __init__(self, grads):
        self.params = [FakeParam(g) for g in grads]

    def parameters(self):
        return iter(self.params)


class FakeBucket:
    def __init__(self, grads, last):
        self.grads = grads
        self.last = last

    def gradients(self):
        return self.grads

    def is_last(self):
        return self.last


GRADS = [FakeTensor([3.0, -4.0]), None, FakeTensor([1.0, 1.0, 1.0, 1.0])]


class EmitterTest(unittest.TestCase):
    def test_stats_match_original_definitions(self):
        s = pe.gradient_stats(GRADS)
        self.assertAlmostEqual(s["global_l2"], 5.0 + 2.0)  # sum of per-parameter norms
        self.assertEqual(s["global_linf"], 4.0)
        self.assertAlmostEqual(s["mean"], (-0.5 + 1.0) / 2)
        self.assertAlmostEqual(s["std"], (math.sqrt(24.5) + 0.0) / 2)
        self.assertEqual(s["parameter_count"], 6)
        self.assertIsNone(pe.gradient_stats([None]))

    def test_jsonl_file(self):
        with tempfile.TemporaryDirectory() as d:
            with pe.GradientEmitter(3, log_dir=d, buffer_size=2) as em:
                for step in range(5):
                    em.record_module(step, FakeModel(GRADS))
            with open(os.path.join(d, "worker_3.jsonl"), encoding="utf-8") as f:
                lines = [json.loads(x) for x in f]
        self.assertEqual([r["step"] for r in lines], list(range(5)))
        for r in lines:
            self.assertTrue(REQUIRED <= set(r))
            self.assertEqual(r["rank"], 3)

    def test_udp(self):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        port = rx.getsockname()[1]
        em = pe.GradientEmitter(1, udp=f"127.0.0.1:{port}")
        em.record(7, 1.5, 0.25, -1e-5, 0.01, 1000)
        em.record(8, float("nan"), 0.25, 0.0, 0.01, 1000)  # non-finite -> 0, still JSON
        a = json.loads(rx.recv(65536))
        b = json.loads(rx.recv(65536))
        em.close()
        rx.close()
        self.assertEqual(a, {"rank": 1, "step": 7, "global_l2": 1.5, "global_linf": 0.25,
                             "mean": -1e-5, "std": 0.01, "parameter_count": 1000})
        self.assertEqual(b["global_l2"], 0.0)

    def test_comm_hook_aggregates_buckets(self):
        with tempfile.TemporaryDirectory() as d:
            em = pe.GradientEmitter(0, log_dir=d, buffer_size=1)
            reduced = []
            for _ in range(2):  # two steps, two buckets each
                pe.poison_comm_hook(em, FakeBucket([GRADS[0]], False), allreduce=reduced.append)
                pe.poison_comm_hook(em, FakeBucket([GRADS[2]], True), allreduce=reduced.append)
            em.close()
            with open(os.path.join(d, "worker_0.jsonl"), encoding="utf-8") as f:
                recs = [json.loads(x) for x in f]
        self.assertEqual(len(reduced), 4)  # every bucket still all-reduced
        self.assertEqual([r["step"] for r in recs], [0, 1])
        self.assertEqual(recs[0]["parameter_count"], 6)
        self.assertAlmostEqual(recs[0]["global_l2"], 7.0)

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            pe.GradientEmitter(0)
        with self.assertRaises(ValueError):
            pe.GradientEmitter(-1, udp="127.0.0.1:9")
        with self.assertRaises(ValueError):
            pe.GradientEmitter(0, udp="127.0.0.1")

    @unittest.skipUnless(os.environ.get("MLSEC_BIN_DIR"), "MLSEC_BIN_DIR not set")
    def test_end_to_end_listen(self):
        """Four emitters, one poisoned by a spike, into `mlsec poison-monitor listen`."""
        mlsec = os.path.join(os.environ["MLSEC_BIN_DIR"], "mlsec")
        p = subprocess.Popen([mlsec, "poison-monitor", "listen", "--port", "0", "--json",
                              "--expected-workers", "4", "--inactivity-timeout", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stderr.readline()
        port = int(line.rsplit(":", 1)[1])
        ems = [pe.GradientEmitter(r, udp=f"127.0.0.1:{port}") for r in range(4)]
        import random
        rnd = random.Random(5)
        for step in range(300):
            for r, em in enumerate(ems):
                k = 5.0 if (r == 1 and step == 200) else 1.0
                em.record(step, k * math.exp(rnd.gauss(0, 0.05)), k * 0.1 * math.exp(rnd.gauss(0, 0.05)),
                          1e-3 * (1 + 0.05 * rnd.gauss(0, 1)), 0.01 * math.exp(rnd.gauss(0, 0.05)), 1000)
            if step % 50 == 0:
                time.sleep(0.002)
        for em in ems:
            em.close()
        out, _ = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 2)
        first = json.loads(out.splitlines()[0])
        self.assertEqual((first["rule"], first["rank"], first["alarm_step"]), ("POISON-SPIKE", 1, 200))


@unittest.skipUnless(importlib.util.find_spec("torch"), "torch not installed")
class TorchTest(unittest.TestCase):
    def test_real_module(self):
        import torch

        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
        loss = model(torch.randn(16, 8)).pow(2).mean()
        loss.backward()
        with tempfile.TemporaryDirectory() as d:
            em = pe.GradientEmitter(0, log_dir=d)
            rec = json.loads(em.record_module(0, model))
            em.close()
        self.assertTrue(REQUIRED <= set(rec))
        self.assertEqual(rec["parameter_count"], 8 * 4 + 4 + 4 + 1)
        self.assertGreater(rec["global_l2"], 0)

    def test_real_ddp_comm_hook(self):
        """The hook registered on a real (1-process, gloo) DDP model."""
        import torch
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel as DDP

        if not dist.is_available():
            self.skipTest("torch.distributed not available")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
        try:
            model = DDP(torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)))
            with tempfile.TemporaryDirectory() as d:
                em = pe.GradientEmitter(0, log_dir=d, buffer_size=1)
                model.register_comm_hook(state=em, hook=pe.poison_comm_hook)
                for _ in range(3):
                    model.zero_grad()
                    model(torch.randn(4, 8)).pow(2).mean().backward()
                em.close()
                with open(os.path.join(d, "worker_0.jsonl"), encoding="utf-8") as f:
                    recs = [json.loads(x) for x in f]
        finally:
            dist.destroy_process_group()
        self.assertEqual([r["step"] for r in recs], [0, 1, 2])
        self.assertEqual(recs[0]["parameter_count"], 8 * 16 + 16 + 16 * 2 + 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
