"""The matched (Riccati-impedance) port: a τ-step whose backward wave is measured against the
closed-loop value Hessian P_k (DESIGN.md, "The matched port").

The fields are those of the consistent form, (x, λ, θ = u), plus the port's state P (N + 1, n, n).
The backward wave is s_k = λ_k − P_k x_k. One application of the local map M (every node at
once, from its neighbours' values at the start of the step; A_k = ∂f_k/∂x, B_k = ∂f_k/∂u)::

    Q_uu = ∇²_uu R_k + B_kᵀ P_{k+1} B_k + μ_k I,   Q_ux = ∇²_ux R_k + B_kᵀ P_{k+1} A_k
    û_k      = u_k − Q_uu⁻¹ (∇_u R_k + B_kᵀ (s_{k+1} + P_{k+1} f_k(x_k, u_k)))
    x̂_{k+1}  = f_k(x_k, û_k),  x̂_0 = x_in
    λ̂_k      = ∇_x R_k + A_kᵀ (s_{k+1} + P_{k+1} x̂_{k+1})      (A_k, ∇_x R_k at (x_k, û_k))
    P̂_k      = ∇²_xx R_k + A_kᵀ P_{k+1} A_k − Q_uxᵀ Q_uu⁻¹ Q_ux   (Gauss–Newton)
    ŝ_k      = λ̂_k − P̂_k x_k;   P̂_N = ∇²ℓ(x_N), ŝ_N = ∇ℓ(x_N) − P̂_N x_N

μ_k is the smallest shift that makes Q_uu's smallest eigenvalue at least :data:`QUU_FLOOR` times
its largest magnitude (zero whenever Q_uu is already well conditioned and positive definite).

Control bounds lo ≤ u_k ≤ hi (``problem.bounds``): û_k minimizes the same quadratic model over
the box (:mod:`wavecontrol.boxqp`, projected Newton; for m = 1 the clipped Newton step), and
P̂_k takes Q_uu's inverse on the free controls only, zero on the clamped ones (a clamped
control has no feedback). û_k = u_k exactly when u_k is a KKT point of the node's Hamiltonian
over the box, so the fixed points are the discrete PMP with bounds (projected r_θ = 0).

Courant numbers and schemes. The ν = 1 step is M itself. Writing F = (x, u, s, P) for all the
fields and D(F) = M(F) − F for the defect, the schemes are the consistent form's polynomials in
the one-node shift with M in its place, so that s and P travel with the same transport as λ::

    upwind          F ← F + ν D(F)
    lax-wendroff    F ← F + ν D(F) + ½ν(ν−1) (D(M F) − D(F))        (Beam–Warming type)
    characteristic  F ← (1 − q) M^p(F) + q M^{p+1}(F),   ν = p + q

followed by the boundary resets x_0 = x_in and (implicit termination) P_N = ∇²ℓ(x_N),
s_N = ∇ℓ(x_N) − P_N x_N at the new x_N; then λ = s + P x. Any fixed point has D = 0, hence is a
fixed point of M, which is the exact discrete PMP (DESIGN.md). For LQR, M is affine in
(x, u, s) with a nilpotent linear part once P has settled, so the step's operator is
G = I + ν(S − I) (upwind) with S nilpotent: its spectrum is {1 − ν}, ρ = |1 − ν|, and at ν = 1
it is nilpotent (docs/theory.md §11).

Newton node model and terminal ramp (``hessian="newton"``, ``ramp_steps``; docs/theory.md
§11.7). The Newton model adds T_k = ∇²_{(x,u)} (w_k · f_k), w_k = s_{k+1} + P_{k+1} f_k, to the
node block [[Q_xx, Q_uxᵀ], [Q_ux, Q_uu]] (the problem's ``layer_curvature`` where it has one,
else :func:`dynamics_curvature`), and projects that block onto the positive semidefinite cone
until the residual falls below ``newton_below`` (:func:`newton_switch`); the curvature only
shapes the path, since w_k = λ_{k+1} at any consistent trajectory. The ramp scales ℓ at node N
by c_j = ramp_from^(1 − j/K) for τ-steps j < K (:func:`terminal_scale`); a run cannot converge
before it ends. With the Gauss–Newton model the cart-pole swing-up's optimum is an unstable
fixed point; with both it converges (docs/findings.md).

Ledger. V = ½ Σ Δt (‖a‖² + ‖b‖²) with a = Θx, b = Θ^{-T}λ as in the consistent form. The change
splits exactly into the consistent form's terms of the *reference* step (the same scheme
polynomial applied to the consistent map C: x_k ← f_{k−1}(x_{k−1}), λ_k ← ∇_x R_k + A_kᵀλ_{k+1}
at fixed u), whose interior increment over the homogeneous transport ā is s_c, and the port's
increment s_p = a' − ā − s_c: ``port_power`` = ½Δt Σ (2(ā + s_c)·s_p + ‖s_p‖²) (likewise for
b). For this port ``port_power`` is a ledger term (:data:`MATCHED_LEDGER_TERMS`).

Reflection: ½ Σ_k Δt ‖Θ_k^{-T} s_k‖² in the matched metric Θ_kᵀΘ_k = P_k, i.e.
½ Σ Δt s_kᵀ P_k⁺ s_k (P_k's eigenvalues floored at :data:`REFLECTION_FLOOR` of the largest);
for LQR without affine terms s vanishes at the optimum, and so does the reflection.
"""

