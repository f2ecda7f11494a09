"""Compiled run loop of the resistive port over *node functions*: the second template of the
generated kernel modules.

Like :mod:`wavecontrol.nodekernels` this file is not run as it stands:
:func:`wavecontrol.codegen.kernel_module` writes the text of nodekernels.py, then the body of
this file (from the marker line below on), then a problem's node source into one module file,
so that :func:`gd_run` calls the problem's node functions (the contract of
:mod:`wavecontrol.nodekernels`) and the helpers of nodekernels.py (``_mk_eval``,
``_mk_residuals``, ``_mk_char``, ``_mk_ledger``, ``objective``) as globals of that one module.
The imports above the marker are for reading this file alone; the generated module drops them.

:func:`gd_run` is the compiled twin of :func:`wavecontrol.formulations.consistent_step_numpy`
with the resistive port (:class:`wavecontrol.ports.ResistivePort`), i.e. of
:func:`wavecontrol.kernels.affine_run`'s consistent branch for any problem that gives node
functions (batch 1, uniform width n, m controls). One τ-step, Courant number ν, residuals of
eqs. 53–56 and 59 at the step's start (r_x,0 = x_0 − x_in, r_x,k = x_k − f_{k−1}(x_{k−1}, u_{k−1}),
r_λ,k = λ_k − A_kᵀ λ_{k+1} − ∇_x R_k, r_λ,N = λ_N − ∇ℓ(x_N), r_θ,k = ∇_u R_k + B_kᵀ λ_{k+1})::

    upwind          x'_k = x_k − ν r_x,k (k ≥ 1),  λ'_k = λ_k − ν r_λ,k (k < N)
    lax-wendroff    upwind + ν(ν − 1)/2 (r_x,k − A_{k−1} r_x,k−1) (k ≥ 2), mirrored for λ
                    (k ≤ N − 2); for ν > 1 node 1 (N − 1) takes the exact step x_1 − r_x,1
    characteristic  ν = p + q: x'_k = (1 − q) X^(p)_k + q X^(p+1)_k with X^(0) = x,
                    X^(j+1)_k = f_{k−1}(X^(j)_{k−1}, u_{k−1}); λ'_k likewise with
                    Λ^(j+1)_k = A_kᵀ Λ^(j)_{k+1} + ∇_x R_k (A_k, ∇_x R_k at the step's x)
    boundaries      x'_0 = x_in,  λ'_N = ∇ℓ(x'_N) (implicit) or ∇ℓ(x_N) (explicit)
    port (eq. 60)   θ' = θ − η r_θ;  with bounds θ' = clip(θ − η r_θ, lo, hi)

With bounds r_θ above is the plain gradient; the residual reported and judged for convergence
is the projected one, θ − clip(θ − r_θ, lo, hi)
(:meth:`wavecontrol.problem.LayeredProblem.project_residual`). The port's power is η‖r_θ‖²
without bounds and −r_θ·(θ' − θ) with them (:meth:`wavecontrol.ports.ResistivePort.power`).
The ledger is that of :func:`wavecontrol.formulations.consistent_ledger` in a = Θx,
b = Θ^{-T}λ, Θ (N + 1, n, n) and its inverse given.

Shapes: x, λ (N + 1, n) node-first, θ (N, m), lo, hi (N, m), Θ, Θ^{-1} (N + 1, n, n), D the
problem's tuple of float64 arrays. Run contract (return tuple, statuses, ``record_every``,
history rows :data:`wavecontrol.kernels.HIST_COLUMNS`, divergence): that of
:func:`wavecontrol.kernels.affine_run`.
"""

from wavecontrol.nodekernels import (_mk_char, _mk_eval, _mk_ledger,  # noqa: F401
                                     _mk_residuals, _mk_row, _mk_sumsq, layer, objective,
                                     terminal_grad)

# ---- template body: wavecontrol.codegen.kernel_module appends the text from here on ----
import math  # noqa: E402

import numpy as np  # noqa: E402

from wavecontrol._jit import jit  # noqa: E402
from wavecontrol.kernels import CONVERGED, DIVERGED, RUNNING  # noqa: E402

#: scheme codes of gd_run (those of :data:`wavecontrol.schemes.SCHEME_CODES`)
GD_UPWIND, GD_LW, GD_CHAR = 0, 1, 3


