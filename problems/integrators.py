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


# -- the same step as numba source (the node functions of docs/problems.md) -------------------
_STEP_TEMPLATE = '''
_TAB_C = {c!r}
_TAB_A = {a!r}
_TAB_B = {b!r}
_SUBSTEPS = {M}


@jit
def _mm(out, P, Q):
    """out = P @ Q for small dense matrices (no BLAS call)."""
    for i in range(P.shape[0]):
        for j in range(Q.shape[1]):
            s = 0.0
            for l in range(P.shape[1]):
                s += P[i, l] * Q[l, j]
            out[i, j] = s


@jit
def layer(k, x, u, D, f, A, B):
    """f = f_k(x, u) ({method}, {M} substep(s)), A = df/dx, B = df/du."""
    dt = D[0][0]
    h = dt / _SUBSTEPS
    t0 = k * dt
    n = x.shape[0]
    m = u.shape[0]
    xs = x.copy()
    X = np.empty(n)
    K = np.empty(n)
    fx = np.empty((n, n))
    fu = np.empty((n, m))
    KX = np.empty((n, n))
    KU = np.empty((n, m))
    DX = np.empty((n, n))
    DU = np.empty((n, m))
    FA = np.empty((n, n))
    FB = np.empty((n, m))
    T1 = np.empty((n, n))
    T2 = np.empty((n, m))
    for i in range(n):
        for j in range(n):
            A[i, j] = 1.0 if i == j else 0.0
        for j in range(m):
            B[i, j] = 0.0
    for step in range(_SUBSTEPS):
        tj = t0 + step * h
        for i in range(n):
            f[i] = xs[i]
            for j in range(n):
                FA[i, j] = 1.0 if i == j else 0.0
            for j in range(m):
                FB[i, j] = 0.0
        for s in range(len(_TAB_C)):
            ts = tj + _TAB_C[s] * h
            if s == 0:
                for i in range(n):
                    X[i] = xs[i]
            else:
                ha = h * _TAB_A[s - 1]
                for i in range(n):
                    X[i] = xs[i] + ha * K[i]
                    for j in range(n):
                        DX[i, j] = (1.0 if i == j else 0.0) + ha * KX[i, j]
                    for j in range(m):
                        DU[i, j] = ha * KU[i, j]
            _dyn(X, u, ts, D[0], K)
            _dyn_jac(X, u, ts, D[0], fx, fu)
            if s == 0:
                KX[:, :] = fx
                KU[:, :] = fu
            else:
                _mm(KX, fx, DX)
                _mm(KU, fx, DU)
                for i in range(n):
                    for j in range(m):
                        KU[i, j] += fu[i, j]
            hb = h * _TAB_B[s]
            if hb != 0.0:
                for i in range(n):
                    f[i] += hb * K[i]
                    for j in range(n):
                        FA[i, j] += hb * KX[i, j]
                    for j in range(m):
                        FB[i, j] += hb * KU[i, j]
        _mm(T1, FA, A)
        _mm(T2, FA, B)
        for i in range(n):
            xs[i] = f[i]
            for j in range(n):
                A[i, j] = T1[i, j]
            for j in range(m):
                B[i, j] = T2[i, j] + FB[i, j]
'''


def step_source(method="euler", substeps=1) -> str:
    """Numba source of ``layer(k, x, u, D, f, A, B)`` for ``method``: it calls the module's
    ``_dyn(x, u, t, d, out)`` and ``_dyn_jac(x, u, t, d, fx, fu)`` (``d = D[0]``, ``d[0] = Δt``)
    and needs ``np`` and ``jit`` in the module."""
    name = check_integrator(method)
    c, a, b = TABLEAUX[name]
    return _STEP_TEMPLATE.format(c=tuple(c), a=tuple(a) if a else (0.0,), b=tuple(b),
                                 M=check_substeps(substeps), method=name)


__all__ = ["TABLEAUX", "ORDERS", "INTEGRATORS", "check_integrator", "one_step", "step_source"]
