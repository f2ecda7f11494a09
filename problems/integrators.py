"""One-step integrators of ``ẋ = f(x, u, t)`` with the control held over the step, and the
exact Jacobians of the step by the chain rule over its stages.

The layer map of a continuous problem on the grid t_k = k Δt is one integrator step of size Δt
(or ``substeps`` steps of size Δt / substeps) with u = u_k constant:
``f_k(x, u) = S(x, u, t_k)``. The three explicit methods here share one shape: stage i is
evaluated at ``X_i = x + h a_i K_{i−1}`` (X_0 = x), ``K_i = f(X_i, u, t + c_i h)`` and the step is
``x + h Σ_i b_i K_i``:

============  ======================  ==========================  =====
method        c                       a (on the previous stage)   order
============  ======================  ==========================  =====
``euler``     (0)                     —                           1
``midpoint``  (0, ½)                  (½)                         2
``rk4``       (0, ½, ½, 1)            (½, ½, 1)                   4
============  ======================  ==========================  =====

with b = (1), (0, 1) and (1/6, 1/3, 1/3, 1/6). ``rk2`` is another name of ``midpoint``.

The Jacobians are exact derivatives of the step (not of the ODE): with ∂X_0/∂x = I,
∂X_0/∂u = 0, ``∂K_i/∂x = f_x(X_i) ∂X_i/∂x`` and ``∂K_i/∂u = f_x(X_i) ∂X_i/∂u + f_u(X_i)``,
``∂X_{i+1}/∂· = [I] + h a_{i+1} ∂K_i/∂·``, and A = I + h Σ b_i ∂K_i/∂x, B = h Σ b_i ∂K_i/∂u;
substeps compose as A ← A_j A, B ← A_j B + B_j.

:func:`one_step` is the NumPy form. The numba node functions of a problem from expressions write
the same recursion out as scalar code, stage by stage (``problems.expressions._layer_body``).
"""

from __future__ import annotations

import numpy as np

#: method → (c, a, b): stage times, coupling to the previous stage, weights
TABLEAUX = {
    "euler": ((0.0,), (), (1.0,)),
    "midpoint": ((0.0, 0.5), (0.5,), (0.0, 1.0)),
    "rk4": ((0.0, 0.5, 0.5, 1.0), (0.5, 0.5, 1.0), (1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0)),
}
#: other accepted names
ALIASES = {"rk2": "midpoint"}
#: classical order of each method
ORDERS = {"euler": 1, "midpoint": 2, "rk4": 4}
INTEGRATORS = tuple(TABLEAUX) + tuple(ALIASES)


def check_integrator(name) -> str:
    """The canonical name of ``name`` (``rk2`` → ``midpoint``); ValueError listing the valid
    names otherwise."""
    if not isinstance(name, str) or name not in TABLEAUX and name not in ALIASES:
        raise ValueError(f"unknown integrator {name!r}; valid: {', '.join(INTEGRATORS)}")
    return ALIASES.get(name, name)


def check_substeps(substeps) -> int:
    if isinstance(substeps, bool) or int(substeps) != substeps or substeps < 1:
        raise ValueError(f"substeps must be an integer >= 1, got {substeps!r}")
    return int(substeps)


def _mv(M, v):
    return np.einsum("...ij,...j->...i", M, v)


def one_step(dyn, x, u, t, dt, method="euler", substeps=1, jacobians=True):
    """The layer map and (optionally) its Jacobians, vectorized over leading axes.

    Parameters
    ----------
    dyn : object with ``f(x, u, t)`` (..., n), ``f_x(x, u, t)`` (..., n, n) and
        ``f_u(x, u, t)`` (..., n, m), each broadcasting over leading axes
    x : array (..., n); u : array (..., m); t : array broadcastable to the leading axes
    dt : float, the layer's step; ``substeps`` steps of dt / substeps are taken
    method : ``euler``, ``midpoint`` (``rk2``) or ``rk4``

    Returns
    -------
    F (..., n), and with ``jacobians`` also A = ∂F/∂x (..., n, n), B = ∂F/∂u (..., n, m)
    """
    c, a, b = TABLEAUX[check_integrator(method)]
    M = check_substeps(substeps)
    h = dt / M
    x = np.asarray(x, dtype=float)
    u = np.asarray(u, dtype=float)
    if not jacobians and len(c) == 1 and M == 1:        # explicit Euler, the map alone
        return x + dt * dyn.f(x, u, t)
    t = np.asarray(t, dtype=float)
    lead = np.broadcast_shapes(x.shape[:-1], u.shape[:-1], t.shape)
    n, m = x.shape[-1], u.shape[-1]
    xs = x if x.shape[:-1] == lead else np.broadcast_to(x, lead + (n,))
    if jacobians:
        eye = np.broadcast_to(np.eye(n), lead + (n, n))
        PA = eye.copy()
        PB = np.zeros(lead + (n, m))
    for j in range(M):
        tj = t + j * h
        F = xs.copy()
        if jacobians:
            FA, FB = eye.copy(), np.zeros(lead + (n, m))
        K = KX = KU = None
        for i in range(len(c)):
            if i == 0:
                X = xs
            else:
                X = xs + (h * a[i - 1]) * K
            K = dyn.f(X, u, tj + c[i] * h)
            if jacobians:
                fx = dyn.f_x(X, u, tj + c[i] * h)
                fu = dyn.f_u(X, u, tj + c[i] * h)
                if i == 0:
                    KX, KU = np.broadcast_to(fx, lead + (n, n)), np.broadcast_to(fu, lead + (n, m))
                else:
                    DX = eye + (h * a[i - 1]) * KX
                    DU = (h * a[i - 1]) * KU
                    KX = fx @ DX
                    KU = fx @ DU + fu
            if b[i] != 0.0:
                F = F + (h * b[i]) * K
                if jacobians:
                    FA = FA + (h * b[i]) * KX
                    FB = FB + (h * b[i]) * KU
        if jacobians:
            PA, PB = FA @ PA, FA @ PB + FB
        xs = F
    if jacobians:
        return xs, PA, PB
    return xs