@jit
def _gd_update(code, nu, x, lam, u, F, A, GX, RX, RL, D, x1, l1, XR, LR, f, Aw, Bw):
    """x' on nodes 1..N and λ' on nodes 0..N−1 of the consistent step (module docstring);
    nodes 0 of x' and N of λ' are left to the caller. XR, LR (2, N + 1, n), f, Aw, Bw: scratch."""
    N1, n = x.shape
    N = N1 - 1
    if code == GD_CHAR:
        p = int(math.floor(nu))
        q = nu - p
        last = p + 1 if q > 0.0 else p          # the row of weight q = 0 is not formed
        XR[0, :, :] = x
        LR[0, :, :] = lam
        for j in range(1, last + 1):
            s = (j - 1) % 2
            d = j % 2
            XR[d, 0, :] = x[0]
            LR[d, N, :] = lam[N]
            for k in range(1, N1):
                if j == 1:
                    for i in range(n):
                        XR[d, k, i] = F[k - 1, i]
                else:
                    layer(k - 1, XR[s, k - 1], u[k - 1], D, f, Aw, Bw)
                    for i in range(n):
                        XR[d, k, i] = f[i]
            for k in range(N):
                for i in range(n):
                    t = 0.0
                    for c in range(n):
                        t += A[k, c, i] * LR[s, k + 1, c]
                    LR[d, k, i] = t + GX[k, i]
        rp = p % 2
        rq = (p + 1) % 2
        for k in range(1, N1):
            for i in range(n):
                t = (1.0 - q) * XR[rp, k, i]
                if q > 0.0:
                    t += q * XR[rq, k, i]
                x1[k, i] = t
        for k in range(N):
            for i in range(n):
                t = (1.0 - q) * LR[rp, k, i]
                if q > 0.0:
                    t += q * LR[rq, k, i]
                l1[k, i] = t
        return
    for k in range(N1):
        for i in range(n):
            x1[k, i] = x[k, i] - nu * RX[k, i]
            l1[k, i] = lam[k, i] - nu * RL[k, i]
    if code == GD_LW:
        # Beam–Warming correction β (r_k − J r_{k∓1}); node 1 (N − 1 for λ) stays upwind
        beta = 0.5 * nu * (nu - 1.0)
        for k in range(2, N1):
            for i in range(n):
                t = 0.0
                for c in range(n):
                    t += A[k - 1, i, c] * RX[k - 1, c]
                x1[k, i] += beta * (RX[k, i] - t)
        for k in range(N - 1):
            for i in range(n):
                t = 0.0
                for c in range(n):
                    t += A[k, c, i] * RL[k + 1, c]
                l1[k, i] += beta * (RL[k, i] - t)
        if nu > 1.0:
            # the departure point of node 1 (N − 1) lies beyond the inflow: the exact step
            for i in range(n):
                x1[1, i] = x[1, i] - RX[1, i]
                l1[N - 1, i] = lam[N - 1, i] - RL[N - 1, i]


@jit
def _gd_port(u, RG, eta, bounded, lo, hi, u1):
    """The resistive port θ' = θ − η r_θ (clipped into [lo, hi] when ``bounded``) into u1;
    returns (½‖θ'‖², the port's power)."""
    N, m = u.shape
    pw = 0.0
    for k in range(N):
        for a in range(m):
            t = u[k, a] - eta * RG[k, a]
            if bounded:
                t = min(max(t, lo[k, a]), hi[k, a])
                pw += RG[k, a] * (t - u[k, a])
            u1[k, a] = t
    if bounded:
        return 0.5 * _mk_sumsq(u1), -pw
    return 0.5 * _mk_sumsq(u1), eta * _mk_sumsq(RG)


