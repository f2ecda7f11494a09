"""Measure the stable Courant range of every transport scheme (docs/theory.md, section 3).

For each scheme of :mod:`wavecontrol.schemes` this script runs the pure homogeneous transport
(:func:`wavecontrol.schemes.transport_numpy`, the right-moving direction) of random data on a
grid of N + 1 nodes whose inflow node is held at zero, for up to ``--steps`` τ-steps, over a
sweep of Courant numbers ν. A run counts as *bounded* when the ℓ² norm of the field never
exceeds its initial norm by more than the factor ``1 + --tol`` (a stable scheme with zero
inflow is non-expansive here); it stops early once the field has left the grid (norm ratio
below 1e-12) or has grown by 1e8. The sweep is then refined between the last bounded and the
first unbounded ν.

Beside each measurement it prints the von Neumann bound max_ξ |G(ξ)| of the interior stencil
(on 4001 points of ξ ∈ [0, π]), including the first-order variant with the coefficient ν²/2 that
DESIGN.md gives as an example (von Neumann only: the package does not implement it).

With ``--solver`` it measures, instead, the whole τ-step on the default LQR
(``problems.lqr()``): the consistent form of every scheme at Courant numbers across its range
(η = auto), the resistive gain at multiples of the automatic one (upwind, ν = 1), and the paper
form at ν = α = 1 with both terminal terminations and both source timings.

Usage::

    python docs/scripts/stable_range.py             # N = 200 (characteristic: N = 64)
    python docs/scripts/stable_range.py --quick     # coarser sweep, for a smoke test
    python docs/scripts/stable_range.py --solver    # whole τ-step on the default LQR
    python docs/scripts/stable_range.py --checks    # the other numbers quoted in theory.md

``--checks`` prints the smaller facts that docs/theory.md quotes: one τ-step of each form applied
to the exact discrete PMP solution (fixed point or not), the metric independence of the
consistent form, the Hessian of J on the default LQR, the delayed-gradient-descent stability
bound, and the periodic-grid dissipation of Lax–Wendroff and Beam–Warming.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from wavecontrol.schemes import transport_numpy

#: the von Neumann amplification factor G(ξ; ν) of each interior stencil
XI = np.linspace(0.0, math.pi, 4001)


def amplification(scheme: str, nu: float) -> np.ndarray:
    """G(ξ) for ξ in :data:`XI` (right-moving field, w_k^n = G^n e^{ikξ})."""
    z = 1.0 - np.exp(-1j * XI)                       # backward difference symbol
    if scheme == "upwind":
        return 1.0 - nu * z
    if scheme == "lax-wendroff":
        return 1.0 - 1j * nu * np.sin(XI) - nu ** 2 * (1.0 - np.cos(XI))
    if scheme == "beam-warming":
        return 1.0 - nu * z + 0.5 * nu * (nu - 1.0) * z ** 2
    if scheme == "upwind+nu^2/2":                    # DESIGN.md's example coefficient
        return 1.0 - nu * z + 0.5 * nu ** 2 * z ** 2
    if scheme == "characteristic":
        p = math.floor(nu)
        q = nu - p
        return np.exp(-1j * p * XI) * ((1.0 - q) + q * np.exp(-1j * XI))
    raise ValueError(f"no amplification factor for {scheme!r}")


def von_neumann(scheme: str, nu: float) -> float:
    """max_ξ |G(ξ; ν)|."""
    return float(np.abs(amplification(scheme, nu)).max())


def growth(scheme: str, nu: float, N: int, steps: int, seed: int, batch: int = 4,
           width: int = 2) -> tuple[float, int]:
    """(max_n ‖w^n‖/‖w^0‖, steps run) for random data with the inflow node held at zero."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(batch, N + 1, width))
    w[:, 0] = 0.0
    n0 = float(np.linalg.norm(w))
    worst = 1.0
    with np.errstate(all="ignore"):
        for n in range(1, steps + 1):
            w, *_ = transport_numpy(w, scheme, nu, +1)
            w[:, 0] = 0.0                              # inflow held at zero
            r = float(np.linalg.norm(w)) / n0
            if not math.isfinite(r) or r > 1e8:
                return math.inf if not math.isfinite(r) else max(worst, r), n
            worst = max(worst, r)
            if r < 1e-12:                              # everything has left the grid
                return worst, n
    return worst, steps


def sweep(scheme, nus, N, steps, seed, tol):
    """Rows (ν, measured max growth, von Neumann max|G|) and the index of the last bounded ν."""
    rows = []
    last = None
    for nu in nus:
        g, _ = growth(scheme, float(nu), N, steps, seed)
        rows.append((float(nu), g, von_neumann(scheme, float(nu))))
        if g <= 1.0 + tol:
            last = len(rows) - 1
    return rows, last


