"""The fused τ-step of the ``affine`` problem family, compiled, looping over many τ-steps.

One call of :func:`affine_run` advances the fields by up to ``nsteps`` τ-steps without returning
to Python. Each step does what :mod:`wavecontrol.formulations` does with NumPy (its twin):
transport, reconstruction, PMP residuals (eqs. 53–56, 59), sources, the resistive port
(eq. 60), the boundary terminations and the exact energy ledger. Every step checks the fields
for divergence and the residuals for convergence; every ``record_every``-th step writes a row of
:data:`HIST_COLUMNS` into ``hist``.

Fields are ``(B, N + 1, n)`` arrays: ``u, v`` = (x, λ) in the consistent form and (w+, w-) in
the paper form; ``theta`` is ``(N, m)``. Integer codes select the branches (they are internal:
the public API takes names, see :data:`FORM_CODES`).

Layout inside a call: the fields are copied once into ``(B, n, N + 1)`` arrays and the layer
matrices into ``(rows, cols, N)`` arrays, so that every inner loop runs over the node index k
on the contiguous axis and compiles to SIMD code (one τ-step is then a few dozen such sweeps);
they are copied back before the call returns. A metric whose factors Θ_k are all diagonal (the
default Θ = I) is detected once per call and applied as a diagonal (Θ = I: not at all).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit

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

# Small integer arguments of the helpers below are passed as these numpy ints: numba compiles a
# separate specialization of a jitted callee for every literal Python int it is called with.
_0, _1 = np.int64(0), np.int64(1)
RIGHT, LEFT = np.int64(1), np.int64(-1)          # transport directions
ACC, SET, SET_BASE = np.int64(0), np.int64(1), np.int64(2)   # modes of _gemv


# --------------------------------------------------------------------------------------------
# reductions over flat arrays (several accumulators: independent add chains)
# --------------------------------------------------------------------------------------------
@jit
def _sumsq(f):
    """Σ f² over all entries of a contiguous array."""
    a = f.reshape(f.size)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    n = a.size
    k = 0
    while k + 8 <= n:
        s0 += a[k] * a[k]
        s1 += a[k + 1] * a[k + 1]
        s2 += a[k + 2] * a[k + 2]
        s3 += a[k + 3] * a[k + 3]
        s4 += a[k + 4] * a[k + 4]
        s5 += a[k + 5] * a[k + 5]
        s6 += a[k + 6] * a[k + 6]
        s7 += a[k + 7] * a[k + 7]
        k += 8
    while k < n:
        s0 += a[k] * a[k]
        k += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@jit
def _sum(a):
    """Σ a over a 1-D contiguous array."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    n = a.size
    k = 0
    while k + 8 <= n:
        s0 += a[k]
        s1 += a[k + 1]
        s2 += a[k + 2]
        s3 += a[k + 3]
        s4 += a[k + 4]
        s5 += a[k + 5]
        s6 += a[k + 6]
        s7 += a[k + 7]
        k += 8
    while k < n:
        s0 += a[k]
        k += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@jit
def _maxabs(f):
    """max |f| over all entries (NaN entries are skipped, as Python's ``max`` does)."""
    a = f.reshape(f.size)
    m0 = m1 = m2 = m3 = 0.0
    n = a.size
    k = 0
    while k + 4 <= n:
        m0 = max(m0, abs(a[k]))
        m1 = max(m1, abs(a[k + 1]))
        m2 = max(m2, abs(a[k + 2]))
        m3 = max(m3, abs(a[k + 3]))
        k += 4
    while k < n:
        m0 = max(m0, abs(a[k]))
        k += 1
    return max(max(m0, m1), max(m2, m3))


@jit
def _count_above(f, tol):
    """Number of entries with |f| > tol (the residual check; NaN entries do not count)."""
    a = f.reshape(f.size)
    cnt = 0
    for k in range(a.size):
        if abs(a[k]) > tol:
            cnt += 1
    return cnt


@jit
def _converged(r_x, r_l, r_t, tol):
    """max |r| ≤ tol for all three residuals."""
    return (_count_above(r_x, tol) == 0 and _count_above(r_l, tol) == 0
            and _count_above(r_t, tol) == 0)


# --------------------------------------------------------------------------------------------
# layout changes (once per call)
# --------------------------------------------------------------------------------------------
@jit
def _to_nodes_last(f, out):
    """out[b, i, k] = f[b, k, i]."""
    B, N1, n = f.shape
    for b in range(B):
        for k in range(N1):
            for i in range(n):
                out[b, i, k] = f[b, k, i]


@jit
def _to_nodes_middle(F, f):
    """f[b, k, i] = F[b, i, k] (inverse of :func:`_to_nodes_last`)."""
    B, N1, n = f.shape
    for b in range(B):
        for k in range(N1):
            for i in range(n):
                f[b, k, i] = F[b, i, k]


@jit
def _theta_to_nodes_last(theta, TH):
    N, m = theta.shape
    for k in range(N):
        for i in range(m):
            TH[i, k] = theta[k, i]


@jit
def _theta_to_nodes_first(TH, theta):
    N, m = theta.shape
    for k in range(N):
        for i in range(m):
            theta[k, i] = TH[i, k]


@jit
def _layers_last(M):
    """(K, r, c) layer matrices → (r, c, K)."""
    K, r, c = M.shape
    out = np.empty((r, c, K))
    for k in range(K):
        for i in range(r):
            for j in range(c):
                out[i, j, k] = M[k, i, j]
    return out


@jit
def _layers_last_T(M):
    """(K, r, c) layer matrices → their transposes node-last, (c, r, K)."""
    K, r, c = M.shape
    out = np.empty((c, r, K))
    for k in range(K):
        for i in range(r):
            for j in range(c):
                out[j, i, k] = M[k, i, j]
    return out


