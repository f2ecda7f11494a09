"""The damped pendulum with a torque: ``θ̈ = −(g/l) sin θ − b θ̇ + u/(m l²)``.

State ``x = (angle, angular velocity)`` (rad, rad/s), angle 0 hanging down and π upright;
control ``u`` a torque (N m). Running cost ``L = ½ eᵀQe + ½ uᵀRu`` and terminal cost
``Φ = ½ eᵀ Q_f e`` with the state error ``e = x − target`` (no angle wrapping: the cost is a
plain quadratic in the angle). Explicit Euler makes it a layered problem (eqs. 61–63) through
:func:`problems.builder.euler_discretize`.

Tasks (``target`` upright, ``(π, 0)``, in both):

- ``"stabilize"``: start near upright, ``x0 = (π − 0.1, 0)``; ``T = 1``, ``N = 20``.
- ``"swing-up"``: start hanging at rest, ``x0 = (0, 0)``; ``T = 2``, ``N = 40``.

J is not convex in either task (∇²J has negative eigenvalues, e.g. at the constant control
θ ≡ 5: −0.44 for swing-up, −0.20 for stabilize), although on the default swing-up L-BFGS reached
the same stationary point from seven different initial guesses (docs/findings.md).

Both keep Δt = 0.05. The horizon sets the conditioning: the upright equilibrium is unstable
(rate √(g/l) = 3.1/s), so x_N sees early controls amplified by about e^{√(g/l)(T − t)} and the
condition number of ∇²J at the optimum grows about like e^{5.7 T}, close to e^{2√(g/l) T}
(stabilize: 14, 234, 4.1e3, 7.2e4 at T = 0.5, 1, 1.5, 2; docs/findings.md). First-order methods
(backprop, sweep, the wave solver) need a number of steps proportional to it.

Both use ``Q = diag(1, 0.1)``, ``R = 0.1``, ``Q_f = diag(10, 1)``, ``g = 9.81``, ``l = 1``,
``m = 1``, ``b = 0.1`` unless overridden.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from wavecontrol.problem import _check_matrix

from .builder import ContinuousProblem, _as_square, euler_discretize

TASKS = {
    "stabilize": {"T": 1.0, "N": 20, "x0": [math.pi - 0.1, 0.0]},
    "swing-up": {"T": 2.0, "N": 40, "x0": [0.0, 0.0]},
}
#: settings shared by both tasks
DEFAULTS = {"g": 9.81, "l": 1.0, "m": 1.0, "b": 0.1, "Q": [1.0, 0.1], "R": 0.1,
            "Qf": [10.0, 1.0], "target": [math.pi, 0.0]}


class Pendulum(ContinuousProblem):
    """Continuous damped pendulum (``n = 2`` states, ``m = 1`` control).

    Parameters
    ----------
    g : float ≥ 0 (m/s²); l : float > 0 (m); m : float > 0 (kg); b : float ≥ 0 (1/s)
    Q : (2, 2) symmetric positive semidefinite; R : (1, 1) positive definite;
    Qf : (2, 2) symmetric positive semidefinite (each also as a scalar or a diagonal)
    T : float > 0 (s); x0 : (2,); target : (2,)
    """

    name = "pendulum"

    def __init__(self, g, l, m, b, Q, R, Qf, T, x0, target):
        super().__init__(2, 1, T, x0)
        self.g = _real("g", g, lower=0.0, strict=False, unit="m/s^2")
        self.l = _real("l", l, lower=0.0, strict=True, unit="m")
        self.mass = _real("m", m, lower=0.0, strict=True, unit="kg")
        self.b = _real("b", b, lower=0.0, strict=False, unit="1/s")
        self.Q = _check_matrix("Q", _as_square("Q", Q, 2), (2, 2), symmetric=True,
                               positive="semidefinite")
        self.R = _check_matrix("R", _as_square("R", R, 1), (1, 1), symmetric=True,
                               positive="definite")
        self.Qf = _check_matrix("Qf", _as_square("Qf", Qf, 2), (2, 2), symmetric=True,
                                positive="semidefinite")
        self.target = _check_matrix("target", target, (2,))
        self.w2 = self.g / self.l                    # (g/l), 1/s²
        self.gain = 1.0 / (self.mass * self.l ** 2)  # torque → angular acceleration
        self.G = np.array([[0.0], [self.gain]])      # ∂f/∂u (constant: control-affine)
        self.R_inv = np.linalg.inv(self.R)           # symmetric

    # dynamics ------------------------------------------------------------------------------
    def f(self, x, u):
        acc = -self.w2 * np.sin(x[..., 0]) - self.b * x[..., 1] + self.gain * u[..., 0]
        out = np.empty(acc.shape + (2,))
        out[..., 0] = x[..., 1]
        out[..., 1] = acc
        return out

    def jac_x(self, x, u):
        """∂f/∂x = [[0, 1], [−(g/l) cos θ, −b]], shape x.shape[:-1] + (2, 2)."""
        J = np.empty(x.shape[:-1] + (2, 2))
        J[..., 0, 0] = 0.0
        J[..., 0, 1] = 1.0
        J[..., 1, 0] = -self.w2 * np.cos(x[..., 0])
        J[..., 1, 1] = -self.b
        return J

    def jac_u(self, x, u):
        """∂f/∂u = [[0], [1/(m l²)]], shape x.shape[:-1] + (2, 1)."""
        return np.broadcast_to(self.G, x.shape[:-1] + (2, 1))

    # costs ---------------------------------------------------------------------------------
    def L(self, x, u):
        e = x - self.target
        return 0.5 * np.einsum("...i,ij,...j->...", e, self.Q, e) + 0.5 * np.einsum(
            "...i,ij,...j->...", u, self.R, u)

    def L_x(self, x, u):
        return (x - self.target) @ self.Q

    def L_u(self, x, u):
        return u @ self.R

    def L_xx(self, x, u):
        return np.broadcast_to(self.Q, x.shape[:-1] + (2, 2))

    def L_ux(self, x, u):
        return np.zeros(x.shape[:-1] + (1, 2))

    def L_uu(self, x, u):
        return np.broadcast_to(self.R, x.shape[:-1] + (1, 1))

    def Phi(self, x):
        e = x - self.target
        return 0.5 * np.einsum("...i,ij,...j->...", e, self.Qf, e)

    def Phi_x(self, x):
        return (x - self.target) @ self.Qf

    def Phi_xx(self, x):
        return np.broadcast_to(self.Qf, x.shape[:-1] + (2, 2))

    def node_kernel(self, dt):
        """Node functions of the Euler layers of step ``dt`` (:mod:`problems.pendulum_nodes`)
        and their data ``(p,)``."""
        from wavecontrol.codegen import source_of
        from . import pendulum_nodes
        p = np.concatenate([[dt, self.w2, self.b, self.gain], self.Q.ravel(), self.R.ravel(),
                            self.Qf.ravel(), self.target])
        return source_of(pendulum_nodes), (np.ascontiguousarray(p, dtype=float),)

    # PMP -----------------------------------------------------------------------------------
    def argmin_hamiltonian(self, x, lam):
        """u* = argmin_u (L + λᵀf) = −R⁻¹ Gᵀ λ (f is control-affine, the control cost
        quadratic): ``x``, ``lam`` (..., 2) → (..., 1)."""
        return -(lam @ self.G) @ self.R_inv


def _real(name, value, *, lower, strict, unit):
    """A finite real number ``> lower`` (``strict``) or ``>= lower``, named in the error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    ok = math.isfinite(value) and (value > lower if strict else value >= lower)
    if not ok:
        rel = ">" if strict else ">="
        raise ValueError(f"{name} ({unit}) must be a finite number {rel} {lower:g}, "
                         f"got {value!r}")
    return value


