"""Compiled τ-steps of layered networks (the kernel family ``"network"``).

One call of :func:`network_run` advances the consistent form with upwind transport and the
resistive port (θ' = θ − η r_θ) by many τ-steps, for the layer maps of
:class:`problems.network.NetworkProblem`

    f_k(x) = s x + h σ_k(W_k x + b_k),   W_k ∈ R^{n_{k+1}×n_k},

on a batch of B samples. A τ-step is two passes, each parallel (``prange``) because every
layer reads only the fields of the previous τ-step, which is the point of the algorithm:

1. **layers** k = 0..N−1 (in any order): z = x_k W_kᵀ + b_k (BLAS), a = σ(z), d = σ'(z),
   r_x,k+1 = x_{k+1} − s x_k − h a, g = h d ⊙ λ_{k+1}, r_λ,k = λ_k − s λ_{k+1} − g W_k (BLAS),
   r_θ,k = (gᵀ x_k, Σ_b g) + wd θ_k (BLAS) — one forward and two backward products per layer,
   the work of one backprop step;
2. **nodes** k = 0..N: x' = x − ν r_x, λ' = λ − ν r_λ, the terminations x'_0 = x_in and
   λ'_N = ∇ℓ(x'_N) (``implicit``) or ∇ℓ(x_N) (``explicit``), θ'_k = θ_k − η r_θ,k, and per
   node the partial sums of the energy ledger (:mod:`wavecontrol.ledger`) in the
   characteristic variables a = Θx, b = Θ^{-1}λ of a metric Θ_k = c_k I.

The per-node sums are added in node order afterwards, so a run gives the same numbers whatever
the number of threads (a resumed run repeats an uninterrupted one bit for bit).

Fields are stored unpadded, node after node: node k is a C-contiguous (B, n_k) block of one
flat buffer, so every product is one BLAS call on the true widths (no zero padding). The
parameters keep the problem's (N, m) layout (W_k row-major, then b_k, then zeros).

Precision: the fields, parameters and products are in the dtype of the ``proto`` argument
(float64 or float32); the ledger sums, the residual norms and the recorded history are float64
in both. The ledger is an identity in the stored numbers (a' enters only through a' − ā), so
it closes to float64 round-off even in a float32 run.

BLAS threads: the products run inside the parallel loop, one BLAS call per thread; the caller
limits BLAS to one thread while the kernel runs (:func:`solvers.wave.solve` does), or the BLAS
library's own threads oversubscribe the cores.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._jit import jit as _jit

# error_model "numpy": a division by zero gives inf or NaN (caught by the divergence checks)
# instead of raising, which also lets the loops with divisions vectorize
jit = _jit(error_model="numpy")
# the ledger sums may be reassociated (summed in SIMD lanes): as accurate as in order, and the
# order is fixed by the compiled code, so it is the same on every call and for every thread
jit_sums = _jit(error_model="numpy", fastmath={"reassoc"})
from .kernels import (CONVERGED, DIVERGED, H_BL, H_BR, H_DISS, H_LERR, H_OBJ, H_PORT, H_RHS,
                      H_RL, H_RL_, H_RR, H_RT, H_RX, H_SRC, H_SRC2, H_STEP, H_V, H_VN, RUNNING)

#: activation name → kernel code (the names of :data:`problems.network.ACTIVATIONS`)
ACT_CODES = {"tanh": 0, "sigmoid": 1, "softplus": 2, "relu": 3, "identity": 4}
#: loss name → kernel code
LOSS_CODES = {"mse": 0, "cross-entropy": 1}
_IDENTITY = 4

# ln 2 split for the range reduction r = x − k ln 2: the high part has 24 significant bits, so
# k·hi is exact for |k| < 2^29; the low part is the rest of the double nearest to ln 2
_LN2_HI = float(np.float32(math.log(2.0)))
_LN2_LO = math.log(2.0) - _LN2_HI
_INV_LN2 = 1.0 / math.log(2.0)
# tanh(t) rounds to 1 in float64 for t > 19.06; clamping at 20 keeps 2^k in the normal range
_TANH_CLAMP = 20.0

# the float32 twins: ln 2 with 12 significant bits (k·hi exact for |k| < 2^12), clamp at 9
# (tanh(9) rounds to 1 in float32), Taylor coefficients 1/j! of the degree-8 polynomial
_LN2_HI32 = np.float32(round(math.log(2.0) * 4096) / 4096)
_LN2_LO32 = np.float32(math.log(2.0) - float(_LN2_HI32))
_INV_LN2_32 = np.float32(1.0 / math.log(2.0))
_CLAMP32 = np.float32(9.0)
_F32 = tuple(np.float32(1.0 / math.factorial(j)) for j in range(9))
_C2, _C3, _C4, _C5, _C6, _C7, _C8 = _F32[2:]
_ONE32, _TWO32, _M2_32 = np.float32(1.0), np.float32(2.0), np.float32(-2.0)

# per-node partial sums of the ledger (columns of PS); the four sums of each direction are
# adjacent, so :func:`_node_sums` adds into a slice of the row
(_A2, _B2, _A12, _B12, _DA, _ABS, _SA2, _ASA, _DB, _BBS, _SB2, _BSB, _MRX, _MRL) = range(14)
_NSUMS = 14


def blas_single_thread():
    """Limit every BLAS library to one thread until ``.restore_original_limits()`` (or the end
    of a ``with`` block); returns the ``threadpoolctl.threadpool_limits`` object.

    numba's ``np.dot`` calls the BLAS behind ``scipy.linalg.cython_blas``, a library of its own
    that is loaded only on first use; it is loaded here first so that the limit reaches it.
    """
    import scipy.linalg.cython_blas  # noqa: F401  (loads scipy's BLAS)
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")


# --------------------------------------------------------------------------------------------
# activations (flat arrays, loops the compiler vectorizes)
# --------------------------------------------------------------------------------------------
@jit
def tanh_into(z, out, scratch):
    """out = tanh(z) for flat arrays, computed in float64 in loops that vectorize.

    tanh(t) = −expm1(−2t) / (2 + expm1(−2t)) for t = |z| (no cancellation for small t), with
    expm1(x) = 2^k (1 + p(r)) − 1 = 2^k p(r) + (2^k − 1), x = k ln 2 + r, |r| ≤ ln2/2, p the
    degree-14 Taylor polynomial of expm1 (its remainder is below 2e-17 |r|) and 2^k assembled
    from its exponent bits in ``scratch`` (int64, at least z.size). Measured against
    ``numpy.tanh`` on 2.2·10^6 points of [−25, 25] and ±[1e-300, 31.6]: at most 2.2 ulp
    (4.8e-16 relative). float32 arrays take :func:`_tanh32_into`.
    The scalar ``math.tanh`` does not vectorize and costs 4× more per value.
    """
    n = z.size
    if z.itemsize == 4 and out.itemsize == 4:
        _tanh32_into(z, out, scratch)
        return
    scale = scratch[:n].view(np.float64)
    for i in range(n):
        x = -2.0 * min(abs(np.float64(z[i])), _TANH_CLAMP)
        k = np.round(x * _INV_LN2)
        scratch[i] = (np.int64(k) + 1023) << 52
    for i in range(n):
        x = -2.0 * min(abs(np.float64(z[i])), _TANH_CLAMP)
        k = np.round(x * _INV_LN2)
        r = x - k * _LN2_HI - k * _LN2_LO
        p = 1.0 / 87178291200.0                 # 1/14!
        p = p * r + 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r
        s = scale[i]
        em = s * p + (s - 1.0)
        out[i] = math.copysign(-em / (2.0 + em), np.float64(z[i]))


@jit
def _tanh32_into(z, out, scratch):
    """float32 twin of :func:`tanh_into` in float32 arithmetic (8 SIMD lanes instead of 4):
    |r| ≤ ln2/2, degree-8 Taylor polynomial (remainder below 2e-9 |r|). Measured against
    ``numpy.tanh`` in float64 on 2.4·10^5 points of [−12, 12] and ±[1e-37, 31.6]: at most
    1.4 ulp of float32 (8.4e-8 relative), at 2.2 ns per value against 4.3 ns for the float64
    loop."""
    n = z.size
    bits = scratch[:n].view(np.int32)[:n]
    scale = bits.view(np.float32)
    for i in range(n):
        x = _M2_32 * min(abs(z[i]), _CLAMP32)
        k = np.round(x * _INV_LN2_32)
        bits[i] = (np.int32(k) + 127) << 23
    for i in range(n):
        x = _M2_32 * min(abs(z[i]), _CLAMP32)
        k = np.round(x * _INV_LN2_32)
        r = x - k * _LN2_HI32 - k * _LN2_LO32
        p = _C8
        p = p * r + _C7
        p = p * r + _C6
        p = p * r + _C5
        p = p * r + _C4
        p = p * r + _C3
        p = p * r + _C2
        p = p * r + _ONE32
        p = p * r
        s = scale[i]
        em = s * p + (s - _ONE32)
        out[i] = np.float32(math.copysign(-em / (_TWO32 + em), z[i]))


@jit
def activate(code, z, a, d, scratch):
    """a = σ(z) and d = σ'(z) for the activation ``code`` (:data:`ACT_CODES`), flat arrays."""
    n = z.size
    if code == 0:                                   # tanh
        tanh_into(z, a, scratch)
        for i in range(n):
            d[i] = 1.0 - a[i] * a[i]
    elif code == 1:                                 # sigmoid = (1 + tanh(z/2)) / 2
        for i in range(n):
            d[i] = 0.5 * z[i]
        tanh_into(d, a, scratch)
        for i in range(n):
            a[i] = 0.5 * (1.0 + a[i])
            d[i] = a[i] * (1.0 - a[i])
    elif code == 2:                                 # softplus, σ' = sigmoid
        for i in range(n):
            zi = np.float64(z[i])
            a[i] = max(zi, 0.0) + math.log1p(math.exp(-abs(zi)))
            d[i] = 0.5 * z[i]
        tanh_into(d, d, scratch)
        for i in range(n):
            d[i] = 0.5 * (1.0 + d[i])
    elif code == 3:                                 # relu
        for i in range(n):
            a[i] = max(z[i], 0.0)
            d[i] = 1.0 if z[i] > 0 else 0.0
    else:                                           # identity
        for i in range(n):
            a[i] = z[i]
            d[i] = 1.0


