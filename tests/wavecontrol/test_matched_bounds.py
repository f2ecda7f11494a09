"""The matched port with control bounds lo ≤ u ≤ hi: the box-constrained local solve
(:mod:`wavecontrol.boxqp`) against the KKT conditions, bounded runs against L-BFGS-B at the same
constrained optimum, and the compiled kernel against its NumPy twin on bounded problems."""

import numpy as np
import pytest

from problems import unicycle, vanderpol
from solvers.lbfgs import solve_lbfgs
from solvers.wave import HISTORY_COLUMNS, default_port, solve
from wavecontrol.boxqp import box_qp, box_qp_jit

#: compiled vs plain box solve, and compiled vs NumPy matched run: both sum the same terms in a
#: different order (LAPACK solves from different builds), a few ulps per operation; 1e-12
#: leaves > 100× margin over the measured ≤ 7e-16 (box solve) and ≤ 1e-15 (40 τ-steps)
TWIN_BOUND = 1e-12


def _random_box_qp(rng, m):
    A = rng.standard_normal((m, m))
    Q = A @ A.T + 0.05 * np.eye(m)
    g = 3.0 * rng.standard_normal(m)
    lo, hi = -rng.uniform(0.0, 1.0, m), rng.uniform(0.0, 1.0, m)
    lo[rng.random(m) < 0.2] = 0.0          # a control already at its bound
    hi[rng.random(m) < 0.2] = np.inf       # one-sided
    return Q, g, lo, hi


def test_box_qp_meets_the_kkt_conditions(rng):
    """The minimizer of a strictly convex QP over a box is characterized by its projected
    gradient d − clip(d − (Qd + g), lo, hi) = 0: an exact reference that needs no other solver.
    The bound 1e-12 × max(1, |g|) is round-off of the m × m solve (cond(Q) ≤ ~1e4 here)."""
    worst = 0.0
    clamped_seen = 0
    for trial in range(400):
        m = int(rng.integers(1, 7))
        Q, g, lo, hi = _random_box_qp(rng, m)
        d, H = np.empty(m), np.empty((m, m))
        nclamp = box_qp(Q, g, lo, hi, d, H)
        clamped_seen += nclamp > 0
        assert np.all(d >= lo) and np.all(d <= hi)
        grad = Q @ d + g
        pg = d - np.clip(d - grad, lo, hi)
        worst = max(worst, np.abs(pg).max() / max(1.0, np.abs(g).max()))
        # H is Q's inverse on the free coordinates, zero on the clamped ones
        clamped = ((d <= lo) & (grad > 0)) | ((d >= hi) & (grad < 0))
        assert nclamp == clamped.sum()
        free = ~clamped
        Hf = np.zeros((m, m))
        if free.any():
            Hf[np.ix_(free, free)] = np.linalg.inv(Q[np.ix_(free, free)])
        assert np.abs(H - Hf).max() <= 1e-10 * max(1.0, np.abs(Hf).max())
        d2, H2 = np.empty(m), np.empty((m, m))
        assert box_qp_jit(Q, g, lo, hi, d2, H2) == nclamp
        assert np.abs(d - d2).max() <= TWIN_BOUND * max(1.0, np.abs(d).max())
    assert worst <= 1e-12
    assert clamped_seen > 100           # the test exercised the constrained case


def test_box_qp_with_one_control_is_the_clipped_newton_step():
    Q = np.array([[2.0]])
    for g, lo, hi, want in ((-1.0, -1.0, 1.0, 0.5), (-4.0, -1.0, 1.0, 1.0), (3.0, 0.0, 1.0, 0.0),
                            (3.0, -1.0, np.inf, -1.0)):
        d, H = np.empty(1), np.empty((1, 1))
        box_qp(Q, np.array([g]), np.array([lo]), np.array([hi]), d, H)
        assert d[0] == want
        assert H[0, 0] == (0.5 if lo < want < hi else 0.0)


