"""PyTorch (CPU) training of the digits MLP with SGD and Adam, for ``bench_digits.py``.

Runs in the benchmark's own environment with torch installed (torch is not a dependency of
wavecontrol); imports nothing from the project. ``bench_digits.py`` writes the data split and
the initial weights to an ``.npz`` file, starts this script under ``--torch-python`` and reads
one JSON line per (optimizer, learning rate) from its stdout:

    <torch-python> benchmarks/torch_digits.py FILE.npz --steps 1500 --check 25 \\
        --sgd-lr 0.3 1 --adam-lr 0.003 0.01 --threads 1 --dtype float64

The network is the one the wave solver trains: ``nn.Linear`` layers with the widths and the
initial W_k, b_k from the file, tanh between them, a linear last layer, softmax cross-entropy
averaged over the whole training split (full batch: every step sees the same objective J the
wave solver relaxes), ``torch.optim.SGD`` (plain, no momentum) or ``torch.optim.Adam``
(default betas). Every ``--check`` steps the test accuracy is measured; the time spent
measuring it is left out of the reported wall times. Each line holds ``initial_loss`` (J at the
initial weights, which must equal the wave problem's objective: the same network and
initialization), µs per step (wall and process CPU time) and the trace
``[step, wall_s, cpu_s, test_accuracy, train_loss]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def build(data, dtype):
    n_layers = sum(1 for k in data.files if k.startswith("W"))
    layers = []
    for k in range(n_layers):
        W, b = data[f"W{k}"], data[f"b{k}"]
        lin = torch.nn.Linear(W.shape[1], W.shape[0], dtype=dtype)
        with torch.no_grad():                     # float64 weights, rounded once if float32
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if k < n_layers - 1:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def train(data, optimizer, lr, steps, check, dtype):
    torch.manual_seed(0)
    net = build(data, dtype)
    X = torch.from_numpy(data["X_train"]).to(dtype)
    y = torch.from_numpy(data["labels_train"]).long()
    Xt = torch.from_numpy(data["X_test"]).to(dtype)
    yt = torch.from_numpy(data["labels_test"]).long()
    opt = (torch.optim.SGD(net.parameters(), lr=lr) if optimizer == "sgd"
           else torch.optim.Adam(net.parameters(), lr=lr))
    loss_fn = torch.nn.CrossEntropyLoss()
    with torch.no_grad():
        initial = float(loss_fn(net(X), y))

    def test_accuracy():
        with torch.no_grad():
            return float((net(Xt).argmax(dim=1) == yt).double().mean())

    trace = [[0, 0.0, 0.0, test_accuracy(), initial]]
    wall = cpu = 0.0                              # seconds of training, checks left out
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(net(X), y)
        loss.backward()
        opt.step()
        if step % check == 0 or step == steps:
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
            trace.append([step, wall, cpu, test_accuracy(), float(loss)])
            t0, c0 = time.perf_counter(), time.process_time()
    return {"optimizer": optimizer, "lr": lr, "initial_loss": initial,
            "us_per_step": 1e6 * wall / steps, "cpu_us_per_step": 1e6 * cpu / steps,
            "trace": trace}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help=".npz written by bench_digits.py")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--check", type=int, default=25)
    parser.add_argument("--sgd-lr", type=float, nargs="*", default=[0.3, 1.0])
    parser.add_argument("--adam-lr", type=float, nargs="*", default=[0.003, 0.01])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    a = parser.parse_args(argv)
    torch.set_num_threads(a.threads)
    dtype = getattr(torch, a.dtype)
    data = np.load(a.data)
    for optimizer, lrs in (("sgd", a.sgd_lr), ("adam", a.adam_lr)):
        for lr in lrs:
            out = train(data, optimizer, lr, a.steps, a.check, dtype)
            out.update(torch=torch.__version__, threads=a.threads, dtype=a.dtype)
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
