"""One τ-step of an MLP: the compiled network kernel vs PyTorch, its NumPy twin and BLAS alone.

The network: widths (2, 64, ..., 64, 3) with ``depth`` layers, tanh, a linear last layer,
softmax cross-entropy on a batch of 256 (spirals), the resistive port (η = 1e-3). Timed side by
side in one run, for depth 8 and 32, float32 and float64, 1 and 2 threads:

``ours``
    :func:`wavecontrol.netkernels.network_run` advancing the consistent form (upwind, ν = 1)
    ``--steps`` τ-steps from the exact forward/adjoint fields, no history rows. A τ-step does
    the work of one backprop step (one forward and two backward products per layer) plus the
    energy ledger, and its layers run in parallel (``numba.set_num_threads``); BLAS is held at
    one thread (threadpoolctl), as :func:`solvers.wave.solve` does.
``torch``
    one forward + backward + SGD step of the same network in PyTorch on the CPU
    (``torch.set_num_threads``), run by ``torch_step.py`` under ``--torch-python`` (an
    interpreter with torch==2.13.0; torch is not a dependency of wavecontrol). Goal: ours ≤ 1.5×
    torch.
``numpy``
    the NumPy twin (:func:`solvers.wave._numpy_run`, float64, padded to width 64, one thread).
``floor``
    the three BLAS products per layer alone (z = x Wᵀ, g W, gᵀ x), in one thread: no τ-step
    can be faster with one thread; ``ours/floor`` is the overhead of everything else
    (activations, residuals, updates, ledger). With two threads the floor halves at best.

Reported: µs per step (best of ``--repeats``, wall clock), the ratios, and GFLOP/s of the
products (6 B Σ n_k n_{k+1} flops per step). "diff" is the largest difference between the
compiled and the NumPy twin's fields after 3 steps from the same start (float64), relative to
max(1, max |field|).

Run alone: ``python benchmarks/bench_network.py [--torch-python PATH] [--quick]``; without a
torch interpreter the torch column is left out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np

from _common import ROOT, print_header, print_table

GOAL = 1.5          # ours / torch, at most
WIDTH, BATCH, ETA = 64, 256, 1e-3
NEVER = 2 ** 62     # record_every: with start = 1 no step index is a multiple of it


def problem(depth):
    from problems import mlp
    return mlp(widths=(2,) + (WIDTH,) * (depth - 1) + (3,), n_samples=BATCH, seed=0,
               dataset="spirals")


def flops(p):
    w = p.layout.widths
    return 6 * BATCH * int(np.sum(w[:-1] * w[1:]))


def _runner(p, dtype):
    """(reset, run(n)) for the compiled kernel from the exact forward/adjoint fields."""
    from solvers import wave
    from wavecontrol import netkernels

    start = wave._initial_fields(p, "forward")
    cm = np.ones(p.N + 1)
    hist = np.zeros((1, len(wave.HISTORY_COLUMNS)))
    proto = np.empty(0, dtype)
    data = p.kernel_data()
    fields = [None]

    def reset():
        fields[0] = tuple(a.copy() for a in start)

    def run(n):
        out = netkernels.network_run(*data, cm, 1.0, ETA, False, *fields[0], proto, 1, n, 0.0,
                                     NEVER, hist, 0, math.inf, p.dt)
        if out[0] != n:
            raise RuntimeError(f"compiled run stopped after {out[0]} of {n} steps")
    return reset, run, fields


def _numpy_runner(p):
    from solvers import wave
    from wavecontrol.formulations import StepConfig
    from wavecontrol.metric import Metric
    from wavecontrol.ports import ResistivePort

    start = wave._initial_fields(p, "forward")
    met = Metric(1.0, p.n, p.N)
    cfg = StepConfig(courant=1.0, eta=ETA)
    port = ResistivePort(ETA)
    port.bind(p, courant=1.0)
    hist = np.zeros((1, len(wave.HISTORY_COLUMNS)))
    fields = [None]

    def reset():
        fields[0] = tuple(a.copy() for a in start)

    def run(n):
        wave._numpy_run(p, met, cfg, port, *fields[0], 1, n, 0.0, NEVER, hist, 0, math.inf)
    return reset, run, fields


def _floor_runner(p, dtype):
    """The BLAS products of one τ-step alone, in one compiled loop over the layers."""
    from wavecontrol._jit import jit

    @jit
    def products(w, xs, gs, Ws, zs, vs, gws, reps):
        for _ in range(reps):
            for k in range(w.size - 1):
                np.dot(xs[k], Ws[k].T, zs[k])
                np.dot(gs[k], Ws[k], vs[k])
                np.dot(gs[k].T, xs[k], gws[k])

    from numba.typed import List
    w = p.layout.widths.astype(np.int64)
    rng = np.random.default_rng(0)

    def mats(shape_fn):
        out = List()
        for k in range(p.N):
            out.append(np.ascontiguousarray(rng.normal(size=shape_fn(k)).astype(dtype)))
        return out
    xs = mats(lambda k: (BATCH, w[k]))
    gs = mats(lambda k: (BATCH, w[k + 1]))
    Ws = mats(lambda k: (w[k + 1], w[k]))
    zs = mats(lambda k: (BATCH, w[k + 1]))
    vs = mats(lambda k: (BATCH, w[k]))
    gws = mats(lambda k: (w[k + 1], w[k]))
    products(w, xs, gs, Ws, zs, vs, gws, 1)
    return lambda n: products(w, xs, gs, Ws, zs, vs, gws, n)


def _best(fn, repeats, setup=None):
    import time
    best = float("inf")
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def torch_times(python, depths, dtypes, threads, steps, repeats):
    """{(depth, dtype, threads): µs} from ``torch_step.py`` under ``python`` ({} if none)."""
    if not python:
        return {}, None
    script = os.path.join(ROOT, "benchmarks", "torch_step.py")
    cmd = [python, script, "--depth", *map(str, depths), "--dtype", *dtypes, "--threads",
           *map(str, threads), "--steps", str(steps), "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    out, version = {}, None
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        out[(r["depth"], r["dtype"], r["threads"])] = r["torch_us"]
        version = r["torch"]
    return out, version


def run(depths=(8, 32), dtypes=("float32", "float64"), threads=(1, 2), steps=40,
        numpy_steps=3, repeats=5, torch_python=None, quiet=False):
    import numba

    from wavecontrol.netkernels import blas_single_thread

    threads = [t for t in threads if t <= numba.config.NUMBA_NUM_THREADS]
    if not quiet:
        print_header(f"network tau-step: MLP (2, {WIDTH} x (depth-1), 3), batch {BATCH}, "
                     f"tanh, cross-entropy, eta {ETA}")
    torch_us, version = torch_times(torch_python, depths, dtypes, threads, steps, repeats)
    if not quiet:
        print(f"ours: best of {repeats} x {steps} steps; NumPy twin: best of {repeats} x "
              f"{numpy_steps}; torch {version or 'not run (no --torch-python)'}: best of "
              f"{repeats} x {steps}")
    results = []
    old = numba.get_num_threads()
    try:
        with blas_single_thread():
            for depth in depths:
                p = problem(depth)
                nreset, nrun, nfields = _numpy_runner(p)
                np_us = 1e6 * _best(lambda: nrun(numpy_steps), repeats, nreset) / numpy_steps
                nreset()
                nrun(3)
                for dtype in dtypes:
                    dt = np.dtype(dtype).type
                    reset, ours, fields = _runner(p, dt)
                    reset()
                    ours(3)
                    diff = math.nan
                    if dtype == "float64":
                        scale = max(1.0, max(float(np.abs(a).max()) for a in nfields[0]))
                        diff = max(float(np.abs(a - b).max())
                                   for a, b in zip(fields[0], nfields[0])) / scale
                    numba.set_num_threads(1)
                    floor = _floor_runner(p, dt)
                    floor_us = 1e6 * _best(lambda: floor(steps), repeats) / steps
                    for t in threads:
                        numba.set_num_threads(t)
                        us = 1e6 * _best(lambda: ours(steps), repeats, reset) / steps
                        tu = torch_us.get((depth, dtype, t), math.nan)
                        results.append({
                            "depth": depth, "dtype": dtype, "threads": t, "ours_us": us,
                            "torch_us": tu, "ratio_torch": us / tu, "numpy_us": np_us,
                            "numpy_over_ours": np_us / us, "floor_us": floor_us,
                            "ours_over_floor": us / floor_us,
                            "gflops": flops(p) / us / 1e3, "rel_diff_3_steps": diff})
    finally:
        numba.set_num_threads(old)
    if not quiet:
        report(results)
    return results


def report(results):
    rows = [(r["depth"], r["dtype"], r["threads"], f"{r['ours_us']:.0f}",
             f"{r['torch_us']:.0f}", f"{r['ratio_torch']:.2f}", f"{r['numpy_us']:.0f}",
             f"{r['numpy_over_ours']:.1f}", f"{r['floor_us']:.0f}",
             f"{r['ours_over_floor']:.2f}", f"{r['gflops']:.1f}",
             "-" if math.isnan(r["rel_diff_3_steps"]) else f"{r['rel_diff_3_steps']:.1e}")
            for r in results]
    print_table(("depth", "dtype", "thr", "ours us", "torch us", "ours/torch", "numpy us",
                 "numpy/ours", "floor us", "ours/floor", "GFLOP/s", "diff"), rows)
    measured = [r for r in results if not math.isnan(r["ratio_torch"])]
    if measured:
        worst = max(measured, key=lambda r: r["ratio_torch"])
        print(f"worst ours/torch {worst['ratio_torch']:.2f} (depth {worst['depth']}, "
              f"{worst['dtype']}, {worst['threads']} thread(s)); goal <= {GOAL}: "
              f"{'met' if worst['ratio_torch'] <= GOAL else 'NOT met'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-python", default=os.environ.get("WAVECONTROL_TORCH_PYTHON"),
                        help="a Python with torch==2.13.0 (default: $WAVECONTROL_TORCH_PYTHON)")
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--depth", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    a = parser.parse_args(argv)
    res = run(depths=a.depth, steps=10 if a.quick else 40, repeats=3 if a.quick else 5,
              numpy_steps=2 if a.quick else 3, torch_python=a.torch_python)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
