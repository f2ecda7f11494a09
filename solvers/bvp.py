"""The continuous PMP as a boundary-value problem, solved by ``scipy.integrate.solve_bvp``.

For ``ẋ = f(x, u)``, cost ``∫ L dt + Φ(x(T))`` the PMP reads (u eliminated by ∂H/∂u = 0,
u = u*(x, λ) = :meth:`~problems.builder.ContinuousProblem.argmin_hamiltonian`)

    ẋ = f(x, u*),   λ̇ = −∇_x L(x, u*) − (∂f/∂x)ᵀ λ,   x(0) = x0,   λ(T) = ∇Φ(x(T)).

This is the continuous optimum that the Euler-discretized problem (eqs. 61–63) approaches at
O(Δt): :func:`solve_bvp_pmp` samples it at the Euler nodes t_k = kΔt and reports its distance
from the discrete optimum (the *gap*).
"""

from __future__ import annotations

import time

import numpy as np
from scipy.integrate import solve_bvp

from wavecontrol.problem import AffineQuadraticProblem
from wavecontrol.result import Status, WaveResult

from .adjoint import check_count, check_positive, forward_backward

#: 5-point Gauss–Legendre rule on [0, 1] (for the running cost along the BVP solution)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(5)
_GL_X, _GL_W = 0.5 * (_GL_X + 1.0), 0.5 * _GL_W


def continuous_of(problem):
    """The :class:`~problems.builder.ContinuousProblem` behind an Euler-discretized problem."""
    cont = getattr(problem, "continuous", None)
    if cont is None:
        raise TypeError(f"problem {problem.name!r} has no continuous-time form (attribute "
                        "'continuous'); the solve_bvp reference needs one")
    if problem.batch != 1:
        raise ValueError(f"the solve_bvp reference needs batch = 1, got {problem.batch}")
    return cont


def solve_bvp_pmp(problem, *, tol: float = 1e-8, max_nodes: int = 100_000, guess=None,
                  reference="auto") -> WaveResult:
    """Continuous PMP solution sampled at the Euler nodes, and its gap to the discrete optimum.

    Parameters
    ----------
    problem : LayeredProblem with ``continuous`` (``problems.lqr()``, ``problems.pendulum()``)
    tol : float > 0
        ``solve_bvp``'s tolerance on the relative collocation residual.
    max_nodes : int ≥ 2
        Largest mesh ``solve_bvp`` may refine to.
    guess : WaveResult or tuple (x, lam) on the N + 1 nodes, optional
        Initial mesh values. Default: the reference's fields when there is one, else the
        forward and backward pass at ``problem.theta0``.
    reference : ``"auto"``, a WaveResult, or None
        The discrete optimum to measure the gap to: ``"auto"`` computes it (discrete Riccati
        for an affine-quadratic problem, L-BFGS to max|∇J| ≤ 1e-10 otherwise); None skips it.

    Returns
    -------
    WaveResult
        ``x``, ``lam`` (1, N + 1, n): the continuous solution at t_k; ``theta`` (N, m):
        u*(x(t_k), λ(t_k)); ``residuals``: the *discrete* PMP residuals of these samples (O(Δt),
        not round-off: they measure the discretization, not the BVP solve); ``objective``: the
        discrete J of the sampled controls; ``steps``: solve_bvp's iterations; ``history``:
        one row for the end (solve_bvp reports nothing per iteration); ``wall_time`` includes
        computing the reference. ``info`` has
        ``continuous_cost`` (Φ(x(T)) + ∫L, Gauss–Legendre on the final mesh),
        ``max_rms_residual``, ``mesh_nodes``, ``sol`` (the dense solution, a callable of t) and,
        with a reference, ``gap``: max-abs distances ``theta``, ``x``, ``lambda`` at the nodes,
        ``objective`` = J_discrete* − J_continuous and ``reference_objective``.
    """
    cont = continuous_of(problem)
    tol = check_positive("tol", tol)
    max_nodes = check_count("max_nodes", max_nodes, minimum=2)
    try:
        cont.argmin_hamiltonian(cont.x0, cont.x0)
    except NotImplementedError as exc:
        raise TypeError(f"the solve_bvp reference needs u*(x, λ) in closed form: {exc}") from None
    n, N, T = cont.n, problem.N, cont.T
    t0 = time.perf_counter()
    if isinstance(reference, str):
        if reference != "auto":
            raise ValueError(f"reference must be 'auto', a WaveResult or None, got {reference!r}")
        reference = _discrete_optimum(problem)
    elif reference is not None and not isinstance(reference, WaveResult):
        raise ValueError(f"reference must be 'auto', a WaveResult or None, got "
                         f"{type(reference).__name__}")
    t_nodes = np.linspace(0.0, T, N + 1)
    y_guess = _guess(problem, guess if guess is not None else reference)

    def rhs(t, y):
        x, lam = y[:n].T, y[n:].T
        u = cont.argmin_hamiltonian(x, lam)
        return np.concatenate([cont.f(x, u), cont.costate_rhs(x, u, lam)], axis=1).T

    def bc(ya, yb):
        return np.concatenate([ya[:n] - cont.x0, yb[n:] - cont.Phi_x(yb[:n])])

    t_solve = time.perf_counter()
    sol = solve_bvp(rhs, bc, t_nodes, y_guess, tol=tol, max_nodes=max_nodes)
    wall_bvp = time.perf_counter() - t_solve
    y = sol.sol(t_nodes)
    x, lam = y[:n].T[None].copy(), y[n:].T[None].copy()
    theta = cont.argmin_hamiltonian(x[0, :-1], lam[0, :-1])
    with np.errstate(all="ignore"):
        r_x, r_l, r_t = problem.residuals(x, lam, theta)
        objective = problem.objective(theta)
    residuals = {"x": float(np.abs(r_x).max()), "lambda": float(np.abs(r_l).max()),
                 "theta": float(np.abs(r_t).max())}
    info = {"continuous_cost": _cost(cont, sol), "mesh_nodes": int(sol.x.size),
            "max_rms_residual": float(np.max(sol.rms_residuals)), "sol": sol.sol,
            "solve_bvp_wall_time": wall_bvp}
    if reference is not None:
        info["gap"] = {"theta": float(np.abs(theta - reference.theta).max()),
                       "x": float(np.abs(x - reference.x).max()),
                       "lambda": float(np.abs(lam - reference.lam).max()),
                       "objective": float(reference.objective - info["continuous_cost"]),
                       "reference_objective": float(reference.objective)}
    if sol.status == 0:
        status = Status.CONVERGED
        message = (f"solve_bvp converged (tol {tol:g}) on {sol.x.size} mesh nodes after "
                   f"{sol.niter} iterations")
    else:
        status = Status.MAX_STEPS
        message = f"solve_bvp did not converge (status {sol.status}): {sol.message}"
    history = {"step": np.array([sol.niter], dtype=np.int64),
               "objective": np.array([objective]), "grad_norm": np.array([residuals["theta"]]),
               "max_rms_residual": np.array([info["max_rms_residual"]])}
    return WaveResult(status=status, message=message, steps=int(sol.niter), x=x, lam=lam,
                      theta=theta, residuals=residuals, objective=float(objective),
                      history=history, wall_time=time.perf_counter() - t0,
                      config={"method": "solve_bvp", "tol": tol, "max_nodes": max_nodes,
                              "problem": problem.config()}, info=info)


