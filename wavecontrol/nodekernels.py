"""Compiled run loops over *node functions*: the template of the generated kernel modules.

This file is not run as it stands: :func:`wavecontrol.codegen.kernel_module` writes it and,
after it, a problem's node source into one module file, so that the loops call the problem's
functions as globals (the node source's definitions replace the placeholders here) and numba
caches the whole on disk. Node functions (k the layer index
0..N−1 as int64, x (n,), u (m,) float64, D the problem's tuple of float64 arrays; outputs are
preallocated and filled completely)::

    layer(k, x, u, D, f, A, B)                # f = f_k(x, u) (n,), A = ∂f_k/∂x (n, n), B = ∂f_k/∂u (n, m)
    running_grad(k, x, u, D, gx, gu) -> R_k   # ∇_x R_k (n,), ∇_u R_k (m,); returns R_k(x, u)
    running_hess(k, x, u, D, Rxx, Rux, Ruu)   # ∇²_xx R_k (n, n), ∂²R_k/∂u∂x (m, n), ∇²_uu R_k (m, m)
    terminal_grad(x, D, g) -> ℓ               # ∇ℓ(x) (n,); returns ℓ(x)
    terminal_hess(x, D, H)                    # ∇²ℓ(x) (n, n)

The loops here are the compiled twins of :func:`wavecontrol.matched.matched_step_numpy` (the
matched port, all three schemes, with its exact ledger against the reference consistent step)
for batch-1 problems of uniform width; fields are node-first (N + 1, n) and the per-node linear
algebra is written out (n, m are small). The ledger's homogeneous transport is that of
:mod:`wavecontrol.kernels`. Run contract: that of :func:`wavecontrol.kernels.affine_run`.
"""

import math

import numpy as np

from wavecontrol._jit import jit
from wavecontrol.boxqp import box_qp_jit
from wavecontrol.kernels import (CONVERGED, DIVERGED, H_BL, H_BR, H_DISS, H_LERR, H_OBJ, H_PORT,
                                 H_RHS, H_RL, H_RL_, H_RR, H_RT, H_RX, H_SRC, H_SRC2, H_STEP, H_V,
                                 H_VN, LEFT, RIGHT, RUNNING, _transport)

# The problem's node functions. These placeholders name the contract (module docstring); the
# generated module has the problem's node source *after* this text, whose definitions replace
# them before any loop below is compiled (numba resolves globals at compile time).
def _mk_missing(name):
    def missing(*args):
        raise NotImplementedError(f"node function {name!r}: this template runs only inside a "
                                  "module made by wavecontrol.codegen.kernel_module")
    return missing


layer = _mk_missing("layer")
rhs = _mk_missing("rhs")
rhs_hw = _mk_missing("rhs_hw")
running_grad = _mk_missing("running_grad")
running_hess = _mk_missing("running_hess")
terminal_grad = _mk_missing("terminal_grad")
terminal_hess = _mk_missing("terminal_hess")

#: history column of the reflected-wave energy (after the kernel's columns)
H_REFL = H_OBJ + 1
#: scheme codes of the matched polynomial (those of :data:`wavecontrol.schemes.SCHEME_CODES`)
MK_UPWIND, MK_LW, MK_CHAR = 0, 1, 3
_TINY = np.finfo(np.float64).tiny
_REFL_FLOOR = 1e-12
# the Newton model's constants (wavecontrol.matched.NEWTON_REVERT, CURVATURE_STEP)
_NEWTON_REVERT = 100.0
_CURVATURE_STEP = 6e-6


# --------------------------------------------------------------------------------------------
# node evaluations over all layers
# --------------------------------------------------------------------------------------------
@jit
def _mk_eval(x, u, D, F, A, B, GX, GU, RXX, RUX, RUU, hess):
    """Layer maps, Jacobians, cost gradients (and with ``hess`` the cost Hessians) of every
    layer at (x_k, u_k); returns Σ R_k."""
    N = u.shape[0]
    cost = 0.0
    for k in range(N):
        layer(k, x[k], u[k], D, F[k], A[k], B[k])
        cost += running_grad(k, x[k], u[k], D, GX[k], GU[k])
        if hess:
            running_hess(k, x[k], u[k], D, RXX[k], RUX[k], RUU[k])
    return cost


@jit
def objective(D, x_in, u, X, f, A, B, gx, gu, g):
    """J(u) = ℓ(x_N) + Σ R_k along the forward pass (X (N + 1, n) scratch)."""
    N = u.shape[0]
    X[0, :] = x_in
    cost = 0.0
    for k in range(N):
        layer(k, X[k], u[k], D, f, A, B)
        cost += running_grad(k, X[k], u[k], D, gx, gu)
        X[k + 1, :] = f
    return cost + terminal_grad(X[N], D, g)