def pendulum(task: str = "stabilize", g: float = 9.81, l: float = 1.0, m: float = 1.0,
             b: float = 0.1, Q=None, R=None, Qf=None, T: float | None = None,
             N: int | None = None, x0=None, target=None, theta0=None):
    """Euler-discretized pendulum (an :class:`~problems.builder.EulerProblem`).

    ``task`` picks the defaults of ``T``, ``N`` and ``x0`` (:data:`TASKS`); every other
    argument left as None takes :data:`DEFAULTS`. ``theta0`` is the initial control guess,
    shape (N, 1) or a scalar (default zeros). The result has ``continuous`` (the
    :class:`Pendulum`) and ``params`` (the settings used).
    """
    if task not in TASKS:
        raise ValueError(f"unknown pendulum task {task!r}; valid: {', '.join(TASKS)}")
    given = {"Q": Q, "R": R, "Qf": Qf, "T": T, "N": N, "x0": x0, "target": target}
    p = {**DEFAULTS, **TASKS[task], "g": g, "l": l, "m": m, "b": b}
    p.update({k: v for k, v in given.items() if v is not None})
    if isinstance(p["N"], bool) or not isinstance(p["N"], numbers.Integral) or p["N"] < 1:
        raise ValueError(f"N must be an integer >= 1, got {p['N']!r}")
    T_ = p["T"]
    if isinstance(T_, bool) or not isinstance(T_, numbers.Real):
        raise ValueError(f"T must be a finite number > 0, got {T_!r}")
    cont = Pendulum(p["g"], p["l"], p["m"], p["b"], p["Q"], p["R"], p["Qf"], p["T"], p["x0"],
                    p["target"])
    N_ = int(p["N"])
    if theta0 is not None:
        th = np.asarray(theta0, dtype=float)
        if th.ndim == 0:
            th = np.full((N_, 1), float(th))
        elif th.shape == (N_,):
            th = th[:, None]
        if th.shape != (N_, 1):
            raise ValueError(f"theta0 must be a scalar or have shape ({N_}, 1), got {th.shape}")
        if not np.all(np.isfinite(th)):
            raise ValueError("theta0 must be finite")
        theta0 = th
    prob = euler_discretize(cont, N_, theta0)
    prob.name = "pendulum"
    prob.params = {"task": task, **{k: np.asarray(v).tolist() for k, v in p.items()}}
    return prob
