"""Digits MLP: held-out test accuracy and the wall time to it, wave solver vs PyTorch SGD/Adam.

The data: scikit-learn's bundled 8×8 digits (:func:`problems.datasets.digits`, needs the extra
``wavecontrol[digits]``), the seeded stratified split (1347 training images, 450 held out).
The network: widths (64, 32, 10), tanh, a linear last layer, softmax cross-entropy over the
whole training split (full batch), θ0 seeded (W_k ~ N(0, 1/n_k), b_k = 0).

``wave``
    :func:`solvers.wave.solve` (consistent form, upwind, ν = 1, the resistive port, the
    compiled network kernel) from zero fields with η = ``mult`` × ``auto_eta``, for each
    ``--eta-mult``.
``sgd``, ``adam``
    ``torch.optim.SGD`` (plain) and ``torch.optim.Adam`` on the same network from the *same*
    initial weights (written to a file and loaded by ``torch_digits.py`` under
    ``--torch-python``; the initial losses of both sides are compared), one full-batch step
    per iteration, for each ``--sgd-lr`` / ``--adam-lr``.

Every method gets the same budget of ``--steps`` iterations (a τ-step does the work of one
forward–backward pass) and its test accuracy is measured every ``--check`` of them
(:meth:`~problems.network.NetworkProblem.test_accuracy` on our side); the time spent measuring
is left out of the times, and compiling too. Reported per run: µs per iteration (wall and
process CPU time: with one thread the CPU time is the less disturbed estimate on a busy
machine), the final and best test accuracy, and the iterations and seconds until the test
accuracy first reached each ``--target``. Each method gets the same small grid of gains to choose from; the
summary names each method's fastest run to every target.

Run: ``python benchmarks/bench_digits.py --torch-python PATH [--quick] [--json FILE]``; without
a torch interpreter only the wave runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from _common import ROOT, load_average, print_header, print_table

WIDTHS = (64, 32, 10)


def problem(seed=0):
    from problems import mlp
    return mlp(dataset="digits", widths=WIDTHS, loss="cross-entropy", seed=seed)


def write_npz(p, path):
    """The split and θ0 of ``p`` for ``torch_digits.py``."""
    arrays = {"X_train": p.X_pool, "labels_train": p.labels_pool, "X_test": p.test_set[0],
              "labels_test": p.test_set[1]}
    for k, (W, b) in enumerate(p.layers(p.theta0)):
        arrays[f"W{k}"], arrays[f"b{k}"] = np.array(W), np.array(b)
    np.savez(path, **arrays)


def wave_run(p, eta, steps, check, dtype):
    """Trace [step, wall_s, cpu_s, test_accuracy, objective] of one wave run (the checks
    and compiling left out)."""
    from solvers.wave import solve

    spent = {"wall": 0.0, "cpu": 0.0}
    trace = [[0, 0.0, 0.0, p.test_accuracy(p.theta0), p.objective(p.theta0)]]
    start = [None, None]

    def callback(step, info):
        t1, c1 = time.perf_counter(), time.process_time()
        acc = p.test_accuracy(info["theta"])
        trace.append([step, t1 - start[0] - spent["wall"], c1 - start[1] - spent["cpu"], acc,
                      math.nan])
        spent["wall"] += time.perf_counter() - t1
        spent["cpu"] += time.process_time() - c1
        return False

    start[:] = time.perf_counter(), time.process_time()
    res = solve(p, formulation="consistent", scheme="upwind", courant=1.0, eta=eta,
                max_steps=steps, tol=0.0, callback=callback, callback_every=check,
                record_every=steps, dtype=dtype)
    wall = time.perf_counter() - start[0] - spent["wall"]
    cpu = time.process_time() - start[1] - spent["cpu"]
    if trace[-1][0] != res.steps:
        trace.append([res.steps, wall, cpu, p.test_accuracy(res.theta), res.objective])
    trace[-1][4] = res.objective
    for row in trace[1:]:           # compiling (if any) happened in the first chunk
        row[1] -= res.compile_time
        row[2] -= res.compile_time
    n = max(res.steps, 1)
    return {"method": "wave", "gain": eta, "us_per_step": 1e6 * trace[-1][1] / n,
            "cpu_us_per_step": 1e6 * trace[-1][2] / n, "trace": trace,
            "status": res.status.value, "backend": res.config["backend"]}


def torch_runs(python, npz, steps, check, sgd_lr, adam_lr, threads, dtype):
    if not python:
        return [], None
    script = os.path.join(ROOT, "benchmarks", "torch_digits.py")
    cmd = [python, script, npz, "--steps", str(steps), "--check", str(check), "--threads",
           str(threads), "--dtype", dtype, "--sgd-lr", *map(str, sgd_lr), "--adam-lr",
           *map(str, adam_lr)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    out, version = [], None
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        version = r["torch"]
        out.append({"method": r["optimizer"], "gain": r["lr"], "us_per_step": r["us_per_step"],
                    "cpu_us_per_step": r["cpu_us_per_step"], "trace": r["trace"],
                    "initial_loss": r["initial_loss"]})
    return out, version


def summarize(run, targets):
    tr = np.array(run["trace"], dtype=float)
    run["final_test_accuracy"] = float(tr[-1, 3])
    run["best_test_accuracy"] = float(tr[:, 3].max())
    run["to_target"] = {}
    for t in targets:
        hit = np.flatnonzero(tr[:, 3] >= t)
        run["to_target"][f"{t:g}"] = (None if hit.size == 0
                                      else {"steps": int(tr[hit[0], 0]),
                                            "wall_s": float(tr[hit[0], 1]),
                                            "cpu_s": float(tr[hit[0], 2])})
    return run


def run(steps=1500, check=25, eta_mult=(1, 4, 8, 16), sgd_lr=(0.3, 1.0, 3.0),
        adam_lr=(0.001, 0.003, 0.01), targets=(0.95, 0.97), threads=1, dtype="float64",
        torch_python=None, quiet=False):
    import numba

    from solvers.wave import auto_eta, solve

    p = problem()
    if not quiet:
        print_header(f"digits MLP {WIDTHS}: {p.batch} training images (full batch), "
                     f"{len(p.test_set[1])} held out; {steps} iterations, test accuracy every "
                     f"{check}; {threads} thread(s), {dtype}")
    base = auto_eta(p, 1.0)
    old = numba.get_num_threads()
    runs = []
    try:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        solve(p, eta=base, max_steps=check, tol=0.0, record_every=check, dtype=dtype)  # compile
        for mult in eta_mult:
            r = wave_run(p, mult * base, steps, check, dtype)
            r["gain_label"] = f"eta {mult:g} x auto"
            runs.append(r)
    finally:
        numba.set_num_threads(old)
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "digits.npz")
        write_npz(p, npz)
        truns, version = torch_runs(torch_python, npz, steps, check, sgd_lr, adam_lr, threads,
                                    dtype)
    J0 = p.objective(p.theta0)
    for r in truns:
        r["initial_loss_diff"] = abs(r["initial_loss"] - J0)
        r["gain_label"] = f"lr {r['gain']:g}"
    runs += truns
    for r in runs:
        summarize(r, targets)
    doc = {"widths": list(WIDTHS), "train": int(p.batch), "test": int(len(p.test_set[1])),
           "steps": steps, "check": check, "threads": threads, "dtype": dtype,
           "auto_eta": base, "torch": version, "initial_objective": J0,
           "load_average": load_average(), "runs": runs}
    if not quiet:
        report(doc, targets)
    return doc


def report(doc, targets):
    print(f"auto eta {doc['auto_eta']:.4g}; J(theta0) = {doc['initial_objective']:.12g}; "
          f"torch {doc['torch'] or 'not run (no --torch-python)'}; load {doc['load_average']}")
    diffs = [r["initial_loss_diff"] for r in doc["runs"] if "initial_loss_diff" in r]
    if diffs:
        print(f"same network and initialization: |torch initial loss - J(theta0)| <= "
              f"{max(diffs):.1e}")
    head = ["method", "gain", "us/iter", "cpu us/iter", "final test", "best test"]
    for t in targets:
        head += [f"iters to {t:g}", f"s to {t:g}", "cpu s"]
    rows = []
    for r in doc["runs"]:
        row = [r["method"], r["gain_label"], f"{r['us_per_step']:.0f}",
               f"{r['cpu_us_per_step']:.0f}", f"{r['final_test_accuracy']:.4f}",
               f"{r['best_test_accuracy']:.4f}"]
        for t in targets:
            hit = r["to_target"][f"{t:g}"]
            row += (["-"] * 3 if hit is None
                    else [str(hit["steps"]), f"{hit['wall_s']:.3f}", f"{hit['cpu_s']:.3f}"])
        rows.append(row)
    print_table(head, rows)
    print("s to T: wall seconds until the test accuracy first reached T (checked every "
          f"{doc['check']} iterations); cpu s: process CPU seconds (less disturbed by other "
          "processes on a busy machine)")
    for t in targets:
        parts = []
        for m in ("wave", "sgd", "adam"):
            hits = [(r["to_target"][f"{t:g}"]["wall_s"], r) for r in doc["runs"]
                    if r["method"] == m and r["to_target"][f"{t:g}"] is not None]
            if hits:
                w, r = min(hits, key=lambda h: h[0])
                parts.append(f"{m} {w:.3f} s, cpu {r['to_target'][f'{t:g}']['cpu_s']:.3f} s "
                             f"({r['gain_label']})")
            elif any(r["method"] == m for r in doc["runs"]):
                parts.append(f"{m} not reached")
        print(f"fastest to test accuracy {t:g}: " + ", ".join(parts))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-python", default=os.environ.get("WAVECONTROL_TORCH_PYTHON"),
                        help="a Python with torch==2.13.0 (default: $WAVECONTROL_TORCH_PYTHON)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--check", type=int, default=25)
    parser.add_argument("--eta-mult", type=float, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--sgd-lr", type=float, nargs="+", default=[0.3, 1.0, 3.0])
    parser.add_argument("--adam-lr", type=float, nargs="+", default=[0.001, 0.003, 0.01])
    parser.add_argument("--targets", type=float, nargs="+", default=[0.95, 0.97])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--quick", action="store_true", help="300 iterations, one gain each")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    a = parser.parse_args(argv)
    if a.quick:
        a.steps, a.eta_mult, a.sgd_lr, a.adam_lr = 300, [8], [1.0], [0.01]
    doc = run(steps=a.steps, check=a.check, eta_mult=a.eta_mult, sgd_lr=a.sgd_lr,
              adam_lr=a.adam_lr, targets=a.targets, threads=a.threads, dtype=a.dtype,
              torch_python=a.torch_python)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(doc, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
