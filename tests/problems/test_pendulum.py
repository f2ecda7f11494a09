"""The damped pendulum: defaults per task, the ODE, its Jacobians and costs against finite
differences, the Euler layer maps (eqs. 61–63), the closed-form Hamiltonian minimizer, and
parameter validation.

Tolerances: a central difference with step h has truncation error h²·|f'''|/6 and round-off
eps·|f|/h. With h = 1e-5 and |f|, |f'''| ≤ 100 (g/l = 9.81, angles ≤ 4, torques ≤ 3) both are
≤ 2e-9, so 1e-7 absolute is safe (measured ≤ 1.6e-9) and still ≪ the derivatives (order 0.1–10).
Formulas written out are compared to 1e-14 relative (a few operations of round-off).
"""

import math

import numpy as np
import pytest

from problems import PROBLEMS, Pendulum, get_problem, pendulum
from problems.builder import EulerProblem

H = 1e-5
FD_TOL = 1e-7


def _fd(fun, x, h=H):
    """Central-difference Jacobian of fun at x: (out..., in)."""
    x = np.asarray(x, dtype=float)
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        cols.append((np.asarray(fun(x + e)) - np.asarray(fun(x - e))) / (2 * h))
    return np.stack(cols, axis=-1)


@pytest.fixture
def cont():
    """A pendulum with every parameter away from its default (and an off-diagonal Q)."""
    return Pendulum(g=9.0, l=0.7, m=1.3, b=0.25, Q=[[1.0, 0.2], [0.2, 0.5]], R=0.3,
                    Qf=[3.0, 0.7], T=1.5, x0=[0.4, -0.2], target=[math.pi, 0.1])


def test_registered_and_defaults():
    assert PROBLEMS["pendulum"] is pendulum
    p = get_problem("pendulum")
    assert isinstance(p, EulerProblem) and p.name == "pendulum"
    assert (p.N, p.n, p.m, p.batch) == (20, 2, 1, 1)
    assert p.T == pytest.approx(1.0, rel=1e-15) and p.dt == pytest.approx(0.05, rel=1e-15)
    np.testing.assert_allclose(p.x_in, [[math.pi - 0.1, 0.0]], rtol=1e-15)
    np.testing.assert_array_equal(p.theta0, np.zeros((20, 1)))
    c = p.continuous
    assert (c.g, c.l, c.mass, c.b) == (9.81, 1.0, 1.0, 0.1)
    np.testing.assert_array_equal(c.target, [math.pi, 0.0])
    np.testing.assert_array_equal(c.Q, np.diag([1.0, 0.1]))
    np.testing.assert_array_equal(c.R, [[0.1]])
    np.testing.assert_array_equal(c.Qf, np.diag([10.0, 1.0]))
    s = pendulum("swing-up")
    assert (s.N, s.T) == (40, 2.0)
    np.testing.assert_array_equal(s.x_in, [[0.0, 0.0]])
    assert s.params["task"] == "swing-up" and p.params["task"] == "stabilize"
    assert p.config()["g"] == 9.81


def test_overrides():
    p = pendulum("swing-up", g=3.7, l=2.0, m=0.5, b=0.0, Q=2.0, R=[[0.5]], Qf=[1.0, 2.0],
                 T=1.2, N=6, x0=[0.1, 0.2], target=[-math.pi, 0.0], theta0=0.25)
    c = p.continuous
    assert (c.g, c.l, c.mass, c.b) == (3.7, 2.0, 0.5, 0.0)
    np.testing.assert_array_equal(c.Q, 2.0 * np.eye(2))
    np.testing.assert_array_equal(c.Qf, np.diag([1.0, 2.0]))
    np.testing.assert_array_equal(c.target, [-math.pi, 0.0])
    assert p.N == 6 and p.dt == pytest.approx(0.2, rel=1e-15)
    np.testing.assert_array_equal(p.theta0, np.full((6, 1), 0.25))
    np.testing.assert_array_equal(pendulum(N=3, theta0=[1.0, 2.0, 3.0]).theta0,
                                  [[1.0], [2.0], [3.0]])


def test_dynamics_written_out(cont, rng):
    x = rng.normal(size=(5, 2))
    u = rng.normal(size=(5, 1))
    acc = -(9.0 / 0.7) * np.sin(x[:, 0]) - 0.25 * x[:, 1] + u[:, 0] / (1.3 * 0.7 ** 2)
    np.testing.assert_allclose(cont.f(x, u), np.stack([x[:, 1], acc], axis=1), rtol=1e-14)
    # broadcasting as the Euler layers use it: x (B, N, n), u (1, N, m)
    xb, ub = rng.normal(size=(1, 4, 2)), rng.normal(size=(1, 4, 1))
    assert cont.f(xb, ub).shape == (1, 4, 2)
    e = x - cont.target
    L = 0.5 * np.einsum("bi,ij,bj->b", e, cont.Q, e) + 0.15 * u[:, 0] ** 2
    np.testing.assert_allclose(cont.L(x, u), L, rtol=1e-14)
    np.testing.assert_allclose(cont.Phi(x), 0.5 * (3.0 * e[:, 0] ** 2 + 0.7 * e[:, 1] ** 2),
                               rtol=1e-14)


