"""The matched port's box-constrained local solve: a small quadratic program per node.

With control bounds lo ≤ u_k ≤ hi the matched port's Newton step on node k's quadratic model
becomes (docs/theory.md §11.6)::

    minimize  ½ δᵀ Q δ + gᵀ δ   subject to  l ≤ δ ≤ h        (l = lo − u_k ≤ 0 ≤ h = hi − u_k)

with Q = Q_uu + μ_k I symmetric positive definite (m × m, m small). :func:`box_qp` solves it by
projected Newton steps (D. P. Bertsekas, "Projected Newton methods for optimization problems
with simple constraints", SIAM J. Control Optim. 20(2), 1982): at each iterate the *clamped*
set holds the coordinates at a bound whose gradient points out of the box; a Newton step on
the free coordinates is projected back into the box, with Armijo backtracking when the
projection cut it. For m = 1 this is the clipped Newton step, exactly. It stops when a full
Newton step stays inside the box and every clamped gradient still points outwards (the free
gradient is then zero to round-off: the KKT conditions), or after :data:`MAX_ITER` iterations.

δ = 0 solves the program exactly when u_k satisfies the KKT conditions of the node's
Hamiltonian over the box (the projected gradient u − clip(u − g, lo, hi) vanishes), so the
matched port's fixed points stay the discrete PMP with bounds.

Besides δ the solve returns H, the inverse of Q on the free coordinates padded with zeros
(H = Q⁻¹ when nothing is clamped): the feedback of a clamped control is zero, and the value
Hessian P_k = Q_xx − Q_uxᵀ H Q_ux (Y. Tassa, N. Mansard, E. Todorov, "Control-limited
differential dynamic programming", ICRA 2014). The same function runs compiled in the kernels
(:data:`box_qp_jit`) and as plain Python in the NumPy twin (:func:`box_qp`).
"""

import numpy as np

from ._jit import jit

#: most projected Newton iterations of one solve (each one fixes at least one more coordinate
#: or ends; m + a few suffice in exact arithmetic)
MAX_ITER = 50
#: Armijo constant of the backtracking along the projected arc
ARMIJO = 1e-4


@jit
def _model(Q, g, d):
    """½ dᵀQd + gᵀd (compiled: both forms of :func:`box_qp` call it)."""
    m = g.shape[0]
    v = 0.0
    for i in range(m):
        t = 0.0
        for j in range(m):
            t += Q[i, j] * d[j]
        v += d[i] * (0.5 * t + g[i])
    return v


@jit
def _free_block(Q, free, c):
    """The indices of the c free coordinates and Q's block on them."""
    idx = np.empty(c, dtype=np.int64)
    j = 0
    for i in range(free.shape[0]):
        if free[i]:
            idx[j] = i
            j += 1
    Qf = np.empty((c, c))
    for a in range(c):
        for b in range(c):
            Qf[a, b] = Q[idx[a], idx[b]]
    return idx, Qf


def box_qp(Q, g, lo, hi, d, H):
    """Minimize ½ dᵀQd + gᵀd over lo ≤ d ≤ hi (module docstring).

    Q (m, m) symmetric positive definite; g, lo, hi (m,) with lo ≤ 0 ≤ hi (±inf allowed).
    Writes the minimizer into d (m,) and the padded free-set inverse into H (m, m); returns the
    number of clamped coordinates.
    """
    m = g.shape[0]
    if m == 1:
        q = Q[0, 0]
        v = -g[0] / q
        if v < lo[0]:
            d[0] = lo[0]
            H[0, 0] = 0.0
            return 1
        if v > hi[0]:
            d[0] = hi[0]
            H[0, 0] = 0.0
            return 1
        d[0] = v
        H[0, 0] = 1.0 / q
        return 0
    free = np.ones(m, dtype=np.bool_)
    grad = np.empty(m)
    trial = np.empty(m)
    step = np.zeros(m)
    for i in range(m):
        d[i] = 0.0
    nclamp = 0
    for _ in range(MAX_ITER):
        # gradient and the clamped set at d
        for i in range(m):
            t = g[i]
            for j in range(m):
                t += Q[i, j] * d[j]
            grad[i] = t
        nclamp = 0
        for i in range(m):
            out_lo = d[i] <= lo[i] and grad[i] > 0.0
            out_hi = d[i] >= hi[i] and grad[i] < 0.0
            free[i] = not (out_lo or out_hi)
            if not free[i]:
                nclamp += 1
        if nclamp == m:
            break
        # the Newton step on the free coordinates
        idx, Qf = _free_block(Q, free, m - nclamp)
        c = idx.shape[0]
        gf = np.empty(c)
        for a in range(c):
            gf[a] = -grad[idx[a]]
        sf = np.linalg.solve(Qf, gf)
        for i in range(m):
            step[i] = 0.0
        for a in range(c):
            step[idx[a]] = sf[a]
        # a full step that stays in the box ends the solve
        inside = True
        for i in range(m):
            v = d[i] + step[i]
            if v < lo[i] or v > hi[i]:
                inside = False
        if inside:
            for i in range(m):
                d[i] += step[i]
            # done unless a clamped coordinate's gradient now points into the box
            done = True
            for i in range(m):
                if not free[i]:
                    t = g[i]
                    for j in range(m):
                        t += Q[i, j] * d[j]
                    if (d[i] <= lo[i] and t < 0.0) or (d[i] >= hi[i] and t > 0.0):
                        done = False
            if done:
                break
            continue
        # projected arc with Armijo backtracking
        f0 = _model(Q, g, d)
        alpha = 1.0
        for _ in range(60):
            dec = 0.0
            for i in range(m):
                trial[i] = min(max(d[i] + alpha * step[i], lo[i]), hi[i])
                dec += grad[i] * (trial[i] - d[i])
            if _model(Q, g, trial) <= f0 + ARMIJO * dec:
                break
            alpha *= 0.5
        moved = False
        for i in range(m):
            if trial[i] != d[i]:
                moved = True
            d[i] = trial[i]
        if not moved:
            break
    # H: the inverse of Q on the final free set, zero rows and columns on the clamped ones
    for i in range(m):
        for j in range(m):
            H[i, j] = 0.0
    if nclamp < m:
        idx, Qf = _free_block(Q, free, m - nclamp)
        c = idx.shape[0]
        Hf = np.linalg.inv(Qf)
        for a in range(c):
            for b in range(c):
                H[idx[a], idx[b]] = Hf[a, b]
    return nclamp


#: :func:`box_qp` compiled (the kernels call this one; the NumPy twin calls the plain function)
box_qp_jit = jit(box_qp)
