"""Exact references: the discrete Riccati solution (discrete PMP, eqs. 50–52) and the
continuous Riccati ODE (O(Δt) distance of the Euler-discretized optimum from the continuous one).
"""

import numpy as np
import pytest
from scipy.integrate import simpson

from problems import lqr, random_lqr
from problems.builder import LinearQuadratic, euler_discretize
from solvers.riccati import continuous_riccati, discrete_riccati
from wavecontrol.problem import AffineQuadraticProblem

PROBLEMS = {"default": lambda: lqr(), "random": lambda: random_lqr(n=4, m=2, seed=0,
                                                                   unstable=True)}


def _offset_problem():
    """An affine problem with c_k ≠ 0 and g_f ≠ 0 (exercises the affine Riccati terms)."""
    rng = np.random.default_rng(5)
    N, n, m = 12, 3, 2
    return AffineQuadraticProblem(
        A=np.eye(n) + 0.1 * rng.normal(size=(N, n, n)), B=0.3 * rng.normal(size=(N, n, m)),
        c=0.1 * rng.normal(size=(N, n)), Q=np.broadcast_to(0.1 * np.eye(n), (N, n, n)),
        R=np.broadcast_to(0.05 * np.eye(m), (N, m, m)), Qf=2.0 * np.eye(n),
        gf=rng.normal(size=n), dt=0.1, x_in=rng.normal(size=n))


def _hessian(p):
    """∇²J by differences of exact gradients (exact for quadratic J, up to round-off)."""
    g0 = p.gradient(np.zeros_like(p.theta0))
    d = g0.size
    H = np.zeros((d, d))
    for i in range(d):
        e = np.zeros(d)
        e[i] = 1.0
        H[:, i] = (p.gradient(e.reshape(g0.shape)) - g0).ravel()
    return H, g0


@pytest.mark.parametrize("make", [PROBLEMS["default"], PROBLEMS["random"], _offset_problem],
                         ids=["default", "random", "offsets"])
def test_discrete_riccati_solves_the_discrete_pmp(make):
    """Residuals r_x, r_λ, r_θ of the Riccati solution ≤ 1e-12 (they are the round-off of one
    recursion over N ≤ 20 layers with entries of order 1: measured ≤ 3e-16)."""
    p = make()
    ref = discrete_riccati(p)
    assert ref.success
    assert max(ref.residuals.values()) <= 1e-12
    r_x, r_l, r_t = p.residuals(ref.x, ref.lam, ref.theta)
    assert max(np.abs(r_x).max(), np.abs(r_l).max(), np.abs(r_t).max()) <= 1e-12
    assert ref.objective == pytest.approx(p.objective(ref.theta), rel=1e-14)


@pytest.mark.parametrize("make", [PROBLEMS["default"], PROBLEMS["random"], _offset_problem],
                         ids=["default", "random", "offsets"])
def test_discrete_riccati_is_the_minimizer(make, rng):
    """θ* equals the solution of the normal equations H θ = −∇J(0) (an independent dense
    solve): to 1e-10 (cond(H) ≤ 500 times round-off 1e-16 of H, measured 8e-13); and every
    perturbation raises J by exactly ½ ε² dᵀHd > 0."""
    p = make()
    ref = discrete_riccati(p)
    H, g0 = _hessian(p)
    theta = np.linalg.solve(H, -g0.ravel()).reshape(g0.shape)
    assert np.abs(theta - ref.theta).max() <= 1e-10 * max(1.0, np.abs(theta).max())
    J0 = p.objective(ref.theta)
    for _ in range(10):
        d = rng.normal(size=ref.theta.shape)
        for eps in (1e-1, 1e-3):
            rise = p.objective(ref.theta + eps * d) - J0
            expected = 0.5 * eps ** 2 * d.ravel() @ H @ d.ravel()
            assert rise > 0
            # the rise is exact to the cancellation error of J (|J| ~ 1, ulp ~ 1e-16)
            assert rise == pytest.approx(expected, rel=1e-6, abs=1e-13)