def test_jacobians_and_gradients_match_finite_differences(cont, rng):
    for _ in range(5):
        x = rng.uniform(-4, 4, size=2)
        u = rng.uniform(-3, 3, size=1)
        lam = rng.normal(size=2)
        checks = [
            (cont.jac_x(x, u), _fd(lambda z: cont.f(z, u), x)),
            (cont.jac_u(x, u), _fd(lambda z: cont.f(x, z), u)),
            (cont.L_x(x, u), _fd(lambda z: cont.L(z, u), x)),
            (cont.L_u(x, u), _fd(lambda z: cont.L(x, z), u)),
            (cont.Phi_x(x), _fd(cont.Phi, x)),
            (cont.Phi_xx(x), _fd(cont.Phi_x, x)),
            # λ̇ = −∂H/∂x with H = L + λᵀf
            (cont.costate_rhs(x, u, lam), -_fd(lambda z: cont.L(z, u) + lam @ cont.f(z, u), x)),
        ]
        for exact, fd in checks:
            assert exact.shape == fd.shape
            assert np.abs(exact - fd).max() <= FD_TOL


def test_argmin_hamiltonian_is_the_minimizer(cont, rng):
    """∂H/∂u = L_u + (∂f/∂u)ᵀλ = 0 at u* (to round-off), and H is larger at any other u."""
    x = rng.normal(size=(6, 2))
    lam = rng.normal(size=(6, 2))
    u = cont.argmin_hamiltonian(x, lam)
    assert u.shape == (6, 1)
    stat = cont.L_u(x, u) + np.einsum("bji,bj->bi", cont.jac_u(x, u), lam)
    assert np.abs(stat).max() <= 1e-14 * max(1.0, np.abs(lam).max())

    def ham(uu):
        return cont.L(x, uu) + np.einsum("bi,bi->b", lam, cont.f(x, uu))
    for d in (1e-3, -1e-3, 0.5):
        assert np.all(ham(u + d) > ham(u))


def test_euler_layers_match_finite_differences(rng):
    """f_k = x + Δt f, its jvp/vjps and the running cost gradients (eqs. 61–63)."""
    p = pendulum("swing-up", N=5, T=0.5)
    x = rng.uniform(-3, 3, size=(1, 5, 2))
    theta = rng.normal(size=(5, 1))
    np.testing.assert_allclose(p.layer_maps(x, theta),
                               x + 0.1 * p.continuous.f(x, theta[None]), rtol=1e-14)
    for k in range(5):
        Jk = _fd(lambda z: p.continuous.f(z, theta[k]), x[0, k])
        v, w = rng.normal(size=(1, 5, 2)), rng.normal(size=(1, 5, 2))
        jv = p.jvp(x, theta, v)[0, k]
        assert np.abs(jv - (v[0, k] + 0.1 * Jk @ v[0, k])).max() <= FD_TOL
        assert np.abs(p.vjp_x(x, theta, w)[0, k] - (w[0, k] + 0.1 * Jk.T @ w[0, k])).max() <= FD_TOL
        Gk = _fd(lambda z: x[0, k] + 0.1 * p.continuous.f(x[0, k], z), theta[k])
        assert np.abs(p.vjp_theta(x, theta, w)[k] - Gk.T @ w[0, k]).max() <= FD_TOL
    gx = _fd(lambda z: p.running_cost(z.reshape(1, 5, 2), theta), x.ravel()).reshape(x.shape)
    assert np.abs(p.running_grad_x(x, theta) - gx).max() <= FD_TOL
    gt = _fd(lambda z: p.running_cost(x, z.reshape(5, 1)), theta.ravel()).reshape(theta.shape)
    assert np.abs(p.running_grad_theta(x, theta) - gt).max() <= FD_TOL
    xN = x[:, -1]
    assert np.abs(p.terminal_grad(xN)[0] - _fd(lambda z: p.terminal_cost(z[None]), xN[0])
                  ).max() <= FD_TOL
    v = rng.normal(size=(1, 2))
    np.testing.assert_allclose(p.terminal_hvp(xN, v), v @ p.continuous.Qf, rtol=1e-14)


@pytest.mark.parametrize("kwargs, message", [
    ({"l": 0.0}, r"l \(m\) must be a finite number > 0, got 0\.0"),
    ({"l": -1.0}, r"l \(m\) must be a finite number > 0"),
    ({"m": 0.0}, r"m \(kg\) must be a finite number > 0"),
    ({"b": -0.1}, r"b \(1/s\) must be a finite number >= 0"),
    ({"g": -9.81}, r"g \(m/s\^2\) must be a finite number >= 0"),
    ({"g": float("nan")}, r"g \(m/s\^2\) must be a finite number >= 0"),
    ({"l": "1"}, r"l must be a real number, got '1'"),
    ({"R": 0.0}, r"R must be positive definite"),
    ({"R": -1.0}, r"R must be positive definite"),
    ({"Q": [1.0, -0.1]}, r"Q must be positive semidefinite"),
    ({"Qf": [[1.0, 2.0], [0.0, 1.0]]}, r"Qf must be symmetric"),
    ({"Q": [1.0, 2.0, 3.0]}, r"Q given as a diagonal must have 2 entries"),
    ({"T": 0.0}, r"T must be a finite number > 0"),
    ({"T": "2"}, r"T must be a finite number > 0"),
    ({"N": 0}, r"N must be an integer >= 1"),
    ({"N": 2.5}, r"N must be an integer >= 1"),
    ({"x0": [1.0, 2.0, 3.0]}, r"x0 must have shape \(2,\)"),
    ({"target": [np.inf, 0.0]}, r"target must be finite"),
    ({"N": 4, "theta0": np.zeros((3, 1))}, r"theta0 must be a scalar or have shape \(4, 1\)"),
    ({"theta0": np.nan}, r"theta0 must be finite"),
    ({"task": "balance"}, r"unknown pendulum task 'balance'; valid: stabilize, swing-up"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pendulum(**kwargs)


def test_unknown_keyword_is_refused():
    with pytest.raises(TypeError, match="length"):
        get_problem("pendulum", length=1.0)