@jit
def _mk_residuals(x, lam, u, F, A, B, GX, GU, x_in, D, lo, hi, bounded, RX, RL, RT, g):
    """PMP residuals (eqs. 53–56, 59) from the evaluations at (x, u); returns their max-abs.
    With ``bounded`` r_θ is projected, u − clip(u − r_θ, lo, hi) (lo, hi (N, m);
    :meth:`wavecontrol.problem.LayeredProblem.project_residual`)."""
    N1, n = x.shape
    N = N1 - 1
    m = RT.shape[1]
    for i in range(n):
        RX[0, i] = x[0, i] - x_in[i]
    for k in range(N):
        for i in range(n):
            RX[k + 1, i] = x[k + 1, i] - F[k, i]
            s = 0.0
            for j in range(n):
                s += A[k, j, i] * lam[k + 1, j]
            RL[k, i] = lam[k, i] - s - GX[k, i]
        for a in range(m):
            s = 0.0
            for j in range(n):
                s += B[k, j, a] * lam[k + 1, j]
            RT[k, a] = GU[k, a] + s
            if bounded:
                RT[k, a] = u[k, a] - min(max(u[k, a] - RT[k, a], lo[k, a]), hi[k, a])
    terminal_grad(x[N], D, g)
    for i in range(n):
        RL[N, i] = lam[N, i] - g[i]
    return np.max(np.abs(RX)), np.max(np.abs(RL)), np.max(np.abs(RT))


# --------------------------------------------------------------------------------------------
# the local maps
# --------------------------------------------------------------------------------------------
@jit
def _mk_floored_inverse(Q, floor, out):
    """(Q + μI)⁻¹ of symmetric Q (m, m), μ ≥ 0 the smallest shift with λ_min ≥ floor·max|λ|
    (:func:`wavecontrol.matched._floored_inverse`)."""
    m = Q.shape[0]
    if m == 1:
        w = Q[0, 0]
        scale = max(abs(w), _TINY)
        mu = max(0.0, floor * scale - w)
        out[0, 0] = 1.0 / (w + mu)
        return mu
    S = 0.5 * (Q + Q.T)
    w, U = np.linalg.eigh(S)
    scale = max(np.max(np.abs(w)), _TINY)
    mu = max(0.0, floor * scale - np.min(w))
    for i in range(m):
        for j in range(m):
            s = 0.0
            for l in range(m):
                s += U[i, l] * (1.0 / (w[l] + mu)) * U[j, l]
            out[i, j] = s
    return mu


@jit
def layer_curvature(k, x, u, w, D, Z):
    """Z += ∇²_{(x,u)} (w · f_k) at (x, u) (the matched port's Newton model). This default takes
    differences of ``layer``'s Jacobians (:func:`_mk_curvature_fd`); the node source of a
    problem from expressions replaces it by its symbolic form (:func:`_mk_rk_curvature`)."""
    _mk_curvature_fd(k, x, u, w, D, Z)


@jit
def _mk_times_g(A, B, off, G, e, out):
    """out = [A, B'] Ĝ_e with Ĝ_e = [[G[e]], [0, I_m]] (G (E, n, n + m)): out[r, q] =
    Σ_{l<n} A[r, l] G[e, l, q], plus B[r, off + q − n] for the control columns q ≥ n (the
    identity rows of Ĝ written out)."""
    n = G.shape[1]
    d = G.shape[2]
    for r in range(out.shape[0]):
        for q in range(d):
            t = 0.0
            for l in range(n):
                t += A[r, l] * G[e, l, q]
            if q >= n:
                t += B[r, off + q - n]
            out[r, q] = t