BOUNDED = {
    # the Van der Pol OCP at its classic bound |u| <= 1 (one control at the bound)
    "vanderpol": lambda: vanderpol(),
    # two controls, both bounds active at many nodes (m = 2 exercises the projected Newton)
    "unicycle": lambda: unicycle(v_max=0.8, w_max=0.5),
}


@pytest.fixture(scope="module")
def bounded():
    return {k: f() for k, f in BOUNDED.items()}


def test_bounded_problems_default_to_the_matched_port(bounded):
    assert all(default_port(p) == "matched" for p in bounded.values())


@pytest.mark.parametrize("name", list(BOUNDED))
def test_bounded_matched_reaches_the_lbfgsb_optimum(bounded, name):
    """Both solvers stop on the projected gradient (≤ 1e-10 matched, ≤ 1e-12 L-BFGS-B); at a
    strict constrained minimum the objective then differs by O(residual²), so 1e-12 relative is
    round-off, and θ by O(residual / curvature) ≤ 1e-8."""
    p = bounded[name]
    ref = solve_lbfgs(p, tol=1e-12)
    r = solve(p, backend="numpy", tol=1e-10, max_steps=2000)
    assert r.config["port"]["name"] == "matched"
    assert r.success, r.message
    lo, hi = p.bounds
    at_bound = np.sum((r.theta <= lo) | (r.theta >= hi))
    assert at_bound >= 1
    assert np.all(r.theta >= lo) and np.all(r.theta <= hi)
    assert abs(r.objective - ref.objective) <= 1e-12 * abs(ref.objective)
    assert np.abs(r.theta - ref.theta).max() <= 1e-8


def test_the_constrained_optimum_is_a_fixed_point(bounded):
    """From the L-BFGS-B optimum (with its exact costates) the matched step leaves u in place:
    the projected gradient is zero there, and so is the box-constrained Newton step."""
    p = bounded["unicycle"]
    ref = solve_lbfgs(p, tol=1e-13)
    x = p.forward(ref.theta)
    lam = p.adjoint(x, ref.theta)
    r = solve(p, port="matched", backend="numpy", init=(x, lam, ref.theta), tol=0.0,
              max_steps=3, record_every=1)
    assert np.abs(r.theta - ref.theta).max() <= 1e-10


@pytest.mark.parametrize("scheme, nu", [("upwind", 1.0), ("upwind", 0.8),
                                        ("lax-wendroff", 1.5), ("characteristic", 2.5)])
@pytest.mark.parametrize("name", list(BOUNDED))
def test_bounded_compiled_matched_equals_numpy_twin(bounded, name, scheme, nu):
    p = bounded[name]
    kw = dict(port="matched", tol=0.0, max_steps=40, record_every=1, scheme=scheme,
              courant=nu)
    rn, rc = solve(p, backend="numpy", **kw), solve(p, backend="numba", **kw)
    assert rc.config["backend"] == "numba"
    assert (rc.status, rc.steps) == (rn.status, rn.steps), (rc.message, rn.message)
    lo, hi = p.bounds
    assert np.sum((rn.theta <= lo) | (rn.theta >= hi)) >= 1    # the box is active
    for f in ("x", "lam", "theta"):
        a, b = getattr(rn, f), getattr(rc, f)
        assert np.abs(a - b).max() <= TWIN_BOUND * max(1.0, np.abs(a).max()), f
    for col in ("V", "source", "port_power", "res_theta", "objective", "reflection"):
        a, b = rn.history[col], rc.history[col]
        ok = ~np.isnan(a)
        assert np.array_equal(ok, ~np.isnan(b)), col
        assert np.abs(a[ok] - b[ok]).max() <= TWIN_BOUND * max(1.0, np.abs(a[ok]).max()), col
    assert set(("V", "source", "port_power")) <= set(HISTORY_COLUMNS)