from __future__ import annotations

import math

import numpy as np

from .boxqp import box_qp
from .ledger import LEDGER_TERMS
from .ports import Port, _positive

#: relative eigenvalue floor of Q_uu (the per-node Levenberg–Marquardt shift μ_k)
QUU_FLOOR = 1e-8
#: relative eigenvalue floor of P_k in the reflected-wave energy
REFLECTION_FLOOR = 1e-12
#: the ledger terms of a matched step: the consistent form's plus the port's power
MATCHED_LEDGER_TERMS = LEDGER_TERMS + ("port_power",)
#: the node models of the port: Gauss–Newton (the dynamics' curvature left out) or Newton
HESSIANS = ("gauss-newton", "newton")
#: default max-abs residual below which the Newton port drops the convexification
NEWTON_BELOW = 1e-2
#: a Newton port whose residual climbs above this factor × ``newton_below`` convexifies again
NEWTON_REVERT = 100.0
#: relative step of the central differences of the exact Jacobians (≈ ε^(1/3))
CURVATURE_STEP = 6e-6


class MatchedPort(Port):
    """The Riccati-impedance port (module docstring). Its state is P (N + 1, n, n) and, for
    ``hessian="newton"``, the switch ``newton`` (1,): 1.0 once the node models are exact.

    Parameters
    ----------
    floor : float > 0
        Relative eigenvalue floor of Q_uu (:data:`QUU_FLOOR`): the shift μ_k makes Q_uu + μ_k I
        have its smallest eigenvalue ≥ floor × its largest magnitude.
    hessian : ``"gauss-newton"`` or ``"newton"``
        The node model. Gauss–Newton (default) leaves the dynamics' curvature out of Q. Newton
        adds λ̂_{k+1}·∇²f_k (λ̂_{k+1} = s_{k+1} + P_{k+1} f_k; the problem's
        ``layer_curvature`` where it has one — symbolic for problems from expressions — else
        central differences of the exact Jacobians) and, while the max-abs residual is ≥
        ``newton_below`` (or the ramp runs), projects each node's block [[Q_xx, Q_uxᵀ],
        [Q_ux, Q_uu]] onto the positive semidefinite cone; below it the model is exact (module
        docstring, "Newton node model and terminal ramp"). The fixed points are the same for
        both.
    newton_below : float > 0
        Max-abs residual (the units of ``tol``) below which the Newton model is used exactly;
        it convexifies again if the residual climbs above :data:`NEWTON_REVERT` × this.
    ramp_steps : int ≥ 0
        Terminal-cost continuation: for τ-steps j < ramp_steps the terminal condition is that of
        c_j ℓ with c_j = ramp_from^(1 − j / ramp_steps), rising geometrically to 1 (0: none).
        A run does not converge before the ramp ends.
    ramp_from : float in (0, 1]
        c_0 of the ramp.
    """

    name = "matched"
    supports_bounds = True

    def __init__(self, floor: float = QUU_FLOOR, hessian: str = "gauss-newton",
                 newton_below: float = NEWTON_BELOW, ramp_steps: int = 0,
                 ramp_from: float = 1e-2):
        super().__init__()
        self.floor = _positive("floor", floor)
        if hessian not in HESSIANS:
            raise ValueError(f"hessian must be one of {', '.join(HESSIANS)}, got {hessian!r}")
        self.hessian = hessian
        self.newton_below = _positive("newton_below", newton_below)
        if (isinstance(ramp_steps, bool) or not isinstance(ramp_steps, (int, np.integer))
                or ramp_steps < 0):
            raise ValueError(f"ramp_steps must be an integer >= 0, got {ramp_steps!r}")
        self.ramp_steps = int(ramp_steps)
        ramp_from = _positive("ramp_from", ramp_from)
        if ramp_from > 1.0:
            raise ValueError(f"ramp_from must lie in (0, 1], got {ramp_from!r}")
        self.ramp_from = ramp_from
        self.last_reflection = math.nan

    @property
    def newton(self) -> bool:
        """Whether the node model carries the dynamics' curvature (``hessian="newton"``)."""
        return self.hessian == "newton"

    def terminal_scale(self, step: int) -> float:
        """c_j of the terminal-cost ramp at τ-step ``step`` (1.0 once it has ended)."""
        return terminal_scale(self.ramp_steps, self.ramp_from, step)

    def may_converge(self, step: int) -> bool:
        return self.terminal_scale(step) == 1.0

    def divergence_hint(self) -> str:
        own = getattr(self.problem, "matched_settings", None) or {}
        try:
            same = MatchedPort(**own).config() == self.config()
        except (TypeError, ValueError):   # settings this port cannot take: still name them
            same = False
        if own and not same:
            return (f"this problem names its own matched-port settings {own} "
                    "(port='matched' takes them)")
        if not self.newton:
            return ("the Gauss-Newton node model leaves out the dynamics' curvature: on the "
                    "cart-pole swing-up, where it diverges, hessian='newton' with a terminal "
                    "ramp (ramp_steps=10*N, ramp_from=1e-2) converges (docs/findings.md)")
        return ("where the Newton model diverged at Courant number 1, scheme='characteristic' "
                "with courant=1.5 (the cart-pole) or courant=0.5 with ramp_steps=100*N from "
                "ramp_from=1e-4 (the acrobot) converged (docs/findings.md); "
                "compare --methods ipopt gives a locked reference")

    def _bind(self, problem):
        check_matched_problem(problem)

    def _initial_state(self):
        if self.problem is None:
            return {}
        n = self.problem.n
        state = {"P": np.zeros((self.problem.N + 1, n, n))}
        if self.newton:
            state["newton"] = np.zeros(1)
        return state

    def _step(self, theta, r_theta, state):
        raise ValueError("port 'matched' updates all fields at once: it runs through "
                         "matched_step_numpy (solve does this), not Port.update")

    def commit(self, P, newton=None):
        """Take ``P`` (and the Newton switch) as the new state (undoable like
        :meth:`Port.update`)."""
        state = {"P": P}
        if self.newton:
            state["newton"] = np.array([1.0 if newton else 0.0])
        self._previous, self._state = self._state, state

    def kernel_state(self):
        """The state's P as a C-contiguous float64 array that the compiled kernel updates in
        place (:mod:`wavecontrol.nodekernels`)."""
        return self._kernel_array("P")

    def kernel_switch(self):
        """The Newton switch (1,) that the compiled kernel updates in place (zeros for the
        Gauss–Newton model, which has none in its state)."""
        return self._kernel_array("newton") if self.newton else np.zeros(1)

    def _kernel_array(self, key):
        a = self._state[key]
        if not (isinstance(a, np.ndarray) and a.dtype == np.float64
                and a.flags.c_contiguous and a.flags.writeable):
            a = np.ascontiguousarray(a, dtype=np.float64).copy()
            self._state = {**self._state, key: a}
        return a

    def reflection(self, r_theta=None, dtheta=None) -> float:
        """½ Σ Δt s_kᵀ P_k⁺ s_k of the last step's new fields (module docstring)."""
        return self.last_reflection

    def layer_reflection(self, x, lam, theta):
        """½ Δt s_kᵀ P_k⁺ s_k per node k = 0..N−1 of the fields x, λ (1, N+1, n) with the
        current P: (N,) (the snapshots' per-layer reflection)."""
        P = self._state["P"][:-1]
        s = lam[0, :-1] - np.einsum("kij,kj->ki", P, x[0, :-1])
        return node_reflection(s, P, self.problem.dt)

    def power(self, r_theta, dtheta=None) -> float:
        raise ValueError("port 'matched': its power is a ledger term of matched_step_numpy")

    def config(self) -> dict:
        # the Newton and ramp settings only where they are used: a default port's config (and
        # so a run file's, which a resume must match) is what it was before they existed
        out = {"name": self.name, "floor": self.floor}
        if self.newton:
            out.update(hessian=self.hessian, newton_below=self.newton_below)
        if self.ramp_steps:
            out.update(ramp_steps=self.ramp_steps, ramp_from=self.ramp_from)
        return out

    def __repr__(self) -> str:
        extra = ""
        if self.newton:
            extra += f", hessian='newton', newton_below={self.newton_below:g}"
        if self.ramp_steps:
            extra += f", ramp_steps={self.ramp_steps}, ramp_from={self.ramp_from:g}"
        return f"MatchedPort(floor={self.floor:g}{extra})"