@jit
def _mk_rk_curvature(k, x, u, w, D, Z, C, Ac, Bw, S, M):
    """Z += ∇²_{(x,u)} (w · f_k) of the explicit Runge–Kutta layer map with S stages (times C,
    coupling Ac to the previous stage, weights Bw; tuples padded with one 0.0) and M substeps
    of Δt/M (Δt = D[0][0]), from the node functions ``rhs`` (f, f_x, f_u at a stage point) and
    ``rhs_hw`` (Σ a_i ∇²f_i there): Σ over the stage evaluations e of Ĝ_eᵀ (ā_e·∇²f) Ĝ_e, with
    Ĝ_e = ∂(y_e, u)/∂(x, u) from a forward pass and ā_e the adjoint of the stage's output from
    a reverse pass (:func:`problems.integrators.step_curvature`)."""
    n = x.shape[0]
    m = u.shape[0]
    d = n + m
    dt = D[0][0]
    h = dt / M
    E = S * M
    Y = np.empty((E, n))
    G = np.zeros((E, n, d))
    FY = np.empty((E, n, n))
    TE = np.empty(E)
    s = x.copy()
    SZ = np.zeros((n, d))
    for i in range(n):
        SZ[i, i] = 1.0
    f = np.empty(n)
    fx = np.empty((n, n))
    fu = np.empty((n, m))
    K = np.zeros(n)
    KZ = np.zeros((n, d))
    for j in range(M):
        s1 = s.copy()
        SZ1 = SZ.copy()
        for i in range(S):
            e = j * S + i
            ha = h * Ac[i - 1] if i > 0 else 0.0
            for r in range(n):
                Y[e, r] = s[r] + ha * K[r]
                for q in range(d):
                    G[e, r, q] = SZ[r, q] + ha * KZ[r, q]
            TE[e] = k * dt + j * h + C[i] * h
            rhs(Y[e], u, TE[e], D, f, fx, fu)
            FY[e] = fx
            _mk_times_g(fx, fu, 0, G, e, KZ)
            for r in range(n):
                K[r] = f[r]
            hb = h * Bw[i]
            if hb != 0.0:
                for r in range(n):
                    s1[r] += hb * K[r]
                    for q in range(d):
                        SZ1[r, q] += hb * KZ[r, q]
        s = s1
        SZ = SZ1
    sbar = w.copy()
    Kbar = np.zeros((S, n))
    ybar = np.zeros((S + 1, n))
    H = np.empty((d, d))
    HG = np.empty((d, d))
    for j in range(M - 1, -1, -1):
        for i in range(S - 1, -1, -1):
            e = j * S + i
            ha = h * Ac[i] if i + 1 < S else 0.0
            for r in range(n):
                Kbar[i, r] = h * Bw[i] * sbar[r] + ha * ybar[i + 1, r]
            for r in range(n):
                t = 0.0
                for l in range(n):
                    t += FY[e, l, r] * Kbar[i, l]
                ybar[i, r] = t
            rhs_hw(Y[e], u, TE[e], Kbar[i], D, H)
            # Z += Ĝᵀ (H Ĝ) with Ĝ = [[G_e], [0, I_m]]: the rows of the identity written out
            _mk_times_g(H, H, n, G, e, HG)
            for p in range(d):
                for q in range(d):
                    t = 0.0
                    for r in range(n):
                        t += G[e, r, p] * HG[r, q]
                    if p >= n:
                        t += HG[p, q]
                    Z[p, q] += t
        for i in range(S):
            for r in range(n):
                sbar[r] += ybar[i, r]


@jit
def _mk_curvature_fd(k, x, u, w, D, Z):
    """Z += T_k = ∇²_{(x,u)} (w · f_k) at (x, u) by central differences of the exact Jacobians,
    symmetrized (:func:`wavecontrol.matched.dynamics_curvature`)."""
    n = x.shape[0]
    m = u.shape[0]
    d = n + m
    xp, xm, up, um = x.copy(), x.copy(), u.copy(), u.copy()
    fz = np.empty(n)
    Ap, Am = np.empty((n, n)), np.empty((n, n))
    Bp, Bm = np.empty((n, m)), np.empty((n, m))
    T = np.empty((d, d))
    for j in range(d):
        z = x[j] if j < n else u[j - n]
        h = _CURVATURE_STEP * max(1.0, abs(z))
        zp, zm = z + h, z - h
        if j < n:
            xp[j], xm[j] = zp, zm
        else:
            up[j - n], um[j - n] = zp, zm
        layer(k, xp, up, D, fz, Ap, Bp)
        layer(k, xm, um, D, fz, Am, Bm)
        hh = zp - zm
        for c in range(d):
            t = 0.0
            if c < n:
                for i in range(n):
                    t += w[i] * (Ap[i, c] - Am[i, c])
            else:
                for i in range(n):
                    t += w[i] * (Bp[i, c - n] - Bm[i, c - n])
            T[c, j] = t / hh
        if j < n:
            xp[j], xm[j] = z, z
        else:
            up[j - n], um[j - n] = z, z
    for i in range(d):
        for j in range(d):
            Z[i, j] += 0.5 * (T[i, j] + T[j, i])


@jit
def _mk_positive_definite(Z):
    """Whether symmetric Z (d, d) is positive definite: Cholesky's pivots all > 0."""
    d = Z.shape[0]
    L = np.empty((d, d))
    for j in range(d):
        t = Z[j, j]
        for l in range(j):
            t -= L[j, l] * L[j, l]
        if not t > 0.0:
            return False
        L[j, j] = math.sqrt(t)
        for i in range(j + 1, d):
            t = Z[i, j]
            for l in range(j):
                t -= L[i, l] * L[j, l]
            L[i, j] = t / L[j, j]
    return True


@jit
def _mk_psd(Z):
    """Z (d, d) symmetric with its negative eigenvalues set to zero, in place (left as it is
    when Cholesky finds it positive definite: the projection is then the identity)."""
    d = Z.shape[0]
    if _mk_positive_definite(Z):
        return
    w, U = np.linalg.eigh(0.5 * (Z + Z.T))
    for i in range(d):
        for j in range(d):
            t = 0.0
            for l in range(d):
                if w[l] > 0.0:
                    t += U[i, l] * w[l] * U[j, l]
            Z[i, j] = t


@jit
def _mk_mm(X, Y, out):
    """out = X Y for small matrices."""
    for i in range(X.shape[0]):
        for j in range(Y.shape[1]):
            t = 0.0
            for l in range(X.shape[1]):
                t += X[i, l] * Y[l, j]
            out[i, j] = t


@jit
def _mk_tmm_add(X, Y, C, out):
    """out = C + Xᵀ Y for small matrices."""
    for i in range(X.shape[1]):
        for j in range(Y.shape[1]):
            t = 0.0
            for l in range(X.shape[0]):
                t += X[l, i] * Y[l, j]
            out[i, j] = C[i, j] + t