@jit
def _metric_data(Th, Ti):
    """Diagonal/identity flags of Θ and the arrays that apply Θ, Θᵀ, Θ⁻¹, Θ⁻ᵀ node-last.

    Returns ``(diag, ident, dTh, dTi, Th_, ThT, Ti_, TiT)``: the diagonals (n, N + 1) when every
    Θ_k (and Θ_k⁻¹) is diagonal, else the full factors in (n, n, N + 1) layout (placeholders of
    size 1 when not needed).
    """
    N1, n, _ = Th.shape
    diag = True
    ident = True
    for k in range(N1):
        for i in range(n):
            for j in range(n):
                if i != j and (Th[k, i, j] != 0.0 or Ti[k, i, j] != 0.0):
                    diag = False
            if Th[k, i, i] != 1.0 or Ti[k, i, i] != 1.0:
                ident = False
    ident = ident and diag
    dTh = np.empty((n, N1))
    dTi = np.empty((n, N1))
    for k in range(N1):
        for i in range(n):
            dTh[i, k] = Th[k, i, i]
            dTi[i, k] = Ti[k, i, i]
    if diag:
        none = np.zeros((1, 1, 1))
        return diag, ident, dTh, dTi, none, none, none, none
    return (diag, ident, dTh, dTi, _layers_last(Th), _layers_last_T(Th),
            _layers_last(Ti), _layers_last_T(Ti))


# --------------------------------------------------------------------------------------------
# products over all nodes at once
# --------------------------------------------------------------------------------------------
@jit
def _gemv(M, x, out, K, xo, oo, sign, base, bo, mode):
    """out[i, k + oo] (op)= sign · Σ_j M[i, j, k] x[j, k + xo] for k = 0..K−1.

    (op) is ``+=`` (mode ACC), ``=`` (SET) or ``= base[i, k + bo] +`` (SET_BASE). M is
    (r, c, ≥K) node-last, x (c, ·), out and base (r, ·); sign is ±1 (exact). The inner loops
    run over k, four columns j at a time (one output row and at most eight inputs per loop, so
    that the compiler vectorizes them).
    """
    r, c = M.shape[0], M.shape[1]
    for i in range(r):
        o = out[i][oo:oo + K]
        if mode == SET:
            for k in range(K):
                o[k] = 0.0
        elif mode == SET_BASE:
            bs = base[i][bo:bo + K]
            for k in range(K):
                o[k] = bs[k]
        j = 0
        while j < c:
            m0 = M[i, j][:K]
            x0 = x[j][xo:xo + K]
            if j + 4 <= c:
                m1 = M[i, j + 1][:K]
                m2 = M[i, j + 2][:K]
                m3 = M[i, j + 3][:K]
                x1 = x[j + 1][xo:xo + K]
                x2 = x[j + 2][xo:xo + K]
                x3 = x[j + 3][xo:xo + K]
                for k in range(K):
                    o[k] += sign * ((m0[k] * x0[k] + m1[k] * x1[k])
                                    + (m2[k] * x2[k] + m3[k] * x3[k]))
                j += 4
            elif j + 2 <= c:
                m1 = M[i, j + 1][:K]
                x1 = x[j + 1][xo:xo + K]
                for k in range(K):
                    o[k] += sign * (m0[k] * x0[k] + m1[k] * x1[k])
                j += 2
            else:
                for k in range(K):
                    o[k] += sign * (m0[k] * x0[k])
                j += 1


@jit
def _apply_metric(diag, d, M, F, out):
    """out[b] = Θ F[b] per node: the diagonal ``d`` (n, N + 1) or the full ``M`` (n, n, N + 1)."""
    B, n, N1 = F.shape
    for b in range(B):
        if diag:
            for i in range(n):
                o = out[b, i]
                f = F[b, i]
                di = d[i]
                for k in range(N1):
                    o[k] = di[k] * f[k]
        else:
            _gemv(M, F[b], out[b], N1, _0, _0, 1.0, out[b], _0, SET)


@jit
def _residuals(At, AtT, Bt, BtT, ct, Qt, Rt, Qf, gf, x_in, X, L, TH, RX, RL, RT, G, QX):
    """PMP residuals (eqs. 53–56, 59) of node-last fields X, L (B, n, N + 1), θ (m, N).

    Writes r_x, r_λ (B, n, N + 1), r_θ (m, N), G = B_k θ_k + c_k (n, N) and QX = Q_k x_k
    (B, n, N). ``At`` is A node-last (n, n, N), ``AtT`` its per-layer transpose; likewise B.
    """
    B, n, N1 = X.shape
    N = N1 - 1
    _gemv(Bt, TH, G, N, _0, _0, 1.0, ct, _0, SET_BASE)                 # G_k = B_k θ_k + c_k
    _gemv(Rt, TH, RT, N, _0, _0, 1.0, RT, _0, SET)                # r_θ,k = R_k θ_k ...
    for b in range(B):
        Xb = X[b]
        Lb = L[b]
        # r_x,0 = x_0 − x_in; r_x,k = x_k − A_{k−1} x_{k−1} − G_{k−1}
        _gemv(At, Xb, RX[b], N, _0, _1, -1.0, Xb, _1, SET_BASE)
        for i in range(n):
            RX[b, i, 0] = X[b, i, 0] - x_in[b, i]
            rx = RX[b, i][1:]
            g = G[i]
            for k in range(N):
                rx[k] -= g[k]
        # r_λ,k = λ_k − A_kᵀ λ_{k+1} − Q_k x_k; r_λ,N = λ_N − ∇ℓ(x_N)
        _gemv(Qt, Xb, QX[b], N, _0, _0, 1.0, QX[b], _0, SET)
        _gemv(AtT, Lb, RL[b], N, _1, _0, -1.0, Lb, _0, SET_BASE)
        for i in range(n):
            rl = RL[b, i]
            q = QX[b, i]
            for k in range(N):
                rl[k] -= q[k]
            s = 0.0
            for j in range(n):
                s += Qf[i, j] * X[b, j, N]
            RL[b, i, N] = L[b, i, N] - s - gf[i]
        _gemv(BtT, Lb, RT, N, _1, _0, 1.0, RT, _0, ACC)            # ... + B_kᵀ λ_{k+1}