def terminal_scale(ramp_steps, ramp_from, step):
    """c_j = ramp_from^(1 − j / ramp_steps) for τ-step j < ramp_steps, else 1.0."""
    if ramp_steps <= 0 or step >= ramp_steps:
        return 1.0
    return ramp_from ** (1.0 - step / ramp_steps)


def newton_switch(on, residual, scale, below):
    """The Newton switch after a step whose start had max-abs residual ``residual`` and
    terminal scale ``scale``: on once below ``below`` after the ramp, off again above
    :data:`NEWTON_REVERT` × ``below`` (or a non-finite residual)."""
    if scale != 1.0:
        return False
    if on:
        return residual <= NEWTON_REVERT * below
    return residual < below


def check_matched_problem(problem) -> None:
    """ValueError unless ``problem`` has per-node controls: batch 1 and uniform widths."""
    if problem.batch != 1:
        raise ValueError(f"port 'matched' needs a control problem with batch 1 (per-node "
                         f"controls); {problem.name!r} has batch {problem.batch}: use port 'gd'")
    if not problem.layout.uniform:
        raise ValueError(f"port 'matched' needs uniform node widths; {problem.name!r} has "
                         f"widths {list(problem.layout.widths)}")


def _sym(M):
    return 0.5 * (M + np.swapaxes(M, -1, -2))