# --------------------------------------------------------------------------------------------
# loss at the last node
# --------------------------------------------------------------------------------------------
@jit
def _scores(xN, nN, P, S):
    """S = x_N P ᵀ: (B, K) from x_N (B, n_N), in float64."""
    B, K = S.shape
    for b in range(B):
        for c in range(K):
            s = 0.0
            for i in range(nN):
                s += np.float64(xN[b * nN + i]) * P[c, i]
            S[b, c] = s


@jit
def loss_value(loss, xN, nN, P, targets):
    """ℓ(x_N) (float64): ½‖Px − y‖²/B (``loss`` 0) or the mean softmax cross-entropy (1)."""
    B, K = targets.shape
    S = np.empty((B, K))
    _scores(xN, nN, P, S)
    J = 0.0
    for b in range(B):
        if loss == 0:
            for c in range(K):
                J += 0.5 * (S[b, c] - targets[b, c]) ** 2
        else:
            zmax = S[b, 0]
            for c in range(1, K):
                zmax = max(zmax, S[b, c])
            e = 0.0
            zy = 0.0
            for c in range(K):
                e += math.exp(S[b, c] - zmax)
                zy += targets[b, c] * S[b, c]
            J += zmax + math.log(e) - zy
    return J / B


@jit
def loss_grad(loss, xN, nN, P, targets, out):
    """out = ∇ℓ(x_N) (flat (B, n_N), the fields' dtype) = ((Px − y) or (softmax(Px) − y)) P / B."""
    B, K = targets.shape
    S = np.empty((B, K))
    _scores(xN, nN, P, S)
    for b in range(B):
        if loss == 0:
            for c in range(K):
                S[b, c] = (S[b, c] - targets[b, c]) / B
        else:
            zmax = S[b, 0]
            for c in range(1, K):
                zmax = max(zmax, S[b, c])
            e = 0.0
            for c in range(K):
                S[b, c] = math.exp(S[b, c] - zmax)
                e += S[b, c]
            for c in range(K):
                S[b, c] = (S[b, c] / e - targets[b, c]) / B
        for i in range(nN):
            s = 0.0
            for c in range(K):
                s += S[b, c] * P[c, i]
            out[b * nN + i] = s