@jit
def _mk_matched_map(x, u, s, P, F, A, B, GU, RXX, RUX, RUU, D, x_in, floor, newton, convex,
                    scale, lo, hi, bounded, x1, u1, s1, P1, W1, W2, Wn, Wnn, Wmm, Wmn, Wnm):
    """One application of M (:func:`wavecontrol.matched.matched_map`) to (x, u, s, P) with the
    evaluations at (x, u) given; writes (x̂, û, ŝ, P̂). With ``bounded`` the control step is the
    box-constrained solve of :mod:`wavecontrol.boxqp` within lo ≤ û_k ≤ hi (lo, hi (N, m)) and
    P̂ uses its free-set inverse. ``newton``: Q carries the dynamics' curvature, each node's
    block projected onto the PSD cone with ``convex``; ``scale``: the terminal condition of
    scale · ℓ. W* are scratch arrays."""
    N1, n = x.shape
    N = N1 - 1
    m = u.shape[1]
    fn, gxn, v, lh = W1[0], W1[1], W1[2], W1[3]
    gun, g, dl, dh, du = W2[0], W2[1], W2[2], W2[3], W2[4]
    An, PA, Qxx = Wnn[0], Wnn[1], Wnn[2]
    Quu, inv, Qs = Wmm[0], Wmm[1], Wmm[2]
    Qux = Wmn[0]
    Bn, PB = Wnm[0], Wnm[1]
    Z = np.empty((n + m, n + m))
    x1[0, :] = x_in
    for k in range(N):
        Pn = P[k + 1]
        sn = s[k + 1]
        Ak = A[k]
        Bk = B[k]
        # Q_uu = ∇²_uu R + B_kᵀ P_{k+1} B_k, Q_ux, Q_xx likewise with A_k at (x_k, u_k)
        _mk_mm(Pn, Bk, PB)
        _mk_tmm_add(Bk, PB, RUU[k], Quu)
        _mk_mm(Pn, Ak, PA)
        _mk_tmm_add(Bk, PA, RUX[k], Qux)
        _mk_tmm_add(Ak, PA, RXX[k], Qxx)
        # v = λ̂_{k+1} = s_{k+1} + P_{k+1} f_k
        for i in range(n):
            t = 0.0
            for j in range(n):
                t += Pn[i, j] * F[k, j]
            v[i] = sn[i] + t
        if newton:
            # the dynamics' curvature v·∇²f_k in the node block, convexified with ``convex``
            for i in range(n):
                for j in range(n):
                    Z[i, j] = Qxx[i, j]
            for a in range(m):
                for j in range(n):
                    Z[n + a, j] = Qux[a, j]
                    Z[j, n + a] = Qux[a, j]
                for c in range(m):
                    Z[n + a, n + c] = Quu[a, c]
            layer_curvature(k, x[k], u[k], v, D, Z)
            if convex:
                _mk_psd(Z)
            for i in range(n):
                for j in range(n):
                    Qxx[i, j] = Z[i, j]
            for a in range(m):
                for j in range(n):
                    Qux[a, j] = Z[n + a, j]
                for c in range(m):
                    Quu[a, c] = Z[n + a, n + c]
        mu = _mk_floored_inverse(Quu, floor, inv)
        # g = ∇_u R + B_kᵀ (s_{k+1} + P_{k+1} f_k)
        for a in range(m):
            t = 0.0
            for j in range(n):
                t += Bk[j, a] * v[j]
            g[a] = GU[k, a] + t
        if bounded:
            # the box-constrained step; inv becomes the free-set inverse H for P̂
            for a in range(m):
                dl[a] = lo[k, a] - u[k, a]
                dh[a] = hi[k, a] - u[k, a]
                for c in range(m):
                    Qs[a, c] = 0.5 * (Quu[a, c] + Quu[c, a])
                Qs[a, a] += mu
            box_qp_jit(Qs, g, dl, dh, du, inv)
            for a in range(m):
                u1[k, a] = min(max(u[k, a] + du[a], lo[k, a]), hi[k, a])
        else:
            for a in range(m):
                t = 0.0
                for c in range(m):
                    t += inv[a, c] * g[c]
                u1[k, a] = u[k, a] - t
        # x̂_{k+1} = f_k(x_k, û_k); λ̂_k = ∇_x R + A_kᵀ (s_{k+1} + P_{k+1} x̂_{k+1}) at (x_k, û_k)
        layer(k, x[k], u1[k], D, fn, An, Bn)
        running_grad(k, x[k], u1[k], D, gxn, gun)
        for i in range(n):
            x1[k + 1, i] = fn[i]
        for i in range(n):
            t = 0.0
            for j in range(n):
                t += Pn[i, j] * fn[j]
            v[i] = sn[i] + t
        for i in range(n):
            t = 0.0
            for j in range(n):
                t += An[j, i] * v[j]
            lh[i] = gxn[i] + t
        # P̂_k = Q_xx − Q_uxᵀ Q_uu⁻¹ Q_ux
        for i in range(n):
            for j in range(n):
                t = 0.0
                for a in range(m):
                    r = 0.0
                    for c in range(m):
                        r += inv[a, c] * Qux[c, j]
                    t += Qux[a, i] * r
                PA[i, j] = Qxx[i, j] - t
        for i in range(n):
            for j in range(n):
                P1[k, i, j] = 0.5 * (PA[i, j] + PA[j, i])
        for i in range(n):
            t = 0.0
            for j in range(n):
                t += P1[k, i, j] * x[k, j]
            s1[k, i] = lh[i] - t
    terminal_hess(x[N], D, P1[N])
    terminal_grad(x[N], D, fn)
    for i in range(n):
        for j in range(n):
            P1[N, i, j] *= scale
    for i in range(n):
        t = 0.0
        for j in range(n):
            t += P1[N, i, j] * x[N, j]
        s1[N, i] = scale * fn[i] - t


