"""Boundary terminations in scattering form (Lemma 2.5) and the boundary power (eq. 14).

Every check reconstructs the prescribed flow or effort from the waves with eqs. 39–40 and
compares it to the value prescribed. These are a few flops with a Θ of condition number below
10, so 1e-13 relative to max(1, max |value|) is about 500 ulps (measured ≤ 5e-16, Newton
solves included), far below the values checked (order 1).
"""

import numpy as np
import pytest

from wavecontrol.boundary import (Termination, boundary_power, effort_entering,
                                  effort_entering_implicit, flow_entering)

SQRT2 = np.sqrt(2.0)
B, n = 3, 4
TOL = 1e-13


def _theta(rng):
    L = np.tril(0.3 * rng.normal(size=(n, n)), -1) + np.diag(1.0 + rng.random(n))
    assert np.linalg.cond(L) < 10
    return L, np.linalg.inv(L)


def _x(Th, wp, wm):
    """eq. 39 for one node: x = Θ^{-1}(w+ + w-)/√2, rows of a batch."""
    return np.linalg.solve(Th, (wp + wm).T).T / SQRT2


def _lam(Th, wp, wm):
    """eq. 40 for one node: λ = Θᵀ(w+ − w-)/√2."""
    return (wp - wm) @ Th / SQRT2


def _rel(a, b):
    return float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))


def test_flow_prescribed(rng):
    Th, _ = _theta(rng)
    wm, f = rng.normal(size=(2, B, n))
    wp = flow_entering(wm, Th, f)                      # entering w+ at t = 0
    assert _rel(_x(Th, wp, wm), f) <= TOL


@pytest.mark.parametrize("side", ["start", "end"])
def test_effort_prescribed(rng, side):
    Th, Ti = _theta(rng)
    leaving, e = rng.normal(size=(2, B, n))
    entering = effort_entering(leaving, Ti, e, side)
    # at t = T the leaving wave is w+ and the entering one w-; at t = 0 the other way round
    wp, wm = (leaving, entering) if side == "end" else (entering, leaving)
    assert _rel(_lam(Th, wp, wm), e) <= TOL


def test_termination_object_dispatches(rng):
    Th, Ti = _theta(rng)
    w, value = rng.normal(size=(2, B, n))
    np.testing.assert_array_equal(Termination("start", "flow").entering(w, Th, Ti, value),
                                  flow_entering(w, Th, value))
    np.testing.assert_array_equal(Termination("end", "effort").entering(w, Th, Ti, value),
                                  effort_entering(w, Ti, value, "end"))
    with pytest.raises(ValueError, match="unknown termination kind 'voltage'; valid: flow, "
                                         "effort"):
        Termination("end", "voltage")
    with pytest.raises(ValueError, match="unknown termination side 'middle'; valid: start, end"):
        Termination("middle", "flow")
    with pytest.raises(ValueError, match="valid: explicit, implicit"):
        Termination("end", "effort", mode="lazy")


def test_implicit_newton_is_the_linear_solve_for_quadratic_loss(rng):
    """For ℓ = ½ xᵀQx + gᵀx the implicit termination is the linear solve
    (I + Θ^{-T} Q Θ^{-1}) s = 2w+ − √2 Θ^{-T} g, w- = s − w+ (derived from eqs. 39–40)."""
    Th, Ti = _theta(rng)
    M = rng.normal(size=(n, n))
    Q = M @ M.T + np.eye(n)
    g = rng.normal(size=n)
    wp = rng.normal(size=(B, n))
    wm = effort_entering_implicit(wp, Th, Ti, lambda x: x @ Q + g, lambda x, v: v @ Q)
    K = np.eye(n) + Ti.T @ Q @ Ti
    s = np.linalg.solve(K, (2.0 * wp - SQRT2 * g @ Ti).T).T
    assert _rel(wm, s - wp) <= TOL
    # and the reconstructed (x_N, λ_N) satisfy λ_N = ∇ℓ(x_N) with x_N from the new waves
    xN = _x(Th, wp, wm)
    assert _rel(_lam(Th, wp, wm), xN @ Q + g) <= TOL


def test_implicit_newton_nonquadratic_loss(rng):
    """ℓ = Σ_i (x_i⁴/4 + x_i²/2): Newton converges; λ_N = ∇ℓ(x_N) at the new waves."""
    Th, Ti = _theta(rng)
    wp = rng.normal(size=(B, n))

    def grad(x):
        return x ** 3 + x

    def hvp(x, v):
        return (3.0 * x ** 2 + 1.0) * v

    wm = effort_entering_implicit(wp, Th, Ti, grad, hvp)
    xN = _x(Th, wp, wm)
    assert _rel(_lam(Th, wp, wm), grad(xN)) <= TOL
    with pytest.raises(RuntimeError, match="Newton did not converge in 1 iterations"):
        effort_entering_implicit(wp, Th, Ti, grad, hvp, max_iter=1)


def test_boundary_power_is_x_dot_lambda(rng):
    """Lemma 2.5 / eq. 14: ½(‖w+‖² − ‖w-‖²) = x·λ for any full metric."""
    Th, _ = _theta(rng)
    wp, wm = rng.normal(size=(2, B, n))
    power = boundary_power(wp, wm)
    assert power.shape == (B,)
    xl = np.sum(_x(Th, wp, wm) * _lam(Th, wp, wm), axis=-1)
    assert _rel(power, xl) <= TOL
    # a flow-prescribed boundary with x = 0 and an effort-prescribed one with λ = 0 absorb no power
    wm0 = rng.normal(size=(B, n))
    assert np.abs(boundary_power(flow_entering(wm0, Th, np.zeros((B, n))), wm0)).max() <= TOL