def measure(scheme, hi, dnu, N, steps, seed, tol):
    """Largest bounded ν on a sweep (0, hi] of step dnu, refined tenfold, and what lies beyond."""
    nus = np.round(np.arange(dnu, hi + 0.5 * dnu, dnu), 10)
    rows, last = sweep(scheme, nus, N, steps, seed, tol)
    unstable_below = [r for r in rows[:last] if r[1] > 1.0 + tol] if last is not None else []
    result = {"scheme": scheme, "N": N, "sweep": (float(nus[0]), float(nus[-1]), dnu),
              "largest": rows[last][0] if last is not None else None,
              "holes": [r[0] for r in unstable_below]}
    if last is not None and last + 1 < len(rows):
        fine = np.round(np.arange(rows[last][0] + dnu / 10, rows[last + 1][0] + dnu / 20,
                                  dnu / 10), 10)
        frows, flast = sweep(scheme, fine, N, steps, seed, tol)
        if flast is not None:
            result["largest"] = frows[flast][0]
        nxt = frows[flast + 1] if flast is not None and flast + 1 < len(frows) else frows[0]
        result["beyond"] = nxt
        result["coarse_beyond"] = rows[last + 1]
    else:
        result["beyond"] = None
    result["vn_at_largest"] = von_neumann(scheme, result["largest"]) if result["largest"] else None
    return result


def von_neumann_edge(scheme, hi, dnu, tol=1e-12):
    """Largest ν on the sweep (0, hi] with max|G| ≤ 1 + tol (for every smaller ν as well)."""
    edge = None
    for nu in np.round(np.arange(dnu, hi + 0.5 * dnu, dnu), 10):
        if von_neumann(scheme, float(nu)) > 1.0 + tol:
            break
        edge = float(nu)
    return edge


def solver_table():
    """Status and τ-steps of the whole τ-step on the default LQR (see the module docstring)."""
    import problems
    from solvers.riccati import discrete_riccati
    from solvers.wave import auto_eta, hessian_norm, solve

    prob = problems.lqr()
    ref = discrete_riccati(prob)
    print(f"default LQR (N = {prob.N}); L = largest Hessian eigenvalue of J = "
          f"{hessian_norm(prob):.6g}; tol = 1e-10\n")
    print("consistent form, implicit terminal, eta = auto:")
    for scheme, nus in (("upwind", (0.5, 1.0)), ("lax-wendroff", (0.5, 1.0, 1.5, 1.8, 1.9, 1.95, 1.99, 2.0)),
                        ("characteristic", (0.5, 1.0, 2.5, 5.0, 20.0))):
        for nu in nus:
            r = solve(prob, scheme=scheme, courant=nu, max_steps=1_000_000, tol=1e-10)
            err = float(np.abs(r.theta - ref.theta).max())
            print(f"  {scheme:<15} nu = {nu:<4g} eta = {r.config['port']['eta']:.4g}  "
                  f"{r.status.name:<9} {r.steps:>7} steps  max|theta - riccati| = {err:.1e}  "
                  f"ledger {r.ledger_max_rel_error:.1e}")
    eta0 = auto_eta(prob, 1.0)
    print(f"\nconsistent upwind, nu = 1: eta = factor x auto ({eta0:.6g}):")
    for factor in (1.0, 2.0, 2.5, 2.75, 3.0):
        r = solve(prob, eta=factor * eta0, max_steps=2_000_000, tol=1e-10)
        print(f"  factor {factor:<4g} {r.status.name:<9} {r.steps:>7} steps")
    for term in ("implicit", "explicit"):
        r = solve(prob, termination=term, max_steps=1_000_000, tol=1e-10)
        print(f"  termination {term:<8} (factor 1) {r.status.name:<9} {r.steps:>7} steps")
    print("\npaper form, upwind, nu = alpha = 1, eta = auto:")
    for term in ("implicit", "explicit"):
        for src in ("after", "before"):
            r = solve(prob, formulation="paper", termination=term, sources=src,
                      max_steps=100_000, tol=1e-10)
            print(f"  termination {term:<8} sources {src:<6} {r.status.name:<9} "
                  f"at step {r.steps}")


