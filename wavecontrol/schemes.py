"""Transport schemes for the homogeneous part of the wave equations (12)–(13).

Every scheme advances a right-moving field one τ-step on nodes ``k = 1..N`` (node 0 is the
inflow boundary and is left for the termination); a left-moving field is the mirror image
(nodes ``0..N−1``, inflow at N). Fields have shape ``(B, N + 1, n)``. Each scheme comes as a
numba kernel and a NumPy twin, and both return the exact energy split of the step:

    Σ_k (‖w̄_k‖² − ‖w_k‖²) = inflow + outflow + dissipation          (to round-off)

``upwind`` (eqs. 41–42)
    w̄_k = (1 − ν) w_k + ν w_{k−1}; stable for 0 ≤ ν ≤ 1.
``lax-wendroff``
    Central Lax–Wendroff, w̄_k = w_k − ν/2 (w_{k+1} − w_{k−1}) + ν²/2 (w_{k+1} − 2w_k + w_{k−1}),
    with the outflow flux F_{N+½} = w_N + (1−ν)/2 (w_N − w_{N−1}), which makes node N an upwind
    step (second order overall); stable for 0 ≤ ν ≤ 1.
``beam-warming``
    Second-order upwind, w̄_k = w_k − ν (w_k − w_{k−1}) + ν(ν−1)/2 (w_k − 2w_{k−1} + w_{k−2}),
    with F_½ = w_0 + (1−ν)/2 (w_1 − w_0), which makes node 1 an upwind step (second order
    overall); stable for 0 ≤ ν ≤ 2. This is the homogeneous part of the consistent
    form's ``lax-wendroff`` scheme.
``characteristic``
    Exact characteristic shift with linear interpolation of the departure point: with
    ν = p + q (p integer, 0 ≤ q < 1), w̄_k = (1 − q) w_{k−p} + q w_{k−p−1}, indices below 0
    clamped to the inflow node. Exact for integer ν; allowed for 0 < ν ≤ N.

The conservative schemes are written with interface fluxes F_{j+½} (w̄_k = w_k − ν (F_{k+½} −
F_{k−½})); with G = F − (w_j + w_{j+1})/2 the split is inflow = ν (2 w_0·F_½ − ‖w_0‖²),
outflow = ν (‖w_N‖² − 2 w_N·F_{N+½}), dissipation = −2ν Σ_j G_{j+½}·(w_j − w_{j+1}) +
Σ_k ‖w̄_k − w_k‖². For upwind this is −ν(1−ν) Σ ‖w_k − w_{k−1}‖².
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit

#: name → integer code used inside compiled kernels only (never part of the public API)
SCHEME_CODES = {"upwind": 0, "lax-wendroff": 1, "beam-warming": 2, "characteristic": 3}
#: stable Courant range (lo, hi) of each transport scheme; characteristic's hi is N
STABLE_RANGE = {"upwind": (0.0, 1.0), "lax-wendroff": (0.0, 1.0), "beam-warming": (0.0, 2.0),
                "characteristic": (0.0, math.inf)}


def check_scheme(name: str) -> str:
    """Return ``name`` if it is a known transport scheme, else raise listing the valid ones."""
    if name not in SCHEME_CODES:
        raise ValueError(f"unknown scheme {name!r}; valid: {', '.join(SCHEME_CODES)}")
    return name


# --------------------------------------------------------------------------------------------
# compiled kernels
# --------------------------------------------------------------------------------------------
@jit
def _idx(k, N, direction):
    return k if direction > 0 else N - k


@jit
def transport_kernel(w, out, code, nu, direction):
    """Homogeneous transport of ``w`` (B, N+1, n) into ``out``; returns (inflow, outflow, diss).

    ``direction`` is +1 for a right-moving field (inflow node 0) and −1 for a left-moving one
    (inflow node N). The ledger numbers are plain sums of squares over batch and components
    (multiply by Δt/2 for energies).
    """
    B, N1, n = w.shape
    N = N1 - 1
    inflow = 0.0
    outflow = 0.0
    diss = 0.0
    i0 = _idx(0, N, direction)
    iN = _idx(N, N, direction)
    for b in range(B):
        for j in range(n):
            out[b, i0, j] = w[b, i0, j]
    if code == 3:
        p = int(math.floor(nu))
        q = nu - p
        for b in range(B):
            for k in range(1, N + 1):
                ik = _idx(k, N, direction)
                iu = _idx(max(k - p, 0), N, direction)
                iv = _idx(max(k - p - 1, 0), N, direction)
                for j in range(n):
                    u = w[b, iu, j]
                    v = w[b, iv, j]
                    out[b, ik, j] = (1.0 - q) * u + q * v
                    diss -= q * (1.0 - q) * (u - v) * (u - v)
            for j in range(n):
                inflow += ((1.0 - q) * min(p, N) + q * min(p + 1, N)) * w[b, i0, j] ** 2
            for k in range(1, N + 1):
                ik = _idx(k, N, direction)
                weight = 0.0
                if k >= N - p + 1:
                    weight += 1.0 - q
                if k >= N - p:
                    weight += q
                for j in range(n):
                    outflow -= weight * w[b, ik, j] ** 2
        return inflow, outflow, diss
    for b in range(B):
        for j in range(n):
            # flux through interface 1/2 (between node 0 and node 1)
            w0 = w[b, i0, j]
            w1 = w[b, _idx(1, N, direction), j]
            if code == 1 or code == 2:
                # Lax-Wendroff flux; for Beam-Warming it makes node 1 an upwind step
                f_left = w0 + 0.5 * (1.0 - nu) * (w1 - w0)
            else:
                f_left = w0
            inflow += nu * (2.0 * w0 * f_left - w0 * w0)
            diss -= 2.0 * nu * (f_left - 0.5 * (w0 + w1)) * (w0 - w1)
            for k in range(1, N + 1):
                ik = _idx(k, N, direction)
                wk = w[b, ik, j]
                if k < N:
                    wn = w[b, _idx(k + 1, N, direction), j]
                else:
                    wn = wk
                wp = w[b, _idx(k - 1, N, direction), j]
                if code == 0:
                    f_right = wk
                elif code == 1 and k < N:
                    f_right = wk + 0.5 * (1.0 - nu) * (wn - wk)
                else:
                    # Beam-Warming; for Lax-Wendroff at k = N the outflow closure, which makes
                    # node N an upwind step
                    f_right = wk + 0.5 * (1.0 - nu) * (wk - wp)
                new = wk - nu * (f_right - f_left)
                out[b, ik, j] = new
                diss += (new - wk) * (new - wk)
                if k < N:
                    diss -= 2.0 * nu * (f_right - 0.5 * (wk + wn)) * (wk - wn)
                else:
                    outflow += nu * (wk * wk - 2.0 * wk * f_right)
                f_left = f_right
    return inflow, outflow, diss


@jit
def upwind_pair_inplace(wp, wm, nu, steps):
    """``steps`` upwind steps of two counter-propagating fields of shape (N + 1, M), in place.

    The bare transport with no ledger, for throughput measurements: w+ is swept left to right
    and w- right to left, each with a carry of the old upstream row, so each value is read and
    written once per step.
    """
    N1, M = wp.shape
    carry = np.empty(M)
    a = 1.0 - nu
    for _ in range(steps):
        for j in range(M):
            carry[j] = wp[0, j]
        for k in range(1, N1):
            for j in range(M):
                old = wp[k, j]
                wp[k, j] = a * old + nu * carry[j]
                carry[j] = old
        for j in range(M):
            carry[j] = wm[N1 - 1, j]
        for k in range(N1 - 2, -1, -1):
            for j in range(M):
                old = wm[k, j]
                wm[k, j] = a * old + nu * carry[j]
                carry[j] = old


# --------------------------------------------------------------------------------------------
# NumPy twins
# --------------------------------------------------------------------------------------------
def transport_numpy(w, scheme: str, nu: float, direction: int = 1):
    """NumPy twin of :func:`transport_kernel`: returns (w̄, inflow, outflow, dissipation)."""
    check_scheme(scheme)
    v = w if direction > 0 else w[:, ::-1]
    N = v.shape[1] - 1
    out = v.copy()
    if scheme == "characteristic":
        p = int(math.floor(nu))
        q = nu - p
        k = np.arange(1, N + 1)
        u = v[:, np.maximum(k - p, 0)]
        s = v[:, np.maximum(k - p - 1, 0)]
        out[:, 1:] = (1 - q) * u + q * s
        diss = -q * (1 - q) * np.sum((u - s) ** 2)
        inflow = ((1 - q) * min(p, N) + q * min(p + 1, N)) * np.sum(v[:, 0] ** 2)
        weight = (1 - q) * (k >= N - p + 1) + q * (k >= N - p)
        outflow = -np.sum(weight[None, :, None] * v[:, 1:] ** 2)
    else:
        left, right = v[:, :-1], v[:, 1:]  # interfaces j+1/2, j = 0..N-1
        if scheme == "upwind":
            F = left.copy()
        elif scheme == "lax-wendroff":
            F = left + 0.5 * (1 - nu) * (right - left)
        else:  # beam-warming: F_{j+1/2} = w_j + (1-ν)/2 (w_j - w_{j-1}), F_{1/2} as Lax-Wendroff
            F = left.copy()
            F[:, 1:] += 0.5 * (1 - nu) * (left[:, 1:] - left[:, :-1])
            F[:, 0] += 0.5 * (1 - nu) * (right[:, 0] - left[:, 0])
        if scheme == "upwind":
            F_out = v[:, N]
        else:  # outflow closure: node N (and for Beam-Warming node 1) is an upwind step
            F_out = v[:, N] + 0.5 * (1 - nu) * (v[:, N] - v[:, N - 1])
        F_all = np.concatenate([F, F_out[:, None]], axis=1)  # interfaces 1/2 .. N+1/2
        out[:, 1:] = v[:, 1:] - nu * (F_all[:, 1:] - F_all[:, :-1])
        G = F - 0.5 * (left + right)
        diss = -2 * nu * np.sum(G * (left - right)) + np.sum((out[:, 1:] - v[:, 1:]) ** 2)
        inflow = nu * np.sum(2 * v[:, 0] * F[:, 0] - v[:, 0] ** 2)
        outflow = nu * np.sum(v[:, N] ** 2 - 2 * v[:, N] * F_out)
    if direction < 0:
        out = out[:, ::-1]
    return np.ascontiguousarray(out), float(inflow), float(outflow), float(diss)


def upwind_pair_numpy(wp, wm, nu, steps):
    """NumPy twin of :func:`upwind_pair_inplace` (vectorized over nodes)."""
    for _ in range(steps):
        wp[1:] = (1 - nu) * wp[1:] + nu * wp[:-1]
        wm[:-1] = (1 - nu) * wm[:-1] + nu * wm[1:]