def _floored_inverse(Q, floor):
    """(Q + μI)⁻¹ for a batch of symmetric Q (K, m, m), μ ≥ 0 the smallest shift giving
    λ_min ≥ floor · max|λ|; by eigendecomposition. Returns (inverse, μ)."""
    w, U = np.linalg.eigh(_sym(Q))
    scale = np.maximum(np.abs(w).max(axis=-1), np.finfo(float).tiny)
    mu = np.maximum(0.0, floor * scale - w.min(axis=-1))
    inv = np.einsum("kij,kj,klj->kil", U, 1.0 / (w + mu[:, None]), U)
    return inv, mu


def dynamics_curvature(problem, xb, u, w, step=CURVATURE_STEP):
    """T_k = ∇²_{(x,u)} (w_k · f_k) at (x_k, u_k) for all layers, (N, n + m, n + m), by central
    differences of the exact Jacobians (steps ``step`` · max(1, |z_j|) per variable z_j),
    symmetrized. ``xb`` (1, N, n), ``u`` (N, m), ``w`` (N, n)."""
    N, n = xb.shape[1], xb.shape[2]
    m = u.shape[1]
    T = np.empty((N, n + m, n + m))
    for j in range(n + m):
        z = xb[0, :, j] if j < n else u[:, j - n]
        h = step * np.maximum(1.0, np.abs(z))
        xp, xm, up, um = xb.copy(), xb.copy(), u.copy(), u.copy()
        if j < n:
            xp[0, :, j] += h
            xm[0, :, j] -= h
        else:
            up[:, j - n] += h
            um[:, j - n] -= h
        Ap, Bp = problem.layer_jacobians(xp, up)
        Am, Bm = problem.layer_jacobians(xm, um)
        hh = ((xp[0, :, j] - xm[0, :, j]) if j < n else (up[:, j - n] - um[:, j - n]))
        T[:, :n, j] = np.einsum("ki,kil->kl", w, Ap - Am) / hh[:, None]
        T[:, n:, j] = np.einsum("ki,kil->kl", w, Bp - Bm) / hh[:, None]
    return _sym(T)