def checks():
    """The smaller numbers quoted in docs/theory.md (see the module docstring)."""
    import problems
    from solvers.riccati import discrete_riccati
    from solvers.wave import hessian_norm, solve
    from wavecontrol.formulations import StepConfig, consistent_step_numpy, paper_step_numpy
    from wavecontrol.metric import Metric

    prob = problems.lqr()
    ref = discrete_riccati(prob)
    met = Metric(1.0, prob.n, prob.N)
    print("one consistent step from the discrete Riccati solution (max-abs change of x, lam, "
          "theta):")
    for scheme, nu in (("upwind", 1.0), ("upwind", 0.5), ("lax-wendroff", 1.5),
                       ("characteristic", 2.5)):
        cfg = StepConfig(scheme=scheme, courant=nu, eta=0.01).validate(prob.N)
        x1, l1, t1, _, _ = consistent_step_numpy(prob, met, cfg, ref.x, ref.lam, ref.theta)
        print(f"  {scheme:<15} nu = {nu:<4g} {np.abs(x1 - ref.x).max():.1e} "
              f"{np.abs(l1 - ref.lam).max():.1e} {np.abs(t1 - ref.theta).max():.1e}")
    print("one paper step (eta = 0) from the same solution (change of w+, w-; |r_x|, |r_lam|, "
          "|r_theta| of the transported fields):")
    wp, wm = met.to_waves(ref.x, ref.lam)
    for scheme, nu in (("upwind", 1.0), ("lax-wendroff", 0.8), ("characteristic", 1.0)):
        cfg = StepConfig(formulation="paper", scheme=scheme, courant=nu, eta=0.0).validate(prob.N)
        a, b, _, _, res = paper_step_numpy(prob, met, cfg, wp, wm, ref.theta)
        print(f"  {scheme:<15} nu = {nu:<4g} {np.abs(a - wp).max():.3f} {np.abs(b - wm).max():.3f}"
              f";  {', '.join(f'{np.abs(r).max():.3f}' for r in res)}")
    r1 = solve(prob, max_steps=3000, tol=0.0, eta=0.01)
    r2 = solve(prob, max_steps=3000, tol=0.0, eta=0.01, metric=[2.0, 0.5])
    print(f"metric 1 vs diag(2, 0.5), 3000 consistent upwind steps, eta = 0.01: max|d theta| = "
          f"{np.abs(r1.theta - r2.theta).max():.1e}, V_final = {r1.V_final:.4f} vs "
          f"{r2.V_final:.4f}")
    print("consistent lax-wendroff with theta frozen (eta = 0), 100000 steps:")
    for nu in (1.99, 2.0):
        r = solve(prob, scheme="lax-wendroff", courant=nu, eta=0.0, max_steps=100_000, tol=1e-10)
        print(f"  nu = {nu:<4g} {r.status.name:<9} |r_x| = {r.residuals['x']:.3g}, |r_lam| = "
              f"{r.residuals['lambda']:.3g}")
    th0 = np.zeros((prob.N, prob.m))
    g0 = prob.gradient(th0).ravel()
    H = np.array([prob.gradient(e.reshape(th0.shape)).ravel() - g0
                  for e in np.eye(th0.size)])
    ev = np.linalg.eigvalsh(0.5 * (H + H.T))
    print(f"Hessian of J (dense, from gradient differences): largest {ev.max():.13g}, smallest "
          f"{ev.min():.4g}; hessian_norm = {hessian_norm(prob):.13g}")
    print("delayed gradient descent theta <- theta - a theta_(n-D): stability bound on a "
          "(bisection) vs 2 sin(pi/(2(2D+1))), and the margin of a = 1/(1+D):")
    for D in (0, 1, 2, 5, 10, 40, 80):
        lo, hi = 0.0, 2.5
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            coeffs = np.zeros(D + 2)
            coeffs[0], coeffs[1] = 1.0, -1.0
            coeffs[-1] += mid
            if np.abs(np.roots(coeffs)).max() < 1.0:
                lo = mid
            else:
                hi = mid
        print(f"  D = {D:<3} bound {lo:.12f}  formula {2 * math.sin(math.pi / (4 * D + 2)):.12f}"
              f"  margin {lo * (1 + D):.3f}")
    rng = np.random.default_rng(1)
    w = rng.normal(size=256)
    sh = np.roll
    for nu in (0.3, 0.8):
        new = w - nu / 2 * (sh(w, -1) - sh(w, 1)) + nu ** 2 / 2 * (sh(w, -1) - 2 * w + sh(w, 1))
        d2 = sh(w, -1) - 2 * w + sh(w, 1)
        pred = -0.25 * nu ** 2 * (1 - nu ** 2) * np.sum(d2 ** 2)
        print(f"periodic Lax-Wendroff nu = {nu}: relative mismatch of the dissipation formula "
              f"{abs(np.sum(new ** 2) - np.sum(w ** 2) - pred) / abs(pred):.1e}")
    for nu in (0.5, 1.5):
        new = w - nu * (w - sh(w, 1)) + nu * (nu - 1) / 2 * (w - 2 * sh(w, 1) + sh(w, 2))
        d2 = w - 2 * sh(w, 1) + sh(w, 2)
        pred = -0.25 * nu * (1 - nu) ** 2 * (2 - nu) * np.sum(d2 ** 2)
        print(f"periodic Beam-Warming nu = {nu}: relative mismatch of the dissipation formula "
              f"{abs(np.sum(new ** 2) - np.sum(w ** 2) - pred) / abs(pred):.1e}")