@jit
def _norms(RX, RL, RT):
    return _maxabs(RX), _maxabs(RL), _maxabs(RT)


@jit
def _upwind(w, out, nu, direction, dacc):
    """Upwind transport (eqs. 41–42) of node-last w (B, n, N + 1) into ``out``.

    Adds each node's dissipation terms to ``dacc`` (N + 1) and returns (inflow, outflow): the
    split of :func:`wavecontrol.schemes.transport_kernel` (code 0), term by term.
    """
    B, n, N1 = w.shape
    N = N1 - 1
    inflow = 0.0
    outflow = 0.0
    for b in range(B):
        for i in range(n):
            row = w[b, i]
            o = out[b, i]
            if direction > 0:
                w0 = row[0]
                wN = row[N]
                o[0] = w0
                prev = row[:N]
                cur = row[1:]
                on = o[1:]
                da = dacc[1:]
            else:
                w0 = row[N]
                wN = row[0]
                o[N] = w0
                prev = row[1:]
                cur = row[:N]
                on = o[:N]
                da = dacc[:N]
            for k in range(N):
                wk = cur[k]
                wp = prev[k]
                new = wk - nu * (wk - wp)
                on[k] = new
                # (w̄_k − w_k)² and the interface between k and its upstream neighbour
                da[k] += (new - wk) * (new - wk) - 2.0 * nu * (wp - 0.5 * (wp + wk)) * (wp - wk)
            inflow += nu * (2.0 * w0 * w0 - w0 * w0)
            outflow += nu * (wN * wN - 2.0 * wN * wN)
    return inflow, outflow


@jit
def _flux_transport(w, out, code, nu, direction, F, dacc):
    """Lax–Wendroff (code 1) or Beam–Warming (code 2) transport of node-last w into ``out``.

    The fluxes and the split of :func:`wavecontrol.schemes.transport_kernel` (codes 1, 2),
    term by term; F (N + 1) is scratch: F[k] is the flux between memory nodes k and k + 1.
    Dissipation terms are added to ``dacc``; returns (inflow, outflow).
    """
    B, n, N1 = w.shape
    N = N1 - 1
    c1 = 0.5 * (1.0 - nu)
    inflow = 0.0
    outflow = 0.0
    for b in range(B):
        for i in range(n):
            row = w[b, i]
            o = out[b, i]
            if direction > 0:
                # F_{k+1/2}: LW w_k + c1 (w_{k+1} − w_k); BW w_k + c1 (w_k − w_{k−1}) (k ≥ 1)
                if code == 1:
                    wl = row[:N]
                    wr = row[1:]
                    f = F[:N]
                    for k in range(N):
                        f[k] = wl[k] + c1 * (wr[k] - wl[k])
                else:
                    wl = row[1:N]
                    wll = row[:N - 1]
                    f = F[1:N]
                    for k in range(N - 1):
                        f[k] = wl[k] + c1 * (wl[k] - wll[k])
                    # F_{1/2} as Lax–Wendroff: node 1 is an upwind step
                    F[0] = row[0] + c1 * (row[1] - row[0])
                w0 = row[0]
                wN = row[N]
                fout = wN + c1 * (wN - row[N - 1])       # outflow closure: node N upwind
                o[0] = w0
                cur = row[1:N]
                fr = F[1:N]
                fl = F[:N - 1]
                on = o[1:N]
                for k in range(N - 1):
                    on[k] = cur[k] - nu * (fr[k] - fl[k])
                o[N] = wN - nu * (fout - F[N - 1])
                fin = F[0]
                wd = row[1:]                              # downstream side of interface k
                wu = row[:N]                              # upstream side
                od = o[1:]
                da = dacc[1:]
            else:
                # mirror image: upstream of interface k is node k + 1
                if code == 1:
                    wu = row[1:]
                    wd = row[:N]
                    f = F[:N]
                    for k in range(N):
                        f[k] = wu[k] + c1 * (wd[k] - wu[k])
                else:
                    wu = row[1:N]
                    wuu = row[2:]
                    f = F[:N - 1]
                    for k in range(N - 1):
                        f[k] = wu[k] + c1 * (wu[k] - wuu[k])
                    F[N - 1] = row[N] + c1 * (row[N - 1] - row[N])
                w0 = row[N]
                wN = row[0]
                fout = wN + c1 * (wN - row[1])
                o[N] = w0
                cur = row[1:N]
                fr = F[1:N]
                fl = F[:N - 1]
                on = o[1:N]
                for k in range(N - 1):
                    on[k] = cur[k] - nu * (fl[k] - fr[k])
                o[0] = wN - nu * (fout - F[0])
                fin = F[N - 1]
                wd = row[:N]
                wu = row[1:]
                od = o[:N]
                da = dacc[:N]
            inflow += nu * (2.0 * w0 * fin - w0 * w0)
            outflow += nu * (wN * wN - 2.0 * wN * fout)
            f = F[:N]
            for k in range(N):
                # (w̄ − w)² of the downstream node and the interface term
                da[k] += ((od[k] - wd[k]) * (od[k] - wd[k])
                          - 2.0 * nu * (f[k] - 0.5 * (wu[k] + wd[k])) * (wu[k] - wd[k]))
    return inflow, outflow


