"""Exact references for linear-quadratic problems.

:func:`discrete_riccati` solves the discrete PMP (eqs. 50–52) of an
:class:`~wavecontrol.problem.AffineQuadraticProblem` exactly (backward Riccati recursion with an
affine term, then a forward pass and the adjoint recursion); :func:`continuous_riccati` solves
the continuous LQR by integrating the Riccati ODE with ``scipy.integrate.solve_ivp``, so that the
O(Δt) distance between the Euler-discretized optimum and the continuous one can be reported.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.integrate import solve_ivp

from wavecontrol.problem import AffineQuadraticProblem
from wavecontrol.result import Status, WaveResult


def discrete_riccati(problem: AffineQuadraticProblem) -> WaveResult:
    """Exact discrete PMP solution of an affine-quadratic problem (batch 1).

    With the value function V_k(x) = ½ xᵀ P_k x + p_kᵀ x: P_N = Q_f, p_N = g_f,
    K_k = (R_k + B_kᵀP_{k+1}B_k)^{-1} B_kᵀP_{k+1}A_k, κ_k = (R_k + B_kᵀP_{k+1}B_k)^{-1}
    B_kᵀ(P_{k+1}c_k + p_{k+1}), u_k = −K_k x_k − κ_k. States come from the forward pass and the
    costates from the adjoint recursion, so the residuals are round-off.
    """
    if not isinstance(problem, AffineQuadraticProblem):
        raise TypeError("discrete_riccati needs an AffineQuadraticProblem (e.g. problems.lqr())")
    if problem.batch != 1:
        raise ValueError(f"discrete_riccati needs batch = 1, got {problem.batch}")
    t0 = time.perf_counter()
    A, B, c, Q, R = problem.A, problem.B, problem.c, problem.Q, problem.R
    N = problem.N
    P, p = problem.Qf.copy(), problem.gf.copy()
    K = np.zeros((N, problem.m, problem.n))
    kap = np.zeros((N, problem.m))
    for k in range(N - 1, -1, -1):
        S = R[k] + B[k].T @ P @ B[k]
        K[k] = np.linalg.solve(S, B[k].T @ P @ A[k])
        kap[k] = np.linalg.solve(S, B[k].T @ (P @ c[k] + p))
        Acl = A[k] - B[k] @ K[k]
        p = K[k].T @ R[k] @ kap[k] + Acl.T @ (P @ (c[k] - B[k] @ kap[k]) + p)
        P = Q[k] + K[k].T @ R[k] @ K[k] + Acl.T @ P @ Acl
        P = 0.5 * (P + P.T)
    theta = np.zeros((N, problem.m))
    x = np.zeros((1, N + 1, problem.n))
    x[0, 0] = problem.x_in[0]
    for k in range(N):
        theta[k] = -K[k] @ x[0, k] - kap[k]
        x[0, k + 1] = A[k] @ x[0, k] + B[k] @ theta[k] + c[k]
    lam = problem.adjoint(x, theta)
    r_x, r_l, r_t = problem.residuals(x, lam, theta)
    res = {"x": float(np.abs(r_x).max()), "lambda": float(np.abs(r_l).max()),
           "theta": float(np.abs(r_t).max())}
    return WaveResult(status=Status.CONVERGED, message="exact discrete Riccati solution",
                      steps=N, x=x, lam=lam, theta=theta, residuals=res,
                      objective=problem.objective(theta), wall_time=time.perf_counter() - t0,
                      config={"method": "riccati"})


def continuous_riccati(continuous, t_eval, rtol: float = 1e-11, atol: float = 1e-12) -> dict:
    """Continuous LQR optimum at the times ``t_eval`` (Riccati ODE by ``solve_ivp``).

    Integrates −Ṗ = AᵀP + PA − PBR⁻¹BᵀP + Q backwards from P(T) = Q_f, then the closed loop
    ẋ = (A − BR⁻¹BᵀP) x forwards from x0. Returns ``x`` (len(t_eval), n), ``u`` (…, m),
    ``lam`` = P x, and the optimal ``cost`` ½ x0ᵀ P(0) x0.
    """
    A, B, Q, R, Qf, T = (continuous.A, continuous.B, continuous.Q, continuous.R, continuous.Qf,
                         continuous.T)
    n = A.shape[0]
    Rinv = np.linalg.inv(R)

    def riccati(t, y):
        P = y.reshape(n, n)
        return -(A.T @ P + P @ A - P @ B @ Rinv @ B.T @ P + Q).ravel()

    back = solve_ivp(riccati, (T, 0.0), Qf.ravel(), method="DOP853", rtol=rtol, atol=atol,
                     dense_output=True)
    if not back.success:
        raise RuntimeError(f"Riccati ODE integration failed: {back.message}")

    def P_of(t):
        P = back.sol(t).reshape(n, n)
        return 0.5 * (P + P.T)

    def closed(t, x):
        return (A - B @ Rinv @ B.T @ P_of(t)) @ x

    fwd = solve_ivp(closed, (0.0, T), continuous.x0, method="DOP853", rtol=rtol, atol=atol,
                    t_eval=np.asarray(t_eval, dtype=float))
    if not fwd.success:
        raise RuntimeError(f"closed-loop integration failed: {fwd.message}")
    x = fwd.y.T
    Ps = np.array([P_of(t) for t in fwd.t])
    lam = np.einsum("kij,kj->ki", Ps, x)
    u = -np.einsum("ij,kj->ki", Rinv @ B.T, lam)
    return {"t": fwd.t, "x": x, "u": u, "lam": lam,
            "cost": float(0.5 * continuous.x0 @ P_of(0.0) @ continuous.x0)}
