"""The exact energy ledger of a τ-step (Theorem 2.6, discrete).

Bound: |ΔV − Σ terms| / max(V, 1) ≤ 1e-10 at every step. Each term is a sum of O(N n) products
of field values; the round-off of ΔV and of the sum is a few ulps of V times the number of
summands (~100), i.e. ~1e-14 relative (measured: 5e-16 to 3e-14 over the runs below), so 1e-10
has a margin of >1000 while any missing term is at least ~1e-3 of V in these runs (dropping one
is checked to fail the bound). Runs that grow are included: the paper form with α = ν grows
fast (measured: V passes 1e100 after 70–300 steps in most configurations), so runs stop at
V > 1e100 (divergence_bound=1e100) or after 300 steps.
"""

import numpy as np
import pytest

from problems import lqr
from solvers.wave import solve
from wavecontrol.formulations import (StepConfig, consistent_step_numpy, ledger_error,
                                      paper_step_numpy)
from wavecontrol.ledger import LEDGER_TERMS
from wavecontrol.metric import Metric
from wavecontrol.ports import ResistivePort

BOUND = 1e-10
STEPS = 300
#: one Courant number inside each scheme's stable range, away from the exact value ν = 1
COURANT = {("consistent", "upwind"): 0.8, ("consistent", "characteristic"): 2.5,
           ("consistent", "lax-wendroff"): 1.5, ("paper", "upwind"): 0.8,
           ("paper", "characteristic"): 2.5, ("paper", "lax-wendroff"): 0.7}
CONFIGS = [(form, scheme, term, src)
           for (form, scheme) in COURANT
           for term in ("implicit", "explicit")
           for src in (("after", "before") if form == "paper" else ("after",))]
#: a full, invertible lower-triangular metric factor (condition number ~1.5)
THETA = np.array([[1.0, 0.0], [0.3, 1.2]])


def _recomputed_error(h, drop=None):
    """|V_next − V − Σ terms| / max(V, 1) per step from the history columns."""
    total = sum(h[t] for t in LEDGER_TERMS if t != drop)
    return np.abs(h["V_next"] - h["V"] - total) / np.maximum(h["V"], 1.0)


def _run(form, scheme, term, src, backend, **kw):
    opts = dict(formulation=form, scheme=scheme, courant=COURANT[(form, scheme)],
                termination=term, sources=src, metric=THETA, max_steps=STEPS, tol=0.0,
                record_every=1, backend=backend, divergence_bound=1e100, port="gd")
    opts.update(kw)
    return solve(lqr(), **opts)


def _check_ledger(r):
    h = r.history
    # every step recorded; a diverged run also records the step that would leave the bound
    rows = r.steps + (1 if r.status.value == "diverged" else 0)
    assert r.steps >= 60 and h["V"].size == rows
    np.testing.assert_array_equal(h["step"], np.arange(rows))
    assert r.ledger_max_rel_error <= BOUND
    assert np.all(h["ledger_error"] <= BOUND)
    err = _recomputed_error(h)
    assert np.all(err <= BOUND), f"max recomputed ledger error {err.max():.3g}"
    # the ledger's V_next is the energy the next step starts from, and the run's end points
    np.testing.assert_allclose(h["V_next"][:-1], h["V"][1:], rtol=1e-13, atol=0)
    assert h["V"][0] == pytest.approx(r.V_initial, rel=1e-13)
    if r.status.value == "max_steps":
        assert h["V_next"][-1] == pytest.approx(r.V_final, rel=1e-13)
        # and V_final is the energy of the returned fields, computed here from scratch:
        # ½ Δt Σ_k (‖Θ x_k‖² + ‖Θ^{-T} λ_k‖²) (= ½ Δt Σ (‖w+‖² + ‖w-‖²), eq. 18)
        a = np.einsum("ij,bkj->bki", THETA, r.x)
        b = np.einsum("ji,bkj->bki", np.linalg.inv(THETA), r.lam)
        V = 0.5 * lqr().dt * (np.sum(a * a) + np.sum(b * b))
        assert r.V_final == pytest.approx(V, rel=1e-12)
    return h


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("form, scheme, term, src", CONFIGS)
def test_ledger_closes_every_step(form, scheme, term, src, backend):
    r = _run(form, scheme, term, src, backend)
    h = _check_ledger(r)
    # a deliberately wrong ledger fails: dropping any term that is not identically zero in this
    # run breaks the bound at some step (the consistent form's reset_left is exactly 0, since
    # x_0 = x_in is kept at every step)
    scale = np.maximum(h["V"], 1.0)
    live = [t for t in LEDGER_TERMS if np.max(np.abs(h[t]) / scale) > 1e-8]
    assert len(live) >= 6
    for t in live:
        assert _recomputed_error(h, drop=t).max() > BOUND, f"dropping {t} went unnoticed"


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("term", ["implicit", "explicit"])
def test_ledger_closes_on_a_growing_run(term, backend):
    """Consistent upwind at ν = 1.5 (outside its range) grows to V ≈ 1e100 in ~190 steps."""
    r = _run("consistent", "upwind", term, "after", backend, courant=1.5, allow_unstable=True)
    assert r.status.value == "diverged" and r.history["V_next"][-1] > 1e100
    _check_ledger(r)