@jit
def _mk_consistent_map(x, lam, F, A, GX, D, x_in, x1, l1, g):
    """The reference map C at fixed u (:func:`wavecontrol.matched.consistent_map`) from the
    evaluations at (x, u)."""
    N1, n = x.shape
    N = N1 - 1
    x1[0, :] = x_in
    for k in range(N):
        for i in range(n):
            x1[k + 1, i] = F[k, i]
            t = 0.0
            for j in range(n):
                t += A[k, j, i] * lam[k + 1, j]
            l1[k, i] = t + GX[k, i]
    terminal_grad(x[N], D, g)
    l1[N, :] = g


@jit
def _mk_combine(code, nu, q, F, M1, M2, out):
    """The scheme polynomial's combination of F, M(F) (and M(M(F)))."""
    a = F.reshape(F.size)
    b = M1.reshape(M1.size)
    o = out.reshape(out.size)
    if code == MK_UPWIND:
        for i in range(a.size):
            o[i] = a[i] + nu * (b[i] - a[i])
    elif code == MK_LW:
        c = M2.reshape(M2.size)
        beta = 0.5 * nu * (nu - 1.0)
        for i in range(a.size):
            o[i] = a[i] + nu * (b[i] - a[i]) + beta * ((c[i] - b[i]) - (b[i] - a[i]))
    else:
        for i in range(a.size):
            o[i] = (1.0 - q) * a[i] + q * b[i]


# --------------------------------------------------------------------------------------------
# ledger helpers
# --------------------------------------------------------------------------------------------
@jit
def _mk_char(Th, Ti, x, lam, a, b):
    """(a, b) = (Θ_k x_k, Θ_k^{-T} λ_k)."""
    N1, n = x.shape
    for k in range(N1):
        for i in range(n):
            s = 0.0
            t = 0.0
            for j in range(n):
                s += Th[k, i, j] * x[k, j]
                t += Ti[k, j, i] * lam[k, j]
            a[k, i] = s
            b[k, i] = t


@jit
def _mk_sumsq(a):
    s = 0.0
    f = a.reshape(a.size)
    for i in range(f.size):
        s += f[i] * f[i]
    return s


@jit
def _mk_ledger(code, nu, dt, a, b, ac, bc, a1, b1, TL, TO, Fs, dacc, out):
    """The matched step's ledger (:func:`wavecontrol.formulations.consistent_ledger` and the
    port's power) into out = (V, V', bl, br, diss, source, source2, reset_l, reset_r, rhs,
    port_power)."""
    N1, n = a.shape
    N = N1 - 1
    h = 0.5 * dt
    tc = 2 if code == MK_LW else code
    # homogeneous transport of a (rightward) and b (leftward), node-last (1, n, N + 1)
    for k in range(N1):
        for i in range(n):
            TL[0, i, k] = a[k, i]
    in_a, out_a, d_a = _transport(TL, TO, tc, nu, RIGHT, Fs, dacc)
    src = 0.0
    src2 = 0.0
    rhs2 = 0.0
    pp = 0.0
    for k in range(1, N1):
        for i in range(n):
            ab = TO[0, i, k]
            sc = ac[k, i] - ab
            sa = a1[k, i] - ab
            sp = a1[k, i] - ac[k, i]
            src += ab * sc
            src2 += sc * sc
            rhs2 += a[k, i] * sa
            pp += (2.0 * ac[k, i] + sp) * sp
    for k in range(N1):
        for i in range(n):
            TL[0, i, k] = b[k, i]
    in_b, out_b, d_b = _transport(TL, TO, tc, nu, LEFT, Fs, dacc)
    for k in range(N):
        for i in range(n):
            bb = TO[0, i, k]
            sc = bc[k, i] - bb
            sb = b1[k, i] - bb
            sp = b1[k, i] - bc[k, i]
            src += bb * sc
            src2 += sc * sc
            rhs2 += b[k, i] * sb
            pp += (2.0 * bc[k, i] + sp) * sp
    a0 = b0 = aN = bN = a10 = b1N = 0.0
    for i in range(n):
        a0 += a[0, i] * a[0, i]
        b0 += b[0, i] * b[0, i]
        aN += a[N, i] * a[N, i]
        bN += b[N, i] * b[N, i]
        a10 += a1[0, i] * a1[0, i]
        b1N += b1[N, i] * b1[N, i]
    out[0] = h * (_mk_sumsq(a) + _mk_sumsq(b))
    out[1] = h * (_mk_sumsq(a1) + _mk_sumsq(b1))
    out[2] = h * (in_a + out_b)
    out[3] = h * (out_a + in_b)
    out[4] = h * (d_a + d_b)
    out[5] = h * 2.0 * src
    out[6] = h * src2
    out[7] = h * (a10 - a0)
    out[8] = h * (b1N - bN)
    out[9] = h * (nu * (a0 - b0 + bN - aN) + 2.0 * rhs2)
    out[10] = h * pp