# --------------------------------------------------------------------------------------------
# the two passes of a τ-step
# --------------------------------------------------------------------------------------------
@_jit(error_model="numpy", parallel=True)
def _layers_pass(w, offs, loffs, s, h, act, lin_last, wd, theta, X, L, Z, A, D, G, VJ, KB,
                 RX, RL, RT):
    """Residuals r_x (nodes 1..N), r_λ (nodes 0..N−1) and r_θ, one layer per iteration."""
    N = w.size - 1
    B = (offs[1] - offs[0]) // w[0]
    for k in prange(N):
        ni = w[k]
        no = w[k + 1]
        nw = no * ni
        x = X[offs[k]:offs[k + 1]]
        xn = X[offs[k + 1]:offs[k + 2]]
        lam = L[offs[k]:offs[k + 1]]
        ln = L[offs[k + 1]:offs[k + 2]]
        z = Z[loffs[k]:loffs[k + 1]]
        a = A[loffs[k]:loffs[k + 1]]
        d = D[loffs[k]:loffs[k + 1]]
        g = G[loffs[k]:loffs[k + 1]]
        W = theta[k, :nw].reshape((no, ni))
        bias = theta[k, nw:nw + no]
        z2 = z.reshape((B, no))
        np.dot(x.reshape((B, ni)), W.T, z2)
        for b in range(B):
            for i in range(no):
                z2[b, i] += bias[i]
        activate(_IDENTITY if (lin_last and k == N - 1) else act, z, a, d,
                 KB[loffs[k]:loffs[k + 1]])
        rx = RX[offs[k + 1]:offs[k + 2]]
        for j in range(B * no):
            rx[j] = xn[j] - h * a[j]
            g[j] = h * d[j] * ln[j]
        vj = VJ[offs[k]:offs[k + 1]]
        g2 = g.reshape((B, no))
        np.dot(g2, W, vj.reshape((B, ni)))
        rl = RL[offs[k]:offs[k + 1]]
        if s != 0.0:                        # residual network: n_k = n_{k+1}
            for j in range(B * no):
                rx[j] -= s * x[j]
                rl[j] = lam[j] - s * ln[j] - vj[j]
        else:
            for j in range(B * ni):
                rl[j] = lam[j] - vj[j]
        rt = RT[k]
        np.dot(g2.T, x.reshape((B, ni)), rt[:nw].reshape((no, ni)))
        for i in range(no):
            rt[nw + i] = 0.0
        for b in range(B):
            for i in range(no):
                rt[nw + i] += g2[b, i]
        for j in range(nw + no, rt.size):
            rt[j] = 0.0
        if wd != 0.0:
            th = theta[k]
            for j in range(rt.size):
                rt[j] += wd * th[j]


