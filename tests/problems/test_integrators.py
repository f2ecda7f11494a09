"""One-step integrators: exact steps of a linear ODE, Jacobians against finite differences,
the global order of convergence, names."""

import numpy as np
import pytest

from problems.integrators import ORDERS, check_integrator, one_step


class _Linear:
    """ẋ = a x + b u (scalar a, b; n = m = 1)."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def f(self, x, u, t):
        return self.a * x + self.b * u

    def f_x(self, x, u, t):
        return np.full(np.broadcast_shapes(x.shape[:-1], u.shape[:-1]) + (1, 1), self.a)

    def f_u(self, x, u, t):
        return np.full(np.broadcast_shapes(x.shape[:-1], u.shape[:-1]) + (1, 1), self.b)


class _Nonlinear:
    """ẋ1 = x2 u1, ẋ2 = −sin x1 + u2 cos t (n = m = 2)."""

    def f(self, x, u, t):
        return np.stack([x[..., 1] * u[..., 0], -np.sin(x[..., 0]) + u[..., 1] * np.cos(t)],
                        axis=-1)

    def f_x(self, x, u, t):
        lead = np.broadcast_shapes(x.shape[:-1], u.shape[:-1], np.shape(t))
        J = np.zeros(lead + (2, 2))
        J[..., 0, 1] = u[..., 0]
        J[..., 1, 0] = -np.cos(x[..., 0])
        return J

    def f_u(self, x, u, t):
        lead = np.broadcast_shapes(x.shape[:-1], u.shape[:-1], np.shape(t))
        J = np.zeros(lead + (2, 2))
        J[..., 0, 0] = x[..., 1]
        J[..., 1, 1] = np.cos(t) * np.ones(lead)
        return J


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_linear_step_is_the_truncated_exponential(method):
    """For ẋ = a x + b u with u held, each method's step is the Taylor polynomial of its order:
    A = Σ_{j≤p} (ah)^j/j!, B = h b Σ_{j<p} (ah)^j/(j+1)! (exact algebra; to 1e-15)."""
    a, b, h = -0.7, 1.3, 0.3
    p = ORDERS[method]
    F, A, B = one_step(_Linear(a, b), np.array([2.0]), np.array([0.5]), 0.0, h, method)
    fact = np.cumprod([1.0] + list(range(1, p + 2)))
    A_ref = sum((a * h) ** j / fact[j] for j in range(p + 1))
    B_ref = h * b * sum((a * h) ** j / fact[j + 1] for j in range(p))
    assert A[0, 0] == pytest.approx(A_ref, abs=1e-15)
    assert B[0, 0] == pytest.approx(B_ref, abs=1e-15)
    assert F[0] == pytest.approx(A_ref * 2.0 + B_ref * 0.5, abs=1e-15)


@pytest.mark.parametrize("method, substeps", [("euler", 1), ("midpoint", 3), ("rk4", 1),
                                              ("rk4", 4), ("rk2", 2)])
def test_jacobians_match_finite_differences(method, substeps, rng):
    """Central differences (h = 1e-6, error ~1e-11) of the step agree with the chain-rule
    Jacobians to 1e-8; vectorized over leading axes."""
    dyn = _Nonlinear()
    x = rng.normal(size=(3, 2))
    u = rng.normal(size=(3, 2))
    t = np.array([0.1, 0.5, 0.9])
    F, A, B = one_step(dyn, x, u, t, 0.2, method, substeps)
    assert F.shape == (3, 2) and A.shape == (3, 2, 2) and B.shape == (3, 2, 2)
    h = 1e-6
    for j in range(2):
        d = np.zeros(2)
        d[j] = h
        fa = (one_step(dyn, x + d, u, t, 0.2, method, substeps, jacobians=False)
              - one_step(dyn, x - d, u, t, 0.2, method, substeps, jacobians=False)) / (2 * h)
        fb = (one_step(dyn, x, u + d, t, 0.2, method, substeps, jacobians=False)
              - one_step(dyn, x, u - d, t, 0.2, method, substeps, jacobians=False)) / (2 * h)
        assert np.abs(A[..., j] - fa).max() <= 1e-8
        assert np.abs(B[..., j] - fb).max() <= 1e-8
    F1 = one_step(dyn, x, u, t, 0.2, method, substeps, jacobians=False)
    assert np.array_equal(F, F1)


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_global_order(method):
    """ẋ = −x² from x = 1 over T = 1 has x(1) = 1/2; the global error at N = 16, 32, 64 falls
    at the method's order (observed orders within 0.15 of it)."""
    class Riccati:
        def f(self, x, u, t):
            return -x * x

        def f_x(self, x, u, t):
            return (-2 * x)[..., None]

        def f_u(self, x, u, t):
            return np.zeros(x.shape + (1,))

    errs = []
    for N in (16, 32, 64):
        x = np.array([1.0])
        for k in range(N):
            x = one_step(Riccati(), x, np.zeros(1), k / N, 1.0 / N, method, jacobians=False)
        errs.append(abs(x[0] - 0.5))
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(orders - ORDERS[method]) <= 0.15), orders


def test_names():
    assert check_integrator("rk2") == "midpoint"
    with pytest.raises(ValueError, match="unknown integrator 'heun'; valid: euler, midpoint, rk4"):
        check_integrator("heun")
    with pytest.raises(ValueError, match="substeps"):
        one_step(_Linear(1.0, 1.0), np.ones(1), np.ones(1), 0.0, 0.1, "rk4", substeps=1.5)