def test_discrete_riccati_rejects_other_problems():
    cont = LinearQuadratic([[0.0]], [[1.0]], 1.0, 1.0, 1.0, 1.0, [1.0])
    with pytest.raises(TypeError, match="AffineQuadraticProblem"):
        discrete_riccati(cont)
    p = AffineQuadraticProblem(np.ones((2, 1, 1)), np.ones((2, 1, 1)), np.zeros((2, 1)),
                               np.ones((2, 1, 1)), np.ones((2, 1, 1)), np.ones((1, 1)),
                               np.zeros(1), 0.5, np.ones((3, 1)))
    with pytest.raises(ValueError, match="batch = 1, got 3"):
        discrete_riccati(p)
    # an Euler problem of a linear-quadratic continuous problem is affine, so it is accepted
    assert discrete_riccati(euler_discretize(cont, 4)).success


@pytest.mark.parametrize("make", [PROBLEMS["default"], PROBLEMS["random"]],
                         ids=["default", "random"])
def test_continuous_riccati_is_consistent(make):
    """u = −R⁻¹Bᵀλ, λ = P x, and the reported cost ½x0ᵀP(0)x0 equals ∫L dt + Φ(x(T)) along the
    returned trajectory (Simpson on 2001 points: quadrature error ~1e-12, measured 4e-12
    relative; the ODE tolerances are 1e-11), bound 1e-9 relative."""
    p = make()
    cont = p.continuous
    c = continuous_riccati(cont, np.linspace(0.0, p.T, 2001))
    np.testing.assert_allclose(c["u"], -c["lam"] @ cont.B @ np.linalg.inv(cont.R).T,
                               rtol=1e-12, atol=1e-12)
    L = (0.5 * np.einsum("ki,ij,kj->k", c["x"], cont.Q, c["x"])
         + 0.5 * np.einsum("ki,ij,kj->k", c["u"], cont.R, c["u"]))
    J = simpson(L, x=c["t"]) + 0.5 * c["x"][-1] @ cont.Qf @ c["x"][-1]
    assert J == pytest.approx(c["cost"], rel=1e-9)
    np.testing.assert_allclose(c["x"][0], cont.x0, rtol=0, atol=1e-14)
    # λ(T) = Q_f x(T) (eq. 3 of the continuous PMP)
    np.testing.assert_allclose(c["lam"][-1], cont.Qf @ c["x"][-1], rtol=1e-9, atol=1e-9)


def test_euler_optimum_approaches_continuous_at_first_order():
    """Max-abs distance of the discrete Riccati solution from the continuous optimum at the
    nodes, for N = 20, 40, 80 (explicit Euler is first order): every ratio of successive
    distances is ≈ 2 (in [1.85, 2.15]) and every observed order is in [0.9, 1.1].
    Measured orders: x 1.05, 1.03; λ 1.04, 1.02; u 0.92, 0.96; cost 1.04, 1.02."""
    dist = {"x": [], "lam": [], "u": [], "cost": []}
    for N in (20, 40, 80):
        p = lqr(N=N)
        ref = discrete_riccati(p)
        c = continuous_riccati(p.continuous, np.arange(N + 1) * p.dt)
        dist["x"].append(np.abs(ref.x[0] - c["x"]).max())
        dist["lam"].append(np.abs(ref.lam[0] - c["lam"]).max())
        dist["u"].append(np.abs(ref.theta - c["u"][:-1]).max())
        dist["cost"].append(abs(ref.objective - c["cost"]))
    for key, d in dist.items():
        ratios = np.array(d[:-1]) / np.array(d[1:])
        orders = np.log2(ratios)
        assert np.all((ratios >= 1.85) & (ratios <= 2.15)), (key, ratios)
        assert np.all((orders >= 0.9) & (orders <= 1.1)), (key, orders)