def _psd(Z):
    """Z (K, d, d) symmetric with its negative eigenvalues set to zero."""
    w, U = np.linalg.eigh(_sym(Z))
    return np.einsum("kij,kj,klj->kil", U, np.maximum(w, 0.0), U)


def matched_map(problem, x, u, s, P, floor=QUU_FLOOR, newton=False, convex=False, scale=1.0):
    """One application of M (module docstring) to fields x (N+1, n), u (N, m), s (N+1, n),
    P (N+1, n, n) of batch 1; returns (x̂, û, ŝ, P̂, μ). ``newton``: Q carries the dynamics'
    curvature, its node blocks projected onto the PSD cone with ``convex``; ``scale``: the
    terminal condition is that of scale · ℓ (the ramp)."""
    n = x.shape[1]
    xb = x[None, :-1]
    A, Bm = problem.layer_jacobians(xb, u)
    Rxx, Rux, Ruu = problem.running_hessians(xb, u)
    gu = problem.running_grad_theta(xb, u)
    f = problem.layer_maps(xb, u)[0]
    Pn, sn = P[1:], s[1:]
    w = sn + np.einsum("kij,kj->ki", Pn, f)                 # λ̂_{k+1} predicted at f_k
    PA = np.einsum("kij,kjl->kil", Pn, A)
    Qxx = Rxx + np.einsum("kji,kjl->kil", A, PA)
    Qux = Rux + np.einsum("kji,kjl->kil", Bm, PA)
    Quu = Ruu + np.einsum("kji,kjl->kil", Bm, np.einsum("kij,kjl->kil", Pn, Bm))
    if newton:
        exact = getattr(problem, "layer_curvature", None)      # symbolic where it is given
        Z = exact(xb, u, w) if exact is not None else dynamics_curvature(problem, xb, u, w)
        Z[:, :n, :n] += Qxx
        Z[:, n:, :n] += Qux
        Z[:, :n, n:] += np.swapaxes(Qux, 1, 2)
        Z[:, n:, n:] += Quu
        if convex:
            Z = _psd(Z)
        Qxx, Qux, Quu = Z[:, :n, :n], Z[:, n:, :n], Z[:, n:, n:]
    inv, mu = _floored_inverse(Quu, floor)
    g = gu + np.einsum("kji,kj->ki", Bm, w)
    if problem.bounds is None:
        u1 = u - np.einsum("kij,kj->ki", inv, g)
    else:       # the box-constrained step; P̂ takes the free-set inverse (module docstring)
        u1, inv = box_steps(_sym(Quu), mu, g, u, *bound_arrays(problem))
    xn = problem.layer_maps(xb, u1)[0]                      # x̂_{k+1} = f_k(x_k, û_k)
    A1, _ = problem.layer_jacobians(xb, u1)
    gx1 = problem.running_grad_x(xb, u1)[0]
    lam_hat = gx1 + np.einsum("kji,kj->ki", A1, sn + np.einsum("kij,kj->ki", Pn, xn))
    P1 = np.empty_like(P)
    P1[:-1] = _sym(Qxx - np.einsum("kji,kjl,klm->kim", Qux, inv, Qux))
    s1 = np.empty_like(s)
    s1[:-1] = lam_hat - np.einsum("kij,kj->ki", P1[:-1], x[:-1])
    x1 = np.empty_like(x)
    x1[0] = problem.x_in[0]
    x1[1:] = xn
    P1[-1] = scale * problem.terminal_hessian(x[None, -1])
    s1[-1] = scale * problem.terminal_grad(x[None, -1])[0] - P1[-1] @ x[-1]
    return x1, u1, s1, P1, mu