@jit
def gd_run(code, explicit, nu, eta, bounded, lo, hi, D, x_in, Th, Ti, x, lam, u, start, nsteps,
           tol, record_every, hist, hrow, div_bound, dt):
    """Advance (x, λ (N + 1, n), θ = u (N, m)) by up to ``nsteps`` consistent τ-steps with the
    resistive port of gain η, in place (module docstring). ``code``: 0 upwind, 1 lax-wendroff,
    3 characteristic; ``explicit``: the terminal termination; ``bounded``: whether the problem
    has bounds (then lo, hi (N, m), ±inf where open, project the port's step and r_θ).

    Returns ``(steps_done, status, rows_written, max_ledger_error, res_x, res_λ, res_θ)`` as
    :func:`wavecontrol.kernels.affine_run` (residual norms NaN when no step measured them, as
    in the NumPy twin); writes history rows of :data:`wavecontrol.kernels.HIST_COLUMNS` from
    row ``hrow`` on (the driver's ``reflection`` column is left as it is)."""
    N1, n = x.shape
    N = N1 - 1
    m = u.shape[1]
    F = np.empty((N, n))
    A = np.empty((N, n, n))
    B = np.empty((N, n, m))
    GX = np.empty((N, n))
    GU = np.empty((N, m))
    RXX = np.empty((0, n, n))       # _mk_eval without Hessians does not touch these
    RUX = np.empty((0, m, n))
    RUU = np.empty((0, m, m))
    RX = np.empty((N1, n))
    RL = np.empty((N1, n))
    RG = np.empty((N, m))            # r_θ, the plain gradient
    RT = np.empty((N, m))            # r_θ projected (bounds)
    x1 = np.empty((N1, n))
    l1 = np.empty((N1, n))
    u1 = np.empty((N, m))
    XR = np.empty((2, N1, n))
    LR = np.empty((2, N1, n))
    a = np.empty((N1, n))
    b = np.empty((N1, n))
    a1 = np.empty((N1, n))
    b1 = np.empty((N1, n))
    TL = np.empty((1, n, N1))
    TO = np.empty((1, n, N1))
    Fs = np.empty(N1)
    dacc = np.empty(N1)
    led = np.empty(11)
    f = np.empty(n)
    Aw = np.empty((n, n))
    Bw = np.empty((n, m))
    gx = np.empty(n)
    gu = np.empty(m)
    g = np.empty(n)
    XO = np.empty((N1, n))
    rx = rl = rt = math.nan
    maxerr = 0.0
    rows = hrow
    for it in range(nsteps):
        _mk_char(Th, Ti, x, lam, a, b)
        V = 0.5 * dt * (_mk_sumsq(a) + _mk_sumsq(b))
        if not (V <= div_bound):
            return it, DIVERGED, rows, maxerr, rx, rl, rt
        _mk_eval(x, u, D, F, A, B, GX, GU, RXX, RUX, RUU, False)
        rx, rl, rt = _mk_residuals(x, lam, u, F, A, B, GX, GU, x_in, D, lo, hi, False, RX, RL,
                                   RG, g)
        if bounded:
            for k in range(N):
                for j in range(m):
                    RT[k, j] = u[k, j] - min(max(u[k, j] - RG[k, j], lo[k, j]), hi[k, j])
            rt = np.max(np.abs(RT))
        if rx <= tol and rl <= tol and rt <= tol:
            return it, CONVERGED, rows, maxerr, rx, rl, rt
        _gd_update(code, nu, x, lam, u, F, A, GX, RX, RL, D, x1, l1, XR, LR, f, Aw, Bw)
        x1[0, :] = x_in
        terminal_grad(x[N] if explicit else x1[N], D, g)
        l1[N, :] = g
        th_energy, power = _gd_port(u, RG, eta, bounded, lo, hi, u1)
        # the ledger: the consistent step's fields are the new ones (no port term in ΔV)
        _mk_char(Th, Ti, x1, l1, a1, b1)
        _mk_ledger(code, nu, dt, a, b, a1, b1, a1, b1, TL, TO, Fs, dacc, led)
        Vn = led[1]
        bad = not (Vn <= div_bound and th_energy <= div_bound)
        err = abs(Vn - V - (led[2] + led[3] + led[4] + led[5] + led[6] + led[7] + led[8])) \
            / max(V, 1.0)
        if not bad and err > maxerr:
            maxerr = err
        step = start + it
        keep = not bad or (math.isfinite(Vn) and math.isfinite(err))
        if (keep and record_every > 0 and step % record_every == 0
                and rows < hist.shape[0]):
            _mk_row(hist[rows], step, led, power, err, rx, rl, rt,
                    objective(D, x_in, u, XO, f, Aw, Bw, gx, gu, g))
            rows += 1
        if bad:
            return it, DIVERGED, rows, maxerr, rx, rl, rt
        x[:, :] = x1
        lam[:, :] = l1
        u[:, :] = u1
    return nsteps, RUNNING, rows, maxerr, rx, rl, rt
