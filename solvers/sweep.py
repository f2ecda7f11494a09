"""The forward–backward sweep with relaxation (locked; the classic indirect method for the PMP).

Each iteration runs the forward pass and the exact backward pass at the current controls
(:func:`~solvers.adjoint.forward_backward`) and then moves θ towards the layer-wise minimizer of
the discrete Hamiltonian H_k(x_k, θ, λ_{k+1}) = R_k(x_k, θ) + λ_{k+1}ᵀ f_k(x_k, θ):

- ``update="minimizer"``: θ_k ← (1 − ω) θ_k + ω argmin_θ H_k. Closed form for an Euler problem
  whose continuous problem has :meth:`~problems.builder.ContinuousProblem.argmin_hamiltonian`
  (argmin of Δt L + λᵀ(x + Δt f) is that of L + λᵀf; LQR: −R⁻¹Bᵀλ, pendulum:
  −R⁻¹λ_ω/(m l²)) and for any affine-quadratic problem (−R_k⁻¹ Σ_b B_kᵀ λ_{k+1}). Batch 1 only
  for the Euler case (the minimizer of a batch sum is not the per-sample formula).
- ``update="gradient"``: θ ← θ − ω ∇J (the minimizer is not closed form); here ω is a step
  size in units of θ per unit of gradient.
- ``update="auto"``: the minimizer when it is available, else the gradient step.

For quadratic control costs the minimizer step is a preconditioned gradient step,
θ − argmin H = R_k⁻¹ r_θ,k, so ω must stay below 2/ρ with ρ the largest eigenvalue of the
Jacobian of D(θ) = θ − argmin H (R_k⁻¹∇²J; ρ = 232 on the default LQR). ``omega="auto"``
(default) takes ω = 1/ρ at θ0, by power iteration on finite differences of D (exact for an
affine-quadratic problem); for the gradient update it is 1/L, L = ‖∇²J(θ0)‖ (the backprop
default). With ``adaptive=True`` (default) a sweep that raises J by more than round-off is
rejected and ω halved; ω is never increased (doubling it again after 20 accepted sweeps
re-entered the unstable range and stalled the default LQR at max|θ − θ*| = 1.9e-9,
docs/findings.md, "Pendulum and the locked references").
"""

from __future__ import annotations

import time

import numpy as np

from wavecontrol.problem import AffineQuadraticProblem
from wavecontrol.result import Status

from .adjoint import (check_count, check_positive, forward_backward, initial_theta,
                      locked_result)

UPDATES = ("auto", "minimizer", "gradient")
#: smallest relaxation before the sweep gives up (ω halved below this)
OMEGA_FLOOR = 1e-12


def hamiltonian_minimizer(problem):
    """A function ``(x, lam) -> argmin_θ H_k`` for all k at once, or None when not closed form.

    ``x``, ``lam`` are (B, N + 1, n); the result is (N, m).
    """
    cont = getattr(problem, "continuous", None)
    if isinstance(problem, AffineQuadraticProblem):
        R_inv = np.linalg.inv(problem.R)                       # (N, m, m)

        def affine(x, lam):
            rhs = np.einsum("kji,bkj->ki", problem.B, lam[:, 1:])
            return -np.einsum("kij,kj->ki", R_inv, rhs)
        return affine
    if cont is not None and problem.batch == 1:
        try:
            cont.argmin_hamiltonian(problem.x_in[0], problem.x_in[0])
        except NotImplementedError:
            return None

        def euler(x, lam):
            return cont.argmin_hamiltonian(x[0, :-1], lam[0, 1:])
        return euler
    return None


def relaxation_scale(problem, minimizer, theta, iters: int = 60, seed: int = 0) -> float:
    """ρ: the largest |eigenvalue| of ∂D/∂θ at ``theta``, D(θ) = θ − argmin H(x(θ), λ(θ)).

    Power iteration on finite differences of D (step 1 for affine-quadratic problems, where D
    is affine and the difference exact; else 1e-4 relative to max|θ|), as
    :func:`solvers.wave.hessian_norm` does for ∇²J.
    """
    def D(th):
        x, lam, _, _ = forward_backward(problem, th)
        return th - minimizer(x, lam)

    rng = np.random.default_rng(seed)
    eps = (1.0 if isinstance(problem, AffineQuadraticProblem)
           else 1e-4 * max(1.0, float(np.abs(theta).max())))
    d0 = D(theta)
    v = rng.normal(size=theta.shape)
    v /= np.linalg.norm(v)
    rho = 0.0
    for _ in range(iters):
        dv = (D(theta + eps * v) - d0) / eps
        new = float(np.linalg.norm(dv))
        if new == 0.0:
            return 0.0
        v = dv / new
        if abs(new - rho) <= 1e-10 * new:
            return new
        rho = new
    return rho