@jit
def _char_transport(w, out, nu, direction, dacc):
    """Characteristic transport (ν = p + q) of node-last w into ``out``; the split of
    :func:`wavecontrol.schemes.transport_kernel` (code 3). Returns (inflow, outflow)."""
    B, n, N1 = w.shape
    N = N1 - 1
    p = int(math.floor(nu))
    q = nu - p
    cq = q * (1.0 - q)
    inflow = 0.0
    outflow = 0.0
    for b in range(B):
        for i in range(n):
            row = w[b, i]
            o = out[b, i]
            i0 = 0 if direction > 0 else N
            o[i0] = row[i0]
            # logical nodes 1..min(p + 1, N): departure points clamped at the inflow node
            for kl in range(1, min(p + 1, N) + 1):
                ik = kl if direction > 0 else N - kl
                iu = max(kl - p, 0)
                iv = max(kl - p - 1, 0)
                u = row[iu if direction > 0 else N - iu]
                v = row[iv if direction > 0 else N - iv]
                o[ik] = (1.0 - q) * u + q * v
                dacc[ik] -= cq * (u - v) * (u - v)
            # the rest: a plain shift by p (and p + 1)
            cnt = N - p - 1
            if cnt > 0:
                if direction > 0:
                    on = o[p + 2:]
                    us = row[2:2 + cnt]
                    vs = row[1:1 + cnt]
                    da = dacc[p + 2:]
                else:
                    on = o[:cnt]
                    us = row[p:p + cnt]
                    vs = row[p + 1:p + 1 + cnt]
                    da = dacc[:cnt]
                for k in range(cnt):
                    on[k] = (1.0 - q) * us[k] + q * vs[k]
                for k in range(cnt):
                    da[k] -= cq * (us[k] - vs[k]) * (us[k] - vs[k])
            inflow += ((1.0 - q) * min(p, N) + q * min(p + 1, N)) * row[i0] ** 2
            for kl in range(max(1, N - p), N + 1):
                weight = 0.0
                if kl >= N - p + 1:
                    weight += 1.0 - q
                if kl >= N - p:
                    weight += q
                outflow -= weight * row[kl if direction > 0 else N - kl] ** 2
    return inflow, outflow


@jit
def _transport(w, out, code, nu, direction, F, dacc):
    """Homogeneous transport of node-last w (codes of :data:`~wavecontrol.schemes.SCHEME_CODES`);
    returns (inflow, outflow, dissipation) as :func:`~wavecontrol.schemes.transport_kernel`."""
    dacc[:] = 0.0
    if code == 0:
        fin, fout = _upwind(w, out, nu, direction, dacc)
    elif code == 3:
        fin, fout = _char_transport(w, out, nu, direction, dacc)
    else:
        fin, fout = _flux_transport(w, out, code, nu, direction, F, dacc)
    return fin, fout, _sum(dacc)


@jit
def _theta_step(TH, RT, eta, TH1):
    """θ' = θ − η r_θ (eq. 60, resistive port) into TH1 (m, N); returns ½‖θ'‖²."""
    m, N = TH.shape
    for i in range(m):
        t = TH[i]
        r = RT[i]
        t1 = TH1[i]
        for k in range(N):
            t1[k] = t[k] - eta * r[k]
    return 0.5 * _sumsq(TH1)


@jit
def affine_objective(A, Bm, c, Q, R, Qf, gf, x_in, theta):
    """J(θ) by a forward pass (eq. 48) for the affine family."""
    Bb, n = x_in.shape
    N = A.shape[0]
    m = Bm.shape[2]
    x = np.empty(n)
    y = np.empty(n)
    J = 0.0
    for k in range(N):
        for i in range(m):
            s = 0.0
            for j in range(m):
                s += R[k, i, j] * theta[k, j]
            J += 0.5 * theta[k, i] * s
    for b in range(Bb):
        for i in range(n):
            x[i] = x_in[b, i]
        for k in range(N):
            for i in range(n):
                s = 0.0
                for j in range(n):
                    s += Q[k, i, j] * x[j]
                J += 0.5 * x[i] * s
            for i in range(n):
                s = 0.0
                for j in range(n):
                    s += A[k, i, j] * x[j]
                t = 0.0
                for j in range(m):
                    t += Bm[k, i, j] * theta[k, j]
                y[i] = s + t + c[k, i]
            for i in range(n):
                x[i] = y[i]
        for i in range(n):
            s = 0.0
            for j in range(n):
                s += Qf[i, j] * x[j]
            J += 0.5 * x[i] * s + gf[i] * x[i]
    return J


@jit
def _record(row, step, V, Vn, bl, br, d, s, s2, rl, rr, rhs, err, eta, RX, RL, RT, TH, theta,
            A, Bm, c, Q, R, Qf, gf, x_in):
    """Write one history row (:data:`HIST_COLUMNS`); θ (not yet updated) goes into ``theta``."""
    nx, nl, nt = _norms(RX, RL, RT)
    _theta_to_nodes_first(TH, theta)
    row[H_STEP] = step
    row[H_V] = V
    row[H_BL] = bl
    row[H_BR] = br
    row[H_DISS] = d
    row[H_SRC] = s
    row[H_SRC2] = s2
    row[H_RL] = rl
    row[H_RR] = rr
    row[H_VN] = Vn
    row[H_RHS] = rhs
    row[H_PORT] = eta * _sumsq(RT)
    row[H_LERR] = err
    row[H_RX] = nx
    row[H_RL_] = nl
    row[H_RT] = nt
    row[H_OBJ] = affine_objective(A, Bm, c, Q, R, Qf, gf, x_in, theta)


@jit
def _store(X, L, TH, u, v, theta):
    _to_nodes_middle(X, u)
    _to_nodes_middle(L, v)
    _theta_to_nodes_first(TH, theta)


@jit
def _finish(X, L, TH, u, v, theta, RX, RL, RT, steps, code, rows, maxerr, measured):
    """Copy the node-last fields back into (u, v, θ) and build :func:`affine_run`'s return
    tuple; the residual norms are those of the last step's residual arrays when ``measured``
    (else no step has filled them: zeros)."""
    _store(X, L, TH, u, v, theta)
    if not measured:
        return steps, code, rows, maxerr, 0.0, 0.0, 0.0
    nx, nl, nt = _norms(RX, RL, RT)
    return steps, code, rows, maxerr, nx, nl, nt


@jit
def _node_last_problem(A, Bm, Q, R, c):
    """The layer data of the affine family as node-last arrays: Aᵏ, (Aᵏ)ᵀ, Bᵏ, (Bᵏ)ᵀ, Qᵏ, Rᵏ
    as (rows, cols, N) and c as (n, N)."""
    return (_layers_last(A), _layers_last_T(A), _layers_last(Bm), _layers_last_T(Bm),
            _layers_last(Q), _layers_last(R), np.ascontiguousarray(c.T))


