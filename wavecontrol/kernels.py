"""The fused τ-step of the ``affine`` problem family, compiled, looping over many τ-steps.

One call of :func:`affine_run` advances the fields by up to ``nsteps`` τ-steps without returning
to Python. Each step is one pass that does what :mod:`wavecontrol.formulations` does with NumPy
(its twin): transport, reconstruction, PMP residuals (eqs. 53–56, 59), sources, the resistive
port (eq. 60), the boundary terminations and the exact energy ledger. Every step checks the
fields for divergence and the residuals for convergence; every ``record_every``-th step writes a
row of :data:`HIST_COLUMNS` into ``hist``.

Fields are ``(B, N + 1, n)`` arrays: ``u, v`` = (x, λ) in the consistent form and (w+, w-) in
the paper form; ``theta`` is ``(N, m)``. Integer codes select the branches (they are internal:
the public API takes names, see :data:`FORM_CODES`).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit
from .schemes import transport_kernel

#: columns of the history array, in order
HIST_COLUMNS = ("step", "V", "boundary_left", "boundary_right", "dissipation", "source",
                "source2", "reset_left", "reset_right", "V_next", "rhs", "port_power",
                "ledger_error", "res_x", "res_lambda", "res_theta", "objective")
H_STEP, H_V, H_BL, H_BR, H_DISS, H_SRC, H_SRC2, H_RL, H_RR, H_VN, H_RHS, H_PORT, H_LERR, \
    H_RX, H_RL_, H_RT, H_OBJ = range(len(HIST_COLUMNS))

FORM_CODES = {"consistent": 0, "paper": 1}
#: kernel return codes
RUNNING, CONVERGED, DIVERGED = 0, 1, 2

SQRT2 = math.sqrt(2.0)


@jit
def _mv(M, x, out):
    """out = M x for a small dense matrix."""
    r, c = M.shape
    for i in range(r):
        s = 0.0
        for j in range(c):
            s += M[i, j] * x[j]
        out[i] = s


@jit
def _mtv(M, x, out):
    """out = Mᵀ x."""
    r, c = M.shape
    for j in range(c):
        out[j] = 0.0
    for i in range(r):
        xi = x[i]
        for j in range(c):
            out[j] += M[i, j] * xi


@jit
def _apply_nodes(Th, f, out, transpose):
    """out_k = Θ_k f_k (transpose=False) or Θ_kᵀ f_k, for all batch rows and nodes."""
    B, N1, n = f.shape
    for b in range(B):
        for k in range(N1):
            if transpose:
                _mtv(Th[k], f[b, k], out[b, k])
            else:
                _mv(Th[k], f[b, k], out[b, k])


@jit
def affine_objective(A, Bm, c, Q, R, Qf, gf, x_in, theta):
    """J(θ) by a forward pass (eq. 48) for the affine family."""
    Bb, n = x_in.shape
    N = A.shape[0]
    m = Bm.shape[2]
    x = np.empty(n)
    y = np.empty(n)
    J = 0.0
    tm = np.empty(m)
    for k in range(N):
        _mv(R[k], theta[k], tm)
        for i in range(m):
            J += 0.5 * theta[k, i] * tm[i]
    bth = np.empty(n)
    for b in range(Bb):
        for i in range(n):
            x[i] = x_in[b, i]
        for k in range(N):
            _mv(Q[k], x, y)
            for i in range(n):
                J += 0.5 * x[i] * y[i]
            _mv(A[k], x, y)
            _mv(Bm[k], theta[k], bth)
            for i in range(n):
                x[i] = y[i] + bth[i] + c[k, i]
        _mv(Qf, x, y)
        for i in range(n):
            J += 0.5 * x[i] * y[i] + gf[i] * x[i]
    return J


@jit
def _residuals(A, Bm, c, Q, Qf, gf, R, x_in, x, lam, theta, r_x, r_l, r_t, tmp, tm):
    """PMP residuals of (x, λ, θ) for the affine family; returns their max-abs norms."""
    B, N1, n = x.shape
    N = N1 - 1
    m = theta.shape[1]
    nx = 0.0
    nl = 0.0
    nt = 0.0
    for k in range(N):
        _mv(R[k], theta[k], r_t[k])
    for b in range(B):
        for i in range(n):
            r_x[b, 0, i] = x[b, 0, i] - x_in[b, i]
        for k in range(1, N1):
            _mv(A[k - 1], x[b, k - 1], tmp)
            _mv(Bm[k - 1], theta[k - 1], r_x[b, k])
            for i in range(n):
                r_x[b, k, i] = x[b, k, i] - tmp[i] - r_x[b, k, i] - c[k - 1, i]
        _mv(Qf, x[b, N], tmp)
        for i in range(n):
            r_l[b, N, i] = lam[b, N, i] - tmp[i] - gf[i]
        for k in range(N):
            _mtv(A[k], lam[b, k + 1], tmp)
            _mv(Q[k], x[b, k], r_l[b, k])
            for i in range(n):
                r_l[b, k, i] = lam[b, k, i] - tmp[i] - r_l[b, k, i]
            _mtv(Bm[k], lam[b, k + 1], tm)
            for i in range(m):
                r_t[k, i] += tm[i]
        for k in range(N1):
            for i in range(n):
                nx = max(nx, abs(r_x[b, k, i]))
                nl = max(nl, abs(r_l[b, k, i]))
    for k in range(N):
        for i in range(m):
            nt = max(nt, abs(r_t[k, i]))
    return nx, nl, nt


@jit
def _sumsq(f):
    s = 0.0
    for v in f.ravel():
        s += v * v
    return s


@jit
def _dot(f, g):
    s = 0.0
    a = f.ravel()
    b = g.ravel()
    for i in range(a.size):
        s += a[i] * b[i]
    return s


@jit
def affine_run(form, code, explicit, before, nu, alpha, eta,
               A, Bm, c, Q, R, Qf, gf, x_in, Th, Ti, Mterm,
               u, v, theta, start, nsteps, tol, record_every, hist, hrow, div_bound, dt):
    """Advance (u, v, θ) by up to ``nsteps`` τ-steps in place.

    Returns ``(steps_done, status, rows_written, max_ledger_error, res_x, res_λ, res_θ)`` where
    status is 0 (budget of this call used), 1 (converged: every residual ≤ tol at the current
    fields, which are left untouched) or 2 (diverged: V non-finite or above ``div_bound`` at the
    current fields). ``start`` is the global index of the first step (for recording).
    """
    B, N1, n = u.shape
    N = N1 - 1
    m = theta.shape[1]
    h = 0.5 * dt
    # work arrays
    ub = np.empty_like(u)        # transported right-moving field
    vb = np.empty_like(v)
    u1 = np.empty_like(u)        # new fields
    v1 = np.empty_like(v)
    r_x = np.empty_like(u)
    r_l = np.empty_like(u)
    r_t = np.empty_like(theta)
    xs = np.empty_like(u)        # reconstructed x (paper) / characteristic a (consistent)
    ls = np.empty_like(u)
    ea = np.empty_like(u)
    eb = np.empty_like(u)
    tmp = np.empty(n)
    tmp2 = np.empty(n)
    tm = np.empty(m)
    rowc = np.empty_like(u)      # characteristic-scheme row buffers
    rown = np.empty_like(u)
    maxerr = 0.0
    rows = hrow
    nres_x = nres_l = nres_t = 0.0
    p = int(math.floor(nu))
    q = nu - p
    beta = 0.5 * nu * (nu - 1.0)
    for it in range(nsteps):
        step = start + it
        # ---------------- consistent form: u = x, v = λ ----------------------------------
        if form == 0:
            _apply_nodes(Th, u, xs, False)                   # a = Θ x
            _apply_nodes(Ti, v, ls, True)                    # b = Θ^{-T} λ
            V = h * (_sumsq(xs) + _sumsq(ls))
            if not (V <= div_bound):
                return it, DIVERGED, rows, maxerr, nres_x, nres_l, nres_t
            nres_x, nres_l, nres_t = _residuals(A, Bm, c, Q, Qf, gf, R, x_in, u, v, theta,
                                                r_x, r_l, r_t, tmp, tm)
            if nres_x <= tol and nres_l <= tol and nres_t <= tol:
                return it, CONVERGED, rows, maxerr, nres_x, nres_l, nres_t
            if code == 3:
                # rows X^{(j)}: X^{(0)} = x; X^{(j+1)}_k = f_{k-1}(X^{(j)}_{k-1}), node 0 fixed
                for b in range(B):
                    for k in range(N1):
                        for i in range(n):
                            rowc[b, k, i] = u[b, k, i]
                            u1[b, k, i] = (1.0 - q) * u[b, k, i] if p == 0 else 0.0
                            rown[b, k, i] = v[b, k, i]
                            v1[b, k, i] = (1.0 - q) * v[b, k, i] if p == 0 else 0.0
                # x rows
                for j in range(1, p + 2):
                    wgt = (1.0 - q) if j == p else (q if j == p + 1 else 0.0)
                    for b in range(B):
                        for k in range(N, 0, -1):
                            _mv(A[k - 1], rowc[b, k - 1], tmp)
                            _mv(Bm[k - 1], theta[k - 1], tmp2)
                            for i in range(n):
                                rowc[b, k, i] = tmp[i] + tmp2[i] + c[k - 1, i]
                        if wgt != 0.0:
                            for k in range(1, N1):
                                for i in range(n):
                                    u1[b, k, i] += wgt * rowc[b, k, i]
                # λ rows: Λ^{(j+1)}_k = A_kᵀ Λ^{(j)}_{k+1} + Q_k x_k, node N fixed
                for j in range(1, p + 2):
                    wgt = (1.0 - q) if j == p else (q if j == p + 1 else 0.0)
                    for b in range(B):
                        for k in range(N):
                            _mtv(A[k], rown[b, k + 1], tmp)
                            _mv(Q[k], u[b, k], tmp2)
                            for i in range(n):
                                rown[b, k, i] = tmp[i] + tmp2[i]
                        if wgt != 0.0:
                            for k in range(N):
                                for i in range(n):
                                    v1[b, k, i] += wgt * rown[b, k, i]
            else:
                for b in range(B):
                    for k in range(N1):
                        for i in range(n):
                            u1[b, k, i] = u[b, k, i] - nu * r_x[b, k, i]
                            v1[b, k, i] = v[b, k, i] - nu * r_l[b, k, i]
                    if code == 2:
                        # node 1 (and N - 1 for λ), next to the inflow, stays upwind
                        for k in range(2, N1):
                            _mv(A[k - 1], r_x[b, k - 1], tmp)
                            for i in range(n):
                                u1[b, k, i] += beta * (r_x[b, k, i] - tmp[i])
                        for k in range(N - 1):
                            _mtv(A[k], r_l[b, k + 1], tmp)
                            for i in range(n):
                                v1[b, k, i] += beta * (r_l[b, k, i] - tmp[i])
            for b in range(B):
                for i in range(n):
                    u1[b, 0, i] = x_in[b, i]
                if explicit:
                    _mv(Qf, u[b, N], tmp)
                else:
                    _mv(Qf, u1[b, N], tmp)
                for i in range(n):
                    v1[b, N, i] = tmp[i] + gf[i]
            # ledger in a = Θx, b = Θ^{-T}λ: transport of the old a, b (homogeneous part)
            in_a, out_a, d_a = transport_kernel(xs, ub, code, nu, 1)
            in_b, out_b, d_b = transport_kernel(ls, vb, code, nu, -1)
            _apply_nodes(Th, u1, ea, False)                  # a' = Θ x'
            _apply_nodes(Ti, v1, eb, True)                   # b' = Θ^{-T} λ'
            src = 0.0
            src2 = 0.0
            rhs_src = 0.0
            a0 = 0.0
            b0 = 0.0
            aN = 0.0
            bN = 0.0
            a0n = 0.0
            bNn = 0.0
            for b in range(B):
                for k in range(N1):
                    for i in range(n):
                        if k >= 1:
                            s = ea[b, k, i] - ub[b, k, i]
                            src += ub[b, k, i] * s
                            src2 += s * s
                            rhs_src += xs[b, k, i] * s
                        if k < N:
                            s = eb[b, k, i] - vb[b, k, i]
                            src += vb[b, k, i] * s
                            src2 += s * s
                            rhs_src += ls[b, k, i] * s
                for i in range(n):
                    a0 += xs[b, 0, i] ** 2
                    b0 += ls[b, 0, i] ** 2
                    aN += xs[b, N, i] ** 2
                    bN += ls[b, N, i] ** 2
                    a0n += ea[b, 0, i] ** 2
                    bNn += eb[b, N, i] ** 2
            Vn = h * (_sumsq(ea) + _sumsq(eb))
            terms_bl = h * (in_a + out_b)
            terms_br = h * (out_a + in_b)
            terms_d = h * (d_a + d_b)
            terms_s = h * 2.0 * src
            terms_s2 = h * src2
            terms_rl = h * (a0n - a0)
            terms_rr = h * (bNn - bN)
            rhs = h * (nu * (a0 - b0 + bN - aN) + 2.0 * rhs_src)
        # ---------------- paper form: u = w+, v = w- -------------------------------------
        else:
            V = h * (_sumsq(u) + _sumsq(v))
            if not (V <= div_bound):
                return it, DIVERGED, rows, maxerr, nres_x, nres_l, nres_t
            in_p, out_p, d_p = transport_kernel(u, ub, code, nu, 1)      # (A)
            in_m, out_m, d_m = transport_kernel(v, vb, code, nu, -1)
            for b in range(B):                                           # (B)
                for k in range(N1):
                    for i in range(n):
                        if before:
                            tmp[i] = (u[b, k, i] + v[b, k, i]) / SQRT2
                            tmp2[i] = (u[b, k, i] - v[b, k, i]) / SQRT2
                        else:
                            tmp[i] = (ub[b, k, i] + vb[b, k, i]) / SQRT2
                            tmp2[i] = (ub[b, k, i] - vb[b, k, i]) / SQRT2
                    _mv(Ti[k], tmp, xs[b, k])
                    _mtv(Th[k], tmp2, ls[b, k])
            nres_x, nres_l, nres_t = _residuals(A, Bm, c, Q, Qf, gf, R, x_in, xs, ls, theta,
                                                r_x, r_l, r_t, tmp, tm)          # (C)
            if nres_x <= tol and nres_l <= tol and nres_t <= tol:
                return it, CONVERGED, rows, maxerr, nres_x, nres_l, nres_t
            src = 0.0
            src2 = 0.0
            rhs_src = 0.0
            for b in range(B):
                for k in range(N1):
                    _mv(Th[k], r_x[b, k], tmp)
                    _mtv(Ti[k], r_l[b, k], tmp2)
                    for i in range(n):
                        ep = (tmp[i] + tmp2[i]) / SQRT2
                        em = (tmp[i] - tmp2[i]) / SQRT2
                        src += ub[b, k, i] * ep + vb[b, k, i] * em
                        src2 += ep * ep + em * em
                        rhs_src += u[b, k, i] * ep + v[b, k, i] * em
                        u1[b, k, i] = ub[b, k, i] - alpha * ep
                        v1[b, k, i] = vb[b, k, i] - alpha * em
            # (E) boundary scattering; resets measured against the post-source fields
            a0 = 0.0
            b0 = 0.0
            aN = 0.0
            bN = 0.0
            a0n = 0.0
            bNn = 0.0
            for b in range(B):
                for i in range(n):
                    a0 += u[b, 0, i] ** 2
                    b0 += v[b, 0, i] ** 2
                    aN += u[b, N, i] ** 2
                    bN += v[b, N, i] ** 2
                pre0 = 0.0
                preN = 0.0
                for i in range(n):
                    pre0 += u1[b, 0, i] ** 2
                    preN += v1[b, N, i] ** 2
                _mv(Th[0], x_in[b], tmp)
                for i in range(n):
                    u1[b, 0, i] = SQRT2 * tmp[i] - v1[b, 0, i]
                if explicit:
                    _mv(Qf, xs[b, N], tmp)
                    for i in range(n):
                        tmp[i] += gf[i]
                    _mtv(Ti[N], tmp, tmp2)
                    for i in range(n):
                        v1[b, N, i] = u1[b, N, i] - SQRT2 * tmp2[i]
                else:
                    _mtv(Ti[N], gf, tmp2)
                    for i in range(n):
                        tmp[i] = 2.0 * u1[b, N, i] - SQRT2 * tmp2[i]
                    _mv(Mterm, tmp, tmp2)
                    for i in range(n):
                        v1[b, N, i] = tmp2[i] - u1[b, N, i]
                for i in range(n):
                    a0n += u1[b, 0, i] ** 2
                    bNn += v1[b, N, i] ** 2
                a0n -= pre0
                bNn -= preN
            Vn = h * (_sumsq(u1) + _sumsq(v1))
            terms_bl = h * (in_p + out_m)
            terms_br = h * (out_p + in_m)
            terms_d = h * (d_p + d_m)
            terms_s = -h * 2.0 * alpha * src
            terms_s2 = h * alpha * alpha * src2
            terms_rl = h * a0n
            terms_rr = h * bNn
            rhs = h * (nu * (a0 - b0 + bN - aN) - 2.0 * alpha * rhs_src)
        # ---------------- port (eq. 60), commit, ledger ----------------------------------
        port = eta * _sumsq(r_t)
        total = terms_bl + terms_br + terms_d + terms_s + terms_s2 + terms_rl + terms_rr
        err = abs(Vn - V - total) / max(V, 1.0)
        if err > maxerr:
            maxerr = err
        if record_every > 0 and step % record_every == 0 and rows < hist.shape[0]:
            row = hist[rows]
            row[H_STEP] = step
            row[H_V] = V
            row[H_BL] = terms_bl
            row[H_BR] = terms_br
            row[H_DISS] = terms_d
            row[H_SRC] = terms_s
            row[H_SRC2] = terms_s2
            row[H_RL] = terms_rl
            row[H_RR] = terms_rr
            row[H_VN] = Vn
            row[H_RHS] = rhs
            row[H_PORT] = port
            row[H_LERR] = err
            row[H_RX] = nres_x
            row[H_RL_] = nres_l
            row[H_RT] = nres_t
            row[H_OBJ] = affine_objective(A, Bm, c, Q, R, Qf, gf, x_in, theta)
            rows += 1
        for k in range(N):
            for i in range(m):
                theta[k, i] -= eta * r_t[k, i]
        u[:, :, :] = u1
        v[:, :, :] = v1
    return nsteps, RUNNING, rows, maxerr, nres_x, nres_l, nres_t