@jit
def _mk_reflection(s, P, dt):
    """½ Σ Δt s_kᵀ P_k⁺ s_k (:func:`wavecontrol.matched.reflection_energy`)."""
    N1, n = s.shape
    tot = 0.0
    for k in range(N1):
        S = 0.5 * (P[k] + P[k].T)
        w, U = np.linalg.eigh(S)
        top = max(np.max(np.abs(w)), _TINY)
        e = 0.0
        for j in range(n):
            c = 0.0
            for i in range(n):
                c += U[i, j] * s[k, i]
            e += c * c / max(abs(w[j]), _REFL_FLOOR * top)
        tot += 0.5 * dt * e
    return tot


@jit
def _mk_row(row, step, led, power, err, rx, rl, rt, obj):
    """Fill a history row (:data:`wavecontrol.kernels.HIST_COLUMNS`) from a ledger ``led`` =
    (V, V', bl, br, diss, source, source2, reset_l, reset_r, rhs, ...) of :func:`_mk_ledger`,
    the port's power, the closure error, the residual norms and the objective."""
    row[H_STEP] = step
    row[H_V] = led[0]
    row[H_BL] = led[2]
    row[H_BR] = led[3]
    row[H_DISS] = led[4]
    row[H_SRC] = led[5]
    row[H_SRC2] = led[6]
    row[H_RL] = led[7]
    row[H_RR] = led[8]
    row[H_VN] = led[1]
    row[H_RHS] = led[9]
    row[H_PORT] = power
    row[H_LERR] = err
    row[H_RX] = rx
    row[H_RL_] = rl
    row[H_RT] = rt
    row[H_OBJ] = obj