@jit
def _close_step(step, V, Vn, bl, br, d, s, s2, rl, rr, rhs, eta, RX, RL, RT, TH, TH1, theta,
                A, Bm, c, Q, R, Qf, gf, x_in, record_every, hist, rows, div_bound, maxerr):
    """The end of one τ-step, common to both forms: the port update θ' = θ − η r_θ into TH1,
    the divergence check, the ledger error and the history row.

    The step diverges when the new fields would leave the bound (V' or the parameter energy
    ½‖θ'‖² above ``div_bound``, or non-finite); its row is still recorded when its numbers are
    finite, and the caller keeps the fields of this step (the step is not committed).
    Returns ``(diverged, rows, maxerr)``.
    """
    theta_energy = _theta_step(TH, RT, eta, TH1)
    bad = not (Vn <= div_bound and theta_energy <= div_bound)
    err = abs(Vn - V - (bl + br + d + s + s2 + rl + rr)) / max(V, 1.0)
    if not bad and err > maxerr:
        maxerr = err
    keep = not bad or (math.isfinite(Vn) and math.isfinite(err))
    if keep and record_every > 0 and step % record_every == 0 and rows < hist.shape[0]:
        _record(hist[rows], step, V, Vn, bl, br, d, s, s2, rl, rr, rhs, err, eta, RX, RL, RT,
                TH, theta, A, Bm, c, Q, R, Qf, gf, x_in)
        rows += 1
    return bad, rows, maxerr


# --------------------------------------------------------------------------------------------
# consistent form
# --------------------------------------------------------------------------------------------
@jit
def _consistent_update(code, nu, At, AtT, X, L, RX, RL, G, QX, X1, L1, T1, RC, RC2):
    """x' and λ' of the consistent form on nodes 1..N (x) and 0..N−1 (λ), node-last."""
    B, n, N1 = X.shape
    N = N1 - 1
    if code == 3:
        # characteristic: rows X^{(j+1)}_k = f_{k−1}(X^{(j)}_{k−1}) (node 0 fixed) and
        # Λ^{(j+1)}_k = A_kᵀ Λ^{(j)}_{k+1} + Q_k x_k (node N fixed); x' = (1 − q) X^{(p)} +
        # q X^{(p+1)}; the last row is skipped when its weight q is 0
        p = int(math.floor(nu))
        q = nu - p
        w0 = (1.0 - q) if p == 0 else 0.0
        for b in range(B):
            for fld in range(2):
                src = X[b] if fld == 0 else L[b]
                dst = X1[b] if fld == 0 else L1[b]
                for i in range(n):
                    s = src[i]
                    r = RC[i]
                    d = dst[i]
                    for k in range(N1):
                        r[k] = s[k]
                    for k in range(N1):
                        d[k] = w0 * s[k]
                for j in range(1, p + 2):
                    wgt = (1.0 - q) if j == p else (q if j == p + 1 else 0.0)
                    if j == p + 1 and wgt == 0.0:
                        break
                    if fld == 0:
                        for i in range(n):
                            RC2[i, 0] = RC[i, 0]
                        _gemv(At, RC, RC2, N, _0, _1, 1.0, G, _0, SET_BASE)
                    else:
                        for i in range(n):
                            RC2[i, N] = RC[i, N]
                        _gemv(AtT, RC, RC2, N, _1, _0, 1.0, QX[b], _0, SET_BASE)
                    RC, RC2 = RC2, RC
                    if wgt != 0.0:
                        for i in range(n):
                            d = dst[i][1:] if fld == 0 else dst[i][:N]
                            r = RC[i][1:] if fld == 0 else RC[i][:N]
                            for k in range(N):
                                d[k] += wgt * r[k]
        return
    beta = 0.5 * nu * (nu - 1.0)
    for b in range(B):
        for i in range(n):
            x1 = X1[b, i]
            x = X[b, i]
            rx = RX[b, i]
            for k in range(N1):
                x1[k] = x[k] - nu * rx[k]
            l1 = L1[b, i]
            lr = L[b, i]
            rl = RL[b, i]
            for k in range(N1):
                l1[k] = lr[k] - nu * rl[k]
        if code == 2:
            # Beam–Warming correction β (r_k − J r_{k∓1}); node 1 (N − 1 for λ), next to the
            # inflow, stays upwind
            _gemv(At, RX[b], T1, N, _0, _1, 1.0, T1, _0, SET)    # T1_k = A_{k−1} r_x,k−1
            for i in range(n):
                x1 = X1[b, i][2:]
                rx = RX[b, i][2:]
                t = T1[i][2:]
                for k in range(N - 1):
                    x1[k] += beta * (rx[k] - t[k])
            _gemv(AtT, RL[b], T1, N, _1, _0, 1.0, T1, _0, SET)   # T1_k = A_kᵀ r_λ,k+1
            for i in range(n):
                l1 = L1[b, i]
                rl = RL[b, i]
                t = T1[i]
                for k in range(N - 1):
                    l1[k] += beta * (rl[k] - t[k])
            if nu > 1.0:
                # node 1 (N − 1 for λ) takes the exact one-layer step: its departure point
                # lies beyond the inflow boundary
                for i in range(n):
                    X1[b, i, 1] = X[b, i, 1] - RX[b, i, 1]
                    L1[b, i, N - 1] = L[b, i, N - 1] - RL[b, i, N - 1]


@jit
def _consistent_sums(a, bb, ab, bbar, a1, b1, S1, S2, S3):
    """Per-node sums of the source terms of the ledger in (a, b) (see the NumPy twin)."""
    B, n, N1 = a.shape
    N = N1 - 1
    S1[:] = 0.0
    S2[:] = 0.0
    S3[:] = 0.0
    for b in range(B):
        for i in range(n):
            # right-moving a on nodes 1..N
            e = a1[b, i][1:]
            t = ab[b, i][1:]
            o = a[b, i][1:]
            s1 = S1[1:]
            s2 = S2[1:]
            s3 = S3[1:]
            for k in range(N):
                s = e[k] - t[k]
                s1[k] += t[k] * s
                s2[k] += s * s
                s3[k] += o[k] * s
            # left-moving b on nodes 0..N−1
            e = b1[b, i][:N]
            t = bbar[b, i][:N]
            o = bb[b, i][:N]
            s1 = S1[:N]
            s2 = S2[:N]
            s3 = S3[:N]
            for k in range(N):
                s = e[k] - t[k]
                s1[k] += t[k] * s
                s2[k] += s * s
                s3[k] += o[k] * s


