"""One PyTorch (CPU) training step of the benchmark MLP: forward + backward + SGD update.

Runs in the benchmark's own environment with torch installed (torch is not a dependency of
wavecontrol); imports nothing from the project. ``bench_network.py`` starts it as a subprocess
and reads one JSON line per configuration from its stdout:

    <torch-python> benchmarks/torch_step.py --depth 8 32 --dtype float32 float64 --threads 1 2

The network is the one the wave τ-step runs: widths (2, 64, ..., 64, 3) with ``depth`` linear
layers, tanh between them, a linear last layer, softmax cross-entropy on a batch of 256, plain
SGD. Reported: µs per step, the best of ``--repeats`` runs of ``--steps`` steps (wall clock:
torch's intra-op threads make thread CPU time meaningless), after 20 warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def build(depth, width, dtype):
    widths = [2] + [width] * (depth - 1) + [3]
    layers = []
    for k in range(depth):
        layers.append(torch.nn.Linear(widths[k], widths[k + 1]))
        if k < depth - 1:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers).to(dtype)


def time_step(depth, dtype_name, threads, *, width=64, batch=256, steps=50, repeats=5):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dtype = getattr(torch, dtype_name)
    net = build(depth, width, dtype)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    X = torch.randn(batch, 2, dtype=dtype)
    y = torch.randint(0, 3, (batch,))

    def step():
        opt.zero_grad(set_to_none=False)
        loss_fn(net(X), y).backward()
        opt.step()

    for _ in range(20):
        step()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    a = parser.parse_args(argv)
    for threads in a.threads:
        for depth in a.depth:
            for dtype in a.dtype:
                us = 1e6 * time_step(depth, dtype, threads, steps=a.steps, repeats=a.repeats)
                print(json.dumps({"depth": depth, "dtype": dtype, "threads": threads,
                                  "torch_us": us, "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
