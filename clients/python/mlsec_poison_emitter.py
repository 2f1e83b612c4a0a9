"""mlsec_poison_emitter - send per-step gradient statistics to `mlsec poison-monitor`.

Standard library only: nothing here imports torch at module load, so the file
can be copied next to any training script. Records use the format of the
original Python mlsec (one JSON object per line / datagram):

    {"rank", "step", "global_l2", "global_linf", "mean", "std", "parameter_count"}

with the same definitions as the original GradientSnapshotter (global_l2 is
the sum of per-parameter L2 norms, global_linf the largest |g|, mean and std
the averages of the per-parameter means and standard deviations), so logs
from both emitters can be monitored together.

Two ways to hook it into training:

1. After ``loss.backward()`` (any framework whose parameters expose
   ``.grad`` tensors with ``norm/abs/max/mean/std/numel``)::

       emitter = GradientEmitter(rank, log_dir="gradlogs", udp="127.0.0.1:9999")
       loss.backward()
       emitter.record_module(step, model)

2. As a DDP communication hook, which sees this worker's local gradients
   before they are averaged (so a poisoned worker cannot hide behind the
   all-reduce)::

       model = DDP(model)
       model.register_comm_hook(state=emitter, hook=poison_comm_hook)

Sinks: a JSONL file ``<log_dir>/worker_<rank>.jsonl`` (buffered, for
``mlsec poison-monitor monitor``) and/or UDP datagrams (for
``mlsec poison-monitor listen``). UDP is fire-and-forget: a lost datagram is
a missing record, never a stalled training step.
"""

from __future__ import annotations

import json
import math
import os
import socket
from typing import Any, Iterable

__all__ = ["GradientEmitter", "poison_comm_hook", "gradient_stats"]

MAX_DATAGRAM = 4096  # the monitor drops larger datagrams as oversized


def _finite(x: float) -> float:
    # JSON has no NaN/Inf; the monitor rejects such lines. Keep the record
    # (so the step is not "missing") and make the problem visible instead.
    return x if math.isfinite(x) else 0.0


def gradient_stats(grads: Iterable[Any]) -> dict | None:
    """Statistics of an iterable of gradient tensors (None entries skipped).

    Tensors need ``numel()``, ``norm(2)``, ``abs().max()``, ``mean()`` and
    ``std()`` returning objects with ``.item()`` (torch tensors do).
    Returns None when there is no gradient at all.
    """
    total_l2 = 0.0
    total_linf = 0.0
    means = []
    stds = []
    count = 0
    for g in grads:
        if g is None:
            continue
        n = int(g.numel())
        if n == 0:
            continue
        count += n
        total_l2 += float(g.norm(2).item())
        total_linf = max(total_linf, float(g.abs().max().item()))
        means.append(float(g.mean().item()))
        # std of a single element is NaN in torch; count it as 0
        stds.append(float(g.std().item()) if n > 1 else 0.0)
    if count == 0:
        return None
    return {
        "global_l2": _finite(total_l2),
        "global_linf": _finite(total_linf),
        "mean": _finite(sum(means) / len(means)),
        "std": _finite(sum(stds) / len(stds)),
        "parameter_count": count,
    }


class GradientEmitter:
    """Writes one record per step to a JSONL file and/or a UDP endpoint."""

    def __init__(
        self,
        rank: int,
        log_dir: str | None = None,
        udp: str | None = None,
        buffer_size: int = 32,
    ):
        if log_dir is None and udp is None:
            raise ValueError("give log_dir, udp or both")
        if not isinstance(rank, int) or rank < 0:
            raise ValueError("rank must be a non-negative int")
        self.rank = rank
        self.buffer_size = max(1, int(buffer_size))
        self._buffer: list[str] = []
        self._path = None
        if log_dir is not None:
            os.makedirs(log_dir, exist_ok=True)
            self._path = os.path.join(log_dir, f"worker_{rank}.jsonl")
        self._sock = None
        self._addr = None
        if udp is not None:
            host, _, port = udp.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError("udp must be HOST:PORT")
            host = host.strip("[]")  # [::1]:9999
            info = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[0]
            self._sock = socket.socket(info[0], socket.SOCK_DGRAM)
            self._addr = info[4]
        # DDP hook state: per-step accumulation over buckets
        self._step = 0
        self._pending: list[Any] = []

    # -- records -----------------------------------------------------------

    def emit(self, step: int, stats: dict) -> str:
        """Sends one record built from gradient_stats() output; returns its JSON."""
        rec = {"rank": self.rank, "step": int(step)}
        rec.update(stats)
        line = json.dumps(rec, separators=(", ", ": "))
        if self._sock is not None:
            data = line.encode("utf-8")
            if len(data) <= MAX_DATAGRAM:
                try:
                    self._sock.sendto(data, self._addr)
                except OSError:
                    pass  # monitoring must never break training
        if self._path is not None:
            self._buffer.append(line)
            if len(self._buffer) >= self.buffer_size:
                self.flush()
        return line

    def record(self, step: int, global_l2: float, global_linf: float, mean: float,
               std: float, parameter_count: int) -> str:
        """Sends a record from statistics computed elsewhere."""
        return self.emit(step, {
            "global_l2": _finite(float(global_l2)),
            "global_linf": _finite(float(global_linf)),
            "mean": _finite(float(mean)),
            "std": _finite(float(std)),
            "parameter_count": int(parameter_count),
        })

    def record_module(self, step: int, model: Any) -> str | None:
        """Call after backward(): records the gradients of model.parameters()."""
        stats = gradient_stats(p.grad for p in model.parameters())
        if stats is None:
            return None
        return self.emit(step, stats)

    def flush(self) -> None:
        if self._path is None or not self._buffer:
            return
        with open(self._path, "a", encoding="utf-8") as f:
            f.write("\n".join(self._buffer) + "\n")
        self._buffer.clear()

    def close(self) -> None:
        self.flush()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "GradientEmitter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- DDP communication hook support --------------------------------------

    def on_bucket(self, gradients: list, is_last: bool) -> str | None:
        """Collects one bucket's local gradients; emits the step at the last bucket."""
        self._pending.extend(gradients)
        if not is_last:
            return None
        stats = gradient_stats(self._pending)
        self._pending = []
        step = self._step
        self._step += 1
        return self.emit(step, stats) if stats is not None else None


def poison_comm_hook(state, bucket, allreduce=None):
    """DDP communication hook: records local gradients, then all-reduces.

    (No annotations on purpose: DDP rejects a hook whose `bucket` or return
    annotation is anything but dist.GradBucket / torch.futures.Future.)

    Register with ``ddp_model.register_comm_hook(state=emitter, hook=poison_comm_hook)``.
    ``allreduce`` defaults to torch's allreduce_hook (imported lazily); tests
    pass their own.
    """
    state.on_bucket(list(bucket.gradients()), bool(bucket.is_last()))
    if allreduce is None:
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        return default_hooks.allreduce_hook(None, bucket)
    return allreduce(bucket)
