"""One τ-step of the two formulations, as NumPy twins of the compiled kernels.

``paper`` — Algorithm 1 of the paper verbatim on the waves (w+, w-):
(A) transport (eqs. 41–42 or the chosen scheme), (B) reconstruct x, λ (eqs. 39–40),
(C) residual sources w ← w̄ − α E (eqs. 53–58), (D) parameter port (eq. 60), (E) boundary
scattering (lines 25–26; terminal termination ``explicit`` as written or ``implicit``).
Option ``sources="before"`` evaluates E on the untransported waves (eqs. 34–35).

``consistent`` — the PMP residual operators are the transport operators, on (x, λ):
x_k ← x_k − ν r_x,k (k ≥ 1), λ_k ← λ_k − ν r_λ,k (k < N), x_0 = x_in, λ_N = ∇ℓ(x_N), then the
port. ``lax-wendroff`` adds the Beam–Warming correction ν(ν−1)/2 (r_x,k − J_{k−1} r_x,k−1)
(mirrored for λ); ``characteristic`` with ν = p + q composes the layer maps along the
characteristic: x_k ← (1 − q) F^{(p)}(x_{k−p}) + q F^{(p+1)}(x_{k−p−1}).

Varying widths (zero-padded fields, see :mod:`wavecontrol.problem`): the consistent form needs
no change; the paper form transports across a width-changing link k → k+1 with the transformer
T_k = Θ_{k+1} J_k Θ_k^{-1} of eqs. 44–46, applied by ``problem.jvp`` and ``problem.vjp_x``
(J_k at the x_k of the untransported waves), upwind only.

Every step also returns its exact energy ledger (see :mod:`wavecontrol.ledger`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

import numpy as np

from .boundary import effort_entering, effort_entering_implicit, flow_entering
from .ledger import LEDGER_TERMS
from .metric import Metric
from .ports import ResistivePort
from .schemes import SCHEME_CODES, STABLE_RANGE, transport_numpy

FORMULATIONS = ("consistent", "paper")
SCHEMES = ("upwind", "characteristic", "lax-wendroff")
TERMINATIONS = ("implicit", "explicit")
SOURCE_TIMINGS = ("after", "before")


def transport_scheme(formulation: str, scheme: str) -> str:
    """The homogeneous transport used by ``scheme`` in ``formulation``.

    The consistent form's second-order scheme is upwind-biased (Beam–Warming) so that its fixed
    points stay exact; the paper form's is the central Lax–Wendroff scheme.
    """
    if formulation == "consistent" and scheme == "lax-wendroff":
        return "beam-warming"
    return scheme


def courant_range(formulation: str, scheme: str, N: int) -> tuple[float, float]:
    """Closed interval of Courant numbers ν (> 0) in which ``scheme`` is stable."""
    lo, hi = STABLE_RANGE[transport_scheme(formulation, scheme)]
    return lo, min(hi, float(N))


@dataclass(frozen=True)
class StepConfig:
    """Settings of one τ-step.

    formulation : ``"consistent"`` or ``"paper"``
    scheme : ``"upwind"``, ``"characteristic"`` or ``"lax-wendroff"``
    courant : ν = c Δτ / Δt
    alpha : source gain α of the paper form (eq. 58); ``None`` means α = ν (α ≈ c Δτ in units
        of Δt); ignored by the consistent form
    eta : resistive port gain η (eq. 60, M = I/η)
    termination : terminal termination, ``"implicit"`` (passive, x_N from the new waves) or
        ``"explicit"`` (Algorithm 1 line 26: the old x_N)
    sources : paper form only: ``"after"`` transport (Algorithm 1) or ``"before"`` (eqs. 34–35)
    allow_unstable : accept ν outside the scheme's stable range (for stability studies)
    """

    formulation: str = "consistent"
    scheme: str = "upwind"
    courant: float = 1.0
    alpha: float | None = None
    eta: float = 1.0
    termination: str = "implicit"
    sources: str = "after"
    allow_unstable: bool = False

    def validate(self, N: int) -> "StepConfig":
        """Return self, or raise ValueError naming the bad parameter and the valid values."""
        _choice("formulation", self.formulation, FORMULATIONS)
        _choice("scheme", self.scheme, SCHEMES)
        _choice("termination", self.termination, TERMINATIONS)
        _choice("sources", self.sources, SOURCE_TIMINGS)
        nu = self.courant
        if (isinstance(nu, bool) or not isinstance(nu, numbers.Real) or not math.isfinite(nu)
                or nu <= 0):
            raise ValueError(f"courant must be a finite number > 0, got {nu!r}")
        lo, hi = courant_range(self.formulation, self.scheme, N)
        if self.scheme == "characteristic" and nu > N:
            raise ValueError(f"courant {nu:g} is outside the characteristic scheme's range "
                             f"(0, N] = (0, {N}]: the departure point would leave the grid")
        if not self.allow_unstable and not (lo < nu <= hi):
            raise ValueError(f"courant {nu:g} is outside the stable range ({lo:g}, {hi:g}] of "
                             f"scheme {self.scheme!r} in the {self.formulation} formulation; pass "
                             "allow_unstable=True (CLI: --allow-unstable) for stability studies")
        if not math.isfinite(self.eta) or self.eta < 0:
            raise ValueError(f"eta must be a finite number >= 0, got {self.eta!r}")
        if self.alpha is not None and (not math.isfinite(self.alpha) or self.alpha < 0):
            raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
        return self

    @property
    def source_gain(self) -> float:
        """α actually used (α = ν when not given)."""
        return self.courant if self.alpha is None else float(self.alpha)

    def to_dict(self) -> dict:
        return asdict(self)


def _choice(name, value, valid):
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


# --------------------------------------------------------------------------------------------
# NumPy twin of the fused τ-step
# --------------------------------------------------------------------------------------------
def energy(u, v, dt) -> float:
    """V = ½ Σ_k Δt (‖u_k‖² + ‖v_k‖²) (eq. 18 on the grid, uniform node weights)."""
    return 0.5 * dt * float(np.sum(u * u) + np.sum(v * v))


def consistent_step_numpy(problem, metric: Metric, cfg: StepConfig, x, lam, theta, port=None):
    """One consistent-form τ-step; returns (x', λ', θ', ledger dict, (r_x, r_λ, r_θ)).

    ``port`` (a :class:`~wavecontrol.ports.Port`) defaults to the resistive port with η =
    ``cfg.eta``.
    """
    nu = cfg.courant
    if not problem.layout.uniform:
        metric.check_widths(problem.layout.widths)
    r_x, r_l, r_t = problem.residuals(x, lam, theta)
    x1, l1 = x.copy(), lam.copy()
    if cfg.scheme == "characteristic":
        p = int(math.floor(nu))
        q = nu - p
        rows_x, rows_l = [x], [lam]
        gx = problem.running_grad_x(x[:, :-1], theta)
        for _ in range(p + 1):
            prev_x, prev_l = rows_x[-1], rows_l[-1]
            nx, nl = prev_x.copy(), prev_l.copy()
            nx[:, 1:] = problem.layer_maps(prev_x[:, :-1], theta)
            nl[:, :-1] = problem.vjp_x(x[:, :-1], theta, prev_l[:, 1:]) + gx
            rows_x.append(nx)
            rows_l.append(nl)
        x1[:, 1:] = (1 - q) * rows_x[p][:, 1:] + q * rows_x[p + 1][:, 1:]
        l1[:, :-1] = (1 - q) * rows_l[p][:, :-1] + q * rows_l[p + 1][:, :-1]
    else:
        x1[:, 1:] -= nu * r_x[:, 1:]
        l1[:, :-1] -= nu * r_l[:, :-1]
        if cfg.scheme == "lax-wendroff":
            beta = 0.5 * nu * (nu - 1.0)
            # nodes 2..N (x) and 0..N-2 (λ): node 1 (N-1) next to the inflow stays upwind
            jr = problem.jvp(x[:, :-1], theta, r_x[:, :-1])        # J_{k-1} r_x,k-1, k = 1..N
            jl = problem.vjp_x(x[:, :-1], theta, r_l[:, 1:])       # J_kᵀ r_λ,k+1, k = 0..N-1
            x1[:, 2:] += beta * (r_x[:, 2:] - jr[:, 1:])
            l1[:, :-2] += beta * (r_l[:, :-2] - jl[:, :-1])
            if nu > 1:
                # node 1 (N − 1 for λ): departure point beyond the inflow, exact one-layer step
                x1[:, 1] = x[:, 1] - r_x[:, 1]
                l1[:, -2] = lam[:, -2] - r_l[:, -2]
    x1[:, 0] = problem.x_in
    xN = x1[:, -1] if cfg.termination == "implicit" else x[:, -1]
    l1[:, -1] = problem.terminal_grad(xN)
    port = ResistivePort(cfg.eta) if port is None else port
    # with bounds r_t is the projected residual; the port steps on the gradient itself
    r_g = r_t if getattr(problem, "bounds", None) is None else problem.residual_theta(
        x, lam, theta)
    theta1 = port.update(theta, r_g)

    # ledger in the characteristic variables a = Θx (right-moving), b = Θ^{-T}λ (left-moving)
    dt = problem.dt
    a, b = metric.characteristic(x, lam)
    a1, b1 = metric.characteristic(x1, l1)
    led = consistent_ledger(a, b, a1, b1, a1, b1, cfg.scheme, nu, dt)
    led["port_power"] = port.power(r_g, theta1 - theta)
    return x1, l1, theta1, led, (r_x, r_l, r_t)


def consistent_ledger(a, b, ac, bc, a1, b1, scheme, nu, dt) -> dict:
    """The consistent form's ledger terms of a step (a, b) → (a1, b1) in the characteristic
    variables, with (ac, bc) the fields the consistent step itself reaches: its interior
    increment over the homogeneous transport is the ``source``; a1 − ac (non-zero only for the
    matched port, :mod:`wavecontrol.matched`) is left to the caller's port term."""
    h = 0.5 * dt
    hs = transport_scheme("consistent", scheme)
    abar, in_a, out_a, d_a = transport_numpy(a, hs, nu, +1)
    bbar, in_b, out_b, d_b = transport_numpy(b, hs, nu, -1)
    sca, scb = ac[:, 1:] - abar[:, 1:], bc[:, :-1] - bbar[:, :-1]
    sa, sb = a1[:, 1:] - abar[:, 1:], b1[:, :-1] - bbar[:, :-1]
    return {
        "V": energy(a, b, dt),
        "V_next": energy(a1, b1, dt),
        "boundary_left": h * (in_a + out_b),
        "boundary_right": h * (out_a + in_b),
        "dissipation": h * (d_a + d_b),
        "source": h * 2.0 * float(np.sum(abar[:, 1:] * sca) + np.sum(bbar[:, :-1] * scb)),
        "source2": h * float(np.sum(sca * sca) + np.sum(scb * scb)),
        "reset_left": h * float(np.sum(a1[:, 0] ** 2) - np.sum(a[:, 0] ** 2)),
        "reset_right": h * float(np.sum(b1[:, -1] ** 2) - np.sum(b[:, -1] ** 2)),
        "rhs": h * (nu * float(np.sum(a[:, 0] ** 2) - np.sum(b[:, 0] ** 2)
                               + np.sum(b[:, -1] ** 2) - np.sum(a[:, -1] ** 2))
                    + 2.0 * float(np.sum(a[:, 1:] * sa) + np.sum(b[:, :-1] * sb))),
    }


def paper_step_numpy(problem, metric: Metric, cfg: StepConfig, wp, wm, theta, port=None):
    """One step of Algorithm 1; returns (w+', w-', θ', ledger dict, (r_x, r_λ, r_θ))."""
    nu, alpha, dt = cfg.courant, cfg.source_gain, problem.dt
    junctions = junction_links(problem, metric, cfg)
    wbp, in_p, out_p, d_p = transport_numpy(wp, cfg.scheme, nu, +1)             # (A)
    wbm, in_m, out_m, d_m = transport_numpy(wm, cfg.scheme, nu, -1)
    if junctions.size:
        # identity transport of the zero-padded waves: the ledger's reference transport
        ubp, ubm = wbp, wbm
        wbp, wbm = transformer_transport(problem, metric, nu, wp, wm, theta, junctions, wbp,
                                         wbm)
    sp, sm = (wbp, wbm) if cfg.sources == "after" else (wp, wm)
    x, lam = metric.from_waves(sp, sm)                                          # (B)
    r_x, r_l, r_t = problem.residuals(x, lam, theta)                            # (C)
    Ep, Em = metric.wave_residuals(r_x, r_l)
    wp1, wm1 = wbp - alpha * Ep, wbm - alpha * Em
    port = ResistivePort(cfg.eta) if port is None else port
    r_g = r_t if getattr(problem, "bounds", None) is None else problem.residual_theta(
        x, lam, theta)                                                          # bounds
    theta1 = port.update(theta, r_g)                                            # (D)
    wp2, wm2 = wp1.copy(), wm1.copy()                                           # (E)
    wp2[:, 0] = flow_entering(wm1[:, 0], metric.theta[0], problem.x_in)          # Lemma 2.5
    if cfg.termination == "explicit":
        wm2[:, -1] = effort_entering(wp1[:, -1], metric.theta_inv[-1],
                                     problem.terminal_grad(x[:, -1]), "end")
    else:
        wm2[:, -1] = effort_entering_implicit(wp1[:, -1], metric.theta[-1],
                                              metric.theta_inv[-1], problem.terminal_grad,
                                              problem.terminal_hvp)
    h = 0.5 * dt
    if junctions.size:
        # the transformer's increment over the identity shift counts as source (as the layer
        # maps do in the consistent form): s = w^(C) − ū
        sp_, sm_ = wp1 - ubp, wm1 - ubm
        source = h * 2.0 * float(np.sum(ubp * sp_) + np.sum(ubm * sm_))
        source2 = h * float(np.sum(sp_ * sp_) + np.sum(sm_ * sm_))
    else:
        source = -h * 2.0 * alpha * float(np.sum(wbp * Ep) + np.sum(wbm * Em))
        source2 = h * alpha ** 2 * float(np.sum(Ep * Ep) + np.sum(Em * Em))
    led = {
        "V": energy(wp, wm, dt),
        "V_next": energy(wp2, wm2, dt),
        "boundary_left": h * (in_p + out_m),
        "boundary_right": h * (out_p + in_m),
        "dissipation": h * (d_p + d_m),
        "source": source,
        "source2": source2,
        "reset_left": h * float(np.sum(wp2[:, 0] ** 2) - np.sum(wp1[:, 0] ** 2)),
        "reset_right": h * float(np.sum(wm2[:, -1] ** 2) - np.sum(wm1[:, -1] ** 2)),
        "rhs": h * (nu * float(np.sum(wp[:, 0] ** 2) - np.sum(wm[:, 0] ** 2)
                               + np.sum(wm[:, -1] ** 2) - np.sum(wp[:, -1] ** 2))
                    - 2.0 * alpha * float(np.sum(wp * Ep) + np.sum(wm * Em))),
        "port_power": port.power(r_g, theta1 - theta),
    }
    return wp2, wm2, theta1, led, (r_x, r_l, r_t)


def junction_links(problem, metric: Metric, cfg: StepConfig) -> np.ndarray:
    """Indices k of the width-changing links k → k+1 (n_{k+1} ≠ n_k) of ``problem``.

    Checks, for varying widths, that Θ is block-diagonal for the padding and that the paper
    form's scheme has a transformer transport (upwind, or characteristic with ν ≤ 1, which is
    the same step); raises ValueError otherwise.
    """
    w = problem.layout.widths
    links = np.flatnonzero(w[1:] != w[:-1])
    if links.size:
        metric.check_widths(w)
        if cfg.scheme == "lax-wendroff" or (cfg.scheme == "characteristic"
                                            and cfg.courant > 1):
            raise ValueError(f"scheme {cfg.scheme!r} with courant {cfg.courant:g}: the paper "
                             "form crosses width changes with the upwind transformer step of "
                             "eqs. 45–46 only; use scheme 'upwind' (or 'characteristic' with "
                             "courant <= 1) on varying widths")
    return links


def transformer_transport(problem, metric: Metric, nu, wp, wm, theta, links, wbp, wbm):
    """Eqs. 45–46 on the links ``links`` (k → k+1), on top of the transported ``wbp, wbm``.

    w̄+_{k+1} = (1 − ν) w+_{k+1} + ν T_k w+_k and w̄-_k = (1 − ν) w-_k + ν T_kᵀ w-_{k+1} with
    T_k = Θ_{k+1} J_k Θ_k^{-1}; J_k v and J_kᵀ v come from ``problem.jvp`` / ``problem.vjp_x``
    at the states x of the untransported waves (eq. 39), never formed. Returns new arrays.
    """
    th, thi = metric.theta, metric.theta_inv
    x, _ = metric.from_waves(wp, wm)
    v = np.einsum("kij,bkj->bki", thi[:-1], wp[:, :-1])                  # Θ_k^{-1} w+_k
    Tv = np.einsum("kij,bkj->bki", th[1:], problem.jvp(x[:, :-1], theta, v))
    u = np.einsum("kji,bkj->bki", th[1:], wm[:, 1:])                     # Θ_{k+1}ᵀ w-_{k+1}
    Tu = np.einsum("kji,bkj->bki", thi[:-1], problem.vjp_x(x[:, :-1], theta, u))
    wbp, wbm = wbp.copy(), wbm.copy()
    wbp[:, links + 1] = (1 - nu) * wp[:, links + 1] + nu * Tv[:, links]
    wbm[:, links] = (1 - nu) * wm[:, links] + nu * Tu[:, links]
    return wbp, wbm


def ledger_error(led: dict) -> float:
    """|ΔV − Σ terms| / max(V, 1) of one step's ledger (the matched port's ``port_power`` is
    one of the terms when ``led["port_in_V"]``)."""
    terms = LEDGER_TERMS + (("port_power",) if led.get("port_in_V") else ())
    total = sum(led[t] for t in terms)
    return abs(led["V_next"] - led["V"] - total) / max(led["V"], 1.0)
