"""Measure what Algorithm 1 verbatim (the ``paper`` formulation) does, beside the consistent form.

Run from the repository root::

    python docs/scripts/paper_form_study.py            # default LQR (~2–3 min on 2 cores)
    python docs/scripts/paper_form_study.py --random   # also the seeded random LQR

What it measures (all on Euler-discretized LQR, batch 1, metric Θ = I unless said):

1. Sweep of ``solvers.wave.solve(..., formulation="paper")`` over scheme × termination ×
   sources × Courant ν × source gain α (= ν, 0.1ν, 0.01ν) × port gain η (auto, 0): status, step of
   divergence, final PMP residuals, the change of the fields per τ-step at the end
   ("stationarity", apart from the residuals), and the spectral radius ρ of the τ-step map.
2. For linear-quadratic problems the τ-step is affine, z ↦ G z + g with z = (w+, w-, θ); G and g
   are built by probing the NumPy twin ``paper_step_numpy`` with unit vectors. Its exact fixed
   point (I − G)^{-1} g is what a run settles to when ρ(G) < 1; its distance from the discrete
   Riccati solution is reported (with η = 0, θ is frozen and the fixed point is solved for the
   waves at θ = θ*, the Riccati controls).
3. From the exact Riccati fields with η = 0: the change made by one paper-form step.
4. Why it grows: the ledger term that pumps V in the last steps before divergence, the source
   power per node on the growing mode, ρ against Q_f and against the metric, and the fixed-point
   distance under grid refinement.
5. The consistent form: τ-steps to tol 1e-12 with η = auto, error against Riccati, and the η
   margin (η = 2·auto, 3·auto) with ρ(G) beside each run.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import problems
from solvers import riccati, wave
from wavecontrol.formulations import (StepConfig, consistent_step_numpy, paper_step_numpy)
from wavecontrol.ledger import LEDGER_TERMS
from wavecontrol.metric import Metric

SCHEME_NUS = {"upwind": (0.25, 0.5, 1.0), "lax-wendroff": (0.25, 0.5, 1.0),
              "characteristic": (0.5, 1.0, 2.5)}
ALPHA_FACTORS = (1.0, 0.1, 0.01)
TERMINATIONS = ("implicit", "explicit")
SOURCES = ("after", "before")


# ------------------------------------------------------------------------------------------
# the τ-step as an affine map
# ------------------------------------------------------------------------------------------
class StepMap:
    """The τ-step z ↦ G z + g of an affine-quadratic problem, z = (u, v, θ) flattened.

    (u, v) = (w+, w-) in the paper form, (x, λ) in the consistent form; batch 1.
    """

    def __init__(self, problem, cfg: StepConfig, metric=1.0):
        self.p, self.cfg = problem, cfg
        self.N, self.n, self.m = problem.N, problem.n, problem.m
        self.met = metric if isinstance(metric, Metric) else Metric(metric, self.n, self.N)
        self.sz = (self.N + 1) * self.n
        D = 2 * self.sz + self.N * self.m
        self.g = self.step(np.zeros(D))
        self.G = np.column_stack([self.step(e) - self.g for e in np.eye(D)])

    def split(self, z):
        s, N, n, m = self.sz, self.N, self.n, self.m
        return (z[:s].reshape(1, N + 1, n), z[s:2 * s].reshape(1, N + 1, n),
                z[2 * s:].reshape(N, m))

    def join(self, u, v, th):
        return np.concatenate([np.ravel(u), np.ravel(v), np.ravel(th)])

    def step(self, z):
        u, v, th = self.split(z)
        fn = paper_step_numpy if self.cfg.formulation == "paper" else consistent_step_numpy
        u1, v1, th1, _, _ = fn(self.p, self.met, self.cfg, u, v, th)
        return self.join(u1, v1, th1)

    def rho(self, waves_only=False) -> float:
        """Spectral radius of G (of its wave block alone with ``waves_only``)."""
        G = self.G[:2 * self.sz, :2 * self.sz] if waves_only else self.G
        return float(np.abs(np.linalg.eigvals(G)).max())

    def fixed_point(self, theta=None):
        """Exact fixed point z*; with ``theta`` given, θ is held there and only waves solved."""
        if theta is None:
            return np.linalg.solve(np.eye(self.g.size) - self.G, self.g)
        s2 = 2 * self.sz
        rhs = self.g[:s2] + self.G[:s2, s2:] @ np.ravel(theta)
        w = np.linalg.solve(np.eye(s2) - self.G[:s2, :s2], rhs)
        return np.concatenate([w, np.ravel(theta)])

    def fields(self, z):
        """(x, λ, θ) of a state z."""
        u, v, th = self.split(z)
        if self.cfg.formulation == "paper":
            x, lam = self.met.from_waves(u, v)
        else:
            x, lam = u, v
        return x, lam, th

    def state(self, x, lam, th):
        if self.cfg.formulation == "paper":
            u, v = self.met.to_waves(x, lam)
        else:
            u, v = x, lam
        return self.join(u, v, th)


def dist(fields, ref):
    """Max-abs distances (x, λ, θ) of ``fields`` from ``ref`` = (x*, λ*, θ*)."""
    return tuple(float(np.abs(a - b).max()) for a, b in zip(fields, ref))


def pmp_residuals(problem, x, lam, th):
    r = problem.residuals(x, lam, th)
    return tuple(float(np.abs(a).max()) for a in r)


def dominant_pump(history, frac=0.25):
    """Ledger term with the largest positive sum over the last ``frac`` of the recorded steps."""
    n = len(history["V"])
    lo = int(n * (1 - frac))
    sums = {t: float(np.sum(history[t][lo:])) for t in LEDGER_TERMS}
    top = max(sums, key=sums.get)
    return top, sums


def source_power_by_node(problem, met, cfg, wp, wm, theta):
    """The paper form's source power −2α w̄_k·E_k per node k (the ledger's ``source`` is its
    sum times Δt/2)."""
    from wavecontrol.schemes import transport_numpy
    wbp = transport_numpy(wp, cfg.scheme, cfg.courant, +1)[0]
    wbm = transport_numpy(wm, cfg.scheme, cfg.courant, -1)[0]
    sp, sm = (wbp, wbm) if cfg.sources == "after" else (wp, wm)
    x, lam = met.from_waves(sp, sm)
    r_x, r_l, _ = problem.residuals(x, lam, theta)
    Ep, Em = met.wave_residuals(r_x, r_l)
    return -2 * cfg.source_gain * np.sum(wbp * Ep + wbm * Em, axis=(0, 2))


# ------------------------------------------------------------------------------------------
# 1–2. the paper-form sweep
# ------------------------------------------------------------------------------------------
def paper_sweep(problem, ref, max_steps, schemes=SCHEME_NUS, alphas=ALPHA_FACTORS,
                terminations=TERMINATIONS, sources=SOURCES, etas=("auto", 0.0), quiet=False):
    rows = []
    ref3 = (ref.x, ref.lam, ref.theta)
    for scheme, nus in schemes.items():
        for term in terminations:
            for src in sources:
                for nu in nus:
                    for af in alphas:
                        for eta in etas:
                            rows.append(paper_case(problem, ref3, scheme, term, src, nu, af,
                                                   eta, max_steps))
                            if not quiet:
                                print(format_row(rows[-1]), flush=True)
    return rows


def paper_case(problem, ref3, scheme, term, src, nu, af, eta, max_steps):
    alpha = af * nu
    eta_val = wave.auto_eta(problem, nu) if eta == "auto" else float(eta)
    r = wave.solve(problem, formulation="paper", scheme=scheme, courant=nu, alpha=alpha,
                   eta=eta_val, termination=term, sources=src, max_steps=max_steps, tol=1e-12,
                   record_every=1 if max_steps <= 60000 else max_steps // 60000)
    cfg = StepConfig(formulation="paper", scheme=scheme, courant=nu, alpha=alpha, eta=eta_val,
                     termination=term, sources=src).validate(problem.N)
    sm = StepMap(problem, cfg)
    row = {"scheme": scheme, "termination": term, "sources": src, "nu": nu, "alpha/nu": af,
           "eta": eta, "eta_value": eta_val, "status": r.status.value, "steps": r.steps,
           "diverged_at": r.diverged_at, "res": (r.residuals["x"], r.residuals["lambda"],
                                                  r.residuals["theta"]),
           "ledger_err": r.ledger_max_rel_error, "rho": sm.rho(),
           "finite": bool(all(np.all(np.isfinite(a)) for a in (r.x, r.lam, r.theta))
                          and all(np.isfinite(v) for v in r.residuals.values())),
           "rho_w": sm.rho(waves_only=True)}
    # exact fixed point: with η > 0 the full map; with η = 0 the waves at θ = θ* (Riccati)
    z_fp = sm.fixed_point() if eta_val > 0 else sm.fixed_point(theta=ref3[2])
    fp = sm.fields(z_fp)
    row["fp_dist"] = dist(fp, ref3)
    row["fp_res"] = pmp_residuals(problem, *fp)
    if r.status.value == "diverged":
        row["pump"], row["ledger_sums"] = dominant_pump(r.history)
        row["fp_dist_run"] = None
        row["stationarity"] = None
    else:
        z = sm.state(r.x, r.lam, r.theta)
        dz = sm.step(z) - z
        row["stationarity"] = float(np.abs(dz).max() / max(np.abs(z).max(), 1e-300))
        # distance of the run's state from the exact fixed point of the same map (run at θ0)
        z_fp_run = sm.fixed_point() if eta_val > 0 else sm.fixed_point(theta=r.theta)
        row["fp_dist_run"] = float(np.abs(z - z_fp_run).max())
        row["run_dist"] = dist((r.x, r.lam, r.theta), ref3)
        row["pump"] = None
    return row


def radius(r):
    """ρ that decides the run: of the whole map with η > 0, of the wave block with η = 0 (θ is
    then frozen and its block of G is the identity)."""
    return r["rho"] if r["eta_value"] > 0 else r["rho_w"]


def fmt(v, spec=".2e"):
    return "—" if v is None else format(v, spec)


def format_row(r):
    s = (f"{r['scheme']:14s} {r['termination']:8s} {r['sources']:6s} ν={r['nu']:<4g} "
         f"α={r['alpha/nu']:<4g}ν η={str(r['eta']):4s} {r['status']:9s} "
         f"steps={r['steps']:<6d} ρ={r['rho']:.5f} ρ_w={r['rho_w']:.5f} "
         f"res(x,λ,θ)=({r['res'][0]:.1e},{r['res'][1]:.1e},{r['res'][2]:.1e}) ")
    if r["status"] == "diverged":
        s += f"pump={r['pump']}"
    else:
        s += (f"Δ/step={r['stationarity']:.1e} |z−z*|={r['fp_dist_run']:.1e}")
    d = r["fp_dist"]
    s += f" | FP−Riccati (x,λ,θ)=({d[0]:.2f},{d[1]:.2f},{d[2]:.2f})"
    return s


def condensed_table(rows):
    """Markdown: per scheme × termination × sources, the outcome for each α and ν (η = auto)."""
    lines = ["| scheme | termination | sources | ν | α = ν | α = 0.1ν | α = 0.01ν |",
             "|---|---|---|---|---|---|---|"]
    key = {}
    for r in rows:
        if r["eta"] != "auto":
            continue
        key[(r["scheme"], r["termination"], r["sources"], r["nu"], r["alpha/nu"])] = r
    for scheme, nus in SCHEME_NUS.items():
        for term in TERMINATIONS:
            for src in SOURCES:
                for nu in nus:
                    cells = []
                    for af in ALPHA_FACTORS:
                        r = key.get((scheme, term, src, nu, af))
                        if r is None:
                            cells.append("")
                        elif r["status"] == "diverged":
                            cells.append(f"div @ {r['diverged_at']} (ρ {r['rho']:.3f})")
                        else:
                            cells.append(f"{r['status']} (ρ {r['rho']:.5f})")
                    lines.append(f"| {scheme} | {term} | {src} | {nu:g} | " + " | ".join(cells)
                                 + " |")
    return "\n".join(lines)


def fixed_point_table(rows):
    """Markdown: exact fixed points of the stable settings vs Riccati (η = auto and η = 0)."""
    lines = ["| scheme | sources | ν | α/ν | η | ρ(G) | run end: Δ/step, ‖z − z*‖ | "
             "FP − Riccati x, λ, θ | PMP residuals at FP x, λ, θ |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["termination"] != "implicit" or radius(r) >= 1.0:
            continue
        d, q = r["fp_dist"], r["fp_res"]
        lines.append(
            f"| {r['scheme']} | {r['sources']} | {r['nu']:g} | {r['alpha/nu']:g} | "
            f"{'auto' if r['eta'] == 'auto' else '0 (θ=θ*)'} | {radius(r):.6f} | "
            f"{fmt(r['stationarity'], '.0e')}, {fmt(r['fp_dist_run'], '.0e')} | "
            f"{d[0]:.2f}, {d[1]:.2f}, {d[2]:.2f} | {q[0]:.2f}, {q[1]:.2f}, {q[2]:.0e} |")
    return "\n".join(lines)


def pump_table(rows):
    """Markdown: which ledger term pumps V before divergence (η = auto)."""
    lines = ["| scheme | termination | sources | ν | α/ν | diverged at | pumping term | "
             "its share of the positive terms |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "diverged" or r["eta"] != "auto":
            continue
        sums = r["ledger_sums"]
        pos = sum(v for v in sums.values() if v > 0)
        lines.append(f"| {r['scheme']} | {r['termination']} | {r['sources']} | {r['nu']:g} | "
                     f"{r['alpha/nu']:g} | {r['diverged_at']} | {r['pump']} | "
                     f"{sums[r['pump']] / pos:.2f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# 3. one step from the exact solution (η = 0, θ = θ*)
# ------------------------------------------------------------------------------------------
def step_from_riccati(problem, ref):
    print("\n## One paper-form step from the exact Riccati fields (η = 0, θ = θ*)")
    print("| scheme | termination | sources | ν | α | max Δx | max Δλ | max transport "
          "increment ν‖w_k − w_(k∓1)‖∞ |")
    print("|---|---|---|---|---|---|---|---|")
    met = Metric(1.0, problem.n, problem.N)
    wp, wm = met.to_waves(ref.x, ref.lam)
    out = []
    for scheme in SCHEME_NUS:
        for term in TERMINATIONS:
            for src in SOURCES:
                for nu in (0.5, 1.0):
                    cfg = StepConfig(formulation="paper", scheme=scheme, courant=nu, alpha=nu,
                                     eta=0.0, termination=term, sources=src).validate(problem.N)
                    u1, v1, th1, _, _ = paper_step_numpy(problem, met, cfg, wp, wm, ref.theta)
                    x1, l1 = met.from_waves(u1, v1)
                    tr = nu * max(np.abs(np.diff(wp, axis=1)).max(),
                                  np.abs(np.diff(wm, axis=1)).max())
                    dx, dl = np.abs(x1 - ref.x).max(), np.abs(l1 - ref.lam).max()
                    out.append((scheme, term, src, nu, dx, dl, tr))
                    print(f"| {scheme} | {term} | {src} | {nu:g} | ν | {dx:.3e} | {dl:.3e} | "
                          f"{tr:.3e} |")
    return out


# ------------------------------------------------------------------------------------------
# 4. why it grows
# ------------------------------------------------------------------------------------------
def why_it_grows(problem):
    N = problem.N
    print("\n## ρ(G) of the wave block (η = 0) against Q_f, upwind, α = ν (I = implicit, "
          "E = explicit; sources after)")
    print("| Q_f | ν=0.25 I | ν=0.5 I | ν=1 I | ν=0.25 E | ν=0.5 E | ν=1 E | ν=0.5, α=0.05 E |")
    print("|---|---|---|---|---|---|---|---|")
    for qf in (0.0, 0.5, 1.0, 5.0):
        p = problems.lqr(Qf=qf)
        cells = []
        for term in ("implicit", "explicit"):
            for nu in (0.25, 0.5, 1.0):
                cfg = StepConfig(formulation="paper", scheme="upwind", courant=nu, alpha=nu,
                                 eta=0.0, termination=term).validate(N)
                cells.append(f"{StepMap(p, cfg).rho(waves_only=True):.4f}")
        cfg = StepConfig(formulation="paper", scheme="upwind", courant=0.5, alpha=0.05,
                         eta=0.0, termination="explicit").validate(N)
        cells.append(f"{StepMap(p, cfg).rho(waves_only=True):.4f}")
        print(f"| {qf:g} | " + " | ".join(cells) + " |")

    print("\n## explicit termination against the metric Θ = s·I (upwind, ν = 0.5, η = 0; "
          "reflection factor of line 26 at node N is −Q_f/s²)")
    print("| s | Q_f/s² | ρ_w (α = 0.5) | ρ_w (α = 0.05) | ρ_w (α = 0.005) |")
    print("|---|---|---|---|---|")
    for s in (1.0, 2.0, 3.0):
        cells = []
        for a in (0.5, 0.05, 0.005):
            cfg = StepConfig(formulation="paper", scheme="upwind", courant=0.5, alpha=a,
                             eta=0.0, termination="explicit").validate(N)
            cells.append(f"{StepMap(problem, cfg, metric=s).rho(waves_only=True):.4f}")
        print(f"| {s:g} | {5.0 / s**2:.3f} | " + " | ".join(cells) + " |")

    print("\n## The growing mode and its ledger (η = 0, upwind, implicit, after; ledger of the "
          "homogeneous step, x_in = 0, on the mode, averaged over its phase)")
    print("| ν | α | eigenvalue λ_max | share of |mode|² at node N | ΔV | source | source2 | "
          "boundary_right + reset_right | dissipation | source power at node N / source |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    met = Metric(1.0, problem.n, N)
    p0 = problems.lqr(x0=[0.0] * problem.n)          # the homogeneous part of the step
    th0 = np.zeros((N, problem.m))
    for nu, a in ((1.0, 1.0), (0.5, 1.0), (0.5, 0.5), (0.25, 0.25)):
        cfg = StepConfig(formulation="paper", scheme="upwind", courant=nu, alpha=a, eta=0.0,
                         termination="implicit").validate(N)
        sm = StepMap(p0, cfg)
        s2 = 2 * sm.sz
        ev, vec = np.linalg.eig(sm.G[:s2, :s2])
        i = int(np.argmax(np.abs(ev)))
        mode = vec[:, i] / np.linalg.norm(vec[:, i])
        amp = np.zeros(N + 1)
        led = dict.fromkeys(("V", "V_next") + LEDGER_TERMS, 0.0)
        node_src = np.zeros(N + 1)
        for part in (np.real(mode), np.imag(mode)):   # phase average of a quadratic form
            up, vp = part[:sm.sz].reshape(1, N + 1, -1), part[sm.sz:].reshape(1, N + 1, -1)
            amp += np.sum(up ** 2 + vp ** 2, axis=(0, 2))
            out = paper_step_numpy(p0, met, cfg, up, vp, th0)[3]
            for t in led:
                led[t] += out[t]
            node_src += source_power_by_node(p0, met, cfg, up, vp, th0)
        dV = led["V_next"] - led["V"]
        print(f"| {nu:g} | {a:g} | {ev[i]:.4f} (abs {abs(ev[i]):.4f}) | "
              f"{amp[-1] / amp.sum():.2f} | {dV:+.2e} | {led['source']:+.2e} | "
              f"{led['source2']:+.2e} | {led['boundary_right'] + led['reset_right']:+.2e} | "
              f"{led['dissipation']:+.2e} | {node_src[-1] / node_src.sum():+.2f} |")

    print("\n## fixed-point distance from Riccati under refinement (upwind, implicit, after, "
          "α = 0.1ν, η = auto)")
    print("| N | ν | ρ(G) | FP − Riccati x | λ | θ | max |θ*| |")
    print("|---|---|---|---|---|---|---|")
    for Nr in (10, 20, 40):
        p = problems.lqr(N=Nr)
        ref = riccati.discrete_riccati(p)
        for nu in (0.5, 1.0):
            cfg = StepConfig(formulation="paper", scheme="upwind", courant=nu, alpha=0.1 * nu,
                             eta=wave.auto_eta(p, nu), termination="implicit").validate(Nr)
            sm = StepMap(p, cfg)
            d = dist(sm.fields(sm.fixed_point()), (ref.x, ref.lam, ref.theta))
            print(f"| {Nr} | {nu:g} | {sm.rho():.6f} | {d[0]:.3f} | {d[1]:.3f} | {d[2]:.2f} | "
                  f"{np.abs(ref.theta).max():.2f} |")


# ------------------------------------------------------------------------------------------
# 5. the consistent form
# ------------------------------------------------------------------------------------------
def consistent_study(problem, ref):
    err = lambda r: max(dist((r.x, r.lam, r.theta), (ref.x, ref.lam, ref.theta)))  # noqa: E731
    print("\n## Consistent form, η = auto, tol = 1e-12 (default LQR)")
    print("| scheme | ν | η auto | status | τ-steps | wall s | max error vs Riccati | ρ(G) |")
    print("|---|---|---|---|---|---|---|---|")
    for scheme, nus in (("upwind", (0.5, 1.0)), ("lax-wendroff", (1.0, 1.5)),
                        ("characteristic", (1.0, 2.5))):
        for nu in nus:
            eta = wave.auto_eta(problem, nu)
            r = wave.solve(problem, scheme=scheme, courant=nu, eta=eta, tol=1e-12,
                           max_steps=2_000_000)
            cfg = StepConfig(formulation="consistent", scheme=scheme, courant=nu,
                             eta=eta).validate(problem.N)
            print(f"| {scheme} | {nu:g} | {eta:.4e} | {r.status.value} | {r.steps} | "
                  f"{r.wall_time:.2f} | {err(r):.2e} | {StepMap(problem, cfg).rho():.8f} |",
                  flush=True)
    for tol in (1e-13, 1e-14):
        r = wave.solve(problem, scheme="upwind", courant=1.0, tol=tol, max_steps=2_000_000)
        d = dist((r.x, r.lam, r.theta), (ref.x, ref.lam, ref.theta))
        print(f"\nupwind ν = 1, tol {tol:g}: {r.status.value} after {r.steps} τ-steps; error "
              f"x {d[0]:.1e}, λ {d[1]:.1e}, θ {d[2]:.1e}; final residuals "
              + ", ".join(f"{k} {v:.1e}" for k, v in r.residuals.items()), flush=True)
    print("\n## Consistent form: the auto-η margin (tol 1e-12, max_steps 2e6)")
    print("| scheme | ν | η / auto | status | τ-steps (or diverged at) | max error | ρ(G) |")
    print("|---|---|---|---|---|---|---|")
    for scheme, nu in (("upwind", 1.0), ("lax-wendroff", 1.5), ("characteristic", 2.5),
                       ("characteristic", 5.0)):
        ea = wave.auto_eta(problem, nu)
        for f in (1, 2, 3):
            r = wave.solve(problem, scheme=scheme, courant=nu, eta=f * ea, tol=1e-12,
                           max_steps=2_000_000)
            cfg = StepConfig(formulation="consistent", scheme=scheme, courant=nu,
                             eta=f * ea).validate(problem.N)
            steps = r.diverged_at if r.diverged_at is not None else r.steps
            e = err(r) if r.status.value != "diverged" else float("nan")
            print(f"| {scheme} | {nu:g} | {f} | {r.status.value} | {steps} | {e:.2e} | "
                  f"{StepMap(problem, cfg).rho():.8f} |", flush=True)
    print("\n## Consistent form: critical η (ρ(G) = 1, bisection on the step map) in units of "
          "1/(L(1 + 2N/ν)) — the delay law of auto_eta predicts a constant")
    print("| scheme | ν | η_c / η_auto |")
    print("|---|---|---|")
    for scheme, nu in (("upwind", 0.5), ("upwind", 1.0), ("lax-wendroff", 1.5),
                       ("characteristic", 2.5), ("characteristic", 5.0),
                       ("characteristic", 10.0)):
        ea = wave.auto_eta(problem, nu)
        lo, hi = 2.0, 3.0

        def rho_at(f):
            cfg = StepConfig(formulation="consistent", scheme=scheme, courant=nu,
                             eta=f * ea).validate(problem.N)
            return StepMap(problem, cfg).rho()
        if rho_at(lo) >= 1 or rho_at(hi) < 1:
            lo, hi = 0.5, 20.0
        for _ in range(14):
            mid = 0.5 * (lo + hi)
            if rho_at(mid) < 1:
                lo = mid
            else:
                hi = mid
        print(f"| {scheme} | {nu:g} | {0.5 * (lo + hi):.3f} |", flush=True)


# ------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-steps", type=int, default=50_000,
                    help="τ-step budget of each paper-form run (default 50000)")
    ap.add_argument("--random", action="store_true", help="also sweep problems.random_lqr()")
    ap.add_argument("--skip-consistent", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    np.set_printoptions(precision=3)

    p = problems.lqr()
    ref = riccati.discrete_riccati(p)
    print("# Paper formulation (Algorithm 1 verbatim) on problems.lqr() (N = 20, Q_f = 5 I)")
    print(f"Riccati: max|x*| = {np.abs(ref.x).max():.3f}, max|λ*| = {np.abs(ref.lam).max():.3f},"
          f" max|θ*| = {np.abs(ref.theta).max():.3f}; residuals {ref.residuals}")
    print(f"largest Hessian eigenvalue of J: L = {wave.hessian_norm(p):.4f}")
    print(f"auto η at ν = 0.25, 0.5, 1, 2.5: "
          + ", ".join(f"{wave.auto_eta(p, nu):.4e}" for nu in (0.25, 0.5, 1.0, 2.5)))
    print("\n## Sweep (every run; FP = exact fixed point of the τ-step map, θ = θ* when η = 0)")
    rows = paper_sweep(p, ref, args.max_steps)
    print("\n## Outcome per scheme × termination × sources (η = auto; η = 0 rows in the sweep)")
    print(condensed_table(rows))
    same = sum(1 for a, b in zip(rows[::2], rows[1::2]) if a["status"] == b["status"])
    print(f"\nη = auto and η = 0 give the same status in {same} of {len(rows) // 2} settings.")
    agree = sum(1 for r in rows if (r["status"] == "diverged") == (radius(r) > 1.0))
    div = [r for r in rows if r["status"] == "diverged"]
    print(f"{len(div)} of {len(rows)} runs diverged; {sum(r['finite'] for r in div)} of them "
          f"report finite fields and residuals and a diverged_at step "
          f"({sum(r['diverged_at'] is not None for r in div)}); none converged "
          f"({sum(r['status'] == 'converged' for r in rows)} converged).")
    print(f"status 'diverged' ⇔ ρ(G) > 1 in {agree} of {len(rows)} runs.")
    print("\n## Stable settings: the exact fixed point vs Riccati")
    print(fixed_point_table(rows))
    print("\n## Which ledger term pumps V in the last quarter of the steps before divergence")
    print(pump_table(rows))
    lerr = max(r["ledger_err"] for r in rows)
    print(f"\nlargest ledger closure error over all runs: {lerr:.1e}")

    # a long run confirms that a stable setting with η = auto reaches the exact fixed point
    cfg_kw = dict(formulation="paper", scheme="upwind", courant=0.5, alpha=0.05,
                  termination="implicit", sources="after")
    eta = wave.auto_eta(p, 0.5)
    r = wave.solve(p, eta=eta, max_steps=1_000_000, tol=1e-12, record_every=10_000, **cfg_kw)
    sm = StepMap(p, StepConfig(eta=eta, **cfg_kw).validate(p.N))
    z = sm.state(r.x, r.lam, r.theta)
    fp = sm.fields(sm.fixed_point())
    print("\n## Long run: upwind, implicit, after, ν = 0.5, α = 0.05, η = auto, 1e6 τ-steps")
    print(f"status {r.status.value}; Δ/step {np.abs(sm.step(z) - z).max():.1e}; "
          f"‖z − z*‖∞ {np.abs(z - sm.fixed_point()).max():.1e}; run − Riccati (x, λ, θ) = "
          + ", ".join(f"{d:.3f}" for d in dist((r.x, r.lam, r.theta),
                                                 (ref.x, ref.lam, ref.theta)))
          + "; FP − Riccati = " + ", ".join(f"{d:.3f}" for d in dist(fp, (ref.x, ref.lam,
                                                                          ref.theta)))
          + f"; residuals {r.residuals}; wall {r.wall_time:.1f} s")

    step_from_riccati(p, ref)
    why_it_grows(p)

    if args.random:
        pr = problems.random_lqr()
        refr = riccati.discrete_riccati(pr)
        print("\n# problems.random_lqr() (n = 4, m = 2, seed 0, unstable A)")
        print(f"max|θ*| = {np.abs(refr.theta).max():.3f}")
        rr = paper_sweep(pr, refr, args.max_steps, schemes={"upwind": (0.5, 1.0),
                                                              "characteristic": (2.5,)},
                         etas=("auto",), quiet=True)
        for r in rr:
            print(format_row(r))

    if not args.skip_consistent:
        consistent_study(p, ref)
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
