"""Locked backprop gradient descent: θ ← θ − η ∇J(θ), one exact forward and backward pass per
iteration (eqs. 47–52).

The step has the convention of the wave driver's resistive port (θ ← θ − η r_θ, eq. 60 with
Z = I/η): the same η means the same update per unit of gradient. The default η is 1/L with L the
largest curvature of J at θ0 (:func:`solvers.wave.hessian_norm`): that is the wave driver's
:func:`~solvers.wave.auto_eta` without its delay factor (1 + 2N/ν), because a locked step sees
the gradient of the current θ at once (delay 0). Hence the wave driver at its default gain takes
steps 1 + 2N/ν times smaller; at the *same* η it needs only 1.05–1.16 times the iterations of
this method on the pendulum (docs/findings.md, "Pendulum and the locked references"). For
nonlinear problems L at θ0 can underestimate the curvature met later (pendulum swing-up:
L(θ0) = 0.093, 49 at the solution), and a fixed η = 1/L(θ0) then oscillates; pass η.
"""

from __future__ import annotations

import math
import time

import numpy as np

from wavecontrol.result import Status

from .adjoint import (check_count, check_positive, forward_backward, initial_theta,
                      locked_result)


def default_eta(problem) -> float:
    """η = 1/L, L the largest eigenvalue of ∇²J(θ0) (power iteration; 1 when L = 0)."""
    from .wave import hessian_norm

    L = hessian_norm(problem)
    return 1.0 / L if L > 0 else 1.0


def solve_backprop(problem, *, eta="auto", tol: float = 1e-10, max_iter: int = 100_000,
                   theta0=None, divergence_bound: float = 1e12):
    """Gradient descent with the exact adjoint gradient until max|∇J| ≤ ``tol``.

    Parameters
    ----------
    problem : LayeredProblem
    eta : float > 0 or ``"auto"``
        Step size (units of θ per unit of gradient); ``"auto"`` is :func:`default_eta`.
    tol : float > 0
        Converged when the max-abs gradient (= r_θ of the wave driver) is ≤ ``tol``.
    max_iter : int ≥ 1
        Budget of iterations (each one forward and one backward pass).
    theta0 : array (N, m), optional
        Start (default ``problem.theta0``).
    divergence_bound : float > 0
        ``diverged`` when J becomes non-finite or exceeds ``divergence_bound · max(J(θ0), 1)``;
        the result then holds the last θ inside the bound.

    Returns
    -------
    WaveResult
        ``steps`` = iterations; ``history`` has ``step``, ``objective``, ``grad_norm`` (max-abs)
        per iteration, starting with θ0.
    """
    if isinstance(eta, str):
        if eta != "auto":
            raise ValueError(f"eta must be a finite number > 0 or 'auto', got {eta!r}")
    else:
        eta = check_positive("eta", eta)
    tol = check_positive("tol", tol)
    max_iter = check_count("max_iter", max_iter)
    divergence_bound = check_positive("divergence_bound", divergence_bound)
    theta = initial_theta(problem, theta0)
    t0 = time.perf_counter()
    eta_value = default_eta(problem) if eta == "auto" else eta
    passes = forward_backward(problem, theta)
    bound = divergence_bound * max(passes[3], 1.0)
    hist = {"step": [], "objective": [], "grad_norm": []}
    status, message, it = Status.MAX_STEPS, "", 0
    while True:
        g, J = passes[2], passes[3]
        gnorm = float(np.abs(g).max())
        hist["step"].append(it)
        hist["objective"].append(J)
        hist["grad_norm"].append(gnorm)
        if gnorm <= tol:
            status = Status.CONVERGED
            message = f"max|grad J| = {gnorm:.3g} <= tol = {tol:g} after {it} iterations"
            break
        if it >= max_iter:
            message = (f"max_iter = {max_iter} reached; max|grad J| = {gnorm:.3g} > tol = "
                       f"{tol:g}")
            break
        new = theta - eta_value * g
        with np.errstate(all="ignore"):
            new_passes = forward_backward(problem, new)
        if not (math.isfinite(new_passes[3]) and new_passes[3] <= bound
                and np.all(np.isfinite(new_passes[2]))):
            status = Status.DIVERGED
            message = (f"diverged at iteration {it + 1}: J would be {new_passes[3]:.3g} "
                       f"(bound {bound:.3g}); eta = {eta_value:.3g} is too large. The fields "
                       f"returned are those of iteration {it}")
            break
        theta, passes = new, new_passes
        it += 1
    wall = time.perf_counter() - t0
    res = locked_result(problem, theta, status=status, message=message, steps=it, history=hist,
                        wall_time=wall, passes=passes,
                        config={"method": "backprop", "eta": eta_value, "tol": tol,
                                "max_iter": max_iter, "divergence_bound": divergence_bound})
    if status == Status.DIVERGED:
        res.diverged_at = it + 1
    return res


__all__ = ["solve_backprop", "default_eta"]
