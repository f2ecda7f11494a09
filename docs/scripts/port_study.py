"""Parameter ports on LQR: stability under the pipeline delay, τ-steps, reflection.

For each port of :mod:`wavecontrol.ports` this script measures, on the default LQR
(``problems.lqr()``) and the seeded random LQR (``problems.random_lqr()``, n = 4, m = 2, N = 20),
in the consistent formulation with the upwind scheme at ν = 1:

- ρ, the spectral radius of the whole τ-step, an affine map of (x, λ, θ, port state) for the
  linear ports (gd, newton, momentum), built exactly by probing the NumPy step with unit
  vectors; ρ < 1 is stability;
- the largest stable gain, by bisection on ρ < 1 (gd: η in units of the automatic gain η_auto;
  newton: κ; momentum: the terminal gain 1/R in units of η_auto at fixed β = L/(L + R));
  the adaptive port is nonlinear, so there the bisection is on runs: stable = not diverged
  within ``--budget`` τ-steps (divergence bound 1e6 · max(V0, 1));
- τ-steps to the residual 1e-8 (``solve(..., tol=1e-8, backend="numpy")``);
- the reflection ‖b‖² of eq. 70 against Z_ref = ∇²J (wavecontrol.ports): at a state whose
  waves are converged for θ0 (``init="forward"``, one step: r_θ = ∇J exactly), with the
  reflected fraction Γ² = ‖b‖²/‖a‖² (‖a‖² = ‖b‖² + 2 e·f, e·f the recorded port power); and the
  median Γ² over the recorded rows of the run (the reflection itself decays with r_θ).

Usage::

    python docs/scripts/port_study.py --max-steps 1200000   # docs/findings.md: 1547 s
    python docs/scripts/port_study.py --quick     # N = 10, the default LQR only (~4 min)

Times are for the 2-core machine (two runs at a time); the NumPy step costs ~0.5 ms at N = 20.
"""

from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from problems import lqr, random_lqr
from solvers.wave import auto_eta, solve
from wavecontrol.formulations import StepConfig, consistent_step_numpy
from wavecontrol.metric import Metric
from wavecontrol.ports import AdaptivePort, InductivePort, NewtonPort, ResistivePort

TOL = 1e-8


PROBLEMS = {"lqr()": lqr, "random_lqr()": random_lqr, "lqr(N=10)": lambda: lqr(N=10)}
PORT_CLASSES = {"gd": ResistivePort, "newton": NewtonPort, "momentum": InductivePort,
                "adaptive": AdaptivePort}


def problems(quick: bool):
    return ["lqr(N=10)"] if quick else ["lqr()", "random_lqr()"]


# ------------------------------------------------------------------------------------------
# exact τ-step operator of a linear port, with the port's state
# ------------------------------------------------------------------------------------------
def step_operator(p, port, courant=1.0):
    """G of z' = G z + g for z = (x, λ, θ, port state), consistent form, upwind."""
    port.bind(p, courant=courant)
    cfg = StepConfig(courant=courant)
    met = Metric(1.0, p.n, p.N)
    st0 = port.state()
    keys = sorted(st0)
    shapes = [(p.batch, p.N + 1, p.n)] * 2 + [p.theta0.shape] + [st0[k].shape for k in keys]
    sizes = [int(np.prod(s)) for s in shapes]
    cuts = np.cumsum(sizes)[:-1]

    def f(z):
        parts = [a.reshape(s) for a, s in zip(np.split(z, cuts), shapes)]
        if keys:
            port.set_state(dict(zip(keys, parts[3:])))
        x1, l1, t1, _, _ = consistent_step_numpy(p, met, cfg, *parts[:3], port)
        st = port.state()
        return np.concatenate([x1.ravel(), l1.ravel(), t1.ravel()]
                              + [st[k].ravel() for k in keys])

    D = sum(sizes)
    g = f(np.zeros(D))
    G = np.empty((D, D))
    e = np.zeros(D)
    for i in range(D):
        e[i] = 1.0
        G[:, i] = f(e) - g
        e[i] = 0.0
    port.reset()
    return G


