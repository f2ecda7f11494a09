"""Continuous-time control problems and their Euler discretization into layer maps (eqs. 61–63).

A continuous problem ``ẋ = f(x, u)``, ``J = Φ(x(T)) + ∫_0^T L(x, u) dt`` becomes the layered
problem ``f_k(x, u) = x + Δt f(x, u)``, ``R_k = Δt L(x_k, u_k)``, ``ℓ = Φ`` with ``Δt = T/N``
and the controls ``u_k`` as the parameters ``θ_k``. Every method is vectorized over leading axes:
``x`` has shape ``(..., n)`` and ``u`` shape ``(..., m)``.
"""

from __future__ import annotations

import numpy as np

from wavecontrol.grid import Layout
from wavecontrol.problem import AffineQuadraticProblem, LayeredProblem, _check_matrix


class ContinuousProblem:
    """``ẋ = f(x, u)`` on ``[0, T]`` from ``x0``, cost ``∫ L dt + Φ(x(T))``. Subclass and fill in."""

    name = "continuous"

    def __init__(self, n: int, m: int, T: float, x0):
        if not np.isfinite(T) or T <= 0:
            raise ValueError(f"T must be a finite number > 0, got {T!r}")
        self.n, self.m, self.T = int(n), int(m), float(T)
        self.x0 = _check_matrix("x0", x0, (self.n,))

    def f(self, x, u):
        raise NotImplementedError

    def jac_x(self, x, u):
        """∂f/∂x, shape (..., n, n)."""
        raise NotImplementedError

    def jac_u(self, x, u):
        """∂f/∂u, shape (..., n, m)."""
        raise NotImplementedError

    def L(self, x, u):
        raise NotImplementedError

    def L_x(self, x, u):
        raise NotImplementedError

    def L_u(self, x, u):
        raise NotImplementedError

    def Phi(self, x):
        raise NotImplementedError

    def Phi_x(self, x):
        raise NotImplementedError

    def Phi_xx(self, x):
        """∇²Φ, shape (..., n, n)."""
        raise NotImplementedError

    # second derivatives of the costs (the matched port); central differences of the gradients
    # unless a subclass gives them in closed form
    def L_xx(self, x, u):
        """∇²_xx L, shape (..., n, n)."""
        return _fd_jac(lambda d: self.L_x(x + d, u), x, self.n)

    def L_ux(self, x, u):
        """∂²L/∂u∂x, shape (..., m, n)."""
        return _fd_jac(lambda d: self.L_u(x + d, u), x, self.n)

    def L_uu(self, x, u):
        """∇²_uu L, shape (..., m, m)."""
        return _fd_jac(lambda d: self.L_u(x, u + d), u, self.m)

    # the continuous PMP (what the solve_bvp reference needs) ---------------------------------
    def argmin_hamiltonian(self, x, lam):
        """u*(x, λ) = argmin_u H with H = L(x, u) + λᵀ f(x, u): (..., n) → (..., m).

        Subclasses with a closed-form minimizer implement it; the Euler layer's Hamiltonian
        Δt L + λᵀ(x + Δt f) has the same minimizer, so the forward–backward sweep uses it too.
        """
        raise NotImplementedError(f"problem {self.name!r} has no closed-form Hamiltonian "
                                  "minimizer (argmin_hamiltonian)")

    def costate_rhs(self, x, u, lam):
        """λ̇ = −∂H/∂x = −(∇_x L + (∂f/∂x)ᵀ λ): (..., n)."""
        return -(self.L_x(x, u) + np.einsum("...ji,...j->...i", self.jac_x(x, u), lam))


