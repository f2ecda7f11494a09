"""LQR problems: defaults, the explicit-Euler discretization (eqs. 61–63), and the exact
discrete PMP quantities of the affine family (forward pass, adjoint, objective, gradient).

Tolerances: the discretized matrices are one multiply-add away from the inputs (compared to
1e-15 absolute, entries of order 1); recursions over N = 20 layers accumulate a few ulps per
layer (1e-13 relative); the central finite difference of a quadratic J is exact up to the
cancellation error eps·|J|/h ≈ 1e-16·4/1e-3 ≈ 1e-12 (measured 8.5e-13), so 1e-9 absolute is
safe and still 1e-9 of the gradient's size (order 1).
"""

import numpy as np
import pytest

from problems import get_problem, lqr, random_lqr
from problems.builder import LinearQuadratic
from wavecontrol.problem import AffineQuadraticProblem

DEFAULT_A = np.array([[0.0, 1.0], [0.0, 0.0]])
DEFAULT_B = np.array([[0.0], [1.0]])


def test_defaults_are_the_double_integrator():
    p = lqr()
    assert isinstance(p, AffineQuadraticProblem)
    assert (p.N, p.n, p.m, p.batch) == (20, 2, 1, 1)
    assert p.T == pytest.approx(2.0, rel=1e-15) and p.dt == pytest.approx(0.1, rel=1e-15)
    cont = p.continuous
    assert isinstance(cont, LinearQuadratic)
    np.testing.assert_array_equal(cont.A, DEFAULT_A)
    np.testing.assert_array_equal(cont.B, DEFAULT_B)
    np.testing.assert_array_equal(cont.Q, np.eye(2))
    np.testing.assert_array_equal(cont.R, [[0.1]])
    np.testing.assert_array_equal(cont.Qf, 5.0 * np.eye(2))
    assert cont.T == 2.0
    np.testing.assert_array_equal(cont.x0, [1.0, 0.0])
    np.testing.assert_array_equal(p.x_in, [[1.0, 0.0]])
    np.testing.assert_array_equal(p.theta0, np.zeros((20, 1)))