def solve_sweep(problem, *, omega="auto", update: str = "auto", adaptive: bool = True,
                tol: float = 1e-10, max_iter: int = 100_000, theta0=None,
                divergence_bound: float = 1e12):
    """Forward–backward sweep until max|∇J| ≤ ``tol``.

    Parameters
    ----------
    problem : LayeredProblem
    omega : float > 0 or ``"auto"``
        Relaxation (``minimizer``, ω ≤ 1 is a convex combination) or step size (``gradient``);
        ``"auto"``: 1/ρ (:func:`relaxation_scale` at the start θ) or, for the gradient
        update, 1/L with L = :func:`~solvers.wave.hessian_norm` (at ``problem.theta0``).
    update : ``"auto"``, ``"minimizer"`` or ``"gradient"``
    adaptive : bool
        Reject an iteration that raises J beyond round-off and halve ω.
    tol : float > 0
        Converged when the max-abs gradient (= r_θ, the stationarity of H) is ≤ ``tol``.
    max_iter : int ≥ 1
        Budget of sweeps (each one forward and one backward pass, rejected ones included).
    theta0 : array (N, m), optional
    divergence_bound : float > 0
        Without ``adaptive``: ``diverged`` when J becomes non-finite or exceeds
        ``divergence_bound · max(J(θ0), 1)`` (the result keeps the last θ inside the bound).

    Returns
    -------
    WaveResult
        ``steps`` = sweeps; ``history`` has ``step``, ``objective``, ``grad_norm`` (max-abs)
        and ``omega`` after every sweep, starting with θ0; ``config`` says which update ran.
    """
    if isinstance(omega, str):
        if omega != "auto":
            raise ValueError(f"omega must be a finite number > 0 or 'auto', got {omega!r}")
    else:
        omega = check_positive("omega", omega)
    if update not in UPDATES:
        raise ValueError(f"unknown update {update!r}; valid: {', '.join(UPDATES)}")
    tol = check_positive("tol", tol)
    max_iter = check_count("max_iter", max_iter)
    divergence_bound = check_positive("divergence_bound", divergence_bound)
    theta = initial_theta(problem, theta0)
    minimizer = hamiltonian_minimizer(problem) if update != "gradient" else None
    if update == "minimizer" and minimizer is None:
        raise ValueError(f"update='minimizer' needs a closed-form Hamiltonian minimizer, which "
                         f"problem {problem.name!r} does not have; use update='gradient'")
    used = "minimizer" if minimizer is not None else "gradient"
    t0 = time.perf_counter()
    if omega == "auto":
        if used == "minimizer":
            rho = relaxation_scale(problem, minimizer, theta)
        else:
            from .wave import hessian_norm
            rho = hessian_norm(problem)
        omega = 1.0 / rho if rho > 0 else 1.0
    passes = forward_backward(problem, theta)
    bound = divergence_bound * max(passes[3], 1.0)
    hist = {"step": [], "objective": [], "grad_norm": [], "omega": []}
    status, message, it, rejected = Status.MAX_STEPS, "", 0, 0
    while True:
        x, lam, g, J = passes
        gnorm = float(np.abs(g).max())
        hist["step"].append(it)
        hist["objective"].append(J)
        hist["grad_norm"].append(gnorm)
        hist["omega"].append(omega)
        if gnorm <= tol:
            status = Status.CONVERGED
            message = f"max|grad J| = {gnorm:.3g} <= tol = {tol:g} after {it} sweeps"
            break
        if it >= max_iter:
            message = (f"max_iter = {max_iter} reached; max|grad J| = {gnorm:.3g} > tol = "
                       f"{tol:g} (omega = {omega:.3g})")
            break
        if omega < OMEGA_FLOOR:
            message = (f"omega halved below {OMEGA_FLOOR:g} at sweep {it}: no decrease of J "
                       f"found; max|grad J| = {gnorm:.3g} > tol = {tol:g}")
            break
        if used == "minimizer":
            new = (1.0 - omega) * theta + omega * minimizer(x, lam)
        else:
            new = theta - omega * g
        with np.errstate(all="ignore"):
            new_passes = forward_backward(problem, new)
        it += 1
        J_new = new_passes[3]
        rise = not np.isfinite(J_new) or J_new > J + 1e-13 * max(abs(J), 1.0)
        if adaptive and rise:
            omega *= 0.5
            rejected += 1
            continue
        if not J_new <= bound:
            status = Status.DIVERGED
            message = (f"diverged at sweep {it}: J would be {J_new:.3g} > bound {bound:.3g} "
                       f"(omega = {omega:.3g}, adaptive=False); the fields returned are those "
                       f"of sweep {it - 1}")
            break
        theta, passes = new, new_passes
    wall = time.perf_counter() - t0
    res = locked_result(problem, theta, status=status, message=message, steps=it, history=hist,
                        wall_time=wall, passes=passes,
                        config={"method": "sweep", "update": used, "omega_initial":
                                float(hist["omega"][0]), "omega_final": omega,
                                "adaptive": bool(adaptive), "tol": tol, "max_iter": max_iter},
                        info={"rejected": rejected})
    if status == Status.DIVERGED:
        res.diverged_at = it
    return res


__all__ = ["solve_sweep", "hamiltonian_minimizer", "relaxation_scale", "UPDATES"]