class LinearQuadratic(ContinuousProblem):
    """``ẋ = A x + B u``, ``L = ½ xᵀQx + ½ uᵀRu``, ``Φ = ½ xᵀ Q_f x``."""

    name = "lqr"

    def __init__(self, A, B, Q, R, Qf, T, x0):
        A = np.atleast_2d(np.asarray(A, dtype=float))
        B = np.asarray(B, dtype=float)
        if A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be square, got shape {A.shape}")
        n = A.shape[0]
        B = B.reshape(n, -1) if B.ndim < 2 else B
        if B.shape[0] != n:
            raise ValueError(f"B must have {n} rows to match A, got shape {B.shape}")
        m = B.shape[1]
        super().__init__(n, m, T, x0)
        self.A = _check_matrix("A", A, (n, n))
        self.B = _check_matrix("B", B, (n, m))
        self.Q = _check_matrix("Q", _as_square("Q", Q, n), (n, n), symmetric=True,
                               positive="semidefinite")
        self.R = _check_matrix("R", _as_square("R", R, m), (m, m), symmetric=True,
                               positive="definite")
        self.Qf = _check_matrix("Qf", _as_square("Qf", Qf, n), (n, n), symmetric=True,
                                positive="semidefinite")

    def f(self, x, u):
        return x @ self.A.T + u @ self.B.T

    def jac_x(self, x, u):
        return np.broadcast_to(self.A, x.shape[:-1] + (self.n, self.n))

    def jac_u(self, x, u):
        return np.broadcast_to(self.B, x.shape[:-1] + (self.n, self.m))

    def L(self, x, u):
        return 0.5 * np.einsum("...i,ij,...j->...", x, self.Q, x) + 0.5 * np.einsum(
            "...i,ij,...j->...", u, self.R, u)

    def L_x(self, x, u):
        return x @ self.Q

    def L_u(self, x, u):
        return u @ self.R

    def Phi(self, x):
        return 0.5 * np.einsum("...i,ij,...j->...", x, self.Qf, x)

    def Phi_x(self, x):
        return x @ self.Qf

    def Phi_xx(self, x):
        return np.broadcast_to(self.Qf, x.shape[:-1] + (self.n, self.n))

    def L_xx(self, x, u):
        return np.broadcast_to(self.Q, x.shape[:-1] + (self.n, self.n))

    def L_ux(self, x, u):
        return np.zeros(x.shape[:-1] + (self.m, self.n))

    def L_uu(self, x, u):
        return np.broadcast_to(self.R, x.shape[:-1] + (self.m, self.m))

    def argmin_hamiltonian(self, x, lam):
        """u* = −R⁻¹Bᵀλ (R symmetric): (..., n) → (..., m)."""
        return -(lam @ self.B) @ np.linalg.inv(self.R)


def _fd_jac(g, z, size, h=1e-5):
    """Central-difference Jacobian of ``g(d)`` at d = 0 along the last axis of ``z``:
    (..., rows) per column → (..., rows, size)."""
    cols = []
    for j in range(size):
        d = np.zeros_like(np.broadcast_to(z, np.shape(z)), dtype=float)
        d[..., j] = h
        cols.append((g(d) - g(-d)) / (2 * h))
    return np.stack(cols, axis=-1)


def _as_square(name, M, n):
    M = np.asarray(M, dtype=float)
    if M.ndim == 0:
        return M * np.eye(n)
    if M.ndim == 1:
        if M.size != n:
            raise ValueError(f"{name} given as a diagonal must have {n} entries, got {M.size}")
        return np.diag(M)
    return M


