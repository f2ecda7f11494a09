"""L-BFGS on the discrete objective J(θ) (eq. 48) with the exact adjoint gradient (eq. 52).

``scipy.optimize.minimize(method="L-BFGS-B")``, with the problem's box bounds on θ when it has
them (:attr:`~wavecontrol.problem.LayeredProblem.bounds`; the stopping test is then on the
projected gradient θ − clip(θ − ∇J, lo, hi)), else without; each function evaluation is one
:func:`~solvers.adjoint.forward_backward`. Its stopping test ``pgtol`` is the max-abs gradient,
the same norm as the wave driver's r_θ; the relative-reduction test (``ftol``) is switched off so
that the run stops on the gradient only.

**Polishing below the round-off of J.** Near the minimizer J − J* ≈ ½ gᵀH⁻¹g falls below the
round-off of J itself (eps·|J|) long before g does: on the default LQR (smallest curvature 0.01)
at max|g| ≈ 3e-9, where θ is still 1e-7 from θ*. L-BFGS-B's line search then stops
("ABNORMAL"). The run is restarted from there (fresh memory, at most ``restarts`` times) on the
*gradient-integrated* objective F(θ) = ½ (g(θ) + g(a))ᵀ(θ − a) relative to the restart point a:
F = J − J(a) exactly for quadratic J and to O(‖θ − a‖³) otherwise, and it is computed from the
gradient alone, so its round-off is that of g (eps·|g|·‖θ − a‖), not that of J. If the gradient
still does not reach ``tol`` the result is ``max_steps`` with scipy's message, never
``converged``.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import minimize

from wavecontrol.result import Status

from .adjoint import (check_count, check_positive, forward_backward, initial_theta,
                      locked_result)


def solve_lbfgs(problem, *, tol: float = 1e-10, max_iter: int = 10_000, memory: int = 10,
                restarts: int = 5, theta0=None):
    """Minimize J(θ) by L-BFGS until max|∇J| ≤ ``tol``.

    Parameters
    ----------
    problem : LayeredProblem
    tol : float > 0
        Converged when the max-abs gradient (= r_θ) is ≤ ``tol``.
    max_iter : int ≥ 1
        Budget of L-BFGS iterations over all restarts.
    memory : int ≥ 1
        Number of correction pairs kept (scipy's ``maxcor``).
    restarts : int ≥ 0
        Restarts allowed after an early stop above ``tol``.
    theta0 : array (N, m), optional
        Start (default ``problem.theta0``).

    Returns
    -------
    WaveResult
        ``steps`` = L-BFGS iterations; ``history`` has ``step``, ``objective`` and
        ``grad_norm`` (max-abs) per iteration, starting with θ0; ``info`` has ``evaluations``
        (forward–backward passes) and ``scipy_messages``.
    """
    tol = check_positive("tol", tol)
    max_iter = check_count("max_iter", max_iter)
    memory = check_count("memory", memory)
    restarts = check_count("restarts", restarts, minimum=0)
    theta = initial_theta(problem, theta0)
    shape = theta.shape
    bounds = getattr(problem, "bounds", None)
    box = None
    if bounds is not None:
        lo, hi = (np.broadcast_to(b, shape).ravel() for b in bounds)
        box = list(zip(lo, hi))
        theta = np.clip(theta, *bounds)
    project = (lambda z, g: g) if bounds is None else (   # noqa: E731
        lambda z, g: problem.project_residual(z.reshape(shape), g.reshape(shape)))
    t0 = time.perf_counter()
    last = {}
    count = {"evaluations": 0}
    hist = {"step": [], "objective": [], "grad_norm": []}

    def fun(z):
        th = z.reshape(shape)
        x, lam, g, J = forward_backward(problem, th)
        count["evaluations"] += 1
        last.update(z=z.copy(), passes=(x, lam, g, J))
        return J, g.ravel()

    def record(z):
        if "z" not in last or not np.array_equal(last["z"], z):
            fun(z)
        J, g = last["passes"][3], last["passes"][2]
        hist["step"].append(len(hist["step"]))
        hist["objective"].append(J)
        hist["grad_norm"].append(float(np.abs(project(z, g)).max()))

    record(theta.ravel())
    z = theta.ravel().copy()
    messages, iters, status = [], 0, Status.MAX_STEPS
    for attempt in range(restarts + 1):
        if hist["grad_norm"][-1] <= tol or iters >= max_iter:
            break
        objective = fun if attempt == 0 else _integrated(fun, z, last["passes"][2].ravel())
        out = minimize(objective, z, jac=True, method="L-BFGS-B", callback=record, bounds=box,
                       options={"maxiter": max_iter - iters, "maxcor": memory, "gtol": tol,
                                "ftol": 0.0, "maxfun": 20 * (max_iter - iters) + 100})
        messages.append(str(out.message))
        iters += int(out.nit)
        z = out.x.copy()
        if not np.array_equal(last.get("z"), z):
            fun(z)
        if float(np.abs(project(z, last["passes"][2])).max()) <= tol:
            break
    passes = last["passes"] if np.array_equal(last.get("z"), z) else None
    if passes is None:
        passes = forward_backward(problem, z.reshape(shape))
    gnorm = float(np.abs(project(z, passes[2])).max())
    if gnorm <= tol:
        status = Status.CONVERGED
        message = (f"max|grad J| = {gnorm:.3g} <= tol = {tol:g} after {iters} iterations "
                   f"({len(messages)} L-BFGS-B run(s))")
    else:
        message = (f"max|grad J| = {gnorm:.3g} > tol = {tol:g} after {iters} iterations and "
                   f"{len(messages)} L-BFGS-B run(s) (max_iter = {max_iter}, restarts = "
                   f"{restarts}); last scipy message: {messages[-1] if messages else 'none'}")
    wall = time.perf_counter() - t0
    return locked_result(problem, z.reshape(shape), status=status, message=message,
                         steps=iters, history=hist, wall_time=wall, passes=passes,
                         config={"method": "lbfgs", "tol": tol, "max_iter": max_iter,
                                 "memory": memory, "restarts": restarts},
                         info={"evaluations": count["evaluations"], "scipy_messages": messages})


def _integrated(fun, anchor, g_anchor):
    """F(θ) = ½ (g(θ) + g(a))ᵀ(θ − a) with its gradient g(θ) (see the module docstring)."""
    anchor, g_anchor = anchor.copy(), g_anchor.copy()

    def F(z):
        _, g = fun(z)
        return 0.5 * float((g + g_anchor) @ (z - anchor)), g
    return F


__all__ = ["solve_lbfgs"]