@jit
def _maxabs2(r, q):
    """(max|r|, max|q|) of two equal-length flat arrays (a loop of its own: with the sums in
    the same loop it does not vectorize)."""
    mr = 0.0
    mq = 0.0
    for j in range(r.size):
        mr = max(mr, abs(np.float64(r[j])))
        mq = max(mq, abs(np.float64(q[j])))
    return mr, mq


@jit_sums
def _self_sums(update, c, nu, x, lam, rx, rl, x1, l1, ps):
    """Σa², Σb², Σa'², Σb'², max|r_x|, max|r_λ| of one node's flat blocks (a = c x,
    b = λ/c; a non-finite residual makes its max infinite). With ``update`` it first sets
    x' = x − ν r_x and λ' = λ − ν r_λ (an interior node) in the same pass, so the stored x', λ'
    enter the sums; otherwise x', λ' are read as given (the boundary nodes)."""
    ci = 1.0 / c
    a2 = 0.0
    b2 = 0.0
    a12 = 0.0
    b12 = 0.0
    rx2 = 0.0
    rl2 = 0.0
    for j in range(x.size):
        if update:                  # loop-invariant: the compiler moves it out of the loop
            x1[j] = x[j] - nu * rx[j]
            l1[j] = lam[j] - nu * rl[j]
        ai = c * np.float64(x[j])
        bi = ci * np.float64(lam[j])
        a1 = c * np.float64(x1[j])
        b1 = ci * np.float64(l1[j])
        rxj = np.float64(rx[j])
        rlj = np.float64(rl[j])
        a2 += ai * ai
        b2 += bi * bi
        a12 += a1 * a1
        b12 += b1 * b1
        rx2 += rxj * rxj
        rl2 += rlj * rlj
    mrx, mrl = _maxabs2(rx, rl)
    ps[_A2] = a2
    ps[_B2] = b2
    ps[_A12] = a12
    ps[_B12] = b12
    # max() may skip a NaN; the sums of squares do not
    ps[_MRX] = mrx if math.isfinite(rx2) else math.inf
    ps[_MRL] = mrl if math.isfinite(rl2) else math.inf


