"""Measure the pendulum and the locked references (docs/findings.md, "Pendulum and the locked
references").

Prints, as Markdown tables:

1. the conditioning of J at the optimum against the horizon T (Δt = 0.05), from a
   finite-difference Hessian of the exact gradient at the L-BFGS minimizer;
2. every method on the two default pendulum problems and on the small ones the tests use:
   L-BFGS, the forward–backward sweep, backprop gradient descent (η = 1/L at θ0, and η = the
   wave driver's auto gain with the wave run's tolerance 1e-8), solve_bvp (continuous optimum)
   and the consistent wave solver (upwind, ν = 1, η = auto, NumPy backend): status, objective,
   iterations or τ-steps, wall time;
3. the gap between the continuous optimum (solve_bvp) and the discrete one (L-BFGS) under
   refinement, with the observed orders;
4. stationary points of the swing-up reached by L-BFGS from several initial guesses, and the
   smallest Hessian eigenvalue at constant controls (non-convexity);
5. the sweep's relaxation control on the default LQR: halving only (what ships) against halving
   with recovery (ω doubled after 20 accepted sweeps, up to its start);
6. L-BFGS on the LQRs with and without the restarts on the gradient-integrated objective.

Usage::

    python docs/scripts/pendulum_references.py            # all, ~10 min on 2 cores
    python docs/scripts/pendulum_references.py --quick    # without the long wave runs
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from problems import lqr, pendulum, random_lqr
from solvers.adjoint import forward_backward
from solvers.backprop import solve_backprop
from solvers.bvp import solve_bvp_pmp
from solvers.lbfgs import solve_lbfgs
from solvers.riccati import discrete_riccati
from solvers.sweep import hamiltonian_minimizer, relaxation_scale, solve_sweep
from solvers.wave import auto_eta, hessian_norm, solve


def hessian(p, theta, h=1e-5):
    """∇²J at θ by central differences of the exact gradient (symmetrized)."""
    d = theta.size
    H = np.zeros((d, d))
    for i in range(d):
        e = np.zeros(d)
        e[i] = h
        e = e.reshape(theta.shape)
        H[:, i] = ((forward_backward(p, theta + e)[2] - forward_backward(p, theta - e)[2])
                   .ravel() / (2 * h))
    return 0.5 * (H + H.T)


def conditioning():
    print("\n## 1. Conditioning of J at the optimum vs horizon (dt = 0.05)\n")
    print("| task | T | N | J* | lambda_min | lambda_max | kappa | x_N |")
    print("|---|---|---|---|---|---|---|---|")
    for task, Ts in (("stabilize", (0.5, 1.0, 1.5, 2.0)), ("swing-up", (0.8, 1.0, 1.5, 2.0, 2.5))):
        for T in Ts:
            N = int(round(T / 0.05))
            p = pendulum(task, T=T, N=N)
            r = solve_lbfgs(p, tol=1e-10)
            ev = np.linalg.eigvalsh(hessian(p, r.theta))
            print(f"| {task} | {T:g} | {N} | {r.objective:.6g} | {ev[0]:.4g} | {ev[-1]:.4g} | "
                  f"{ev[-1] / ev[0]:.3g} | ({r.x[0, -1, 0]:.3f}, {r.x[0, -1, 1]:.3f}) |",
                  flush=True)


def _row(label, p, r, grad=None, extra=""):
    g = np.abs(forward_backward(p, r.theta)[2]).max() if grad is None else grad
    print(f"| {label} | {r.status.value} | {r.objective:.12g} | {r.steps} | {g:.2g} | "
          f"{r.wall_time:.2f} | {extra} |", flush=True)


def methods(quick):
    print("\n## 2. Every method on the pendulum\n")
    cases = [("stabilize (default: T = 1, N = 20)", pendulum("stabilize"), 300_000),
             ("swing-up (default: T = 2, N = 40)", pendulum("swing-up"), 20_000),
             ("stabilize, T = 0.5, N = 10 (test)", pendulum("stabilize", N=10, T=0.5), 20_000),
             ("swing-up, T = 0.8, N = 8 (test)", pendulum("swing-up", N=8, T=0.8), 20_000),
             ("swing-up, T = 1, N = 10", pendulum("swing-up", N=10, T=1.0), 40_000)]
    for title, p, wave_steps in cases:
        print(f"\n### {title}\n")
        L0 = hessian_norm(p)
        ea = auto_eta(p, 1.0)
        print(f"L(theta0) = {L0:.4g}; wave auto eta = 1/(L(1+2N)) = {ea:.4g}\n")
        print("| method | status | objective | iterations / tau-steps | max abs grad J at "
              "theta | wall s | notes |")
        print("|---|---|---|---|---|---|---|")
        ref = solve_lbfgs(p, tol=1e-10)
        _row("L-BFGS (tol 1e-10)", p, ref, extra=f"{ref.info['evaluations']} evaluations")
        r = solve_sweep(p, tol=1e-10, max_iter=50_000)
        _row("sweep (minimizer, omega auto)", p, r,
             extra=f"omega {r.config['omega_initial']:.3g} -> {r.config['omega_final']:.3g}, "
                   f"{r.info['rejected']} rejected")
        r = solve_backprop(p, tol=1e-10, max_iter=50_000)
        _row("backprop, eta = 1/L(theta0)", p, r, extra=f"eta {r.config['eta']:.4g}")
        r = solve_backprop(p, eta=ea, tol=1e-8, max_iter=150_000)
        _row("backprop, eta = wave auto, tol 1e-8", p, r, extra=f"eta {ea:.4g}")
        b = solve_bvp_pmp(p, reference=ref)
        _row("solve_bvp (continuous)", p, b, grad=float("nan"),
             extra=f"continuous cost {b.info['continuous_cost']:.10g}, "
                   f"{b.info['mesh_nodes']} mesh nodes")
        if quick and wave_steps > 50_000:
            continue
        t = time.perf_counter()
        w = solve(p, backend="numpy", tol=1e-8, max_steps=wave_steps)
        extra = f"wall incl. setup {time.perf_counter() - t:.1f} s"
        if w.success:
            extra += f"; |J_wave/J_lbfgs - 1| = {abs(w.objective / ref.objective - 1):.2g}"
        _row("wave, consistent upwind nu=1, eta auto", p, w, extra=extra)
        if not w.success:
            H = hessian(p, ref.theta)
            Ls = float(np.linalg.eigvalsh(H)[-1])
            eta = 1.0 / (Ls * (1 + 2 * p.N))
            w2 = solve(p, backend="numpy", tol=1e-8, eta=eta, max_steps=wave_steps)
            extra = f"L* = {Ls:.4g} (at the L-BFGS optimum), eta {eta:.4g}"
            if w2.success:
                extra += f"; |J_wave/J_lbfgs - 1| = {abs(w2.objective / ref.objective - 1):.2g}"
            _row("wave, eta = 1/(L*(1+2N))", p, w2, extra=extra)


def gap_orders():
    print("\n## 3. solve_bvp vs the discrete optimum (L-BFGS) under refinement\n")
    print("| task | N | dt | continuous cost | J*_N | gap theta | gap x | gap lambda | "
          "gap J | bvp s | L-BFGS s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for task, Ns in (("stabilize", (20, 40, 80, 160)), ("swing-up", (40, 80, 160))):
        gaps = []
        for N in Ns:
            p = pendulum(task, N=N)
            ref = solve_lbfgs(p, tol=1e-10)
            b = solve_bvp_pmp(p, reference=ref)
            g = b.info["gap"]
            gaps.append(g)
            print(f"| {task} | {N} | {p.dt:.4g} | {b.info['continuous_cost']:.10g} | "
                  f"{ref.objective:.10g} | {g['theta']:.4g} | {g['x']:.4g} | {g['lambda']:.4g} | "
                  f"{g['objective']:.4g} | {b.wall_time:.2f} | {ref.wall_time:.2f} |", flush=True)
        for key in ("theta", "x", "lambda", "objective"):
            v = np.abs([g[key] for g in gaps])
            print(f"\n{task} observed order ({key}): "
                  + ", ".join(f"{o:.3f}" for o in np.log2(v[:-1] / v[1:])))


def swing_up_stationary_points():
    print("\n## 4. Swing-up (default) stationary points from several initial guesses\n")
    print("| theta0 | status | objective | iterations | x_N | max abs u |")
    print("|---|---|---|---|---|---|")
    p = pendulum("swing-up")
    rng = np.random.default_rng(0)
    guesses = {"0": 0.0, "+5": 5.0, "-5": -5.0, "-10": -10.0, "+15": 15.0,
               "N(0, 5^2)": 5.0 * rng.normal(size=p.theta0.shape),
               "-5 then +10": np.r_[np.full(20, -5.0), np.full(20, 10.0)][:, None]}
    for name, g in guesses.items():
        th0 = np.broadcast_to(np.asarray(g, dtype=float), p.theta0.shape)
        r = solve_lbfgs(p, tol=1e-10, theta0=th0)
        print(f"| {name} | {r.status.value} | {r.objective:.10g} | {r.steps} | "
              f"({r.x[0, -1, 0]:.3f}, {r.x[0, -1, 1]:.3f}) | {np.abs(r.theta).max():.3g} |",
              flush=True)
    print("\nNon-convexity: extreme eigenvalues of the Hessian of J at constant controls\n")
    print("| task | theta = | lambda_min | lambda_max |")
    print("|---|---|---|---|")
    for task in ("swing-up", "stabilize"):
        q = pendulum(task)
        for c in (0.0, -5.0, 5.0):
            ev = np.linalg.eigvalsh(hessian(q, np.full(q.theta0.shape, c)))
            print(f"| {task} | {c:+g} | {ev[0]:.4g} | {ev[-1]:.4g} |", flush=True)


def sweep_relaxation():
    print("\n## 5. Sweep relaxation control on the default LQR (tol 1e-11, <= 20000 sweeps)\n")
    p = lqr()
    ref = discrete_riccati(p)
    mini = hamiltonian_minimizer(p)
    rho = relaxation_scale(p, mini, p.theta0)
    print(f"rho = {rho:.5g}: stable for omega < 2/rho = {2 / rho:.4g}\n")
    print("| control | omega start | status | sweeps | rejected | omega end | "
          "max abs theta error |")
    print("|---|---|---|---|---|---|---|")
    for omega in ("auto", 0.5):
        r = solve_sweep(p, omega=omega, tol=1e-11, max_iter=20_000)
        print(f"| halving (shipped) | {r.config['omega_initial']:.4g} | {r.status.value} | "
              f"{r.steps} | {r.info['rejected']} | {r.config['omega_final']:.4g} | "
              f"{np.abs(r.theta - ref.theta).max():.2g} |", flush=True)
    theta, om, its, rej, streak = p.theta0.copy(), 0.5, 0, 0, 0
    x, lam, g, J = forward_backward(p, theta)
    while np.abs(g).max() > 1e-11 and its < 20_000:
        new = (1 - om) * theta + om * mini(x, lam)
        nx, nl, ng, nJ = forward_backward(p, new)
        its += 1
        if nJ > J + 1e-13 * max(abs(J), 1.0):
            om, rej, streak = om / 2, rej + 1, 0
            continue
        theta, x, lam, g, J = new, nx, nl, ng, nJ
        streak += 1
        if streak >= 20 and om < 0.5:
            om, streak = min(2 * om, 0.5), 0
    status = "converged" if np.abs(g).max() <= 1e-11 else "max_steps"
    print(f"| halving + doubling after 20 accepted | 0.5 | {status} | {its} | {rej} | {om:.4g} | "
          f"{np.abs(theta - ref.theta).max():.2g} |")


def lbfgs_polish():
    print("\n## 6. L-BFGS on the LQRs: without and with the gradient-integrated restarts\n")
    print("| problem | restarts | status | iterations | max abs grad | max abs theta error | "
          "scipy messages |")
    print("|---|---|---|---|---|---|---|")
    for name, p in (("default", lqr()), ("random", random_lqr(n=4, m=2, seed=0))):
        ref = discrete_riccati(p)
        for restarts in (0, 5):
            r = solve_lbfgs(p, tol=1e-11, restarts=restarts)
            print(f"| {name} | {restarts} | {r.status.value} | {r.steps} | "
                  f"{r.residuals['theta']:.2g} | {np.abs(r.theta - ref.theta).max():.2g} | "
                  f"{'; '.join(m.strip() for m in r.info['scipy_messages'])} |", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Measure the pendulum and the locked references.")
    ap.add_argument("--quick", action="store_true", help="skip the long wave runs")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    conditioning()
    methods(args.quick)
    gap_orders()
    swing_up_stationary_points()
    sweep_relaxation()
    lbfgs_polish()
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
