"""Cost of one fused τ-step: the compiled kernel vs its NumPy twin.

The compiled step (:func:`wavecontrol.kernels.affine_run`: transport, reconstruction, PMP
residuals of eqs. 53–56 and 59, sources, resistive port of eq. 60, terminations and energy
ledger in one pass) and the NumPy step (:func:`solvers.wave._numpy_run`, which calls
:func:`wavecontrol.formulations.consistent_step_numpy` or ``paper_step_numpy``, vectorized over
nodes) advance the same fields of a random LQR (default n = 4, m = 2, N = 1000, T = 2, so
Δt = 0.002) from the solver's default start (x_0 = x_in, all else 0) with ν = 1 and the solver's
default gains (η = auto, α = ν). Both run with tol = 0 and no history rows, so neither stops
early nor records; the compiled kernel is warmed up (compiled or loaded from the cache) first.
Reported: µs per τ-step, the best of ``--repeats`` runs of ``--steps`` steps, as thread CPU
time and as wall-clock time, and their ratios (the goal is judged on CPU time, see
``_common.best_time``); "diff 3 steps" is the largest difference of the two runners' fields
after 3 steps from the same start, relative to max(1, max |field|).

Run alone: ``python benchmarks/bench_step.py [--steps 500] [--numpy-steps 60] [--repeats 5]
[--profile]``; ``--profile`` also times the compiled pieces one step calls (see :func:`profile`).
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from _common import best_time, print_header, print_table, twin_timing

FORMULATIONS = ("consistent", "paper")
SCHEMES = ("upwind", "characteristic", "lax-wendroff")
GOAL = 10.0  # the compiled step must be at least this many times faster than the NumPy twin


def _setup(problem, formulation, scheme, courant, eta):
    """Everything both runners need, built the way :func:`solvers.wave.solve` builds it."""
    from solvers import wave
    from wavecontrol import kernels
    from wavecontrol.formulations import StepConfig, transport_scheme
    from wavecontrol.metric import Metric
    from wavecontrol.ports import ResistivePort
    from wavecontrol.schemes import SCHEME_CODES

    cfg = StepConfig(formulation=formulation, scheme=scheme, courant=courant,
                     eta=eta).validate(problem.N)
    met = Metric(1.0, problem.n, problem.N)
    x, lam, theta = wave._initial_fields(problem, "zeros")
    u, v = met.to_waves(x, lam) if formulation == "paper" else (x, lam)
    A, Bm, c, Q, R, Qf, gf, x_in = problem.kernel_data()
    ti_n = met.theta_inv[-1]
    mterm = np.ascontiguousarray(np.linalg.inv(np.eye(problem.n) + ti_n.T @ Qf @ ti_n))
    args = (kernels.FORM_CODES[formulation],
            SCHEME_CODES[transport_scheme(formulation, scheme)],
            cfg.termination == "explicit", cfg.sources == "before", float(courant),
            float(cfg.source_gain), float(eta), A, Bm, c, Q, R, Qf, gf, x_in,
            met.theta, met.theta_inv, mterm)
    start = tuple(np.ascontiguousarray(a) for a in (u, v, theta))
    return cfg, met, ResistivePort(eta), args, start


def bench_one(problem, formulation, scheme, *, courant, eta, steps, numpy_steps, repeats):
    """µs per τ-step of the compiled kernel and of the NumPy twin for one configuration."""
    from solvers import wave
    from wavecontrol import kernels

    cfg, met, port, args, start = _setup(problem, formulation, scheme, courant, eta)
    hist = np.zeros((1, len(kernels.HIST_COLUMNS)))
    never = 2 ** 62  # record_every: with start = 1 no step index is a multiple of it
    fields = [None]

    def reset():
        fields[0] = tuple(a.copy() for a in start)

    def compiled(n):
        out = kernels.affine_run(*args, *fields[0], 1, n, 0.0, never, hist, 0, math.inf,
                                 problem.dt)
        if out[0] != n:
            raise RuntimeError(f"{formulation}/{scheme}: compiled run stopped after {out[0]} of "
                               f"{n} steps (status {out[1]}); lower --steps")
        return out

    def numpy_twin(n):
        out = wave._numpy_run(problem, met, cfg, port, *fields[0], 1, n, 0.0, never, hist, 0,
                              math.inf)
        if out[0] != n:
            raise RuntimeError(f"{formulation}/{scheme}: NumPy run stopped after {out[0]} of "
                               f"{n} steps (status {out[1]}); lower --numpy-steps")
        return out

    return {"formulation": formulation, "scheme": scheme,
            **twin_timing(compiled, numpy_twin, reset, fields, steps, numpy_steps, repeats)}


def run(n=4, m=2, N=1000, T=2.0, courant=1.0, steps=500, numpy_steps=60, repeats=5,
        quiet=False):
    """All formulations × schemes; returns a list of result dicts (see :func:`bench_one`)."""
    import problems
    from solvers import wave
    from wavecontrol import kernels

    problem = problems.random_lqr(n=n, m=m, N=N, T=T)
    eta = wave.auto_eta(problem, courant)
    if not quiet:
        print_header(f"fused tau-step: random_lqr(n={n}, m={m}, N={N}, T={T}), courant "
                     f"{courant}, eta auto = {eta:.4g}, alpha = courant")
        print(f"compiled: best of {repeats} x {steps} steps; NumPy: best of {repeats} x "
              f"{numpy_steps} steps")
    # warm-up: compile affine_run (or load it from the numba cache) before any timing
    _, _, _, args, start = _setup(problem, "consistent", "upwind", courant, eta)
    kernels.affine_run(*args, *(a.copy() for a in start), 1, 1, 0.0, 2 ** 62,
                       np.zeros((1, len(kernels.HIST_COLUMNS))), 0, math.inf, problem.dt)
    results = []
    for formulation in FORMULATIONS:
        for scheme in SCHEMES:
            results.append(bench_one(problem, formulation, scheme, courant=courant, eta=eta,
                                     steps=steps, numpy_steps=numpy_steps, repeats=repeats))
    if not quiet:
        report(results)
    return results


def profile(n=4, m=2, N=1000, T=2.0, repeats=7, calls=200, quiet=False):
    """Thread CPU µs of the compiled pieces one consistent-form upwind step calls, by count.

    Times the helpers of :mod:`wavecontrol.kernels` that the consistent loop calls once per
    step (residuals, the update, the source sums of the ledger, the port) and twice (the
    homogeneous transport of a and b for the ledger), on node-last arrays of the same problem
    with Θ = I; the rest of the step is its own loops (boundary resets, boundary sums, sums of
    squares). Returns a list of (piece, calls per step, µs per call); a piece whose helper no
    longer exists is left out.
    """
    import problems
    from wavecontrol import kernels as K

    problem = problems.random_lqr(n=n, m=m, N=N, T=T)
    A, Bm, c, Q, R, Qf, gf, x_in = problem.kernel_data()
    rng = np.random.default_rng(0)
    X, L, X1, L1, RX, RL, UB, VB = (rng.random((1, n, N + 1)) for _ in range(8))
    TH, TH1, RT = (rng.random((m, N)) for _ in range(3))
    G, QX = np.empty((n, N)), np.empty((1, n, N))
    T1, RC, RC2 = (np.empty((n, N + 1)) for _ in range(3))
    S1, S2, S3, SD = (np.empty(N + 1) for _ in range(4))
    prob = (K._layers_last(A), K._layers_last_T(A), K._layers_last(Bm), K._layers_last_T(Bm),
            np.ascontiguousarray(c.T), K._layers_last(Q), K._layers_last(R), Qf, gf, x_in)
    At, AtT = prob[0], prob[1]
    pieces = [("residuals (eqs. 53-56, 59)", 1, "_residuals",
               (*prob, X, L, TH, RX, RL, RT, G, QX)),
              ("update x', lambda'", 1, "_consistent_update",
               (0, 1.0, At, AtT, X, L, RX, RL, G, QX, X1, L1, T1, RC, RC2)),
              ("transport of a, b for the ledger", 2, "_transport",
               (X, UB, 0, 1.0, K.RIGHT, T1[0], SD)),
              ("source sums of the ledger", 1, "_consistent_sums",
               (X, L, UB, VB, X1, L1, S1, S2, S3)),
              ("port theta' = theta - eta r_theta", 1, "_theta_step", (TH, RT, 0.01, TH1))]
    rows = []
    for name, count, attr, args in pieces:
        fn = getattr(K, attr, None)
        if fn is None:
            continue
        fn(*args)

        def many(fn=fn, args=args):
            for _ in range(calls):
                fn(*args)
        rows.append((name, count, 1e6 * best_time(many, repeats)[1] / calls))
    if not quiet:
        total = sum(cnt * us for _, cnt, us in rows)
        print(f"where a compiled consistent/upwind step's time goes (thread CPU, best of "
              f"{repeats} x {calls} calls; N = {N}, n = {n})")
        print_table(("piece", "calls/step", "us/call", "us/step"),
                    [(nm, cnt, f"{us:.1f}", f"{cnt * us:.1f}") for nm, cnt, us in rows]
                    + [("sum of the pieces", "", "", f"{total:.1f}")])
    return rows


def report(results) -> None:
    """Print the table and whether the 10× goal holds for every configuration."""
    rows = [(r["formulation"], r["scheme"], f"{r['ours_us']:.1f}", f"{r['numpy_us']:.1f}",
             f"{r['ratio']:.1f}x", f"{r['ours_wall_us']:.1f}", f"{r['numpy_wall_us']:.1f}",
             f"{r['ratio_wall']:.1f}x", f"{r['rel_diff_3_steps']:.0e}") for r in results]
    print("us/step = microseconds per tau-step, best of the repeats; cpu = thread CPU time, "
          "wall = wall-clock time")
    print_table(("formulation", "scheme", "compiled cpu", "NumPy cpu", "speed-up",
                 "compiled wall", "NumPy wall", "speed-up wall", "diff 3 steps"), rows)
    worst = min(r["ratio"] for r in results)
    print(f"goal: compiled >= {GOAL:g}x faster than NumPy (cpu) -> worst {worst:.1f}x: "
          f"{'MET' if worst >= GOAL else 'NOT MET'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--N", type=int, default=1000, help="layers (default 1000)")
    parser.add_argument("--n", type=int, default=4, help="state width (default 4)")
    parser.add_argument("--m", type=int, default=2, help="control width (default 2)")
    parser.add_argument("--T", type=float, default=2.0, help="horizon (default 2)")
    parser.add_argument("--courant", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=500, help="compiled steps per repeat")
    parser.add_argument("--numpy-steps", type=int, default=60, help="NumPy steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true",
                        help="also time the pieces a compiled step calls")
    a = parser.parse_args(argv)
    run(n=a.n, m=a.m, N=a.N, T=a.T, courant=a.courant, steps=a.steps,
        numpy_steps=a.numpy_steps, repeats=a.repeats)
    if a.profile:
        profile(n=a.n, m=a.m, N=a.N, T=a.T, repeats=a.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