@jit_sums
def _node_sums(B, nk, nprev, c, cp, x, xprev, x1, nu, out):
    """Ledger sums of a right-moving node k ≥ 1 against its upwind neighbour (widths nk and
    nprev, zero beyond; a = c x, a_prev = cp x_prev): Σ(a − a_prev)², Σ ā·s, Σ s², Σ a·s with
    ā = (1 − ν)a + ν a_prev, s = a' − ā. Added into out[0:4]."""
    dd = 0.0
    abs_ = 0.0
    ss = 0.0
    asa = 0.0
    if nk == nprev:                         # one flat loop
        for j in range(B * nk):
            ai = c * np.float64(x[j])
            ap = cp * np.float64(xprev[j])
            ab = (1.0 - nu) * ai + nu * ap
            si = c * np.float64(x1[j]) - ab
            dd += (ai - ap) * (ai - ap)
            abs_ += ab * si
            ss += si * si
            asa += ai * si
    else:
        nmin = min(nk, nprev)
        for b in range(B):
            for i in range(nmin):
                ai = c * np.float64(x[b * nk + i])
                ap = cp * np.float64(xprev[b * nprev + i])
                ab = (1.0 - nu) * ai + nu * ap
                si = c * np.float64(x1[b * nk + i]) - ab
                dd += (ai - ap) * (ai - ap)
                abs_ += ab * si
                ss += si * si
                asa += ai * si
            for i in range(nmin, nk):          # the neighbour is narrower: a_prev = 0
                ai = c * np.float64(x[b * nk + i])
                ab = (1.0 - nu) * ai
                si = c * np.float64(x1[b * nk + i]) - ab
                dd += ai * ai
                abs_ += ab * si
                ss += si * si
                asa += ai * si
            for i in range(nmin, nprev):       # this node is narrower: a = a' = 0
                ap = cp * np.float64(xprev[b * nprev + i])
                ab = nu * ap
                dd += ap * ap
                abs_ -= ab * ab
                ss += ab * ab
    out[0] += dd
    out[1] += abs_
    out[2] += ss
    out[3] += asa


@jit
def _port_step(eta, th, rt, th1, out):
    """θ' = θ − η r_θ for one layer; out = (Σ r_θ², ½Σ θ'², max|r_θ|)."""
    r2 = 0.0
    e1 = 0.0
    mrt = 0.0
    for j in range(rt.size):
        th1[j] = th[j] - eta * rt[j]
        rj = np.float64(rt[j])
        r2 += rj * rj
        e1 += np.float64(th1[j]) ** 2
        mrt = max(mrt, abs(rj))
    out[0] = r2
    out[1] = 0.5 * e1
    out[2] = mrt if math.isfinite(r2) else math.inf