def bound_arrays(problem):
    """The problem's control bounds as two C-contiguous (N, m) arrays (±inf where open; both
    all infinite without bounds): what the compiled kernel takes."""
    shape = (problem.N, problem.m)
    if problem.bounds is None:
        return np.full(shape, -np.inf), np.full(shape, np.inf)
    lo, hi = problem.bounds
    return (np.ascontiguousarray(np.broadcast_to(np.asarray(lo, dtype=float), shape)),
            np.ascontiguousarray(np.broadcast_to(np.asarray(hi, dtype=float), shape)))


def box_steps(Quu, mu, g, u, lo, hi):
    """The box-constrained control steps of all nodes (:func:`wavecontrol.boxqp.box_qp` on
    Q_uu + μ_k I, g_k within lo − u_k ≤ δ ≤ hi − u_k): returns û (N, m), clipped into the box
    against round-off, and the free-set inverses H (N, m, m)."""
    N, m = u.shape
    u1, H = np.empty_like(u), np.empty((N, m, m))
    d = np.empty(m)
    for k in range(N):
        box_qp(Quu[k] + mu[k] * np.eye(m), g[k], lo[k] - u[k], hi[k] - u[k], d, H[k])
        u1[k] = np.minimum(np.maximum(u[k] + d, lo[k]), hi[k])
    return u1, H


def consistent_map(problem, x, lam, u):
    """The consistent form's ν = 1 map C at fixed u (the ledger's reference): x̂_k =
    f_{k−1}(x_{k−1}), x̂_0 = x_in, λ̂_k = ∇_x R_k + A_kᵀ λ_{k+1}, λ̂_N = ∇ℓ(x_N)."""
    xb = x[None, :-1]
    x1, l1 = np.empty_like(x), np.empty_like(lam)
    x1[0] = problem.x_in[0]
    x1[1:] = problem.layer_maps(xb, u)[0]
    l1[:-1] = problem.vjp_x(xb, u, lam[None, 1:])[0] + problem.running_grad_x(xb, u)[0]
    l1[-1] = problem.terminal_grad(x[None, -1])[0]
    return x1, l1


def scheme_polynomial(scheme, nu, fields, apply):
    """Apply the scheme's polynomial in the map ``apply`` (a function of a tuple of arrays that
    returns a tuple of the same shapes) to ``fields`` (module docstring)."""
    F = tuple(fields)
    if scheme == "upwind":
        M = apply(F)
        return tuple(f + nu * (g - f) for f, g in zip(F, M))
    if scheme == "lax-wendroff":
        M = apply(F)
        MM = apply(M)
        beta = 0.5 * nu * (nu - 1.0)
        return tuple(f + nu * (g - f) + beta * ((h - g) - (g - f))
                     for f, g, h in zip(F, M, MM))
    if scheme == "characteristic":
        p = int(math.floor(nu))
        q = nu - p
        for _ in range(p):
            F = apply(F)
        if q == 0.0:
            return F
        M = apply(F)
        return tuple((1.0 - q) * f + q * g for f, g in zip(F, M))
    raise ValueError(f"unknown scheme {scheme!r}; valid: upwind, lax-wendroff, characteristic")


