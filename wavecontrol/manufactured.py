"""Manufactured-solution verification of the forced transport (eqs. 12–13) and of (19)–(20).

The forced transport on t ∈ [0, T] is

    ∂τ w+ + c ∂t w+ = g+,      ∂τ w− − c ∂t w− = g−          (eqs. 12–13, g± = −c E±)

and its wave energy V = ½ ∫ (‖w+‖² + ‖w−‖²) dt obeys the continuous balance (19)–(20)

    dV/dτ = c/2 (‖w+(0)‖² − ‖w−(0)‖²) + c/2 (‖w−(T)‖² − ‖w+(T)‖²) + ∫ (w+·g+ + w−·g−) dt.

One τ-step of :func:`forced_step` is the homogeneous transport of :mod:`wavecontrol.schemes`
followed by a source increment, an approximation of ∫ g ds along the characteristic that ends
at (t_k, τ_{n+1}); that characteristic starts at the departure point (t_k ∓ cΔτ, τ_n):

``rectangle``  Δτ g(t_k, τ_n)                       (first order; the default of ``upwind``,
                                                     as in eqs. 34–35)
``midpoint``   Δτ g(t_k ∓ cΔτ/2, τ_n + Δτ/2)        (second order; the default of
                                                     ``lax-wendroff``, ``beam-warming`` and
                                                     ``characteristic``)
``trapezoid``  Δτ/2 (g(t_k ∓ cΔτ, τ_n) + g(t_k, τ_{n+1}))
``simpson``    Δτ/6 (g(departure) + 4 g(midpoint) + g(t_k, τ_{n+1}))

The inflow nodes (node 0 of w+, node N of w−) are then set to the exact solution at τ_{n+1}.
For ``characteristic`` with ν > 1 the departure point of the nodes with t_k < cΔτ (k < ν)
lies outside [0, T]; :mod:`wavecontrol.schemes` clamps it to the inflow node, which is exact
only at integer ν. Here (``boundary="trace"``, the default) those nodes are instead traced
back to where their characteristic crosses t = 0 (t = T for w−), at τ* = τ_{n+1} − t_k/c,
and take the exact inflow value there plus the same quadrature over the shorter path.
``boundary="clamp"`` keeps the clamped values.

Boundary closures. In :mod:`wavecontrol.schemes` the outflow node N of ``lax-wendroff``
(flux F_{N+½} = w_N) and the first node of ``beam-warming`` (flux F_½ = w_0) update as
w̄ = w − ν(1 + ν)/2 (w_N − w_{N−1}) and w̄ = w − ν(3 − ν)/2 (w_1 − w_0): not consistent with
∂τw + c∂tw = 0 unless ν = 1, which makes the max-norm error first order (measured). With
``closure="upwind"`` (the default) :func:`forced_step` replaces that one node by the upwind
update w̄_k = w_k − ν(w_k − w_{k∓1}) (the flux of a linearly extrapolated ghost node): its
local error is O(Δt²), so the scheme stays second order in the max norm. ``closure="scheme"``
keeps the values of :mod:`wavecontrol.schemes` as they are.

With the manufactured solutions of :func:`smooth_solution` (general; sources derived by hand)
and :func:`characteristic_solution` (w = φ(t ∓ cτ) + τ ψ(t ∓ cτ), so g = ψ is constant along
characteristics), :func:`observed_order` measures the error at a fixed final τ and the
residual of the discrete balance under refinement at fixed ν, and :func:`order_checks` turns
the measurements into pass/fail checks for ``wavecontrol verify``.

Grid: t_k = kΔt, k = 0..N, Δt = T/N; ν = cΔτ/Δt. Fields have shape (N + 1, n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .schemes import SCHEME_CODES, STABLE_RANGE, check_scheme, transport_kernel, transport_numpy

QUADRATURES = ("rectangle", "midpoint", "trapezoid", "simpson")
#: source quadrature used by each scheme unless another is asked for
DEFAULT_QUADRATURE = {"upwind": "rectangle", "lax-wendroff": "midpoint",
                      "beam-warming": "midpoint", "characteristic": "midpoint"}
BACKENDS = ("numpy", "numba")
#: the boundary node of w+ whose update in :mod:`wavecontrol.schemes` is not consistent
#: (−1: node N); w− has the mirror node
_CLOSURE_NODE = {"lax-wendroff": -1, "beam-warming": 1}


# --------------------------------------------------------------------------------------------
# manufactured solutions
# --------------------------------------------------------------------------------------------
Field = Callable[[np.ndarray, float], np.ndarray]


@dataclass(frozen=True)
class Manufactured:
    """An exact solution of (12)–(13) with its sources.

    Each of ``wp``, ``wm``, ``gp``, ``gm`` maps (t, τ) — t an array of any shape (time units),
    τ a scalar or an array broadcasting with t — to an array of shape ``t.shape + (n,)``.
    """

    name: str
    n: int
    c: float
    T: float
    wp: Field
    wm: Field
    gp: Field
    gm: Field


def smooth_solution(c: float = 1.0, T: float = 1.0) -> Manufactured:
    """A smooth two-component solution that is not constant along characteristics.

    w+ = (sin(2t + τ) + 0.3,  e^{−τ/2} cos 3t),   w− = (cos(t − 2τ),  e^{t/2 + τ/3} sin 2t);
    the sources g+ = ∂τw+ + c∂tw+ and g− = ∂τw− − c∂tw− are written out by hand below.
    """

    def wp(t, tau):
        t, tau = np.broadcast_arrays(np.asarray(t, float), np.asarray(tau, float))
        return np.stack([np.sin(2 * t + tau) + 0.3, np.exp(-tau / 2) * np.cos(3 * t)], axis=-1)

    def gp(t, tau):
        t, tau = np.broadcast_arrays(np.asarray(t, float), np.asarray(tau, float))
        # ∂τ sin(2t+τ) = cos(2t+τ), ∂t = 2cos(2t+τ)
        g1 = (1 + 2 * c) * np.cos(2 * t + tau)
        # ∂τ e^{−τ/2}cos3t = −½ e^{−τ/2}cos3t, ∂t = −3 e^{−τ/2} sin3t
        e = np.exp(-tau / 2)
        g2 = -0.5 * e * np.cos(3 * t) - 3 * c * e * np.sin(3 * t)
        return np.stack([g1, g2], axis=-1)

    def wm(t, tau):
        t, tau = np.broadcast_arrays(np.asarray(t, float), np.asarray(tau, float))
        return np.stack([np.cos(t - 2 * tau), np.exp(t / 2 + tau / 3) * np.sin(2 * t)], axis=-1)

    def gm(t, tau):
        t, tau = np.broadcast_arrays(np.asarray(t, float), np.asarray(tau, float))
        # ∂τ cos(t−2τ) = 2 sin(t−2τ), ∂t = −sin(t−2τ)
        g1 = (2 + c) * np.sin(t - 2 * tau)
        # ∂τ (e^{t/2+τ/3} sin2t) = ⅓ ·,  ∂t = ½ · + 2 e^{t/2+τ/3} cos2t
        e = np.exp(t / 2 + tau / 3)
        g2 = e * np.sin(2 * t) / 3 - c * (0.5 * e * np.sin(2 * t) + 2 * e * np.cos(2 * t))
        return np.stack([g1, g2], axis=-1)

    return Manufactured("smooth", 2, float(c), float(T), wp, wm, gp, gm)


def characteristic_solution(c: float = 1.0, T: float = 1.0) -> Manufactured:
    """w± = φ±(t ∓ cτ) + τ ψ±(t ∓ cτ), so that g± = ψ±(t ∓ cτ) (constant along characteristics).

    φ+(s) = (sin 2s, cos s + 0.5), ψ+(s) = (cos 3s, e^{−s²}),
    φ−(s) = (cos 2s, sin 3s),       ψ−(s) = (sin s − 0.2, 1/(1 + s²)).
    Check: ∂τ w+ = −cφ+' + ψ+ − cτψ+' and c∂t w+ = cφ+' + cτψ+', which sum to ψ+.
    """

    def phi_p(s):
        return np.stack([np.sin(2 * s), np.cos(s) + 0.5], axis=-1)

    def psi_p(s):
        return np.stack([np.cos(3 * s), np.exp(-s * s)], axis=-1)

    def phi_m(s):
        return np.stack([np.cos(2 * s), np.sin(3 * s)], axis=-1)

    def psi_m(s):
        return np.stack([np.sin(s) - 0.2, 1.0 / (1.0 + s * s)], axis=-1)

    def wp(t, tau):
        t, tau = np.broadcast_arrays(np.asarray(t, float), np.asarray(tau, float))
        s = t - c * tau
        return phi_p(s) + tau[..., None] * psi_p(s)

    def gp(t, tau):
        t, tau = np.broadcast_arrays(np.asarray(t, float), np.asarray(tau, float))
        return psi_p(t - c * tau)

    def wm(t, tau):
        t, tau = np.broadcast_arrays(np.asarray(t, float), np.asarray(tau, float))
        s = t + c * tau
        return phi_m(s) + tau[..., None] * psi_m(s)

    def gm(t, tau):
        t, tau = np.broadcast_arrays(np.asarray(t, float), np.asarray(tau, float))
        return psi_m(t + c * tau)

    return Manufactured("characteristic", 2, float(c), float(T), wp, wm, gp, gm)


SOLUTIONS = {"smooth": smooth_solution, "characteristic": characteristic_solution}


# --------------------------------------------------------------------------------------------
# one forced τ-step
# --------------------------------------------------------------------------------------------
def _path_integral(g: Field, t_end, tau_end, length, direction: int, c: float, rule: str):
    """∫ g along the characteristic of velocity ``direction·c`` over the τ-interval
    [τ_end − length, τ_end] that ends at (t_end, τ_end); returns shape ``t_end.shape + (n,)``.

    ``length`` is a scalar or an array like ``t_end`` (τ units).
    """
    length = np.asarray(length, float)
    L = length[..., None]
    if rule == "rectangle":  # the node value at the old level: Δτ g(t_k, τ_n)
        return L * g(t_end, tau_end - length)
    t0, tau0 = t_end - direction * c * length, tau_end - length
    tm, taum = t_end - direction * c * length / 2, tau_end - length / 2
    if rule == "midpoint":
        return L * g(tm, taum)
    if rule == "trapezoid":
        return L / 2 * (g(t0, tau0) + g(t_end, tau_end))
    if rule == "simpson":
        return L / 6 * (g(t0, tau0) + 4 * g(tm, taum) + g(t_end, tau_end))
    raise ValueError(f"unknown quadrature {rule!r}; valid: {', '.join(QUADRATURES)}")


def _transport(w, scheme: str, nu: float, direction: int, backend: str):
    """Homogeneous transport of a (N + 1, n) field with the chosen backend."""
    if backend == "numpy":
        return transport_numpy(w[None], scheme, nu, direction)[0][0]
    w3 = np.ascontiguousarray(w[None])
    out = np.empty_like(w3)
    transport_kernel(w3, out, SCHEME_CODES[scheme], float(nu), int(direction))
    return out[0]


def forced_step(sol: Manufactured, wp, wm, tau: float, scheme: str, nu: float, *,
                quadrature: str | None = None, boundary: str = "trace",
                closure: str = "upwind", backend: str = "numpy"):
    """One τ-step of the forced transport (12)–(13) from τ_n = ``tau`` to τ_n + Δτ.

    ``wp``, ``wm``: fields of shape (N + 1, n) at τ_n on t_k = kT/N; Δτ = νT/(Nc).
    Transport by :mod:`wavecontrol.schemes` (``backend`` "numpy": :func:`transport_numpy`,
    "numba": :func:`transport_kernel`), the boundary ``closure``, the source increment
    (``quadrature``; the scheme's default when None), then the exact inflow values at τ_{n+1}
    (see the module docstring). Returns the new (wp, wm).
    """
    check_scheme(scheme)
    rule = DEFAULT_QUADRATURE[scheme] if quadrature is None else quadrature
    if rule not in QUADRATURES:
        raise ValueError(f"unknown quadrature {rule!r}; valid: {', '.join(QUADRATURES)}")
    if boundary not in ("trace", "clamp"):
        raise ValueError(f"unknown boundary {boundary!r}; valid: trace, clamp")
    if closure not in ("upwind", "scheme"):
        raise ValueError(f"unknown closure {closure!r}; valid: upwind, scheme")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    N = wp.shape[0] - 1
    c, T = sol.c, sol.T
    dt = T / N
    dtau = nu * dt / c
    tau1 = tau + dtau
    t = np.linspace(0.0, T, N + 1)
    new_p = _transport(wp, scheme, nu, +1, backend)
    new_m = _transport(wm, scheme, nu, -1, backend)
    if closure == "upwind" and scheme in _CLOSURE_NODE:
        k = _CLOSURE_NODE[scheme] % (N + 1)  # node of w+ (w− at the mirror node N − k)
        new_p[k] = wp[k] - nu * (wp[k] - wp[k - 1])
        new_m[N - k] = wm[N - k] - nu * (wm[N - k] - wm[N - k + 1])
    new_p += _path_integral(sol.gp, t, tau1, dtau, +1, c, rule)
    new_m += _path_integral(sol.gm, t, tau1, dtau, -1, c, rule)
    if scheme == "characteristic" and boundary == "trace" and nu > 1:
        # nodes whose departure point t_k − cΔτ lies left of t = 0 (k < ν): trace to t = 0
        k = np.arange(1, N + 1)
        k = k[k * dt < c * dtau * (1 - 1e-12)]
        if k.size:
            d = k * dt  # distance travelled inside [0, T]
            new_p[k] = sol.wp(np.zeros(k.size), tau1 - d / c) + _path_integral(
                sol.gp, t[k], tau1, d / c, +1, c, rule)
            new_m[N - k] = sol.wm(np.full(k.size, T), tau1 - d / c) + _path_integral(
                sol.gm, t[N - k], tau1, d / c, -1, c, rule)
    new_p[0] = sol.wp(np.array(0.0), tau1)
    new_m[N] = sol.wm(np.array(T), tau1)
    return new_p, new_m


# --------------------------------------------------------------------------------------------
# the continuous balance (19)–(20) on the grid
# --------------------------------------------------------------------------------------------
def _trapezoid_weights(N: int, dt: float):
    w = np.full(N + 1, dt)
    w[0] = w[-1] = dt / 2
    return w


def energy(wp, wm, weights):
    """V = ½ ∫ (‖w+‖² + ‖w−‖²) dt (eq. 18) with the quadrature ``weights`` (N + 1,)."""
    return 0.5 * float(weights @ (np.sum(wp * wp, axis=1) + np.sum(wm * wm, axis=1)))


def balance_rhs(sol: Manufactured, wp, wm, tau: float, weights):
    """Right-hand side of (19)–(20) on the fields (N + 1, n) at τ, the integral by ``weights``."""
    N = wp.shape[0] - 1
    t = np.linspace(0.0, sol.T, N + 1)
    bound = 0.5 * sol.c * (wp[0] @ wp[0] - wm[0] @ wm[0] + wm[N] @ wm[N] - wp[N] @ wp[N])
    src = np.sum(wp * sol.gp(t, tau), axis=1) + np.sum(wm * sol.gm(t, tau), axis=1)
    return float(bound + weights @ src)


# --------------------------------------------------------------------------------------------
# runs and refinement studies
# --------------------------------------------------------------------------------------------
@dataclass
class ManufacturedRun:
    """One run to τ_final: max-abs error there and the balance residual's max over steps."""

    scheme: str
    nu: float
    N: int
    steps: int
    error: float
    balance: float
    wp: np.ndarray
    wm: np.ndarray


def _steps_for(tau_final: float, dtau: float) -> int:
    steps = tau_final / dtau
    m = int(round(steps))
    if m < 1 or abs(steps - m) > 1e-9 * max(1.0, steps):
        raise ValueError(f"tau_final = {tau_final} is not a whole number of steps "
                         f"Δτ = {dtau} (got {steps}); choose N or ν so that it is")
    return m


def run(scheme: str, nu: float, N: int, *, solution: Manufactured | str = "smooth",
        tau_final: float = 1.0, quadrature: str | None = None, boundary: str = "trace",
        closure: str = "upwind", backend: str = "numpy",
        exact_fields: bool = False) -> ManufacturedRun:
    """Integrate from the exact data at τ = 0 to ``tau_final`` (a whole number of steps).

    The balance residual of step n is |(V^{n+1} − V^n)/Δτ − ½(P^n + P^{n+1})| with V and the
    integral in P (the right-hand side of 19–20) by the trapezoid rule in t. With
    ``exact_fields`` the residual is evaluated on the exact solution sampled on the grid
    (the consistency of the discrete identity itself; ``error`` is then 0).
    """
    sol = SOLUTIONS[solution]() if isinstance(solution, str) else solution
    lo, hi = STABLE_RANGE[check_scheme(scheme)]
    if not (lo < nu <= min(hi, N)):
        raise ValueError(f"ν = {nu} outside the stable range ({lo}, {min(hi, N)}] of {scheme}")
    dt = sol.T / N
    dtau = nu * dt / sol.c
    steps = _steps_for(tau_final, dtau)
    t = np.linspace(0.0, sol.T, N + 1)
    weights = _trapezoid_weights(N, dt)
    wp, wm = sol.wp(t, 0.0), sol.wm(t, 0.0)
    V0, P0 = energy(wp, wm, weights), balance_rhs(sol, wp, wm, 0.0, weights)
    balance = 0.0
    for n in range(steps):
        tau1 = (n + 1) * dtau
        if exact_fields:
            wp, wm = sol.wp(t, tau1), sol.wm(t, tau1)
        else:
            wp, wm = forced_step(sol, wp, wm, n * dtau, scheme, nu, quadrature=quadrature,
                                 boundary=boundary, closure=closure, backend=backend)
        V1, P1 = energy(wp, wm, weights), balance_rhs(sol, wp, wm, tau1, weights)
        balance = max(balance, abs((V1 - V0) / dtau - 0.5 * (P0 + P1)))
        V0, P0 = V1, P1
    tau_end = steps * dtau
    error = max(np.max(np.abs(wp - sol.wp(t, tau_end))), np.max(np.abs(wm - sol.wm(t, tau_end))))
    return ManufacturedRun(scheme, float(nu), N, steps, float(error), float(balance), wp, wm)


@dataclass
class OrderStudy:
    """Errors and balance residuals on grids ``Ns`` and the observed orders log2(e_h/e_{h/2})."""

    scheme: str
    nu: float
    Ns: tuple
    errors: np.ndarray
    orders: np.ndarray
    balance: np.ndarray
    balance_orders: np.ndarray


def _orders(e):
    e = np.asarray(e, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log2(e[:-1] / e[1:])


def observed_order(scheme: str, nu: float, Ns=(24, 48, 96, 192), **options) -> OrderStudy:
    """Refine at fixed ν (each N the double of the previous) and measure the observed orders.

    ``options`` go to :func:`run` (solution, tau_final, quadrature, boundary, backend).
    """
    Ns = tuple(int(N) for N in Ns)
    if any(b != 2 * a for a, b in zip(Ns, Ns[1:])):
        raise ValueError(f"each N must double the previous one, got {Ns}")
    runs = [run(scheme, nu, N, **options) for N in Ns]
    errors = np.array([r.error for r in runs])
    balance = np.array([r.balance for r in runs])
    return OrderStudy(scheme, float(nu), Ns, errors, _orders(errors), balance, _orders(balance))


# --------------------------------------------------------------------------------------------
# checks for `wavecontrol verify`
# --------------------------------------------------------------------------------------------
#: round-off bound for the characteristic scheme at integer ν on :func:`characteristic_solution`:
#: the fields are O(1) and each step adds a few ulps per node (measured: 1.8e-14 after the 192
#: steps of N = 192 at ν = 1, growing linearly with the number of steps); 1e-12 leaves a
#: margin of 50 yet lies 10^8 below the O(Δt) error of an inexact scheme on the same grids.
ROUNDOFF_BOUND = 1e-12

#: (check name, scheme, ν, bound on observed order) for the smooth solution
ORDER_CASES = (
    ("upwind", "upwind", 0.5, 0.9),
    ("upwind", "upwind", 0.8, 0.9),
    ("lax-wendroff (paper form, central)", "lax-wendroff", 0.5, 1.9),
    ("lax-wendroff (paper form, central)", "lax-wendroff", 0.8, 1.9),
    ("beam-warming (consistent form's lax-wendroff)", "beam-warming", 0.5, 1.9),
    ("beam-warming (consistent form's lax-wendroff)", "beam-warming", 1.5, 1.9),
    ("characteristic, midpoint source", "characteristic", 1.0, 1.9),
    ("characteristic, linear interpolation", "characteristic", 1.5, 0.9),
)


def order_checks(Ns=(24, 48, 96, 192), tau_final: float = 1.0, backend: str = "numpy"):
    """Manufactured-solution checks of every transport scheme and of the balance (19)–(20).

    Returns a list of ``{"name", "passed", "value", "bound", "relation"}``: ``value`` is the observed order
    between the two finest grids (≥ bound to pass), or, for the round-off check, the max-abs
    error (≤ bound to pass).
    """
    checks = []
    for label, scheme, nu, bound in ORDER_CASES:
        study = observed_order(scheme, nu, Ns, tau_final=tau_final, backend=backend)
        for what, orders in (("order", study.orders), ("balance order", study.balance_orders)):
            value = float(orders[-1])
            checks.append({"name": f"manufactured {label} ν={nu:g}: {what}",
                           "passed": bool(value >= bound), "value": value, "bound": bound,
                           "relation": ">="})
    for nu in (1.0, 2.0):
        worst = max(run("characteristic", nu, N, solution="characteristic", tau_final=tau_final,
                        backend=backend).error for N in Ns)
        checks.append({"name": f"manufactured characteristic ν={nu:g}: exact to round-off",
                       "passed": bool(worst <= ROUNDOFF_BOUND), "value": worst,
                       "bound": ROUNDOFF_BOUND, "relation": "<="})
    return checks


def format_checks(checks) -> str:
    """The checks as aligned text lines (PASS/FAIL, value, bound, name)."""
    lines = []
    for ch in checks:
        flag = "PASS" if ch["passed"] else "FAIL"
        lines.append(f"{flag}  {ch['value']:12.4e}  bound {ch['bound']:.3g}  {ch['name']}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import time

    t0 = time.perf_counter()
    print(format_checks(order_checks()))
    print(f"{time.perf_counter() - t0:.2f} s")