@jit
def _consistent_run(code, explicit, nu, eta, A, Bm, c, Q, R, Qf, gf, x_in, Th, Ti,
                    u, v, theta, start, nsteps, tol, record_every, hist, hrow, div_bound, dt):
    """:func:`affine_run` for the consistent form (u = x, v = λ)."""
    B, N1, n = u.shape
    N = N1 - 1
    m = theta.shape[1]
    h = 0.5 * dt
    At, AtT, Bt, BtT, Qt, Rt, ct = _node_last_problem(A, Bm, Q, R, c)
    diag, ident, dTh, dTi, Th_, ThT, Ti_, TiT = _metric_data(Th, Ti)
    X = np.empty((B, n, N1))
    L = np.empty((B, n, N1))
    _to_nodes_last(u, X)
    _to_nodes_last(v, L)
    TH = np.empty((m, N))
    _theta_to_nodes_last(theta, TH)
    X1 = np.empty_like(X)
    L1 = np.empty_like(X)
    TH1 = np.empty_like(TH)
    RX = np.empty_like(X)
    RL = np.empty_like(X)
    RT = np.empty_like(TH)
    G = np.empty((n, N))
    QX = np.empty((B, n, N))
    UB = np.empty_like(X)        # transported a (ledger)
    VB = np.empty_like(X)        # transported b
    if ident:
        # Θ = I: a = x and b = λ exactly, no copies
        a, bb, a1, b1 = X, L, X1, L1
    else:
        a, bb, a1, b1 = (np.empty_like(X), np.empty_like(X), np.empty_like(X),
                         np.empty_like(X))
    S1 = np.empty(N1)
    S2 = np.empty(N1)
    S3 = np.empty(N1)
    SD = np.empty(N1)
    T1 = np.empty((n, N1))
    RC = np.empty((n, N1))
    RC2 = np.empty((n, N1))
    maxerr = 0.0
    rows = hrow
    V = 0.0
    for it in range(nsteps):
        step = start + it
        if it == 0:
            if not ident:
                _apply_metric(diag, dTh, Th_, X, a)         # a = Θ x
                _apply_metric(diag, dTi, TiT, L, bb)        # b = Θ^{-T} λ
            V = h * (_sumsq(a) + _sumsq(bb))
        # (V of a later step is the previous step's V_next: the same numbers, same sums)
        if not (V <= div_bound):
            return _finish(X, L, TH, u, v, theta, RX, RL, RT, it, DIVERGED, rows, maxerr,
                           it > 0)
        _residuals(At, AtT, Bt, BtT, ct, Qt, Rt, Qf, gf, x_in, X, L, TH, RX, RL, RT, G, QX)
        if _converged(RX, RL, RT, tol):
            return _finish(X, L, TH, u, v, theta, RX, RL, RT, it, CONVERGED, rows, maxerr,
                           True)
        _consistent_update(code, nu, At, AtT, X, L, RX, RL, G, QX, X1, L1, T1, RC, RC2)
        for b in range(B):
            for i in range(n):
                X1[b, i, 0] = x_in[b, i]
            for i in range(n):
                s = 0.0
                for j in range(n):
                    s += Qf[i, j] * (X[b, j, N] if explicit else X1[b, j, N])
                L1[b, i, N] = s + gf[i]
        # ledger in a = Θx, b = Θ^{-T}λ: transport of the old a, b (homogeneous part)
        in_a, out_a, d_a = _transport(a, UB, code, nu, RIGHT, T1[0], SD)
        in_b, out_b, d_b = _transport(bb, VB, code, nu, LEFT, T1[0], SD)
        if not ident:
            _apply_metric(diag, dTh, Th_, X1, a1)           # a' = Θ x'
            _apply_metric(diag, dTi, TiT, L1, b1)           # b' = Θ^{-T} λ'
        _consistent_sums(a, bb, UB, VB, a1, b1, S1, S2, S3)
        src = _sum(S1)
        src2 = _sum(S2)
        rhs_src = _sum(S3)
        a0 = 0.0
        b0 = 0.0
        aN = 0.0
        bN = 0.0
        a0n = 0.0
        bNn = 0.0
        for b in range(B):
            for i in range(n):
                a0 += a[b, i, 0] ** 2
                b0 += bb[b, i, 0] ** 2
                aN += a[b, i, N] ** 2
                bN += bb[b, i, N] ** 2
                a0n += a1[b, i, 0] ** 2
                bNn += b1[b, i, N] ** 2
        Vn = h * (_sumsq(a1) + _sumsq(b1))
        terms_bl = h * (in_a + out_b)
        terms_br = h * (out_a + in_b)
        terms_d = h * (d_a + d_b)
        terms_s = h * 2.0 * src
        terms_s2 = h * src2
        terms_rl = h * (a0n - a0)
        terms_rr = h * (bNn - bN)
        rhs = h * (nu * (a0 - b0 + bN - aN) + 2.0 * rhs_src)
        # ---- port (eq. 60), divergence check, ledger error, history -----------------------
        bad, rows, maxerr = _close_step(step, V, Vn, terms_bl, terms_br, terms_d, terms_s,
                                        terms_s2, terms_rl, terms_rr, rhs, eta, RX, RL, RT, TH,
                                        TH1, theta, A, Bm, c, Q, R, Qf, gf, x_in,
                                        record_every, hist, rows, div_bound, maxerr)
        if bad:
            return _finish(X, L, TH, u, v, theta, RX, RL, RT, it, DIVERGED, rows, maxerr,
                           True)
        X, X1 = X1, X
        L, L1 = L1, L
        a, a1 = a1, a
        bb, b1 = b1, bb
        TH, TH1 = TH1, TH
        V = Vn
    return _finish(X, L, TH, u, v, theta, RX, RL, RT, nsteps, RUNNING, rows, maxerr,
                   nsteps > 0)


