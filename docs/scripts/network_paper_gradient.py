"""Paper form (Algorithm 1) on networks: the gradient it delivers at fixed θ.

Run from the repository root::

    python docs/scripts/network_paper_gradient.py            # ~14 min on the 2-core machine

Problems (the ones of tests/problems/test_networks.py): a neural ODE (moons, 32 samples, N = 6,
T = 1.5, width 4 = 2 + 2 augmented, tanh, MSE) and an MLP with width changes (spirals, 33
samples, widths 2-6-4-4-3, tanh, linear last layer, cross-entropy), each at a generic θ
(θ0 plus 0.3·N(0, 1) on every real entry, seed 5). Metric Θ = I.

For each setting the paper form runs from zero waves with θ frozen (η = 0) until it settles
(max |Δw| per τ-step ≤ 1e-13 · max(1, max |w|)), diverges (V > 1e12 · max(V0, 1) or not
finite) or reaches the step budget. At the final state it reports the relative error
‖r_θ − ∇J‖ / ‖∇J‖ and the cosine between them, where ∇J is the backprop gradient
(``problem.gradient``) and r_θ is (a) the one the port applies in that step (Algorithm 1 line
21, at the fields step (B) reconstructs) and (b) the one at the fields the driver returns (eq. 39
on the waves). The consistent form (ν = 1, 2N + 2 steps) is printed first for comparison. A second
table per problem runs a variant that is not the paper's: the transformer T_k = Θ_{k+1} J_k Θ_k^{-1}
on every link instead of the identity shift on links of equal width.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from problems import mlp, neural_ode
from wavecontrol import formulations
from wavecontrol.formulations import StepConfig, consistent_step_numpy, paper_step_numpy
from wavecontrol.metric import Metric


def problems_under_test():
    ode = neural_ode(n_samples=32, N=6, T=1.5, augment=2, seed=1, loss="mse")
    net = mlp(widths=(2, 6, 4, 4, 3), n_samples=33, seed=1, loss="cross-entropy")
    out = []
    for name, p in (("neural-ode", ode), ("mlp 2-6-4-4-3", net)):
        rng = np.random.default_rng(5)
        theta = p.theta0 + 0.3 * rng.normal(size=p.theta0.shape) * p.theta_mask
        out.append((name, p, theta))
    return out


def compare(r, g):
    err = float(np.linalg.norm(r - g) / np.linalg.norm(g))
    cos = float(np.sum(r * g) / (np.linalg.norm(r) * np.linalg.norm(g) + 1e-300))
    return err, cos


def run_paper(p, theta, cfg, max_steps):
    met = Metric(1.0, p.n, p.N)
    wp = np.zeros((p.batch, p.N + 1, p.n))
    wm = np.zeros_like(wp)
    V0 = None
    status, steps, r_port = "max_steps", max_steps, None
    for it in range(max_steps):
        with np.errstate(all="ignore"):
            wp1, wm1, _, led, (_, _, r_t) = paper_step_numpy(p, met, cfg, wp, wm, theta)
        V0 = led["V"] if V0 is None else V0
        if not (led["V_next"] <= 1e12 * max(V0, 1.0)):
            status, steps = "diverged", it + 1
            break
        change = max(np.abs(wp1 - wp).max(), np.abs(wm1 - wm).max())
        wp, wm, r_port = wp1, wm1, r_t
        if change <= 1e-13 * max(1.0, np.abs(wp).max(), np.abs(wm).max()):
            status, steps = "settled", it + 1
            break
    x, lam = met.from_waves(wp, wm)
    r_x, r_l, r_ret = p.residuals(x, lam, theta)
    return status, steps, r_port, r_ret, float(np.abs(r_x).max()), float(np.abs(r_l).max())


def settings(all_links):
    for termination in ("implicit",) if all_links else ("implicit", "explicit"):
        for sources in ("after", "before"):
            for nu in (0.5, 1.0):
                factors = ((0.1, 0.01) if all_links else (1.0, 0.1, 0.01)
                           if termination == "implicit" else (0.1,))
                for fa in factors:
                    yield StepConfig(formulation="paper", courant=nu, alpha=fa * nu, eta=0.0,
                                     termination=termination, sources=sources)


def every_link(problem, metric, cfg):
    """Variant of ``junction_links``: the transformer on every link, widths equal or not."""
    _junction_links(problem, metric, cfg)
    return np.arange(problem.N)


_junction_links = formulations.junction_links


def table(p, theta, g, all_links, max_steps):
    print(f"  {'termination':11s} {'sources':7s} {'nu':>4s} {'alpha':>6s}  {'outcome':>18s}"
          f"  {'port r_theta: err':>17s} {'cos':>7s}  {'returned: err':>13s} {'cos':>7s}"
          f"  {'|r_x|':>8s} {'|r_lam|':>8s}")
    formulations.junction_links = every_link if all_links else _junction_links
    try:
        for cfg in settings(all_links):
            st, n, r_port, r_ret, rx, rl = run_paper(p, theta, cfg, max_steps)
            e1, c1 = compare(r_port, g) if r_port is not None else (np.nan, np.nan)
            e2, c2 = compare(r_ret, g)
            print(f"  {cfg.termination:11s} {cfg.sources:7s} {cfg.courant:4.2g} "
                  f"{cfg.source_gain:6.3g}  {st + ' @ ' + str(n):>18s}  {e1:17.3g} {c1:7.3f}  "
                  f"{e2:13.3g} {c2:7.3f}  {rx:8.3g} {rl:8.3g}", flush=True)
    finally:
        formulations.junction_links = _junction_links


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-steps", type=int, default=5000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    for name, p, theta in problems_under_test():
        g = p.gradient(theta)
        print(f"\n{name}: widths {p.layout.widths.tolist()}, batch {p.batch}, "
              f"|grad J| = {np.linalg.norm(g):.4g}")
        met = Metric(1.0, p.n, p.N)
        x = np.zeros((p.batch, p.N + 1, p.n))
        x[:, 0] = p.x_in
        lam = np.zeros_like(x)
        cfg = StepConfig(formulation="consistent", courant=1.0, eta=0.0)
        for _ in range(2 * p.N + 2):
            x, lam, _, _, _ = consistent_step_numpy(p, met, cfg, x, lam, theta)
        err, cos = compare(p.residual_theta(x, lam, theta), g)
        print(f"  consistent, upwind, nu = 1, {2 * p.N + 2} steps: rel. error {err:.2e}, "
              f"cosine {cos:.6f}")
        print("  paper form, upwind, transformer on width changes only (eqs. 41, 45-46):")
        table(p, theta, g, False, args.max_steps)
        print("  variant: transformer T_k on every link (also where n_k+1 = n_k):")
        table(p, theta, g, True, args.max_steps)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
