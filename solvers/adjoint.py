"""The exact discrete adjoint: one forward pass and one backward pass (eqs. 47–52).

:func:`forward_backward` is what every *locked* reference uses (L-BFGS, backprop gradient
descent, the forward–backward sweep), and what a test needs to compare a relaxed field with the
exact gradient at fixed θ. :func:`locked_result` packs the outcome of a locked method into the
common :class:`~wavecontrol.result.WaveResult`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from wavecontrol.result import WaveResult


def forward_backward(problem, theta):
    """Forward pass, exact adjoint, gradient and objective at ``theta``.

    x_0 = x_in, x_{k+1} = f_k(x_k; θ_k) (eq. 47); λ_N = ∇ℓ(x_N),
    λ_k = J_kᵀ λ_{k+1} + ∇_x R_k (eqs. 50–51, through the problem's vjps);
    g_k = ∇_θ R_k + (∇_θ f_k)ᵀ λ_{k+1} (eq. 52); J = ℓ(x_N) + Σ_k R_k (eq. 48).

    Parameters
    ----------
    problem : LayeredProblem
    theta : array (N, m)

    Returns
    -------
    x, lam : arrays (B, N + 1, n)
    grad : array (N, m)
        ∇_θ J, which is also the residual r_θ of the pair (x, λ).
    J : float
    """
    theta = np.asarray(theta, dtype=float)
    if theta.shape != problem.theta0.shape:
        raise ValueError(f"theta must have shape {problem.theta0.shape}, got {theta.shape}")
    x = problem.forward(theta)
    lam = problem.adjoint(x, theta)
    grad = problem.residual_theta(x, lam, theta)
    J = float(problem.terminal_cost(x[:, -1]) + problem.running_cost(x[:, :-1], theta))
    return x, lam, grad, J


def locked_result(problem, theta, *, status, message, steps, history, wall_time, config,
                  passes=None, info=None) -> WaveResult:
    """The :class:`WaveResult` of a locked method at its final ``theta``.

    ``x`` is the forward pass and ``lam`` the exact backward pass, so r_x and r_λ are round-off
    and r_θ is the gradient; all three are measured here (max-abs), not assumed. ``passes`` is
    the output of :func:`forward_backward` at ``theta`` when the caller already has it.
    ``history`` maps names to per-iteration lists.
    """
    x, lam, grad, J = forward_backward(problem, theta) if passes is None else passes
    with np.errstate(all="ignore"):
        r_x, r_l, r_t = problem.residuals(x, lam, theta)
    residuals = {"x": float(np.abs(r_x).max()), "lambda": float(np.abs(r_l).max()),
                 "theta": float(np.abs(r_t).max())}
    hist = {k: np.asarray(v) for k, v in history.items()}
    if "step" in hist:
        hist["step"] = hist["step"].astype(np.int64)
    return WaveResult(status=status, message=message, steps=int(steps), x=x, lam=lam,
                      theta=np.array(theta, dtype=float), residuals=residuals, objective=float(J),
                      history=hist, wall_time=float(wall_time),
                      config={**config, "problem": problem.config()}, info=dict(info or {}))


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """A finite real number > 0 (or ≥ 0), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, "
                         f"got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, "
                         f"got {value!r}")
    return value


def check_count(name: str, value, *, minimum: int = 1) -> int:
    """An integer ≥ ``minimum``, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def initial_theta(problem, theta0):
    """``theta0`` (default ``problem.theta0``) checked for shape and finiteness, as a copy."""
    if theta0 is None:
        return problem.theta0.copy()
    th = np.array(theta0, dtype=float)
    if th.shape != problem.theta0.shape:
        raise ValueError(f"theta0 must have shape {problem.theta0.shape}, got {th.shape}")
    if not np.all(np.isfinite(th)):
        raise ValueError("theta0 must be finite")
    return th


__all__ = ["forward_backward", "locked_result", "check_positive", "check_count", "initial_theta"]