class EulerProblem(LayeredProblem):
    """Layered problem from any :class:`ContinuousProblem` by explicit Euler (eqs. 61–63)."""

    def __init__(self, continuous: ContinuousProblem, N: int, theta0=None):
        if int(N) != N or N < 1:
            raise ValueError(f"N must be an integer >= 1, got {N!r}")
        self.continuous = continuous
        self.name = continuous.name
        theta0 = np.zeros((N, continuous.m)) if theta0 is None else theta0
        super().__init__(Layout(np.full(N + 1, continuous.n)), continuous.T / N,
                         continuous.x0, theta0)

    def layer_maps(self, x, theta):
        return x + self.dt * self.continuous.f(x, theta[None])

    def jvp(self, x, theta, v):
        return v + self.dt * np.einsum("...ij,...j->...i", self.continuous.jac_x(x, theta[None]), v)

    def vjp_x(self, x, theta, w):
        return w + self.dt * np.einsum("...ji,...j->...i", self.continuous.jac_x(x, theta[None]), w)

    def vjp_theta(self, x, theta, w):
        Ju = self.continuous.jac_u(x, np.broadcast_to(theta, x.shape[:-1] + (theta.shape[-1],)))
        return self.dt * np.einsum("bkji,bkj->ki", Ju, w)

    def running_cost(self, x, theta):
        return float(self.dt * np.sum(self.continuous.L(x, theta[None])))

    def running_grad_x(self, x, theta):
        return self.dt * self.continuous.L_x(x, theta[None])

    def running_grad_theta(self, x, theta):
        u = np.broadcast_to(theta, x.shape[:-1] + (theta.shape[-1],))
        return self.dt * np.sum(self.continuous.L_u(x, u), axis=0)

    def terminal_cost(self, xN):
        return float(np.sum(self.continuous.Phi(xN)))

    def terminal_grad(self, xN):
        return self.continuous.Phi_x(xN)

    def terminal_hvp(self, xN, v):
        return np.einsum("...ij,...j->...i", self.continuous.Phi_xx(xN), v)

    def layer_jacobians(self, x, theta):
        c, x0 = self.continuous, x[0]
        A = np.eye(self.n) + self.dt * c.jac_x(x0, theta)
        return A, self.dt * np.array(c.jac_u(x0, theta))

    def running_hessians(self, x, theta):
        c, x0 = self.continuous, x[0]
        return (self.dt * np.array(c.L_xx(x0, theta)), self.dt * np.array(c.L_ux(x0, theta)),
                self.dt * np.array(c.L_uu(x0, theta)))

    def terminal_hessian(self, xN):
        return np.array(self.continuous.Phi_xx(xN[0]))

    def node_kernel(self):
        """The continuous problem's Euler node functions (``continuous.node_kernel(dt)``), when
        it gives them."""
        make = getattr(self.continuous, "node_kernel", None)
        return None if make is None else make(self.dt)

    def _one_layer_map(self, k, xk, theta):
        return xk + self.dt * self.continuous.f(xk, theta[k][None])

    def _one_layer_vjp(self, k, xk, theta, w):
        J = self.continuous.jac_x(xk, theta[k][None])
        return w + self.dt * np.einsum("...ji,...j->...i", J, w)


def euler_discretize(continuous: ContinuousProblem, N: int, theta0=None) -> LayeredProblem:
    """Explicit-Euler layered problem (eqs. 61–63).

    A :class:`LinearQuadratic` problem becomes an :class:`AffineQuadraticProblem`, which the
    compiled ``affine`` kernels run; any other problem becomes an :class:`EulerProblem`.
    """
    if int(N) != N or N < 1:
        raise ValueError(f"N must be an integer >= 1, got {N!r}")
    N = int(N)
    if isinstance(continuous, LinearQuadratic):
        dt = continuous.T / N
        n, m = continuous.n, continuous.m
        prob = AffineQuadraticProblem(
            A=np.broadcast_to(np.eye(n) + dt * continuous.A, (N, n, n)),
            B=np.broadcast_to(dt * continuous.B, (N, n, m)),
            c=np.zeros((N, n)),
            Q=np.broadcast_to(dt * continuous.Q, (N, n, n)),
            R=np.broadcast_to(dt * continuous.R, (N, m, m)),
            Qf=continuous.Qf, gf=np.zeros(n), dt=dt, x_in=continuous.x0, theta0=theta0)
        prob.name = continuous.name
        prob.continuous = continuous
        return prob
    return EulerProblem(continuous, N, theta0)