# --------------------------------------------------------------------------------------------
# paper form
# --------------------------------------------------------------------------------------------
@jit
def _reconstruct(diag, dTi, Ti_, dTh, ThT, sp, sm, XS, LS, PS, MS):
    """x = Θ⁻¹ (w+ + w-)/√2, λ = Θᵀ (w+ − w-)/√2 (eqs. 39–40), node-last."""
    B, n, N1 = sp.shape
    for b in range(B):
        if diag:
            for i in range(n):
                p = sp[b, i]
                q = sm[b, i]
                x = XS[b, i]
                di = dTi[i]
                for k in range(N1):
                    x[k] = di[k] * ((p[k] + q[k]) / SQRT2)
                lam = LS[b, i]
                dh = dTh[i]
                for k in range(N1):
                    lam[k] = dh[k] * ((p[k] - q[k]) / SQRT2)
        else:
            for i in range(n):
                p = sp[b, i]
                q = sm[b, i]
                ps = PS[i]
                ms = MS[i]
                for k in range(N1):
                    ps[k] = (p[k] + q[k]) / SQRT2
                for k in range(N1):
                    ms[k] = (p[k] - q[k]) / SQRT2
            _gemv(Ti_, PS, XS[b], N1, _0, _0, 1.0, PS, _0, SET)
            _gemv(ThT, MS, LS[b], N1, _0, _0, 1.0, MS, _0, SET)


@jit
def _paper_sources(diag, dTh, Th_, dTi, TiT, alpha, RX, RL, U, W, UB, VB, U1, W1, TP, TQ,
                   S1, S2, S3):
    """E± = (Θ r_x ± Θ^{-T} r_λ)/√2 (eq. 57), w' = w̄ − α E (eq. 58) and the ledger's per-node
    source sums."""
    B, n, N1 = U.shape
    S1[:] = 0.0
    S2[:] = 0.0
    S3[:] = 0.0
    for b in range(B):
        if diag:
            for i in range(n):
                tp = TP[i]
                rx = RX[b, i]
                dh = dTh[i]
                for k in range(N1):
                    tp[k] = dh[k] * rx[k]
                tq = TQ[i]
                rl = RL[b, i]
                di = dTi[i]
                for k in range(N1):
                    tq[k] = di[k] * rl[k]
        else:
            _gemv(Th_, RX[b], TP, N1, _0, _0, 1.0, TP, _0, SET)
            _gemv(TiT, RL[b], TQ, N1, _0, _0, 1.0, TQ, _0, SET)
        for i in range(n):
            ep = TP[i]
            em = TQ[i]
            for k in range(N1):
                tp = ep[k]
                tq = em[k]
                ep[k] = (tp + tq) / SQRT2
                em[k] = (tp - tq) / SQRT2
            ub = UB[b, i]
            vb = VB[b, i]
            u1 = U1[b, i]
            for k in range(N1):
                u1[k] = ub[k] - alpha * ep[k]
            w1 = W1[b, i]
            for k in range(N1):
                w1[k] = vb[k] - alpha * em[k]
            uo = U[b, i]
            wo = W[b, i]
            for k in range(N1):
                S1[k] += ub[k] * ep[k] + vb[k] * em[k]
                S2[k] += ep[k] * ep[k] + em[k] * em[k]
                S3[k] += uo[k] * ep[k] + wo[k] * em[k]


