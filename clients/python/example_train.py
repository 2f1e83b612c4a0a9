"""Example: a toy DDP-free training loop reporting gradients to mlsec.

    mlsec poison-monitor listen --port 9999 --expected-workers 1 &
    /usr/bin/python3 clients/python/example_train.py --udp 127.0.0.1:9999 --log-dir gradlogs
    mlsec poison-monitor monitor --log-dir gradlogs --plot gradlogs.png

In a DDP job use the rank from torch.distributed and, instead of the call
after backward(), register the communication hook so the statistics are
taken from this worker's gradients before the all-reduce:

    from mlsec_poison_emitter import GradientEmitter, poison_comm_hook
    emitter = GradientEmitter(dist.get_rank(), udp="monitor-host:9999")
    ddp_model.register_comm_hook(state=emitter, hook=poison_comm_hook)
"""

import argparse

import torch

from mlsec_poison_emitter import GradientEmitter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--udp", default=None, help="HOST:PORT of mlsec poison-monitor listen")
    ap.add_argument("--log-dir", default=None, help="directory for worker_<rank>.jsonl")
    args = ap.parse_args()

    torch.manual_seed(args.rank)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with GradientEmitter(args.rank, log_dir=args.log_dir, udp=args.udp) as emitter:
        for step in range(args.steps):
            x, y = torch.randn(64, 32), torch.randint(0, 10, (64,))
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            emitter.record_module(step, model)  # after backward(), before step()
            opt.step()


if __name__ == "__main__":
    main()