# --------------------------------------------------------------------------------------------
# the run loop
# --------------------------------------------------------------------------------------------
@jit
def matched_run(code, explicit, nu, floor, newton, newton_below, ramp_steps, ramp_from, bounded,
                lo, hi, D, x_in, Th, Ti, x, lam, u, P, sw, start, nsteps, tol, record_every,
                hist, hrow, div_bound, dt):
    """Advance the matched port's fields (x, λ (N + 1, n), u (N, m), P (N + 1, n, n)) by up to
    ``nsteps`` τ-steps in place; the contract (return tuple, statuses, recording, divergence) is
    that of :func:`wavecontrol.kernels.affine_run`, and the history row also gets the
    reflected-wave energy (column :data:`H_REFL`). ``bounded`` (the problem has bounds, as in
    the NumPy twin): the box-constrained step within lo, hi (N, m; ±inf where open) and r_θ
    projected; else the plain Newton step and r_θ unprojected. ``newton``, ``newton_below``,
    ``ramp_steps``, ``ramp_from``: the port's node model and terminal ramp
    (:class:`wavecontrol.matched.MatchedPort`); ``sw`` (1,) its Newton switch, updated in place
    with P."""
    N1, n = x.shape
    N = N1 - 1
    m = u.shape[1]
    p = int(math.floor(nu)) if code == MK_CHAR else 0
    q = nu - p if code == MK_CHAR else 0.0
    reeval = code == MK_LW or (code == MK_CHAR and p + (1 if q > 0.0 else 0) > 1)
    # evaluations at the current fields and at an intermediate state
    F = np.empty((N, n))
    A = np.empty((N, n, n))
    B = np.empty((N, n, m))
    GX = np.empty((N, n))
    GU = np.empty((N, m))
    RXX = np.empty((N, n, n))
    RUX = np.empty((N, m, n))
    RUU = np.empty((N, m, m))
    # three field sets (x, u, s, P) for the polynomial, the reference's (x, λ) likewise
    X3 = np.empty((3, N1, n))
    U3 = np.empty((3, N, m))
    S3 = np.empty((3, N1, n))
    P3 = np.empty((3, N1, n, n))
    XC = np.empty((3, N1, n))
    LC = np.empty((3, N1, n))
    s = np.empty((N1, n))
    x1 = np.empty((N1, n))
    u1 = np.empty((N, m))
    s1 = np.empty((N1, n))
    P1 = np.empty((N1, n, n))
    l1 = np.empty((N1, n))
    xc = np.empty((N1, n))
    lc = np.empty((N1, n))
    RX = np.empty((N1, n))
    RL = np.empty((N1, n))
    RT = np.empty((N, m))
    a = np.empty((N1, n))
    b = np.empty((N1, n))
    ac = np.empty((N1, n))
    bc = np.empty((N1, n))
    a1 = np.empty((N1, n))
    b1 = np.empty((N1, n))
    TL = np.empty((1, n, N1))
    TO = np.empty((1, n, N1))
    Fs = np.empty(N1)
    dacc = np.empty(N1)
    led = np.empty(11)
    W1 = np.empty((4, n))
    W2 = np.empty((5, m))
    Wn = np.empty((1, n))
    Wnn = np.empty((3, n, n))
    Wmm = np.empty((3, m, m))
    Wmn = np.empty((1, m, n))
    Wnm = np.empty((2, n, m))
    g = np.empty(n)
    XO = np.empty((N1, n))
    rx = rl = rt = math.nan
    maxerr = 0.0
    rows = hrow
    for it in range(nsteps):
        _mk_eval(x, u, D, F, A, B, GX, GU, RXX, RUX, RUU, True)
        _mk_char(Th, Ti, x, lam, a, b)
        V = 0.5 * dt * (_mk_sumsq(a) + _mk_sumsq(b))
        if not (V <= div_bound):
            return it, DIVERGED, rows, maxerr, rx, rl, rt
        rx, rl, rt = _mk_residuals(x, lam, u, F, A, B, GX, GU, x_in, D, lo, hi, bounded, RX,
                                   RL, RT, g)
        step = start + it
        scale = 1.0
        if ramp_steps > 0 and step < ramp_steps:
            scale = ramp_from ** (1.0 - step / ramp_steps)
        if rx <= tol and rl <= tol and rt <= tol and scale == 1.0:
            return it, CONVERGED, rows, maxerr, rx, rl, rt
        # the Newton switch (wavecontrol.matched.newton_switch)
        on = False
        if newton and scale == 1.0:
            worst = max(rx, max(rl, rt))
            if sw[0] != 0.0:
                on = worst <= _NEWTON_REVERT * newton_below
            else:
                on = worst < newton_below
        convex = not on
        # s = λ − P x
        for k in range(N1):
            for i in range(n):
                t = 0.0
                for j in range(n):
                    t += P[k, i, j] * x[k, j]
                s[k, i] = lam[k, i] - t
        # the scheme polynomial in M; slot 0/1/2 hold M(F), M(M(F)), ...
        if code == MK_CHAR:
            # G = M^p(F) into slot (p − 1) % 2, then M(G) into the other
            src = -1
            for j in range(p + (1 if q > 0.0 else 0)):
                dst = j % 2
                if j == 0:
                    _mk_matched_map(x, u, s, P, F, A, B, GU, RXX, RUX, RUU, D, x_in, floor,
                                    newton, convex, scale, lo, hi, bounded, X3[dst], U3[dst],
                                    S3[dst], P3[dst], W1, W2, Wn, Wnn, Wmm, Wmn, Wnm)
                else:
                    _mk_eval(X3[src], U3[src], D, F, A, B, GX, GU, RXX, RUX, RUU, True)
                    _mk_matched_map(X3[src], U3[src], S3[src], P3[src], F, A, B, GU, RXX, RUX,
                                    RUU, D, x_in, floor, newton, convex, scale, lo, hi, bounded,
                                    X3[dst], U3[dst], S3[dst], P3[dst], W1, W2, Wn, Wnn, Wmm,
                                    Wmn, Wnm)
                src = dst
            if q > 0.0:
                gi = (p - 1) % 2 if p > 0 else -1
                sh = p % 2
                if gi < 0:
                    _mk_combine(code, nu, q, x, X3[sh], X3[sh], x1)
                    _mk_combine(code, nu, q, u, U3[sh], U3[sh], u1)
                    _mk_combine(code, nu, q, s, S3[sh], S3[sh], s1)
                    _mk_combine(code, nu, q, P, P3[sh], P3[sh], P1)
                else:
                    _mk_combine(code, nu, q, X3[gi], X3[sh], X3[sh], x1)
                    _mk_combine(code, nu, q, U3[gi], U3[sh], U3[sh], u1)
                    _mk_combine(code, nu, q, S3[gi], S3[sh], S3[sh], s1)
                    _mk_combine(code, nu, q, P3[gi], P3[sh], P3[sh], P1)
            else:
                gi = (p - 1) % 2
                x1[:, :] = X3[gi]
                u1[:, :] = U3[gi]
                s1[:, :] = S3[gi]
                P1[:, :, :] = P3[gi]
        else:
            _mk_matched_map(x, u, s, P, F, A, B, GU, RXX, RUX, RUU, D, x_in, floor, newton,
                            convex, scale, lo, hi, bounded, X3[0], U3[0], S3[0], P3[0], W1, W2,
                            Wn, Wnn, Wmm, Wmn, Wnm)
            if code == MK_LW:
                _mk_eval(X3[0], U3[0], D, F, A, B, GX, GU, RXX, RUX, RUU, True)
                _mk_matched_map(X3[0], U3[0], S3[0], P3[0], F, A, B, GU, RXX, RUX, RUU, D,
                                x_in, floor, newton, convex, scale, lo, hi, bounded, X3[1],
                                U3[1], S3[1], P3[1], W1, W2, Wn, Wnn, Wmm, Wmn, Wnm)
            _mk_combine(code, nu, q, x, X3[0], X3[1], x1)
            _mk_combine(code, nu, q, u, U3[0], U3[1], u1)
            _mk_combine(code, nu, q, s, S3[0], S3[1], s1)
            _mk_combine(code, nu, q, P, P3[0], P3[1], P1)
        # boundary resets, P symmetric, λ = s + P x; û back into the box (Lax–Wendroff's
        # polynomial can leave it; a no-op at a fixed point)
        x1[0, :] = x_in
        if bounded:
            for k in range(N):
                for j in range(m):
                    u1[k, j] = min(max(u1[k, j], lo[k, j]), hi[k, j])
        for k in range(N1):
            for i in range(n):
                for j in range(i + 1, n):
                    t = 0.5 * (P1[k, i, j] + P1[k, j, i])
                    P1[k, i, j] = t
                    P1[k, j, i] = t
        xN = x[N] if explicit else x1[N]
        terminal_hess(xN, D, P1[N])
        terminal_grad(xN, D, g)
        for i in range(n):
            for j in range(n):
                P1[N, i, j] *= scale
        for i in range(n):
            t = 0.0
            for j in range(n):
                t += P1[N, i, j] * x1[N, j]
            s1[N, i] = scale * g[i] - t
        for k in range(N1):
            for i in range(n):
                t = 0.0
                for j in range(n):
                    t += P1[k, i, j] * x1[k, j]
                l1[k, i] = s1[k, i] + t
        # the reference consistent step at fixed u (the ledger's split)
        if reeval:      # the polynomial overwrote the evaluations at (x, u)
            _mk_eval(x, u, D, F, A, B, GX, GU, RXX, RUX, RUU, False)
        _mk_consistent_map(x, lam, F, A, GX, D, x_in, XC[0], LC[0], g)
        if code == MK_CHAR:
            steps_c = p + (1 if q > 0.0 else 0)
            for j in range(1, steps_c):
                sl = (j - 1) % 2
                dl = j % 2
                _mk_eval(XC[sl], u, D, F, A, B, GX, GU, RXX, RUX, RUU, False)
                _mk_consistent_map(XC[sl], LC[sl], F, A, GX, D, x_in, XC[dl], LC[dl], g)
            if q > 0.0:
                sh = p % 2
                if p == 0:
                    _mk_combine(code, nu, q, x, XC[sh], XC[sh], xc)
                    _mk_combine(code, nu, q, lam, LC[sh], LC[sh], lc)
                else:
                    gi = (p - 1) % 2
                    _mk_combine(code, nu, q, XC[gi], XC[sh], XC[sh], xc)
                    _mk_combine(code, nu, q, LC[gi], LC[sh], LC[sh], lc)
            else:
                gi = (p - 1) % 2
                xc[:, :] = XC[gi]
                lc[:, :] = LC[gi]
        else:
            if code == MK_LW:
                _mk_eval(XC[0], u, D, F, A, B, GX, GU, RXX, RUX, RUU, False)
                _mk_consistent_map(XC[0], LC[0], F, A, GX, D, x_in, XC[1], LC[1], g)
            _mk_combine(code, nu, q, x, XC[0], XC[1], xc)
            _mk_combine(code, nu, q, lam, LC[0], LC[1], lc)
        _mk_char(Th, Ti, x1, l1, a1, b1)
        _mk_char(Th, Ti, xc, lc, ac, bc)
        _mk_ledger(code, nu, dt, a, b, ac, bc, a1, b1, TL, TO, Fs, dacc, led)
        Vn = led[1]
        th_energy = 0.5 * _mk_sumsq(u1)
        bad = not (Vn <= div_bound and th_energy <= div_bound)
        err = abs(Vn - led[0] - (led[2] + led[3] + led[4] + led[5] + led[6] + led[7] + led[8]
                                 + led[10])) / max(led[0], 1.0)
        if not bad and err > maxerr:
            maxerr = err
        if record_every > 0 and step % record_every == 0 and rows < hist.shape[0]:
            refl = _mk_reflection(s1, P1, dt)
            keep = not bad or (math.isfinite(Vn) and math.isfinite(err)
                               and math.isfinite(refl))
            if keep:
                _mk_row(hist[rows], step, led, led[10], err, rx, rl, rt,
                        objective(D, x_in, u, XO, W1[0], Wnn[0], Wnm[0], W1[1], W2[0], W1[2]))
                hist[rows, H_REFL] = refl
                rows += 1
        if bad:
            return it, DIVERGED, rows, maxerr, rx, rl, rt
        x[:, :] = x1
        lam[:, :] = l1
        u[:, :] = u1
        P[:, :, :] = P1
        sw[0] = 1.0 if on else 0.0
    return nsteps, RUNNING, rows, maxerr, rx, rl, rt