@jit
def _paper_run(code, explicit, before, nu, alpha, eta, A, Bm, c, Q, R, Qf, gf, x_in, Th, Ti,
               Mterm, u, v, theta, start, nsteps, tol, record_every, hist, hrow, div_bound, dt):
    """:func:`affine_run` for the paper form (u = w+, v = w-; Algorithm 1)."""
    B, N1, n = u.shape
    N = N1 - 1
    m = theta.shape[1]
    h = 0.5 * dt
    At, AtT, Bt, BtT, Qt, Rt, ct = _node_last_problem(A, Bm, Q, R, c)
    diag, ident, dTh, dTi, Th_, ThT, Ti_, TiT = _metric_data(Th, Ti)
    U = np.empty((B, n, N1))
    W = np.empty((B, n, N1))
    _to_nodes_last(u, U)
    _to_nodes_last(v, W)
    TH = np.empty((m, N))
    _theta_to_nodes_last(theta, TH)
    U1 = np.empty_like(U)
    W1 = np.empty_like(U)
    TH1 = np.empty_like(TH)
    UB = np.empty_like(U)
    VB = np.empty_like(U)
    XS = np.empty_like(U)
    LS = np.empty_like(U)
    RX = np.empty_like(U)
    RL = np.empty_like(U)
    RT = np.empty_like(TH)
    CX = np.empty_like(U)        # confirmation on the untransported fields
    CL = np.empty_like(U)
    CT = np.empty_like(TH)
    EA = np.empty_like(U)
    EB = np.empty_like(U)
    G = np.empty((n, N))
    QX = np.empty((B, n, N))
    PS = np.empty((n, N1))
    MS = np.empty((n, N1))
    S1 = np.empty(N1)
    S2 = np.empty(N1)
    S3 = np.empty(N1)
    SD = np.empty(N1)
    tmp = np.empty(n)
    tmp2 = np.empty(n)
    maxerr = 0.0
    rows = hrow
    V = 0.0
    for it in range(nsteps):
        step = start + it
        if it == 0:
            V = h * (_sumsq(U) + _sumsq(W))
        # (V of a later step is the previous step's V_next: the same numbers, same sums)
        if not (V <= div_bound):
            return _finish(U, W, TH, u, v, theta, RX, RL, RT, it, DIVERGED, rows, maxerr,
                           it > 0)
        in_p, out_p, d_p = _transport(U, UB, code, nu, RIGHT, PS[0], SD)               # (A)
        in_m, out_m, d_m = _transport(W, VB, code, nu, LEFT, PS[0], SD)
        if before:                                                          # (B)
            _reconstruct(diag, dTi, Ti_, dTh, ThT, U, W, XS, LS, PS, MS)
        else:
            _reconstruct(diag, dTi, Ti_, dTh, ThT, UB, VB, XS, LS, PS, MS)
        _residuals(At, AtT, Bt, BtT, ct, Qt, Rt, Qf, gf, x_in, XS, LS, TH, RX, RL, RT, G,
                   QX)                                                      # (C)
        if _converged(RX, RL, RT, tol):
            # the step's residuals are those of the transported fields; confirm on the
            # fields that would be returned before reporting convergence
            _reconstruct(diag, dTi, Ti_, dTh, ThT, U, W, EA, EB, PS, MS)
            _residuals(At, AtT, Bt, BtT, ct, Qt, Rt, Qf, gf, x_in, EA, EB, TH, CX, CL, CT, G,
                       QX)
            if _converged(CX, CL, CT, tol):
                return _finish(U, W, TH, u, v, theta, CX, CL, CT, it, CONVERGED, rows, maxerr,
                               True)
        _paper_sources(diag, dTh, Th_, dTi, TiT, alpha, RX, RL, U, W, UB, VB, U1, W1, PS, MS,
                       S1, S2, S3)
        src = _sum(S1)
        src2 = _sum(S2)
        rhs_src = _sum(S3)
        # (E) boundary scattering; resets measured against the post-source fields
        a0 = 0.0
        b0 = 0.0
        aN = 0.0
        bN = 0.0
        a0n = 0.0
        bNn = 0.0
        for b in range(B):
            for i in range(n):
                a0 += U[b, i, 0] ** 2
                b0 += W[b, i, 0] ** 2
                aN += U[b, i, N] ** 2
                bN += W[b, i, N] ** 2
            pre0 = 0.0
            preN = 0.0
            for i in range(n):
                pre0 += U1[b, i, 0] ** 2
                preN += W1[b, i, N] ** 2
            for i in range(n):                                  # flow entering (Lemma 2.5)
                s = 0.0
                for j in range(n):
                    s += Th[0, i, j] * x_in[b, j]
                U1[b, i, 0] = SQRT2 * s - W1[b, i, 0]
            if explicit:
                for i in range(n):
                    s = 0.0
                    for j in range(n):
                        s += Qf[i, j] * XS[b, j, N]
                    tmp[i] = s + gf[i]
                for i in range(n):
                    s = 0.0
                    for j in range(n):
                        s += Ti[N, j, i] * tmp[j]
                    W1[b, i, N] = U1[b, i, N] - SQRT2 * s
            else:
                for i in range(n):
                    s = 0.0
                    for j in range(n):
                        s += Ti[N, j, i] * gf[j]
                    tmp[i] = 2.0 * U1[b, i, N] - SQRT2 * s
                for i in range(n):
                    s = 0.0
                    for j in range(n):
                        s += Mterm[i, j] * tmp[j]
                    tmp2[i] = s
                for i in range(n):
                    W1[b, i, N] = tmp2[i] - U1[b, i, N]
            for i in range(n):
                a0n += U1[b, i, 0] ** 2
                bNn += W1[b, i, N] ** 2
            a0n -= pre0
            bNn -= preN
        Vn = h * (_sumsq(U1) + _sumsq(W1))
        terms_bl = h * (in_p + out_m)
        terms_br = h * (out_p + in_m)
        terms_d = h * (d_p + d_m)
        terms_s = -h * 2.0 * alpha * src
        terms_s2 = h * alpha * alpha * src2
        terms_rl = h * a0n
        terms_rr = h * bNn
        rhs = h * (nu * (a0 - b0 + bN - aN) - 2.0 * alpha * rhs_src)
        # ---- port (eq. 60), divergence check, ledger error, history -----------------------
        bad, rows, maxerr = _close_step(step, V, Vn, terms_bl, terms_br, terms_d, terms_s,
                                        terms_s2, terms_rl, terms_rr, rhs, eta, RX, RL, RT, TH,
                                        TH1, theta, A, Bm, c, Q, R, Qf, gf, x_in,
                                        record_every, hist, rows, div_bound, maxerr)
        if bad:
            return _finish(U, W, TH, u, v, theta, RX, RL, RT, it, DIVERGED, rows, maxerr,
                           True)
        U, U1 = U1, U
        W, W1 = W1, W
        TH, TH1 = TH1, TH
        V = Vn
    return _finish(U, W, TH, u, v, theta, RX, RL, RT, nsteps, RUNNING, rows, maxerr,
                   nsteps > 0)


def affine_run(form, code, explicit, before, nu, alpha, eta,
               A, Bm, c, Q, R, Qf, gf, x_in, Th, Ti, Mterm,
               u, v, theta, start, nsteps, tol, record_every, hist, hrow, div_bound, dt):
    """Advance (u, v, θ) by up to ``nsteps`` τ-steps in place.

    Returns ``(steps_done, status, rows_written, max_ledger_error, res_x, res_λ, res_θ)`` where
    status is 0 (budget of this call used), 1 (converged: every residual ≤ tol at the current
    fields, which are left untouched) or 2 (diverged: V non-finite or above ``div_bound`` at the
    current fields). ``start`` is the global index of the first step (for recording).

    A thin dispatcher: each formulation is its own compiled kernel, so a run compiles (or loads
    from the cache) only the one it uses.
    """
    if form == 0:
        return _consistent_run(code, explicit, nu, eta, A, Bm, c, Q, R, Qf, gf, x_in, Th, Ti,
                               u, v, theta, start, nsteps, tol, record_every, hist, hrow,
                               div_bound, dt)
    return _paper_run(code, explicit, before, nu, alpha, eta, A, Bm, c, Q, R, Qf, gf, x_in,
                      Th, Ti, Mterm, u, v, theta, start, nsteps, tol, record_every, hist, hrow,
                      div_bound, dt)
