"""Wall times of IPOPT (through CasADi) on the LQR and the pendulum swing-up, beside the
references compare uses there (discrete Riccati, L-BFGS).

Run from the repository root (needs the extra ``wavecontrol[casadi]``)::

    python docs/scripts/ipopt_times.py [--repeats 5]

Per problem and transcription: IPOPT iterations, the best-of-``--repeats`` solve time (IPOPT
alone, the NLP built once per call and timed apart as "build"), the gaps |J − J_ref| and
max|θ − θ_ref| to the reference, and max|∇J| at IPOPT's θ by the problem's own adjoint.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from problems import lqr, pendulum
from solvers.adjoint import forward_backward
from solvers.ipopt import TRANSCRIPTIONS, solve_ipopt
from solvers.lbfgs import solve_lbfgs
from solvers.riccati import discrete_riccati


def best(fn, repeats):
    out, t = None, float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        t = min(t, time.perf_counter() - t0)
    return out, t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    cases = [("lqr (N = 20)", lqr(), "discrete-riccati", discrete_riccati),
             ("pendulum swing-up (N = 40)", pendulum(task="swing-up"), "lbfgs (tol 1e-10)",
              lambda p: solve_lbfgs(p, tol=1e-10))]
    print(f"{'problem':<28}{'method':<25}{'iters':>6}{'solve s':>10}{'build s':>9}"
          f"{'|J - ref|':>11}{'|th - ref|':>11}{'max|grad J|':>12}")
    for name, p, ref_name, ref_fn in cases:
        ref, t_ref = best(lambda: ref_fn(p), 1 if "lbfgs" in ref_name else a.repeats)
        print(f"{name:<28}{ref_name:<25}{ref.steps:>6}{t_ref:>10.4f}{'-':>9}{'-':>11}{'-':>11}"
              f"{np.abs(forward_backward(p, ref.theta)[2]).max():>12.2e}")
        for tr in TRANSCRIPTIONS:
            runs = [solve_ipopt(p, transcription=tr) for _ in range(a.repeats)]
            r = runs[-1]
            wall = min(x.wall_time for x in runs)
            build = min(x.compile_time for x in runs)
            g = np.abs(forward_backward(p, r.theta)[2]).max()
            print(f"{'':<28}{'ipopt ' + tr:<25}{r.steps:>6}{wall:>10.4f}{build:>9.3f}"
                  f"{abs(r.objective - ref.objective):>11.1e}"
                  f"{np.abs(r.theta - ref.theta).max():>11.1e}{g:>12.2e}")


if __name__ == "__main__":
    main()