def rho(p, port) -> float:
    return float(np.abs(np.linalg.eigvals(step_operator(p, port))).max())


def bisect(stable, lo, hi, iters=30):
    """Largest x in [lo, hi] with stable(x) (stable(lo) assumed, geometric bisection)."""
    if stable(hi):
        return hi
    for _ in range(iters):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if stable(mid) else (lo, mid)
        if hi / lo < 1 + 1e-3:
            break
    return lo


def best_on_grid(p, make, top):
    """The gain with the smallest ρ on a grid of [top/100, top) (log-spaced, then linear above
    0.7 top, where the optimum lies): (gain, ρ)."""
    grid = np.concatenate([np.logspace(-2, np.log10(0.7), 10), np.linspace(0.75, 0.99, 9)])
    vals = [(rho(p, make(g)), g) for g in top * grid]
    r, g = min(vals)
    return g, r


# ------------------------------------------------------------------------------------------
# runs
# ------------------------------------------------------------------------------------------
def run_case(args):
    """(label, steps, status, wall, converged-waves ‖b‖², Γ², median Γ² over the run)."""
    pname, label, kind, params, max_steps = args
    p = PROBLEMS[pname]()

    def make():
        return PORT_CLASSES[kind](**params)

    first = solve(p, port=make(), init="forward", max_steps=1, record_every=1, tol=0.0,
                  backend="numpy").history
    b2 = float(first["reflection"][0])
    a2 = b2 + 2.0 * float(first["port_power"][0])
    t = time.perf_counter()
    r = solve(p, port=make(), tol=TOL, max_steps=max_steps, backend="numpy",
              record_every=max(1, max_steps // 4000))
    wall = time.perf_counter() - t
    h = r.history
    a_run = h["reflection"] + 2.0 * h["port_power"]
    ok = np.isfinite(a_run) & (a_run > 0)
    med = float(np.median(h["reflection"][ok] / a_run[ok])) if ok.any() else math.nan
    return (pname, label, r.steps, r.status.value, wall, b2, b2 / a2 if a2 > 0 else math.nan,
            med, r.diverged_at)


def adaptive_stable(pname, mult, budget):
    p = PROBLEMS[pname]()
    base = AdaptivePort().bind(p).gain
    r = solve(p, port=AdaptivePort(gain=mult * base), max_steps=budget, tol=TOL,
              backend="numpy", record_every=budget, divergence_bound=1e6)
    return r.status.value != "diverged"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--budget", type=int, default=20_000,
                    help="τ-steps a run must survive to count as stable (adaptive port)")
    ap.add_argument("--max-steps", type=int, default=1_200_000)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    t0 = time.perf_counter()
    cases, notes = [], []
    for pname in problems(a.quick):
        p = PROBLEMS[pname]()
        eta0 = auto_eta(p, 1.0)
        w = np.linalg.eigvalsh(NewtonPort(gain=1.0).bind(p).reference.matrix())
        print(f"\n## {pname}: N = {p.N}, d = {p.theta0.size} parameters, ∇²J eigenvalues "
              f"[{w.min():.4g}, {w.max():.4g}] (cond {w.max() / w.min():.4g}), "
              f"η_auto = {eta0:.6g}")
        rows = []

        def linear(label, make, top, unit=1.0, unit_name=""):
            kmax = bisect(lambda g: rho(p, make(g)) < 1 - 1e-12, top * 1e-4, top)
            g, r = best_on_grid(p, make, kmax)
            rows.append((label, kmax / unit, g / unit, r, unit_name))
            return g

        g_gd = linear("gd (η)", lambda m: ResistivePort(m * eta0), 10.0, 1.0, "× η_auto")
        g_nt = linear("newton full (κ)", lambda k: NewtonPort(gain=k), 1.0)
        g_nl = linear("newton layer (κ)", lambda k: NewtonPort(gain=k, structure="layer"), 1.0)
        g_nd = linear("newton full, μ = 0.1 (κ)",
                      lambda k: NewtonPort(gain=k, damping=0.1), 1.0)
        R0 = 1.0 / eta0

        def mom_params(beta, m):
            # terminal gain 1/R = m η_auto, β = L/(L + R)
            return {"resistance": R0 / m, "inductance": beta / (1 - beta) * R0 / m}

        def mom(beta):
            return lambda m: InductivePort(**mom_params(beta, m))

        g_m5 = linear("momentum β = 0.5 (1/R)", mom(0.5), 10.0, 1.0, "× η_auto")
        g_m9 = linear("momentum β = 0.9 (1/R)", mom(0.9), 10.0, 1.0, "× η_auto")
        km = bisect(lambda m: adaptive_stable(pname, m, a.budget), 0.5, 16.0, iters=6)
        rows.append(("adaptive (η, runs)", km, math.nan, math.nan, "× auto"))
        print("\n| port (gain) | largest stable gain | ρ-optimal gain | ρ there |")
        print("|---|---|---|---|")
        for label, kmax, g, r, unit in rows:
            print(f"| {label} | {kmax:.4g} {unit} | {g:.4g} {unit} | {r:.6f} |")
        auto = {"newton full": NewtonPort().bind(p), "newton layer":
                NewtonPort(structure="layer").bind(p)}
        for k, port in auto.items():
            notes.append(f"{pname}: {k} auto κ = {port.gain:.4g}, ρ = {rho(p, port):.6f}")
        notes.append(f"{pname}: gd auto ρ = {rho(p, ResistivePort(eta0)):.6f}; momentum auto "
                     f"ρ = {rho(p, InductivePort()):.6f}")
        ms = a.max_steps
        cases += [
            (pname, "gd, η_auto", "gd", {"eta": eta0}, ms),
            (pname, f"gd, η = {g_gd:.3g} η_auto (ρ-optimal)", "gd", {"eta": eta0 * g_gd}, ms),
            (pname, "newton full, κ = 1 (transparent)", "newton", {"gain": 1.0}, ms),
            (pname, "newton full, κ auto", "newton", {}, ms),
            (pname, f"newton full, κ = {g_nt:.3g} (ρ-optimal)", "newton", {"gain": g_nt}, ms),
            (pname, f"newton layer, κ = {g_nl:.3g} (ρ-optimal)", "newton",
             {"gain": g_nl, "structure": "layer"}, ms),
            (pname, f"newton full μ = 0.1, κ = {g_nd:.3g} (ρ-optimal)", "newton",
             {"gain": g_nd, "damping": 0.1}, ms),
            (pname, "momentum auto (β = 0.5, 1/R = η_auto)", "momentum", {}, ms),
            (pname, f"momentum β = 0.9, 1/R = {g_m9:.3g} η_auto (ρ-optimal)", "momentum",
             mom_params(0.9, g_m9), ms),
            (pname, "adaptive auto (η = η_auto)", "adaptive", {}, ms),
        ]
    print()
    for n in notes:
        print("-", n)
    with ProcessPoolExecutor(a.workers) as ex:
        results = list(ex.map(run_case, cases))
    print("\n| problem | port | τ-steps to 1e-8 | ‖b‖² (waves converged, θ0) | Γ² there "
          "| median Γ² over the run |")
    print("|---|---|---|---|---|---|")
    gd_b2 = {}
    for pname, label, steps, status, wall, b2, g2, med, dv in results:
        gd_b2.setdefault(pname, b2)
        st = f"{steps:,}" if status == "converged" else (
            f"diverged at {dv:,}" if status == "diverged" else f"> {steps:,} ({status})")
        print(f"| {pname} | {label} | {st} | {b2:.3e} ({b2 / gd_b2[pname]:.2e} × gd) "
              f"| {g2:.4f} | {med:.4f} |")
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
