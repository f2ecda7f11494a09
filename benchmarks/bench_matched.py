"""The matched port against the light cone and the locked solvers, side by side in one run.

Run from the repository root::

    python benchmarks/bench_matched.py            # every problem below
    python benchmarks/bench_matched.py --quick    # without the N = 2000 LQR

For each problem: the wave solver with ``port="matched"`` (consistent form, upwind, ν = 1, from
zero fields, tol 1e-10 on the max-abs PMP residuals) — its τ-steps beside the light cone 2N/ν
and its wall time (the compiled kernel, and its NumPy twin) — and, on the same problem, L-BFGS
with the exact adjoint gradient (``solvers.lbfgs.solve_lbfgs``, tol 1e-10 on max|∇J|) and the
locked forward–backward sweep (``solvers.sweep.solve_sweep``, same tol, at most 20 000
sweeps; 200 for N = 2000): gradients or sweeps and wall time. The distance in θ is to the exact reference (discrete Riccati for LQR, L-BFGS at tol
1e-11 for the pendulum). Serial work counts node updates: the wave updates every node once per
τ-step (N per step, all in parallel: depth 1 per step), L-BFGS evaluates J and ∇J by a forward
and a backward pass (2N sequential node evaluations per gradient, times its gradient count).
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import load_average, timed
from problems import lqr, pendulum, random_lqr
from solvers.lbfgs import solve_lbfgs
from solvers.riccati import discrete_riccati
from solvers.sweep import solve_sweep
from solvers.wave import solve


def cases(quick: bool):
    out = [("lqr N=20", lqr(), "riccati"), ("lqr N=200", lqr(N=200, T=20.0), "riccati")]
    if not quick:
        out.append(("lqr N=2000", lqr(N=2000, T=200.0), "riccati"))
    out += [("random unstable lqr n=5 m=2 N=30", random_lqr(n=5, m=2, N=30), "riccati"),
            ("pendulum stabilize", pendulum("stabilize"), "lbfgs"),
            ("pendulum swing-up", pendulum("swing-up"), "lbfgs")]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="leave out the N = 2000 LQR")
    args = ap.parse_args(argv)
    print(f"load average {load_average()}")
    # compile (or load from the disk cache) the generated kernels before timing
    for _, p, _ in cases(True):
        solve(p, port="matched", max_steps=1)
    head = (f"{'problem':34s} {'tau-steps':>9s} {'2N/nu':>6s} {'cones':>5s} {'wave s':>8s} "
            f"{'numpy s':>8s} {'|dth|':>7s} {'lbfgs g':>7s} {'lbfgs s':>8s} {'|dth|':>7s} "
            f"{'sweep it':>8s} {'sweep s':>8s} {'|dth|':>7s} {'wave serial':>11s} "
            f"{'lbfgs serial':>12s}")
    print(head)
    for name, p, kind in cases(args.quick):
        r = solve(p, port="matched", tol=1e-10, max_steps=50 * p.N)
        big = p.N > 1000
        rn = None if big else solve(p, port="matched", tol=1e-10, max_steps=50 * p.N,
                                    backend="numpy")
        lb, lb_s = timed(lambda: solve_lbfgs(p, tol=1e-10))
        sw, sw_s = timed(lambda: solve_sweep(p, tol=1e-10, max_iter=200 if big else 20_000))
        ref = discrete_riccati(p) if kind == "riccati" else solve_lbfgs(p, tol=1e-11)
        grads = int(lb.info["evaluations"])          # forward–backward passes
        cone = 2 * p.N

        def gap(res):
            return f"{np.abs(res.theta - ref.theta).max():7.0e}"

        print(f"{name:34s} {r.steps:9d} {cone:6d} {r.steps / cone:5.2f} {r.wall_time:8.4f} "
              f"{'-' if rn is None else f'{rn.wall_time:.3f}':>8s} {gap(r)} {grads:7d} "
              f"{lb_s:8.3f} {gap(lb)} {sw.steps:8d} {sw_s:8.3f} {gap(sw)} {r.steps:11d} "
              f"{grads * 2 * p.N:12d}  wave {r.status.value}, lbfgs {lb.status.value}, "
              f"sweep {sw.status.value}")
    print("wave s: the compiled matched kernel (solve's default backend; compile excluded), "
          "numpy s: its NumPy twin")
    print("serial: the wave's depth is one node update per tau-step (all N nodes in parallel); "
          "L-BFGS needs 2N sequential node evaluations per gradient")


if __name__ == "__main__":
    main()