@_jit(error_model="numpy", parallel=True)
def _nodes_pass(w, offs, nu, eta, explicit, loss, cm, P, targets, x_in, theta, X, L,
                RX, RL, RT, X1, L1, TH1, GN, PS, PT):
    """Updates x', λ', θ' and the per-node ledger sums PS (N + 1, 14) and per-layer port sums
    PT (N, 3): Σ r_θ², ½Σ θ'², max|r_θ|. The metric is Θ_k = c_k I, c = ``cm``."""
    N = w.size - 1
    B = (offs[1] - offs[0]) // w[0]
    for k in prange(N + 1):
        nk = w[k]
        sl0 = offs[k]
        sl1 = offs[k + 1]
        x = X[sl0:sl1]
        lam = L[sl0:sl1]
        rx = RX[sl0:sl1]
        rl = RL[sl0:sl1]
        x1 = X1[sl0:sl1]
        l1 = L1[sl0:sl1]
        ps = PS[k]
        for j in range(_NSUMS):
            ps[j] = 0.0
        if 0 < k < N:
            # interior node: the update and its sums in one pass over the node
            _self_sums(True, cm[k], nu, x, lam, rx, rl, x1, l1, ps)
        else:
            if k == 0:
                for j in range(B * nk):
                    rx[j] = x[j] - x_in[j]
                    x1[j] = x_in[j]
            else:
                for j in range(B * nk):
                    x1[j] = x[j] - nu * rx[j]
            if k == N:
                gn = GN[:B * nk]
                loss_grad(loss, x, nk, P, targets, gn)            # ∇ℓ(x_N): r_λ,N
                for j in range(B * nk):
                    rl[j] = lam[j] - gn[j]
                if not explicit:
                    loss_grad(loss, x1, nk, P, targets, gn)       # ∇ℓ(x'_N)
                for j in range(B * nk):
                    l1[j] = gn[j]
            else:
                for j in range(B * nk):
                    l1[j] = lam[j] - nu * rl[j]
            _self_sums(False, cm[k], nu, x, lam, rx, rl, x1, l1, ps)
        if k >= 1:      # (ΣΔa², Σā·s, Σs², Σa·s) into ps[_DA:_DA + 4], zero until now
            _node_sums(B, nk, w[k - 1], cm[k], cm[k - 1], x, X[offs[k - 1]:sl0], x1, nu,
                       ps[_DA:_DA + 4])
        if k < N:       # the same for b, against node k + 1, into ps[_DB:_DB + 4]
            _node_sums(B, nk, w[k + 1], 1.0 / cm[k], 1.0 / cm[k + 1], lam, L[sl1:offs[k + 2]],
                       l1, nu, ps[_DB:_DB + 4])
            # the parameter port of layer k
            _port_step(eta, theta[k], RT[k], TH1[k], PT[k])


# --------------------------------------------------------------------------------------------
# objective, packing, the run loop
# --------------------------------------------------------------------------------------------
@jit
def network_objective(w, offs, s, h, act, lin_last, loss, wd, P, targets, x_in, theta, proto):
    """J(θ) = ℓ(x_N) + (wd/2)‖θ‖² by one forward pass from x_in (fields in ``proto``'s dtype)."""
    N = w.size - 1
    B = (offs[1] - offs[0]) // w[0]
    nmax = w.max()
    cur = np.empty(B * nmax, proto.dtype)
    nxt = np.empty(B * nmax, proto.dtype)
    d = np.empty(B * nmax, proto.dtype)
    kb = np.empty(B * nmax, np.int64)
    cur[:B * w[0]] = x_in
    for k in range(N):
        ni = w[k]
        no = w[k + 1]
        nw = no * ni
        z = nxt[:B * no]
        np.dot(cur[:B * ni].reshape((B, ni)), theta[k, :nw].reshape((no, ni)).T,
               z.reshape((B, no)))
        for b in range(B):
            for i in range(no):
                z[b * no + i] += theta[k, nw + i]
        a = d[:B * no]
        activate(_IDENTITY if (lin_last and k == N - 1) else act, z, a, nxt[:B * no],
                 kb[:B * no])
        for j in range(B * no):
            nxt[j] = h * a[j]
        if s != 0.0:
            for j in range(B * no):
                nxt[j] += s * cur[j]
        cur, nxt = nxt, cur
    J = loss_value(loss, cur[:B * w[N]], w[N], P, targets)
    if wd != 0.0:
        t2 = 0.0
        for k in range(N):
            for j in range(theta.shape[1]):
                t2 += np.float64(theta[k, j]) ** 2
        J += 0.5 * wd * t2
    return J