def test_paper_form_grows_and_every_term_matters():
    """Paper form, upwind ν = 0.8: all seven ledger terms are live, and V grows past 1e100."""
    r = _run("paper", "upwind", "implicit", "after", "numba")
    h = _check_ledger(r)
    assert r.status.value == "diverged" and h["V"].max() > 1e90
    for t in LEDGER_TERMS:
        assert _recomputed_error(h, drop=t).max() > 1e3 * BOUND, t


# ------------------------------------------------------------------------------------------
# one NumPy step from generic (non-solution) fields, with a per-node metric
# ------------------------------------------------------------------------------------------
def _generic(rng, problem):
    n, N = problem.n, problem.N
    mats = np.tril(0.3 * rng.normal(size=(N + 1, n, n)), -1) + np.eye(n) * (
        1.0 + rng.random((N + 1, 1, n)))
    x, lam = rng.normal(size=(2, 1, N + 1, n))
    theta = rng.normal(size=(N, problem.m))
    return Metric(mats, n, N), x, lam, theta


@pytest.mark.parametrize("scheme, nu", [("upwind", 0.6), ("upwind", 1.0),
                                        ("characteristic", 1.7), ("characteristic", 3.0),
                                        ("lax-wendroff", 1.3)])
@pytest.mark.parametrize("term", ["implicit", "explicit"])
def test_consistent_step_ledger_from_generic_fields(rng, scheme, nu, term):
    problem = lqr(N=8)
    met, x, lam, theta = _generic(rng, problem)
    cfg = StepConfig(formulation="consistent", scheme=scheme, courant=nu, eta=0.3,
                     termination=term).validate(problem.N)
    x1, l1, th1, led, (r_x, r_l, r_t) = consistent_step_numpy(problem, met, cfg, x, lam, theta)
    assert ledger_error(led) <= BOUND
    a1, b1 = met.characteristic(x1, l1)
    assert led["V_next"] == pytest.approx(0.5 * problem.dt * (np.sum(a1 ** 2) + np.sum(b1 ** 2)),
                                          rel=1e-13)
    # port: θ' = θ − η r_θ and port power η ‖r_θ‖² (eq. 60)
    np.testing.assert_allclose(th1, theta - 0.3 * r_t, rtol=0, atol=1e-15)
    assert led["port_power"] == pytest.approx(0.3 * np.sum(r_t ** 2), rel=1e-13)


@pytest.mark.parametrize("scheme, nu", [("upwind", 0.6), ("characteristic", 2.5),
                                        ("lax-wendroff", 0.7)])
@pytest.mark.parametrize("term", ["implicit", "explicit"])
@pytest.mark.parametrize("src", ["after", "before"])
def test_paper_step_ledger_from_generic_fields(rng, scheme, nu, term, src):
    problem = lqr(N=8)
    met, x, lam, theta = _generic(rng, problem)
    wp, wm = met.to_waves(x, lam)
    cfg = StepConfig(formulation="paper", scheme=scheme, courant=nu, alpha=0.4, eta=0.3,
                     termination=term, sources=src).validate(problem.N)
    wp1, wm1, th1, led, _ = paper_step_numpy(problem, met, cfg, wp, wm, theta)
    assert ledger_error(led) <= BOUND
    assert led["V"] == pytest.approx(0.5 * problem.dt * (np.sum(wp ** 2) + np.sum(wm ** 2)),
                                     rel=1e-13)


def test_paper_upwind_terms_written_out(rng):
    """Upwind paper step (sources after): dissipation −ν(1−ν)‖Δw‖² Δt/2 per field, source
    power −α Δt Σ w̄·E, second-order term α² ‖E‖² Δt/2 (eqs. 41–42, 57–58)."""
    problem = lqr(N=8)
    met, x, lam, theta = _generic(rng, problem)
    wp, wm = met.to_waves(x, lam)
    nu, alpha, dt = 0.6, 0.4, problem.dt
    cfg = StepConfig(formulation="paper", scheme="upwind", courant=nu, alpha=alpha,
                     eta=0.3).validate(problem.N)
    _, _, _, led, _ = paper_step_numpy(problem, met, cfg, wp, wm, theta,
                                       port=ResistivePort(0.3))
    diss = -nu * (1 - nu) * (np.sum((wp[:, 1:] - wp[:, :-1]) ** 2)
                             + np.sum((wm[:, :-1] - wm[:, 1:]) ** 2)) * dt / 2
    assert led["dissipation"] == pytest.approx(diss, rel=1e-12)
    wbp, wbm = wp.copy(), wm.copy()
    wbp[:, 1:] = (1 - nu) * wp[:, 1:] + nu * wp[:, :-1]
    wbm[:, :-1] = (1 - nu) * wm[:, :-1] + nu * wm[:, 1:]
    r_x, r_l, _ = problem.residuals(*met.from_waves(wbp, wbm), theta)
    Ep, Em = met.wave_residuals(r_x, r_l)
    src = -alpha * dt * (np.sum(wbp * Ep) + np.sum(wbm * Em))
    assert led["source"] == pytest.approx(src, rel=1e-12)
    assert led["source2"] == pytest.approx(alpha ** 2 * dt / 2 * (np.sum(Ep ** 2)
                                                                  + np.sum(Em ** 2)), rel=1e-12)
