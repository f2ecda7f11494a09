"""Cost of one τ-step of the resistive port over node functions: compiled vs its NumPy twin.

The compiled step (:func:`wavecontrol.nodekernels_gd.gd_run` in the problem's generated module,
:mod:`wavecontrol.codegen`: residuals of eqs. 53–56 and 59 from the node functions, the
consistent update, terminations, the resistive port of eq. 60 and the energy ledger in one
pass) and the NumPy step (:func:`solvers.wave._numpy_run` calling
:func:`wavecontrol.formulations.consistent_step_numpy`, vectorized over nodes) advance the same
fields of two problems written as expressions — the pendulum swing-up
(:func:`problems.expressions.pendulum_expressions`, Euler, n = 2, m = 1) and the cart-pole
(:func:`problems.cartpole`, RK4, n = 4, m = 1, bound |u| ≤ 20), both N = 40 — from the solver's
default start (x_0 = x_in, all else 0) with the default gain (η = auto), for each scheme at
one Courant number it allows. Both run with tol = 0 and no history rows, so neither stops early
nor records; the generated kernel is compiled (or loaded from the cache) before any timing, and
compile time is not counted. Reported: µs per τ-step, the best of ``--repeats`` runs, as thread
CPU time and as wall-clock time (see ``_common.best_time``), the ratio NumPy / compiled, and
"diff 3 steps": the largest difference of the two runners' fields after 3 steps from the same
start, relative to max(1, max |field|).

Run alone: ``python benchmarks/bench_gd_nodes.py [--steps 2000] [--numpy-steps 40]
[--repeats 5]`` (about a minute warm; each problem's first run compiles its module, ~20 s).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from _common import print_header, print_table, twin_timing

#: (scheme, ν) timed on each problem
SETTINGS = (("upwind", 1.0), ("lax-wendroff", 0.8), ("characteristic", 1.5))


def _problems(N):
    import problems
    from problems.expressions import pendulum_expressions

    return (("pendulum (expressions, Euler)", pendulum_expressions(N)),
            ("cartpole (RK4)", problems.cartpole(N=N)))


def _setup(problem, scheme, courant, eta):
    """Everything both runners need, built the way :func:`solvers.wave.solve` builds it."""
    from solvers import wave
    from wavecontrol.codegen import kernel_module
    from wavecontrol.formulations import StepConfig
    from wavecontrol.matched import bound_arrays
    from wavecontrol.metric import Metric
    from wavecontrol.ports import ResistivePort
    from wavecontrol.schemes import SCHEME_CODES

    cfg = StepConfig(formulation="consistent", scheme=scheme, courant=courant,
                     eta=eta).validate(problem.N)
    met = Metric(1.0, problem.n, problem.N)
    port = ResistivePort(eta).bind(problem, courant=courant)
    source, data = problem.node_kernel()
    module = kernel_module(source)
    lo, hi = bound_arrays(problem)
    args = (SCHEME_CODES[scheme], False, float(courant), float(eta), problem.bounds is not None,
            lo, hi, data, np.ascontiguousarray(problem.x_in[0], dtype=float),
            np.ascontiguousarray(met.theta), np.ascontiguousarray(met.theta_inv))
    x, lam, theta = wave._initial_fields(problem, "zeros")
    start = tuple(np.ascontiguousarray(a) for a in (x, lam, theta))
    return cfg, met, port, module, args, start


def bench_one(problem, scheme, courant, eta, *, steps, numpy_steps, repeats):
    """µs per τ-step of the compiled loop and of the NumPy twin for one configuration."""
    from solvers import wave
    from wavecontrol import kernels

    cfg, met, port, module, args, start = _setup(problem, scheme, courant, eta)
    hist = np.zeros((1, len(kernels.HIST_COLUMNS)))
    never = 2 ** 62  # record_every: with start = 1 no step index is a multiple of it
    fields = [None]

    def reset():
        fields[0] = tuple(a.copy() for a in start)

    def compiled(n):
        x, lam, theta = fields[0]
        out = module.gd_run(*args, x[0], lam[0], theta, 1, n, 0.0, never, hist, 0, math.inf,
                            problem.dt)
        if out[0] != n:
            raise RuntimeError(f"{problem.name}/{scheme}: compiled run stopped after {out[0]} "
                               f"of {n} steps (status {out[1]}); lower --steps")

    def numpy_twin(n):
        out = wave._numpy_run(problem, met, cfg, port, *fields[0], 1, n, 0.0, never, hist, 0,
                              math.inf)
        if out[0] != n:
            raise RuntimeError(f"{problem.name}/{scheme}: NumPy run stopped after {out[0]} of "
                               f"{n} steps (status {out[1]}); lower --numpy-steps")

    reset()
    compiled(1)                          # compile (or load) before any timing
    return {"scheme": scheme, "courant": courant,
            **twin_timing(compiled, numpy_twin, reset, fields, steps, numpy_steps, repeats)}


def run(N=40, steps=2000, numpy_steps=40, repeats=5, quiet=False):
    """Both problems × :data:`SETTINGS`; returns a list of result dicts (see
    :func:`bench_one`, plus ``problem`` and ``eta``)."""
    from solvers import wave

    if not quiet:
        print_header(f"gd tau-step over node functions (wavecontrol.nodekernels_gd), N = {N}")
        print(f"compiled: best of {repeats} x {steps} steps; NumPy: best of {repeats} x "
              f"{numpy_steps} steps; eta = auto (solvers.wave.auto_eta) per problem and nu")
    results = []
    for name, problem in _problems(N):
        for scheme, nu in SETTINGS:
            eta = wave.auto_eta(problem, nu)
            res = bench_one(problem, scheme, nu, eta, steps=steps, numpy_steps=numpy_steps,
                            repeats=repeats)
            results.append({"problem": name, "eta": eta, **res})
    if not quiet:
        report(results)
    return results


def report(results):
    rows = [(r["problem"], r["scheme"], f"{r['courant']:g}", f"{r['eta']:.3g}",
             f"{r['ours_us']:.2f}", f"{r['numpy_us']:.1f}", f"{r['ratio']:.0f}x",
             f"{r['ours_wall_us']:.2f}", f"{r['numpy_wall_us']:.1f}", f"{r['ratio_wall']:.0f}x",
             f"{r['rel_diff_3_steps']:.1e}") for r in results]
    print_table(("problem", "scheme", "nu", "eta", "compiled us", "numpy us", "ratio",
                 "compiled wall us", "numpy wall us", "ratio wall", "diff 3 steps"), rows)
    print("us: thread CPU time per tau-step (wall: wall-clock); ratio = NumPy / compiled")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=40, help="layers of both problems")
    ap.add_argument("--steps", type=int, default=2000, help="tau-steps per compiled run")
    ap.add_argument("--numpy-steps", type=int, default=40, help="tau-steps per NumPy run")
    ap.add_argument("--repeats", type=int, default=5, help="runs; the best is reported")
    a = ap.parse_args(argv)
    run(N=a.N, steps=a.steps, numpy_steps=a.numpy_steps, repeats=a.repeats)


if __name__ == "__main__":
    main()