def _discrete_optimum(problem):
    if isinstance(problem, AffineQuadraticProblem):
        from .riccati import discrete_riccati
        return discrete_riccati(problem)
    from .lbfgs import solve_lbfgs
    ref = solve_lbfgs(problem, tol=1e-10)
    if not ref.success:
        raise RuntimeError(f"the discrete reference (L-BFGS) did not converge: {ref.message}")
    return ref


def _guess(problem, guess):
    """Initial mesh values (2n, N + 1) from a result, a (x, λ) pair, or the θ0 passes."""
    if guess is None:
        x, lam, _, _ = forward_backward(problem, problem.theta0)
    elif isinstance(guess, WaveResult):
        x, lam = guess.x, guess.lam
    else:
        x, lam = guess
    shape = (problem.N + 1, problem.n)
    x, lam = np.asarray(x, dtype=float), np.asarray(lam, dtype=float)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if lam.ndim == 3 and lam.shape[0] == 1:
        lam = lam[0]
    if x.shape != shape or lam.shape != shape:
        raise ValueError(f"guess x and lam must have shape {shape} (or (1, {shape[0]}, "
                         f"{shape[1]})), got {x.shape} and {lam.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(lam))):
        raise ValueError("guess must be finite")
    return np.concatenate([x.T, lam.T])


def _cost(cont, sol):
    """Φ(x(T)) + ∫_0^T L(x, u*) dt along the BVP solution (5-point Gauss on each mesh cell)."""
    t = sol.x
    h = np.diff(t)
    tq = (t[:-1, None] + h[:, None] * _GL_X[None]).ravel()
    y = sol.sol(tq)
    n = cont.n
    x, lam = y[:n].T, y[n:].T
    L = cont.L(x, cont.argmin_hamiltonian(x, lam)).reshape(h.size, _GL_X.size)
    return float(np.sum(h * (L @ _GL_W)) + cont.Phi(sol.sol(t[-1])[:n]))


__all__ = ["solve_bvp_pmp", "continuous_of"]