@jit
def _pack(w, offs, u, F):
    """Padded (B, N + 1, n) float64 → unpadded node-after-node flat buffer F."""
    B = u.shape[0]
    for k in range(w.size):
        nk = w[k]
        for b in range(B):
            for i in range(nk):
                F[offs[k] + b * nk + i] = u[b, k, i]


@jit
def _unpack(w, offs, F, u):
    B, N1, n = u.shape
    for k in range(N1):
        nk = w[k]
        for b in range(B):
            for i in range(nk):
                u[b, k, i] = F[offs[k] + b * nk + i]
            for i in range(nk, n):
                u[b, k, i] = 0.0


@jit
def network_run(w, s, h, act, lin_last, loss, wd, P, targets, x_in, cm, nu, eta,
                explicit, u, v, theta, proto, start, nsteps, tol, record_every, hist, hrow,
                div_bound, dt):
    """Advance (u, v, θ) of a network problem by up to ``nsteps`` τ-steps in place.

    Parameters: node widths ``w`` (N + 1,) int64; layer map f_k = s x + h σ(W x + b) with
    activation code ``act`` (:data:`ACT_CODES`), linear last layer if ``lin_last``; ``loss``
    code (:data:`LOSS_CODES`), read-out ``P`` (K, n_N), one-hot ``targets`` (B, K), weight
    decay ``wd``; inputs ``x_in`` (B, n_0); the metric Θ_k = c_k I as ``cm`` (N + 1,); Courant number ν ∈ (0, 1] (upwind), gain η, terminal termination
    ``explicit``; the fields u = x, v = λ (B, N + 1, n) and θ (N, m), float64, zero-padded;
    ``proto`` an empty array of the working dtype (float64 or float32). The rest as for
    :func:`wavecontrol.kernels.affine_run`, whose return tuple this shares:
    ``(steps_done, status, rows_written, max_ledger_error, res_x, res_λ, res_θ)``.
    """
    B = u.shape[0]
    N = w.size - 1
    dtype = proto.dtype
    offs = np.zeros(N + 2, np.int64)
    loffs = np.zeros(N + 1, np.int64)
    for k in range(N + 1):
        offs[k + 1] = offs[k] + B * w[k]
    for k in range(N):
        loffs[k + 1] = loffs[k] + B * w[k + 1]
    size = offs[N + 1]
    X = np.empty(size, dtype)
    L = np.empty(size, dtype)
    X1 = np.empty(size, dtype)
    L1 = np.empty(size, dtype)
    RX = np.empty(size, dtype)
    RL = np.empty(size, dtype)
    VJ = np.empty(size, dtype)
    Z = np.empty(loffs[N], dtype)
    A = np.empty(loffs[N], dtype)
    D = np.empty(loffs[N], dtype)
    G = np.empty(loffs[N], dtype)
    KB = np.empty(loffs[N], np.int64)
    GN = np.empty(B * w[N], dtype)
    TH = np.empty(theta.shape, dtype)
    TH1 = np.empty(theta.shape, dtype)
    RT = np.empty(theta.shape, dtype)
    xin = np.empty(B * w[0], dtype)
    PS = np.zeros((N + 1, _NSUMS))
    PT = np.zeros((N, 3))
    _pack(w, offs, u, X)
    _pack(w, offs, v, L)
    for k in range(N):
        for j in range(theta.shape[1]):
            TH[k, j] = theta[k, j]
    n0 = w[0]
    for b in range(B):
        for i in range(n0):
            xin[b * n0 + i] = x_in[b, i]
    hh = 0.5 * dt
    maxerr = 0.0
    rows = hrow
    status = RUNNING
    done = nsteps
    res = np.zeros(3)
    for it in range(nsteps):
        step = start + it
        _layers_pass(w, offs, loffs, s, h, act, lin_last, wd, TH, X, L, Z, A, D, G, VJ, KB,
                     RX, RL, RT)
        _nodes_pass(w, offs, nu, eta, explicit, loss, cm, P, targets, xin, TH, X, L,
                    RX, RL, RT, X1, L1, TH1, GN, PS, PT)
        # node-ordered sums: the same numbers for any number of threads
        tot = np.zeros(_NSUMS)
        mrx = 0.0
        mrl = 0.0
        for k in range(N + 1):
            for j in range(_NSUMS):
                tot[j] += PS[k, j]
            mrx = max(mrx, PS[k, _MRX])
            mrl = max(mrl, PS[k, _MRL])
        r2 = 0.0
        the = 0.0
        mrt = 0.0
        for k in range(N):
            r2 += PT[k, 0]
            the += PT[k, 1]
            mrt = max(mrt, PT[k, 2])
        V = hh * (tot[_A2] + tot[_B2])
        if not (V <= div_bound):
            status = DIVERGED
            done = it
            break
        res[0] = mrx
        res[1] = mrl
        res[2] = mrt
        if mrx <= tol and mrl <= tol and mrt <= tol:
            status = CONVERGED
            done = it
            break
        a0 = PS[0, _A2]
        b0 = PS[0, _B2]
        aN = PS[N, _A2]
        bN = PS[N, _B2]
        Vn = hh * (tot[_A12] + tot[_B12])
        bl = hh * nu * (a0 - b0)
        br = hh * nu * (bN - aN)
        diss = -hh * nu * (1.0 - nu) * (tot[_DA] + tot[_DB])
        src = hh * 2.0 * (tot[_ABS] + tot[_BBS])
        src2 = hh * (tot[_SA2] + tot[_SB2])
        rl_ = hh * (PS[0, _A12] - a0)
        rr_ = hh * (PS[N, _B12] - bN)
        rhs = hh * (nu * (a0 - b0 + bN - aN) + 2.0 * (tot[_ASA] + tot[_BSB]))
        bad = not (Vn <= div_bound and the <= div_bound)
        err = abs(Vn - V - (bl + br + diss + src + src2 + rl_ + rr_)) / max(V, 1.0)
        if not bad and err > maxerr:
            maxerr = err
        keep = not bad or (math.isfinite(Vn) and math.isfinite(err))
        if keep and record_every > 0 and step % record_every == 0 and rows < hist.shape[0]:
            row = hist[rows]
            row[H_STEP] = step
            row[H_V] = V
            row[H_BL] = bl
            row[H_BR] = br
            row[H_DISS] = diss
            row[H_SRC] = src
            row[H_SRC2] = src2
            row[H_RL] = rl_
            row[H_RR] = rr_
            row[H_VN] = Vn
            row[H_RHS] = rhs
            row[H_PORT] = eta * r2
            row[H_LERR] = err
            row[H_RX] = mrx
            row[H_RL_] = mrl
            row[H_RT] = mrt
            row[H_OBJ] = network_objective(w, offs, s, h, act, lin_last, loss, wd, P, targets,
                                           xin, TH, proto)
            rows += 1
        if bad:
            status = DIVERGED
            done = it
            break
        X, X1 = X1, X
        L, L1 = L1, L
        TH, TH1 = TH1, TH
    _unpack(w, offs, X, u)
    _unpack(w, offs, L, v)
    for k in range(N):
        for j in range(theta.shape[1]):
            theta[k, j] = TH[k, j]
    return done, status, rows, maxerr, res[0], res[1], res[2]