def _fmt_growth(g: float) -> str:
    """A growth factor, written as 1 + ε when it is close to 1."""
    return f"1+{g - 1:.1e}" if g < 2 else f"{g:.3g}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--N", type=int, default=200, help="layers of the grid (default 200)")
    ap.add_argument("--N-char", type=int, default=64,
                    help="layers for the characteristic scheme, swept up to ν = N (default 64)")
    ap.add_argument("--steps", type=int, default=2000, help="τ-steps per run (default 2000)")
    ap.add_argument("--dnu", type=float, default=0.01, help="sweep step of ν (default 0.01)")
    ap.add_argument("--tol", type=float, default=1e-9,
                    help="a run is bounded when max ‖w^n‖/‖w^0‖ ≤ 1 + tol (default 1e-9)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="N = 60, 600 steps, dν = 0.05")
    ap.add_argument("--solver", action="store_true",
                    help="measure the whole τ-step on the default LQR instead")
    ap.add_argument("--checks", action="store_true",
                    help="print the other numbers quoted in docs/theory.md instead")
    args = ap.parse_args(argv)
    if args.checks:
        checks()
        return
    if args.solver:
        t0 = time.perf_counter()
        solver_table()
        print(f"\n({time.perf_counter() - t0:.1f} s)")
        return
    if args.quick:
        args.N, args.N_char, args.steps, args.dnu = 60, 16, 600, 0.05

    t0 = time.perf_counter()
    plan = [("upwind", 1.5, args.dnu, args.N), ("lax-wendroff", 1.5, args.dnu, args.N),
            ("beam-warming", 3.0, args.dnu, args.N),
            ("characteristic", float(args.N_char), 5 * args.dnu, args.N_char)]
    print(f"pure transport, inflow held at 0, random data (seed {args.seed}), up to "
          f"{args.steps} steps; bounded = max ‖w^n‖/‖w^0‖ ≤ 1 + {args.tol:g}\n")
    header = (f"{'scheme':<15} {'N':>4} {'sweep of ν':>17} {'largest bounded ν':>18} "
              f"{'next ν':>7} {'its growth':>11} {'von Neumann edge':>17}")
    print(header)
    print("-" * len(header))
    for scheme, hi, dnu, N in plan:
        r = measure(scheme, hi, dnu, N, args.steps, args.seed, args.tol)
        edge = von_neumann_edge(scheme, hi, dnu / 10)
        lo_, hi_, d_ = r["sweep"]
        sweep_txt = f"{lo_:g}..{hi_:g}/{d_:g}"
        if r["beyond"] is not None:
            nu_b, g_b, _ = r["beyond"]
            nxt, gr = f"{nu_b:g}", _fmt_growth(g_b)
        else:
            nxt, gr = "—", "—"
        print(f"{scheme:<15} {N:>4} {sweep_txt:>17} {r['largest']:>18g} {nxt:>7} {gr:>11} "
              f"{edge:>17g}")
        if r["holes"]:
            print(f"    (unbounded at smaller ν too: {r['holes']})")
        if r["beyond"] is not None:
            nu_c, g_c, vn_c = r["coarse_beyond"]
            print(f"    coarse sweep: ν = {nu_c:g} grows by {_fmt_growth(g_c)} "
                  f"(von Neumann max|G| = {vn_c:.4f})")
    # the coefficient DESIGN.md gives as an example, von Neumann only
    edge = von_neumann_edge("upwind+nu^2/2", 3.0, args.dnu / 10)
    print(f"\nvon Neumann only: upwind + ν²/2 (w_k − 2w_{{k−1}} + w_{{k−2}}) is stable up to "
          f"ν = {edge:g}; at ν = 1 its max|G| = {von_neumann('upwind+nu^2/2', 1.0):.4f}")
    print(f"\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