def node_reflection(s, P, dt, floor=REFLECTION_FLOOR):
    """½ Δt s_kᵀ P_k⁺ s_k per node, (K,), with P_k's eigenvalue magnitudes floored at
    ``floor`` × their largest."""
    w, U = np.linalg.eigh(_sym(P))
    a = np.abs(w)
    top = np.maximum(a.max(axis=-1, keepdims=True), np.finfo(float).tiny)
    a = np.maximum(a, floor * top)
    c = np.einsum("kji,kj->ki", U, s)
    return 0.5 * dt * np.sum(c * c / a, axis=-1)


def reflection_energy(s, P, dt, floor=REFLECTION_FLOOR) -> float:
    """½ Σ_k Δt s_kᵀ P_k⁺ s_k (:func:`node_reflection` summed over the nodes)."""
    return float(np.sum(node_reflection(s, P, dt, floor)))


def matched_step_numpy(problem, metric, cfg, x, lam, theta, port, step=0):
    """One matched τ-step of batch-1 fields x, λ (1, N+1, n), θ (N, m); returns
    (x', λ', θ', ledger dict, (r_x, r_λ, r_θ)) like
    :func:`~wavecontrol.formulations.consistent_step_numpy` and commits P' (and the Newton
    switch) to ``port``. ``step``: the τ-step's index (the terminal ramp's clock)."""
    from .formulations import consistent_ledger

    nu = cfg.courant
    r = problem.residuals(x, lam, theta)
    P = port._state["P"]
    x0, l0 = x[0], lam[0]
    s0 = l0 - np.einsum("kij,kj->ki", P, x0)
    scale = port.terminal_scale(step)
    on = False
    if port.newton:
        with np.errstate(invalid="ignore"):
            worst = max(float(np.abs(a).max()) for a in r)
        on = newton_switch(bool(port._state["newton"][0]), worst, scale, port.newton_below)

    def apply_matched(F):
        return matched_map(problem, *F, floor=port.floor, newton=port.newton,
                           convex=not on, scale=scale)[:4]

    x1, u1, s1, P1 = scheme_polynomial(cfg.scheme, nu, (x0, theta, s0, P), apply_matched)
    x1 = x1.copy()
    x1[0] = problem.x_in[0]
    if problem.bounds is not None:      # Lax–Wendroff's polynomial can leave the box
        lo, hi = bound_arrays(problem)
        u1 = np.minimum(np.maximum(u1, lo), hi)
    xN = x1[-1] if cfg.termination == "implicit" else x0[-1]
    P1 = _sym(P1)
    # λ_N = s_N + P_N x'_N = c∇ℓ(x_N) at the new (implicit) or the old (explicit) x_N
    P1[-1] = scale * problem.terminal_hessian(xN[None])
    s1[-1] = scale * problem.terminal_grad(xN[None])[0] - P1[-1] @ x1[-1]
    l1 = s1 + np.einsum("kij,kj->ki", P1, x1)

    # the reference consistent step (same scheme polynomial on C) for the ledger split
    xc, lc = scheme_polynomial(cfg.scheme, nu, (x0, l0),
                               lambda F: consistent_map(problem, F[0], F[1], theta))
    dt, h = problem.dt, 0.5 * problem.dt
    a, b = metric.characteristic(x, lam)
    a1, b1 = metric.characteristic(x1[None], l1[None])
    ac, bc = metric.characteristic(xc[None], lc[None])
    led = consistent_ledger(a, b, ac, bc, a1, b1, cfg.scheme, nu, dt)
    spa, spb = a1[:, 1:] - ac[:, 1:], b1[:, :-1] - bc[:, :-1]
    # the port's increment beyond the consistent step: ½Δt Σ (2 a_c·s_p + ‖s_p‖²)
    led["port_power"] = h * float(np.sum((2.0 * ac[:, 1:] + spa) * spa)
                                  + np.sum((2.0 * bc[:, :-1] + spb) * spb))
    led["port_in_V"] = True
    port.commit(P1, on)
    with np.errstate(all="ignore"):
        port.last_reflection = reflection_energy(s1, P1, dt)
    return x1[None], l1[None], u1, led, r