def step_curvature(dyn, x, u, t, dt, w, method="euler", substeps=1):
    """∇²_{(x,u)} (w · S(x, u, t)) of the step S of :func:`one_step`, vectorized over leading
    axes: (..., n + m, n + m).

    ``dyn`` has ``f``, ``f_x``, ``f_u`` as in :func:`one_step` and ``f_hw(x, u, t, a)``
    (..., n + m, n + m) = Σ_i a_i ∇²_{(x,u)} f_i. Only the stage evaluations K = f(X, u) are
    nonlinear (the stage points and the step are linear in them), so the Hessian of w·S is
    Σ over the stage evaluations e of Ĝ_eᵀ (ā_e · ∇²f)(X_e, u) Ĝ_e, where Ĝ_e = ∂(X_e, u)/∂(x, u)
    comes from a forward pass and ā_e = ∂(w·S)/∂K_e from a reverse one: with s̄ = w at the end
    of a substep, K̄_i = h b_i s̄ + h a_{i+1} X̄_{i+1}, X̄_i = f_x(X_i)ᵀ K̄_i, and the substep's
    start gets s̄ + Σ_i X̄_i."""
    c, a, b = TABLEAUX[check_integrator(method)]
    M = check_substeps(substeps)
    h = dt / M
    x = np.asarray(x, dtype=float)
    u = np.asarray(u, dtype=float)
    t = np.asarray(t, dtype=float)
    w = np.asarray(w, dtype=float)
    lead = np.broadcast_shapes(x.shape[:-1], u.shape[:-1], t.shape, w.shape[:-1])
    n, m = x.shape[-1], u.shape[-1]
    d = n + m
    s = np.broadcast_to(x, lead + (n,))
    SZ = np.zeros(lead + (n, d))
    SZ[..., :, :n] = np.eye(n)
    stages = []                          # (X_e, t_e, Ĝ_e, f_x(X_e)) in forward order
    for j in range(M):
        tj = t + j * h
        s1, SZ1 = s.copy(), SZ.copy()
        K = KZ = None
        for i in range(len(c)):
            if i == 0:
                X, GX = s, SZ
            else:
                X, GX = s + (h * a[i - 1]) * K, SZ + (h * a[i - 1]) * KZ
            te = tj + c[i] * h
            K = dyn.f(X, u, te)
            fx = np.broadcast_to(dyn.f_x(X, u, te), lead + (n, n))
            fu = np.broadcast_to(dyn.f_u(X, u, te), lead + (n, m))
            KZ = fx @ GX
            KZ[..., :, n:] += fu
            G = np.zeros(lead + (d, d))
            G[..., :n, :] = GX
            G[..., n:, n:] = np.eye(m)
            stages.append((X, te, G, fx))
            if b[i] != 0.0:
                s1 = s1 + (h * b[i]) * K
                SZ1 = SZ1 + (h * b[i]) * KZ
        s, SZ = s1, SZ1
    out = np.zeros(lead + (d, d))
    sbar = np.broadcast_to(w, lead + (n,))
    S = len(c)
    for j in range(M - 1, -1, -1):
        Xbar_next = None
        start = sbar
        for i in range(S - 1, -1, -1):
            X, te, G, fx = stages[j * S + i]
            Kbar = (h * b[i]) * sbar
            if i + 1 < S:
                Kbar = Kbar + (h * a[i]) * Xbar_next
            Xbar_next = np.einsum("...li,...l->...i", fx, Kbar)
            start = start + Xbar_next
            H = dyn.f_hw(X, u, te, Kbar)
            out += np.einsum("...rp,...rl,...lq->...pq", G, H, G)
        sbar = start
    return out


__all__ = ["TABLEAUX", "ORDERS", "INTEGRATORS", "check_integrator", "one_step",
           "step_curvature"]