def test_euler_discretization():
    """f_k(x, u) = x + Δt(Ax + Bu): A_k = I + Δt A, B_k = Δt B, c_k = 0; R_k = Δt L:
    Q_k = Δt Q, R_k = Δt R; ℓ = Φ: Q_f, g_f = 0 (eqs. 61–63)."""
    p = lqr()
    dt = 0.1
    for k in range(p.N):
        np.testing.assert_allclose(p.A[k], np.eye(2) + dt * DEFAULT_A, rtol=0, atol=1e-15)
        np.testing.assert_allclose(p.B[k], dt * DEFAULT_B, rtol=0, atol=1e-15)
        np.testing.assert_allclose(p.Q[k], dt * np.eye(2), rtol=0, atol=1e-15)
        np.testing.assert_allclose(p.R[k], [[dt * 0.1]], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(p.c, np.zeros((20, 2)))
    np.testing.assert_array_equal(p.Qf, 5.0 * np.eye(2))
    np.testing.assert_array_equal(p.gf, np.zeros(2))


def test_overrides_and_matrix_forms():
    p = lqr(N=8, T=4.0, Q=[1.0, 2.0], R=[[0.5]], Qf=[[2.0, 0.5], [0.5, 3.0]], x0=[0.5, -1.0])
    assert p.N == 8 and p.dt == pytest.approx(0.5, rel=1e-15)
    np.testing.assert_allclose(p.Q[3], 0.5 * np.diag([1.0, 2.0]), rtol=0, atol=1e-15)
    np.testing.assert_allclose(p.R[0], [[0.25]], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(p.Qf, [[2.0, 0.5], [0.5, 3.0]])
    np.testing.assert_array_equal(p.x_in, [[0.5, -1.0]])
    assert p.params["N"] == 8 and p.params["T"] == 4.0
    assert get_problem("lqr", N=8).N == 8
    with pytest.raises(ValueError, match=r"unknown problem 'pendulum2'; valid: \[.*'lqr'.*\]"):
        get_problem("pendulum2")


def test_random_lqr_is_seeded_and_unstable():
    p1, p2, p3 = random_lqr(seed=0), random_lqr(seed=0), random_lqr(seed=1)
    assert (p1.n, p1.m, p1.N) == (4, 2, 20)
    np.testing.assert_array_equal(p1.A, p2.A)
    np.testing.assert_array_equal(p1.x_in, p2.x_in)
    assert not np.array_equal(p1.A, p3.A)
    # the continuous A has an eigenvalue with real part >= 0.5 (exactly 0.5 after the shift)
    assert np.linalg.eigvals(p1.continuous.A).real.max() >= 0.5 - 1e-12
    stable = random_lqr(seed=0, unstable=False)
    assert not np.array_equal(stable.A, p1.A)


def _forward_loop(p, theta):
    x = [p.x_in[0]]
    for k in range(p.N):
        x.append(p.A[k] @ x[-1] + p.B[k] @ theta[k] + p.c[k])
    return np.array(x)


def test_forward_adjoint_objective_written_out(rng):
    p = random_lqr(seed=3)
    theta = rng.normal(size=(p.N, p.m))
    x = _forward_loop(p, theta)
    np.testing.assert_allclose(p.forward(theta)[0], x, rtol=1e-13, atol=1e-13)
    # λ_N = Q_f x_N, λ_k = A_kᵀ λ_{k+1} + Q_k x_k (eqs. 50–51)
    lam = [p.Qf @ x[-1]]
    for k in range(p.N - 1, -1, -1):
        lam.insert(0, p.A[k].T @ lam[0] + p.Q[k] @ x[k])
    lam = np.array(lam)
    np.testing.assert_allclose(p.adjoint(x[None], theta)[0], lam, rtol=1e-13,
                               atol=1e-13 * np.abs(lam).max())
    J = 0.5 * x[-1] @ p.Qf @ x[-1] + sum(0.5 * x[k] @ p.Q[k] @ x[k]
                                         + 0.5 * theta[k] @ p.R[k] @ theta[k]
                                         for k in range(p.N))
    assert p.objective(theta) == pytest.approx(J, rel=1e-13)
    # gradient (eq. 52): R_k θ_k + B_kᵀ λ_{k+1}
    g = np.array([p.R[k] @ theta[k] + p.B[k].T @ lam[k + 1] for k in range(p.N)])
    np.testing.assert_allclose(p.gradient(theta), g, rtol=1e-13, atol=1e-13 * np.abs(g).max())
    # residuals vanish at the forward/adjoint fields except r_θ, which is the gradient
    r_x, r_l, r_t = p.residuals(x[None], lam[None], theta)
    assert np.abs(r_x).max() <= 1e-13 * np.abs(x).max()
    assert np.abs(r_l).max() <= 1e-13 * np.abs(lam).max()
    np.testing.assert_allclose(r_t, g, rtol=1e-13, atol=1e-13 * np.abs(g).max())


def test_gradient_matches_finite_differences(rng):
    p = lqr()
    theta = rng.normal(size=(p.N, p.m))
    g = p.gradient(theta)
    h = 1e-3
    fd = np.zeros_like(theta)
    for k in range(p.N):
        for i in range(p.m):
            e = np.zeros_like(theta)
            e[k, i] = h
            fd[k, i] = (p.objective(theta + e) - p.objective(theta - e)) / (2 * h)
    assert np.abs(fd - g).max() <= 1e-9
    assert np.abs(g).max() > 1e-3


def test_affine_problem_with_offsets_and_batch(rng):
    """c_k ≠ 0, g_f ≠ 0 and a batch of two initial states: J sums over the batch."""
    N, n, m = 5, 3, 2
    A = np.eye(n) + 0.1 * rng.normal(size=(N, n, n))
    Bm = rng.normal(size=(N, n, m))
    c = rng.normal(size=(N, n))
    Q = np.broadcast_to(0.1 * np.eye(n), (N, n, n))
    R = np.broadcast_to(0.2 * np.eye(m), (N, m, m))
    gf = rng.normal(size=n)
    x_in = rng.normal(size=(2, n))
    p = AffineQuadraticProblem(A, Bm, c, Q, R, np.eye(n), gf, 0.1, x_in)
    assert p.batch == 2
    theta = rng.normal(size=(N, m))
    x = p.forward(theta)
    J = 0.0
    for b in range(2):
        xb = x_in[b]
        for k in range(N):
            J += 0.5 * xb @ Q[k] @ xb
            xb = A[k] @ xb + Bm[k] @ theta[k] + c[k]
            np.testing.assert_allclose(x[b, k + 1], xb, rtol=1e-13, atol=1e-13)
        J += 0.5 * xb @ xb + gf @ xb
    J += sum(0.5 * theta[k] @ R[k] @ theta[k] for k in range(N))
    assert p.objective(theta) == pytest.approx(J, rel=1e-13)
