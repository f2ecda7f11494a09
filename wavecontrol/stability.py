"""Stability against the Courant number: von Neumann factors, the τ-step operator, sweeps.

Three views of the same question (DESIGN.md, "Stability vs Courant number"):

1. **von Neumann.** :func:`amplification_factor` gives the closed-form factor g(ξ, ν) of each
   pure transport of :mod:`wavecontrol.schemes` (w_k^n = g^n e^{ikξ}, right-moving field);
   :func:`measured_amplification` takes it from one *periodic* step of the scheme code itself
   (:func:`~wavecontrol.schemes.transport_numpy` on a periodically padded grid) by an FFT.
2. **The τ-step operator.** :class:`StepMap` is the driver's τ-step — the same
   :class:`~wavecontrol.formulations.StepConfig`, :class:`~wavecontrol.metric.Metric` and
   port that :func:`solvers.wave.solve` builds, and the same NumPy step functions its
   ``backend="numpy"`` loop calls — as a map z ↦ z' on the flattened state
   z = (u, v, θ) ((x, λ, θ) in the consistent form, (w+, w−, θ) in the paper form). For an
   affine-quadratic problem the step is affine, z' = G z + g, and :func:`affine_operator`
   builds G exactly (to round-off) from G e_i = step(e_i) − step(0). For other problems
   :func:`jacobian` (dense, central differences) and :func:`linear_operator` (matrix-free,
   for :func:`scipy.sparse.linalg.eigs`) give the Jacobian at a state. :func:`analyze` reports
   the spectral radius ρ, the predicted τ-steps for a 10⁶-fold error reduction,
   log(10⁻⁶)/log ρ, and the transient growth max_{n ≤ n_max} ‖Gⁿ‖₂ (G is far from normal).
3. **Experiment.** :func:`stability_sweep` runs every setting of a (ν, η, α) sweep with the
   driver (passed in as ``solve``: this package does not import :mod:`solvers`) to
   convergence or divergence, with a lowered divergence bound and a step budget scaled to the
   predicted rate, and compares: ρ < 1 should give a bounded run, ρ > 1 a diverging one.
   Settings with |ρ − 1| ≤ ``marginal_tol`` are classified ``"marginal"`` and get no verdict.
   Every disagreement is kept in :attr:`SweepResult.disagreements`.
4. **The matched port.** :func:`matched_operator` builds G of the matched τ-step
   (:mod:`wavecontrol.matched`) at an LQR fixed point with the port's P frozen there, and
   :func:`nilpotency_index` measures nilpotency by the powers of G (round-off spreads the
   eigenvalues of a defective block too far for ``eigvals`` to show it).

Sweep specifications (:func:`parse_values`): ``"A:B:K"`` is K evenly spaced values from A to B,
``"a,b,c"`` a list; for η the word ``auto`` (and multiples ``2*auto``, ``0.5auto``) stands for
the driver's automatic gain, for α the word ``nu`` (and ``0.1*nu``) for a multiple of ν.
"""

from __future__ import annotations

import copy
import math
import numbers
import re
from dataclasses import dataclass, field

import numpy as np

from .formulations import (FORMULATIONS, StepConfig, consistent_step_numpy, paper_step_numpy,
                           transport_scheme)
from .metric import Metric
from .ports import Port, ResistivePort, get_port
from .schemes import SCHEME_CODES, check_scheme, transport_numpy

#: the pure transports that have an amplification factor (the names of wavecontrol.schemes)
TRANSPORTS = tuple(SCHEME_CODES)
#: |ρ − 1| at or below this is "marginal": no verdict is forced
MARGINAL_TOL = 1e-9
#: predicted steps are for this error reduction
REDUCTION = 1e-6
#: transient growth is followed only until ‖Gⁿ‖₂ passes this (the run is unstable by then)
GROWTH_CAP = 1e12
#: ports whose update is linear in (θ, r_θ, state) for an affine-quadratic problem, so that the
#: τ-step stays affine (the adaptive port's running estimates are not)
LINEAR_PORTS = ("gd", "newton", "momentum")
VERDICTS = ("stable", "unstable", "marginal")
OUTCOMES = ("converged", "bounded", "diverged", "interrupted")


# --------------------------------------------------------------------------------------------
# 1. von Neumann analysis of the pure transports
# --------------------------------------------------------------------------------------------
def _transport_name(scheme: str, formulation: str | None) -> str:
    if formulation is not None:
        if formulation not in FORMULATIONS:
            raise ValueError(f"unknown formulation {formulation!r}; valid: "
                             f"{', '.join(FORMULATIONS)}")
        if scheme not in ("upwind", "characteristic", "lax-wendroff"):
            raise ValueError(f"unknown scheme {scheme!r}; valid: upwind, characteristic, "
                             "lax-wendroff")
        scheme = transport_scheme(formulation, scheme)
    return check_scheme(scheme)


def _courant(nu) -> float:
    if isinstance(nu, bool) or not isinstance(nu, numbers.Real) or not math.isfinite(nu) \
            or nu < 0:
        raise ValueError(f"courant must be a finite number >= 0, got {nu!r}")
    return float(nu)


def amplification_factor(scheme: str, xi, nu: float, formulation: str | None = None):
    """Closed-form von Neumann factor g(ξ, ν) of a pure transport (right-moving field).

    ``scheme`` is a transport of :mod:`wavecontrol.schemes` (``upwind``, ``lax-wendroff``,
    ``beam-warming``, ``characteristic``), or, with ``formulation`` given, a scheme name of
    that formulation (the consistent form's ``lax-wendroff`` transports with Beam–Warming).
    With z = 1 − e^{−iξ}:

    - upwind (eqs. 41–42): g = 1 − ν z
    - central Lax–Wendroff: g = 1 − iν sin ξ − ν² (1 − cos ξ)
    - Beam–Warming: g = 1 − ν z + ν(ν − 1)/2 z²
    - characteristic, ν = p + q (p = ⌊ν⌋): g = e^{−ipξ} ((1 − q) + q e^{−iξ}) — the shift by p
      nodes with linear interpolation that the code uses for every ν (clamping at the inflow
      does not enter a periodic analysis).

    A left-moving field has g(−ξ). ``xi`` is in radians per node; returns complex, shaped
    like ``xi``.
    """
    name = _transport_name(scheme, formulation)
    nu = _courant(nu)
    xi = np.asarray(xi, dtype=float)
    e = np.exp(-1j * xi)
    z = 1.0 - e
    if name == "upwind":
        return 1.0 - nu * z
    if name == "lax-wendroff":
        return 1.0 - 1j * nu * np.sin(xi) - nu * nu * (1.0 - np.cos(xi))
    if name == "beam-warming":
        return 1.0 - nu * z + 0.5 * nu * (nu - 1.0) * z * z
    p = int(math.floor(nu))
    q = nu - p
    return np.exp(-1j * p * xi) * ((1.0 - q) + q * e)


def periodic_transport(w, scheme: str, nu: float, direction: int = 1,
                       formulation: str | None = None):
    """One step of the scheme code on a periodic grid: ``w`` (B, M, n) or (M,) → same shape.

    The field is padded periodically with ⌊ν⌋ + 3 nodes upstream and 2 downstream and passed
    to :func:`~wavecontrol.schemes.transport_numpy`; the M window nodes then see neither the
    inflow node nor the boundary closures, so they take exactly the interior stencil.
    """
    name = _transport_name(scheme, formulation)
    nu = _courant(nu)
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    w = np.asarray(w, dtype=float)
    flat = w.ndim == 1
    v = w[None, :, None] if flat else w
    if v.ndim != 3:
        raise ValueError(f"w must have shape (M,) or (B, M, n), got {w.shape}")
    M = v.shape[1]
    up, down = int(math.floor(nu)) + 3, 2
    left, right = (up, down) if direction > 0 else (down, up)
    idx = (np.arange(-left, M + right)) % M
    out = transport_numpy(np.ascontiguousarray(v[:, idx]), name, nu, direction)[0]
    out = out[:, left:left + M]
    return out[0, :, 0] if flat else out


def measured_amplification(scheme: str, nu: float, M: int = 64, direction: int = 1,
                           formulation: str | None = None):
    """g(ξ_j) at ξ_j = 2πj/M (j = 0..M−1) from one periodic step of the code, by an FFT.

    The periodic step is a circulant matrix; its impulse response s = S δ_0 gives
    g(ξ) = Σ_m s_m e^{−imξ}, which is :func:`numpy.fft.fft` of s. Returns (ξ, g).
    """
    if int(M) != M or M < 4:
        raise ValueError(f"M must be an integer >= 4, got {M!r}")
    M = int(M)
    delta = np.zeros(M)
    delta[0] = 1.0
    s = periodic_transport(delta, scheme, nu, direction, formulation)
    return 2.0 * np.pi * np.arange(M) / M, np.fft.fft(s)


def von_neumann_max(scheme: str, nu: float, formulation: str | None = None,
                    num: int = 2001) -> float:
    """max_ξ |g(ξ, ν)| on ``num`` points of [0, π] (|g(−ξ)| = |g(ξ)|)."""
    return float(np.abs(amplification_factor(scheme, np.linspace(0.0, np.pi, num), nu,
                                              formulation)).max())


# --------------------------------------------------------------------------------------------
# 2. the τ-step as a map on the flattened state
# --------------------------------------------------------------------------------------------
class StepMap:
    """The driver's τ-step as a map z ↦ z' on the flattened state.

    z = (u, v, θ) flattened in that order, with u, v of shape (B, N + 1, n) — (x, λ) in the
    consistent form, (w+, w−) in the paper form, exactly what :func:`solvers.wave.solve`
    stores — and θ of shape (N, m), followed by the port's state (the heavy-ball velocity,
    running estimates; nothing for the resistive port), which the step advances as much as the
    fields. With zero-padded varying widths only the entries a node owns
    (``problem.node_mask``, ``problem.theta_mask``) are in z: the padding stays zero in every
    run, and as unknowns it would only add spurious eigenvalues. Calling the map runs
    :func:`~wavecontrol.formulations.consistent_step_numpy` or
    :func:`~wavecontrol.formulations.paper_step_numpy` with ``cfg``, ``metric`` and ``port``,
    as the driver's ``backend="numpy"`` loop does.

    Build it with :meth:`from_settings`, which takes the driver's keyword arguments.
    """

    def __init__(self, problem, cfg: StepConfig, metric: Metric, port: Port):
        if not isinstance(cfg, StepConfig):
            raise TypeError(f"cfg must be a StepConfig, got {type(cfg).__name__}")
        if not isinstance(metric, Metric):
            raise TypeError(f"metric must be a Metric, got {type(metric).__name__}")
        self.problem = problem
        self.cfg = cfg.validate(problem.N)
        self.metric = metric
        # a private copy: stepping must not advance the state of the caller's port object
        self.port = copy.deepcopy(get_port(port))
        self.port.bind(problem, courant=cfg.courant)
        self.port.reset()
        self._pstate0 = self.port.state()
        self._pkeys = sorted(self._pstate0)
        #: number of entries of the port's state (velocity, running estimates) in z
        self.port_size = sum(int(np.size(self._pstate0[k])) for k in self._pkeys)
        B, N, n, m = problem.batch, problem.N, problem.n, problem.m
        self.field_shape = (B, N + 1, n)
        self.theta_shape = (N, m)
        # zero-padded varying widths: the padding stays zero in every run and is left out of z
        node_mask = getattr(problem, "node_mask", None)
        node_mask = np.ones((N + 1, n), bool) if node_mask is None else \
            np.asarray(node_mask, bool)
        self._fmask = np.broadcast_to(node_mask, self.field_shape)
        theta_mask = getattr(problem, "theta_mask", None)
        self._tmask = np.ones(self.theta_shape, bool) if theta_mask is None else \
            np.broadcast_to(np.asarray(theta_mask, bool), self.theta_shape)
        #: number of (owned) entries of u, and of v
        self.field_size = int(self._fmask.sum())
        self.theta_size = int(self._tmask.sum())
        #: length of the flattened state z
        self.size = 2 * self.field_size + self.theta_size + self.port_size
        self._step = paper_step_numpy if cfg.formulation == "paper" else consistent_step_numpy

    @classmethod
    def from_settings(cls, problem, *, formulation: str = "consistent",
                      scheme: str = "upwind", courant: float = 1.0,
                      alpha: float | None = None, eta: float = 1.0, port=None, metric=1.0,
                      termination: str = "implicit", sources: str = "after") -> "StepMap":
        """The step that ``solve(problem, ..., allow_unstable=True)`` takes with these settings.

        ``eta`` must be a number here (resolve ``"auto"`` with
        :func:`solvers.wave.auto_eta`); it is ignored when ``port`` is given, as in the driver.
        """
        if port is None:
            if isinstance(eta, str) or isinstance(eta, bool) \
                    or not isinstance(eta, numbers.Real):
                raise ValueError(f"eta must be a number here, got {eta!r} (resolve 'auto' with "
                                 "solvers.wave.auto_eta)")
            port = ResistivePort(float(eta))
        else:
            port = get_port(port)
        cfg = StepConfig(formulation=formulation, scheme=scheme, courant=courant, alpha=alpha,
                         eta=port.eta if isinstance(port, ResistivePort) else 0.0,
                         termination=termination, sources=sources, allow_unstable=True)
        met = metric if isinstance(metric, Metric) else Metric(metric, problem.n, problem.N)
        return cls(problem, cfg, met, port)

    @property
    def affine(self) -> bool:
        """True when the τ-step is affine in z: an affine-quadratic problem and a linear port."""
        return self.problem.family == "affine" and self.port.name in LINEAR_PORTS

    # -- packing ----------------------------------------------------------------------------
    def pack(self, u, v, theta, port_state=None) -> np.ndarray:
        """z from the stored fields (u, v), θ (their owned entries, in C order) and the port's
        state (default: its initial state, e.g. zero velocity)."""
        u, v, theta = (np.asarray(a, dtype=float) for a in (u, v, theta))
        ps = self._pstate0 if port_state is None else port_state
        return np.concatenate([u[self._fmask], v[self._fmask], theta[self._tmask]]
                              + [np.ravel(np.asarray(ps[k], dtype=float)) for k in self._pkeys])

    def unpack(self, z):
        """(u, v, θ) of z as new arrays: (B, N + 1, n), (B, N + 1, n), (N, m), padding zero."""
        z = self._check(z)
        s = self.field_size
        u, v, th = np.zeros(self.field_shape), np.zeros(self.field_shape), \
            np.zeros(self.theta_shape)
        u[self._fmask], v[self._fmask] = z[:s], z[s:2 * s]
        th[self._tmask] = z[2 * s:2 * s + self.theta_size]
        return u, v, th

    def port_state(self, z) -> dict:
        """The port's state held in z (``{}`` for a stateless port)."""
        z = self._check(z)
        out, i = {}, 2 * self.field_size + self.theta_size
        for k in self._pkeys:
            ref = np.asarray(self._pstate0[k])
            out[k] = z[i:i + ref.size].reshape(ref.shape)
            i += ref.size
        return out

    def _check(self, z):
        z = np.asarray(z, dtype=float)
        if z.shape != (self.size,):
            raise ValueError(f"state must have shape ({self.size},), got {z.shape}")
        return z

    def state(self, x, lam, theta, port_state=None) -> np.ndarray:
        """z from (x, λ, θ) (through the waves of eq. 38 in the paper form) and the port's
        state (default: its initial state)."""
        if self.cfg.formulation == "paper":
            x, lam = self.metric.to_waves(np.asarray(x, float), np.asarray(lam, float))
        return self.pack(x, lam, theta, port_state)

    def fields(self, z):
        """(x, λ, θ) of a state z (eqs. 39–40 in the paper form)."""
        u, v, th = self.unpack(z)
        if self.cfg.formulation == "paper":
            u, v = self.metric.from_waves(u, v)
        return u, v, th

    def __call__(self, z) -> np.ndarray:
        """One τ-step: z → z'."""
        u, v, th = self.unpack(z)
        self.port.set_state(self.port_state(z))
        u1, v1, th1, _, _ = self._step(self.problem, self.metric, self.cfg, u, v, th,
                                       self.port)
        return self.pack(u1, v1, th1, self.port.state())

    def describe(self) -> dict:
        """The settings as JSON-serializable values."""
        return {"formulation": self.cfg.formulation, "scheme": self.cfg.scheme,
                "transport": transport_scheme(self.cfg.formulation, self.cfg.scheme),
                "courant": float(self.cfg.courant),
                "alpha": self.cfg.source_gain if self.cfg.formulation == "paper" else None,
                "port": self.port.config(), "metric": self.metric.describe(),
                "termination": self.cfg.termination, "sources": self.cfg.sources}


@dataclass
class AffineStep:
    """z' = G z + g, the τ-step of an affine-quadratic problem (dense, exact to round-off)."""

    G: np.ndarray
    g: np.ndarray

    def __call__(self, z):
        return self.G @ z + self.g

    def fixed_point(self):
        """z* = (I − G)⁻¹ g (raises numpy.linalg.LinAlgError when 1 is an eigenvalue)."""
        return np.linalg.solve(np.eye(self.g.size) - self.G, self.g)


def affine_operator(stepmap: StepMap) -> AffineStep:
    """G and g of an affine τ-step by probing: g = step(0), G e_i = step(e_i) − g.

    Exact up to round-off because the step is affine in z for affine-quadratic problems with a
    linear port (the implicit paper-form termination's Newton solve is exact in one step for
    quadratic ℓ).
    Costs ``stepmap.size + 1`` NumPy steps.
    """
    if not stepmap.affine:
        raise ValueError(f"affine_operator needs an affine-quadratic problem and a linear port "
                         f"({', '.join(LINEAR_PORTS)}); got problem {stepmap.problem.name!r} of "
                         f"family {stepmap.problem.family!r} and port {stepmap.port.name!r} "
                         "(use jacobian or linear_operator at a state)")
    D = stepmap.size
    g = stepmap(np.zeros(D))
    G = np.empty((D, D))
    e = np.zeros(D)
    for i in range(D):
        e[i] = 1.0
        G[:, i] = stepmap(e) - g
        e[i] = 0.0
    return AffineStep(G, g)


def _fd_step(h, z0):
    return h * max(1.0, float(np.abs(z0).max()))


def jacobian(stepmap: StepMap, z0, h: float = 6e-6) -> np.ndarray:
    """Dense Jacobian of the τ-step at z0 by central differences (for small problems).

    Column i is (step(z0 + t e_i) − step(z0 − t e_i)) / (2t) with t = h·max(1, ‖z0‖∞); the
    error is O(t²) from the third derivatives plus O(ε‖z'‖/t) round-off (the default
    h ≈ ε^{1/3} balances them). For an affine problem this is G to ~1e-10.
    """
    z0 = np.asarray(z0, dtype=float)
    if z0.shape != (stepmap.size,):
        raise ValueError(f"z0 must have shape ({stepmap.size},), got {z0.shape}")
    t = _fd_step(h, z0)
    J = np.empty((stepmap.size, stepmap.size))
    for i in range(stepmap.size):
        zp, zm = z0.copy(), z0.copy()
        zp[i] += t
        zm[i] -= t
        J[:, i] = (stepmap(zp) - stepmap(zm)) / (2.0 * t)
    return J


def linear_operator(stepmap: StepMap, z0=None, h: float = 6e-6):
    """The τ-step's linear part as a matrix-free :class:`scipy.sparse.linalg.LinearOperator`.

    Affine problems (``z0`` may be omitted): v ↦ (step(s v) − step(0)) / s, exact to round-off,
    with s scaling s v to the size of step(0). Other problems: the Jacobian at ``z0`` by a
    central difference along v, (step(z0 + t v̂) − step(z0 − t v̂)) ‖v‖ / (2t), v̂ = v/‖v‖.
    Each product costs two steps (one for affine problems).
    """
    from scipy.sparse.linalg import LinearOperator

    D = stepmap.size
    if stepmap.affine and z0 is None:
        g = stepmap(np.zeros(D))
        ref = max(1.0, float(np.linalg.norm(g)))

        def real_matvec(v, nv):
            s = ref / nv
            return (stepmap(s * v) - g) / s
    else:
        if z0 is None:
            raise ValueError("z0 (the state to linearize at) is required for a problem that is "
                             "not affine-quadratic")
        z0 = np.asarray(z0, dtype=float)
        if z0.shape != (D,):
            raise ValueError(f"z0 must have shape ({D},), got {z0.shape}")
        t = _fd_step(h, z0)

        def real_matvec(v, nv):
            d = v / nv
            return (stepmap(z0 + t * d) - stepmap(z0 - t * d)) * (nv / (2.0 * t))

    def matvec(v):
        # complex vectors (from eigs) by linearity; a zero vector maps to zero exactly
        v = np.asarray(v).reshape(-1)
        if np.iscomplexobj(v):
            return matvec(v.real) + 1j * matvec(v.imag)
        nv = float(np.linalg.norm(v))
        return np.zeros(D) if nv == 0.0 else real_matvec(v, nv)

    return LinearOperator((D, D), matvec=matvec, dtype=float)


def spectral_radius(op, k: int = 6, ncv: int | None = None, tol: float = 0.0,
                    maxiter: int = 500) -> float:
    """ρ of a dense matrix (all eigenvalues, LAPACK) or of a LinearOperator (Arnoldi).

    For an operator, :func:`scipy.sparse.linalg.eigs` finds the ``k`` eigenvalues of largest
    modulus with ``ncv`` Arnoldi vectors (default max(2k + 1, 40), at most D) and at most
    ``maxiter`` restarts; ρ is the largest modulus among the converged ones. Raises
    RuntimeError when none converged. Arnoldi needs a gap in |λ| below the k-th eigenvalue: a
    port-limited τ-step has ~2N/ν eigenvalues of nearly equal modulus (the delay loop of the
    gradient), which it resolves only once ``ncv`` exceeds that cluster; use the dense method
    where D allows.
    """
    if isinstance(op, np.ndarray):
        if op.ndim != 2 or op.shape[0] != op.shape[1]:
            raise ValueError(f"a matrix must be square, got shape {op.shape}")
        if op.size == 0:
            return 0.0
        return float(np.abs(np.linalg.eigvals(op)).max())
    from scipy.sparse.linalg import ArpackNoConvergence, eigs

    D = op.shape[0]
    if D < 4:
        return spectral_radius(op.matmat(np.eye(D)))
    k = max(1, min(int(k), D - 2))
    ncv = min(D, max(2 * k + 1, 40)) if ncv is None else int(ncv)
    v0 = np.random.default_rng(0).normal(size=D)
    try:
        vals = eigs(op, k=k, which="LM", ncv=ncv, tol=tol, maxiter=maxiter, v0=v0,
                    return_eigenvectors=False)
    except ArpackNoConvergence as exc:
        vals = exc.eigenvalues
        if vals is None or len(vals) == 0:
            raise RuntimeError(f"Arnoldi (scipy eigs, k = {k}, ncv = {ncv}) converged to no "
                           "eigenvalue: the largest moduli are clustered; raise ncv (or use "
                           "the dense method)") from None
    return float(np.abs(vals).max())


def transient_growth(G: np.ndarray, n_max: int, cap: float = GROWTH_CAP):
    """max_{0 ≤ n ≤ n_max} ‖Gⁿ‖₂ and the n where it is reached.

    ‖Gⁿ‖₂ is the exact 2-norm (largest singular value); it is skipped at the n where the
    Frobenius norm (an upper bound) is already below the maximum so far. The powers stop once
    ‖Gⁿ‖₂ exceeds ``cap`` (the value then is a lower bound of the maximum). Returns
    (growth, n).
    """
    G = np.asarray(G, dtype=float)
    if int(n_max) != n_max or n_max < 0:
        raise ValueError(f"n_max must be an integer >= 0, got {n_max!r}")
    best, arg = 1.0 if G.size else 0.0, 0
    P = np.eye(G.shape[0])
    for n in range(1, int(n_max) + 1):
        P = G @ P
        fro = float(np.linalg.norm(P))
        if not math.isfinite(fro):
            break
        if fro > best:
            s = float(np.linalg.norm(P, 2))
            if s > best:
                best, arg = s, n
            if s > cap:
                break
    return best, arg


def predicted_steps(rho: float, reduction: float = REDUCTION) -> float:
    """τ-steps for the error to shrink by ``reduction``: log(reduction) / log ρ (∞ if ρ ≥ 1)."""
    if not 0.0 < reduction < 1.0:
        raise ValueError(f"reduction must lie in (0, 1), got {reduction!r}")
    if rho >= 1.0:
        return math.inf
    if rho <= 0.0:
        return 1.0
    return math.log(reduction) / math.log(rho)


def classify(rho: float, marginal_tol: float = MARGINAL_TOL) -> str:
    """``"stable"`` (ρ < 1 − tol), ``"unstable"`` (ρ > 1 + tol) or ``"marginal"``."""
    if not math.isfinite(rho):
        return "unstable"
    if abs(rho - 1.0) <= marginal_tol:
        return "marginal"
    return "stable" if rho < 1.0 else "unstable"


@dataclass
class StabilityReport:
    """What :func:`analyze` finds about one τ-step.

    spectral_radius : ρ of G (or of the Jacobian at ``z0``)
    spectral_radius_fields : ρ of the field block alone (θ frozen, i.e. η = 0); None for the
        matrix-free method
    verdict : ``stable``, ``unstable`` or ``marginal`` (:func:`classify`)
    predicted_steps : log(10⁻⁶)/log ρ, τ-steps per 10⁶-fold error reduction (∞ when ρ ≥ 1)
    transient_growth : max_{n ≤ n_max} ‖Gⁿ‖₂ (dense); with the matrix-free method a lower
        bound, max over n of ‖Gⁿ z‖/‖z‖ for a few random z
    transient_step : the n of the maximum
    method : ``dense`` or ``arnoldi``
    """

    spectral_radius: float
    spectral_radius_fields: float | None
    verdict: str
    predicted_steps: float
    transient_growth: float
    transient_step: int
    n_max: int
    size: int
    method: str
    transient_is_lower_bound: bool = False

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["predicted_steps"] = _json_number(self.predicted_steps)
        return d


def default_horizon(N: int, courant: float) -> int:
    """n_max for the transient growth: four transits of the strip, 4N/ν, within [100, 2000]."""
    return int(min(2000, max(100, math.ceil(4 * N / courant))))


def analyze(stepmap: StepMap, z0=None, *, method: str = "auto", n_max: int | None = None,
            marginal_tol: float = MARGINAL_TOL, dense_limit: int = 3000,
            k: int = 6, ncv: int | None = None) -> StabilityReport:
    """Spectral radius, predicted steps and transient growth of one τ-step.

    ``method="dense"`` builds G (:func:`affine_operator`, or :func:`jacobian` at ``z0`` for a
    problem that is not affine-quadratic; ``z0`` is then required); ``"arnoldi"`` uses
    :func:`linear_operator` with :func:`scipy.sparse.linalg.eigs` (``k``, ``ncv``: see
    :func:`spectral_radius`); ``"auto"`` is dense up to ``dense_limit`` unknowns. ``n_max``
    defaults to :func:`default_horizon`. The dense transient growth costs one D × D product
    and, while ‖Gⁿ‖ grows, one SVD per n: mind it for D in the thousands.
    """
    if method not in ("auto", "dense", "arnoldi"):
        raise ValueError(f"unknown method {method!r}; valid: auto, dense, arnoldi")
    if method == "auto":
        method = "dense" if stepmap.size <= dense_limit else "arnoldi"
    if not stepmap.affine and z0 is None:
        raise ValueError("z0 (the state to linearize at) is required for a problem that is "
                         "not affine-quadratic")
    if n_max is None:
        n_max = default_horizon(stepmap.problem.N, stepmap.cfg.courant)
    s2 = 2 * stepmap.field_size
    if stepmap.affine:
        z0 = None           # the linear part of an affine step is the same at every state
    if method == "dense":
        G = affine_operator(stepmap).G if stepmap.affine else jacobian(stepmap, z0)
        rho = spectral_radius(G)
        rho_f = spectral_radius(G[:s2, :s2])
        growth, at = transient_growth(G, n_max)
        lower = False
    else:
        op = linear_operator(stepmap, z0)
        rho = spectral_radius(op, k=k, ncv=ncv)
        rho_f = None
        growth, at = _growth_lower_bound(op, n_max)
        lower = True
    return StabilityReport(spectral_radius=rho, spectral_radius_fields=rho_f,
                           verdict=classify(rho, marginal_tol),
                           predicted_steps=predicted_steps(rho), transient_growth=growth,
                           transient_step=at, n_max=int(n_max), size=stepmap.size,
                           method=method, transient_is_lower_bound=lower)


def _growth_lower_bound(op, n_max, samples=4, cap=GROWTH_CAP):
    """max over n ≤ n_max of ‖Gⁿ z‖/‖z‖ for ``samples`` seeded random z (≤ max ‖Gⁿ‖₂)."""
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(op.shape[0], samples))
    norms0 = np.linalg.norm(Z, axis=0)
    best, arg = 1.0, 0
    for n in range(1, n_max + 1):
        Z = np.column_stack([op.matvec(Z[:, j]) for j in range(samples)])
        r = float((np.linalg.norm(Z, axis=0) / norms0).max())
        if not math.isfinite(r):
            break
        if r > best:
            best, arg = r, n
        if r > cap:
            break
    return best, arg


# --------------------------------------------------------------------------------------------
# 3. sweep specifications
# --------------------------------------------------------------------------------------------
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


def _parse_item(text: str, name: str, keyword: str | None):
    """A number, or (multiple, keyword) for ``keyword``, ``2*keyword``, ``0.5keyword``."""
    t = text.strip()
    if keyword is not None:
        m = re.fullmatch(rf"({_NUMBER})?\s*\*?\s*{keyword}", t)
        if m:
            factor = float(m.group(1)) if m.group(1) else 1.0
            if not math.isfinite(factor) or factor < 0:
                raise ValueError(f"{name}: multiple of {keyword} must be >= 0, got {t!r}")
            return (factor, keyword)
    try:
        value = float(t)
    except ValueError:
        allowed = f" or '{keyword}' (optionally times a number, e.g. 2*{keyword})" \
            if keyword else ""
        raise ValueError(f"{name}: cannot parse {t!r}; expected a number{allowed}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}: values must be finite, got {t!r}")
    return value


def parse_values(spec, name: str = "courant", keyword: str | None = None,
                 positive: bool = True) -> list:
    """Parse a sweep specification into a list of values.

    ``"A:B:K"``: K evenly spaced values from A to B (K ≥ 1 an integer; K = 1 gives A);
    ``"a,b,c"``: the values listed; a single value; or a sequence of values. With ``keyword``
    (``"auto"`` for η, ``"nu"`` for α) items may be that word or a multiple of it, returned as
    (factor, keyword) tuples; in ``A:B:K`` both ends must then be multiples. Values must be
    finite and > 0 (``positive``) or ≥ 0. Raises ValueError naming ``name``.
    """
    if isinstance(spec, str):
        text = spec.strip()
        if not text:
            raise ValueError(f"{name}: empty specification")
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError(f"{name}: a range must read A:B:K (K values from A to B), "
                                 f"got {spec!r}")
            a, b = (_parse_item(p, name, keyword) for p in parts[:2])
            try:
                K = int(parts[2].strip())
            except ValueError:
                raise ValueError(f"{name}: K in A:B:K must be an integer, got "
                                 f"{parts[2].strip()!r}") from None
            if K < 1:
                raise ValueError(f"{name}: K in A:B:K must be >= 1, got {K}")
            if isinstance(a, tuple) != isinstance(b, tuple):
                raise ValueError(f"{name}: both ends of {spec!r} must be numbers or both "
                                 f"multiples of {keyword}")
            if isinstance(a, tuple):
                items = [(_tidy(f), keyword) for f in np.linspace(a[0], b[0], K)]
            else:
                items = [_tidy(v) for v in np.linspace(a, b, K)]
        else:
            items = [_parse_item(p, name, keyword) for p in text.split(",")]
    else:
        try:
            seq = list(spec) if not isinstance(spec, numbers.Real) else [spec]
        except TypeError:
            raise ValueError(f"{name}: expected a specification string or a sequence of "
                             f"numbers, got {spec!r}") from None
        items = []
        for v in seq:
            if isinstance(v, str):
                items.append(_parse_item(v, name, keyword))
            elif isinstance(v, bool) or not isinstance(v, numbers.Real) \
                    or not math.isfinite(v):
                raise ValueError(f"{name}: values must be finite numbers, got {v!r}")
            else:
                items.append(float(v))
        if not items:
            raise ValueError(f"{name}: no values given")
    for v in items:
        if isinstance(v, tuple):
            continue
        if v < 0:
            raise ValueError(f"{name}: values must be >= 0, got {v:g}")
        if positive and v == 0:
            raise ValueError(f"{name}: values must be > 0, got {v:g}")
    return items


def _tidy(v) -> float:
    """A linspace value rounded to 12 significant digits (1.0499999999999998 → 1.05)."""
    return float(f"{float(v):.12g}")


def parse_courant(spec) -> list[float]:
    """Courant numbers from ``"A:B:K"``, ``"a,b,c"`` or a sequence; every ν must be > 0."""
    return parse_values(spec, "courant", None, positive=True)


def _spec_text(item, keyword):
    if item is None:
        return keyword
    if isinstance(item, tuple):
        f = item[0]
        return item[1] if f == 1.0 else f"{f:g}*{item[1]}"
    return f"{item:g}"


# --------------------------------------------------------------------------------------------
# 4. prediction against experiment
# --------------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    """All settings of a sweep, one dict per setting (see :func:`stability_sweep`)."""

    records: list
    settings: dict = field(default_factory=dict)

    @property
    def disagreements(self) -> list:
        """Records where the experiment contradicts the prediction (``agree`` is False)."""
        return [r for r in self.records if r["agree"] is False]

    @property
    def marginal(self) -> list:
        """Records with |ρ − 1| ≤ marginal_tol (no verdict)."""
        return [r for r in self.records if r["verdict"] == "marginal"]

    def ranges(self) -> list:
        """Predicted and measured stable ν intervals per (formulation, scheme, η, α) group."""
        return stable_ranges(self.records)

    def to_dict(self) -> dict:
        """JSON-serializable: settings, records, disagreements, marginal, ranges, summary."""
        ran = [r for r in self.records if r["outcome"] is not None]
        return {"settings": self.settings, "records": self.records,
                "disagreements": self.disagreements, "marginal": self.marginal,
                "ranges": self.ranges(),
                "summary": {"settings": len(self.records), "run": len(ran),
                            "agree": sum(r["agree"] is True for r in self.records),
                            "disagree": len(self.disagreements),
                            "marginal": len(self.marginal)}}


def stable_ranges(records) -> list:
    """Per (formulation, scheme, eta_spec, alpha_spec): the ν grid intervals [lo, hi] where ρ < 1
    (``predicted``) and where the run stayed bounded (``measured``: converged or bounded)."""
    groups = {}
    for r in records:
        key = (r["formulation"], r["scheme"], r["eta_spec"], r["alpha_spec"])
        groups.setdefault(key, []).append(r)
    out = []
    for (form, scheme, eta_spec, alpha_spec), rows in groups.items():
        rows = sorted(rows, key=lambda r: r["courant"])
        nus = [r["courant"] for r in rows]
        pred = [r["verdict"] == "stable" for r in rows]
        meas = [None if r["outcome"] is None else r["outcome"] in ("converged", "bounded")
                for r in rows]
        out.append({"formulation": form, "scheme": scheme, "eta_spec": eta_spec,
                    "alpha_spec": alpha_spec, "predicted": _intervals(nus, pred),
                    "measured": None if any(m is None for m in meas)
                    else _intervals(nus, meas)})
    return out


def _intervals(nus, flags):
    out, start = [], None
    for i, (nu, f) in enumerate(zip(nus, flags)):
        if f and start is None:
            start = nu
        if start is not None and (not f or i == len(nus) - 1):
            out.append([start, nu if f else nus[i - 1]])
            start = None
    return out


def _json_number(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _initial_residual(stepmap: StepMap, z0) -> float:
    x, lam, th = stepmap.fields(z0)
    r = stepmap.problem.residuals(x, lam, th)
    return max(float(np.abs(a).max()) for a in r)


def step_budget(report: StabilityReport, N: int, courant: float, *, tol: float,
                residual0: float, divergence_bound: float, max_steps: int,
                min_steps: int = 200) -> int:
    """τ-steps to give a run, scaled to the predicted rate.

    Stable (ρ < 1): 1.5 log(tol / r0) / log ρ, the steps for the residual r0 of the initial
    fields to fall below ``tol``. Unstable: log(√bound · 10⁸) / log ρ, enough for a mode
    seeded 10⁸ below the state to push V past the divergence bound. Both plus 4N/ν (four
    transits of the strip). Marginal (no rate to scale by): 20 × 4N/ν. At least
    ``min_steps``, at most ``max_steps``.
    """
    rho = report.spectral_radius
    transit = 4.0 * N / courant
    if report.verdict == "marginal" or not math.isfinite(rho):
        n = 19 * transit
    elif rho < 1.0:
        ratio = min(tol / max(residual0, tol), 0.5)
        n = 1.5 * math.log(ratio) / math.log(rho) if rho > 0 else 1.0
    else:
        n = math.log(math.sqrt(max(divergence_bound, 2.0)) * 1e8) / math.log(rho)
    n = max(min_steps, math.ceil(n + transit))
    return int(min(n, max_steps))


def _resolve(item, resolver, nu):
    """The number a sweep item stands for at Courant number ν (None stays None)."""
    if item is None:
        return None
    if isinstance(item, tuple):
        return item[0] * resolver(nu)
    return float(item)


def _alpha_items(alphas) -> list:
    if alphas is None:
        return [None]
    if isinstance(alphas, str):
        return parse_values(alphas, "alpha", "nu", positive=False)
    out = []
    for a in alphas:
        out.extend([None] if a is None else parse_values([a], "alpha", "nu", positive=False))
    return out or [None]


def stability_sweep(problem, *, solve=None, formulation: str = "consistent",
                    scheme: str = "upwind", courants="0.05:1.5:30", etas=("auto",),
                    alphas=(None,), auto_eta=None, metric=1.0, termination: str = "implicit",
                    sources: str = "after", tol: float = 1e-10, max_steps: int = 1_000_000,
                    divergence_bound: float = 1e6, backend: str = "auto",
                    n_max: int | None = None, marginal_tol: float = MARGINAL_TOL,
                    run: bool = True, progress=None) -> SweepResult:
    """Predict (ρ of the τ-step) and measure (a driver run) every (ν, η, α) of a sweep.

    Parameters
    ----------
    problem : LayeredProblem
        Affine-quadratic (the prediction is the exact operator G; other problems are linearized
        at their initial fields).
    solve : callable
        The driver, :func:`solvers.wave.solve` (required when ``run``).
    courants, etas, alphas : specifications for :func:`parse_values` or sequences
        η items may be ``"auto"`` or a multiple (``"2*auto"``), resolved per ν with
        ``auto_eta(problem, ν)`` (pass :func:`solvers.wave.auto_eta`); α items (paper form
        only) may be ``"nu"`` or a multiple; None means α = ν.
    tol, max_steps, divergence_bound, backend : passed to ``solve`` (``max_steps`` caps the
        budget of :func:`step_budget`; the lowered bound 1e6 detects divergence early).
    n_max : horizon of the transient growth (default :func:`default_horizon`).
    run : False to predict only (``outcome`` and ``agree`` are then None).
    progress : optional callable(record) after each setting.

    Every record holds the settings (``courant``, ``eta``, ``eta_spec``, ``alpha``,
    ``alpha_spec``), the prediction (``spectral_radius``, ``spectral_radius_fields``,
    ``verdict``, ``predicted_steps`` per 10⁶-fold reduction, ``transient_growth``,
    ``transient_step``, ``von_neumann_max`` of the pure transport, and
    ``predicted_convergence_steps`` = log(tol / r0) / log ρ from the initial residual r0 =
    ``initial_residual``), the run (``status``, ``steps``,
    ``diverged_at``, ``budget``, ``outcome``: converged / bounded (max_steps) / diverged) and
    ``agree``: True, False, or None for marginal settings and unrun ones; ``note`` explains
    every disagreement.
    """
    if formulation not in FORMULATIONS:
        raise ValueError(f"unknown formulation {formulation!r}; valid: {', '.join(FORMULATIONS)}")
    StepConfig(formulation=formulation, scheme=scheme, termination=termination,
               sources=sources, allow_unstable=True).validate(problem.N)
    nus = parse_courant(courants)
    eta_items = parse_values(etas, "eta", "auto", positive=False)
    alpha_items = _alpha_items(alphas)
    if formulation == "consistent" and alpha_items != [None]:
        raise ValueError("alpha: the source gain applies only to the paper formulation")
    if any(isinstance(e, tuple) for e in eta_items) and auto_eta is None:
        raise ValueError("eta: 'auto' needs auto_eta (pass solvers.wave.auto_eta)")
    if run and solve is None:
        raise ValueError("solve: the driver (solvers.wave.solve) is required to run the sweep")
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    for nu in nus:
        if scheme == "characteristic" and nu > problem.N:
            raise ValueError(f"courant {nu:g} exceeds N = {problem.N}, the characteristic "
                             "scheme's largest departure distance")
    met = metric if isinstance(metric, Metric) else Metric(metric, problem.n, problem.N)
    auto_cache = {}

    def auto(nu):
        if nu not in auto_cache:
            auto_cache[nu] = float(auto_eta(problem, nu))
        return auto_cache[nu]

    records = []
    for nu in nus:
        for e_item in eta_items:
            eta = _resolve(e_item, auto, nu)
            for a_item in alpha_items:
                alpha = _resolve(a_item, lambda v: v, nu)
                sm = StepMap.from_settings(problem, formulation=formulation, scheme=scheme,
                                           courant=nu, alpha=alpha, eta=eta, metric=met,
                                           termination=termination, sources=sources)
                z0 = sm.state(*_zero_fields(problem))
                rep = analyze(sm, None if sm.affine else z0, n_max=n_max,
                              marginal_tol=marginal_tol)
                r0 = _initial_residual(sm, z0)
                rho = rep.spectral_radius
                conv = (math.log(min(tol / max(r0, tol), 1.0)) / math.log(rho)
                        if 0.0 < rho < 1.0 else None)
                rec = {"formulation": formulation, "scheme": scheme,
                       "transport": transport_scheme(formulation, scheme),
                       "courant": float(nu), "eta": float(eta),
                       "eta_spec": _spec_text(e_item, "auto"),
                       "eta_auto_factor": e_item[0] if isinstance(e_item, tuple) else None,
                       "alpha": sm.cfg.source_gain if formulation == "paper" else None,
                       "alpha_spec": (_spec_text(a_item, "nu") if formulation == "paper"
                                      else None),
                       "termination": termination, "sources": sources,
                       "spectral_radius": rep.spectral_radius,
                       "spectral_radius_fields": rep.spectral_radius_fields,
                       "verdict": rep.verdict,
                       "predicted_steps": _json_number(rep.predicted_steps),
                       "transient_growth": rep.transient_growth,
                       "transient_step": rep.transient_step, "n_max": rep.n_max,
                       "initial_residual": r0, "predicted_convergence_steps": conv,
                       "method": rep.method,
                       "von_neumann_max": von_neumann_max(scheme, nu, formulation),
                       "status": None, "steps": None, "diverged_at": None, "budget": None,
                       "budget_capped": None, "outcome": None, "agree": None, "note": ""}
                if rep.verdict == "marginal":
                    rec["note"] = (f"|rho - 1| = {abs(rep.spectral_radius - 1):.1e} <= "
                                   f"{marginal_tol:g}: marginal, no verdict")
                if run:
                    _run_setting(rec, rep, sm, problem, solve, tol=tol, max_steps=max_steps,
                                 divergence_bound=divergence_bound, backend=backend, met=met,
                                 eta=eta, alpha=alpha)
                records.append(rec)
                if progress is not None:
                    progress(rec)
    settings = {"problem": problem.config(), "formulation": formulation, "scheme": scheme,
                "termination": termination, "sources": sources, "metric": met.describe(),
                "tol": tol, "max_steps": int(max_steps), "divergence_bound": divergence_bound,
                "backend": backend, "marginal_tol": marginal_tol, "reduction": REDUCTION,
                "run": bool(run)}
    return SweepResult(records, settings)


def _zero_fields(problem):
    """The driver's ``init="zeros"`` fields: x_0 = x_in, everything else 0, θ = θ0."""
    x = np.zeros((problem.batch, problem.N + 1, problem.n))
    x[:, 0] = problem.x_in
    return x, np.zeros_like(x), problem.theta0.copy()


def _run_setting(rec, rep, sm, problem, solve, *, tol, max_steps, divergence_bound,
                 backend, met, eta, alpha):
    budget = step_budget(rep, problem.N, sm.cfg.courant, tol=tol,
                         residual0=rec["initial_residual"],
                         divergence_bound=divergence_bound, max_steps=int(max_steps))
    res = solve(problem, formulation=sm.cfg.formulation, scheme=sm.cfg.scheme,
                courant=sm.cfg.courant, alpha=alpha, eta=eta, metric=met,
                termination=sm.cfg.termination, sources=sm.cfg.sources, max_steps=budget,
                tol=tol, record_every=max(1, budget), backend=backend, allow_unstable=True,
                divergence_bound=divergence_bound, init="zeros")
    status = res.status.value
    outcome = {"converged": "converged", "max_steps": "bounded", "diverged": "diverged"}.get(
        status, "interrupted")
    rec.update(status=status, steps=int(res.steps), diverged_at=res.diverged_at,
               budget=budget, budget_capped=budget >= int(max_steps), outcome=outcome)
    verdict = rep.verdict
    if outcome == "interrupted" or verdict == "marginal":
        rec["agree"] = None
        return
    bounded = outcome in ("converged", "bounded")
    rec["agree"] = bounded if verdict == "stable" else not bounded
    if rec["agree"]:
        return
    if verdict == "stable":
        rec["note"] = (f"diverged at tau-step {res.diverged_at} although rho = "
                       f"{rep.spectral_radius:.10g} < 1 (transient growth max |G^n| = "
                       f"{rep.transient_growth:.3g} at n = {rep.transient_step}; divergence "
                       f"bound {divergence_bound:g} x max(V0, 1))")
    else:
        need = math.log(math.sqrt(divergence_bound)) / math.log(rep.spectral_radius)
        capped = "; budget capped by max_steps" if rec["budget_capped"] else ""
        rec["note"] = (f"no divergence within {budget} tau-steps although rho = "
                       f"{rep.spectral_radius:.10g} > 1 (growth by sqrt(bound) takes "
                       f"{need:.3g} steps{capped})")


def stability_edge(problem, lo: float, hi: float, *, xtol: float = 1e-6, eta="auto",
                   auto_eta=None, marginal_tol: float = MARGINAL_TOL, **settings) -> float:
    """The Courant number in [lo, hi] where ρ of the τ-step crosses 1, by bisection.

    ``lo`` must be predicted stable and ``hi`` unstable (else ValueError). ``eta`` is a number
    or ``"auto"``/``"2*auto"`` (then resolved at every ν with ``auto_eta(problem, ν)``);
    ``settings`` are the other keywords of :meth:`StepMap.from_settings`. Returns the upper
    end of the final bracket (the first ν known to be unstable, to within ``xtol``).
    """
    item = parse_values([eta], "eta", "auto", positive=False)[0]
    if isinstance(item, tuple) and auto_eta is None:
        raise ValueError("eta: 'auto' needs auto_eta (pass solvers.wave.auto_eta)")
    lo, hi = (_courant(v) for v in (lo, hi))
    if not 0 < lo < hi:
        raise ValueError(f"courant: need 0 < lo < hi, got lo = {lo:g}, hi = {hi:g}")

    def verdict(nu):
        e = _resolve(item, lambda v: float(auto_eta(problem, v)), nu)
        sm = StepMap.from_settings(problem, courant=nu, eta=e, **settings)
        return classify(spectral_radius(affine_operator(sm).G), marginal_tol)

    if verdict(lo) != "stable" or verdict(hi) != "unstable":
        raise ValueError(f"courant: the bracket [{lo:g}, {hi:g}] must go from a stable to an "
                         "unstable setting")
    while hi - lo > xtol:
        mid = 0.5 * (lo + hi)
        if verdict(mid) == "stable":
            lo = mid
        else:
            hi = mid
    return hi


def format_table(result: SweepResult) -> str:
    """Plain-text table of a sweep: one line per setting, then ranges and disagreements."""
    lines = []
    head = (f"{'nu':>7} {'eta':>10} {'alpha':>7} {'rho':>14} {'verdict':>9} {'max|G^n|':>9} "
            f"{'steps/1e6':>10} | {'status':>9} {'steps':>8} {'budget':>8} | agree")
    lines.append(head)
    for r in result.records:
        alpha = "-" if r["alpha"] is None else f"{r['alpha']:.3g}"
        pred = "inf" if r["predicted_steps"] is None else f"{r['predicted_steps']:.4g}"
        growth = f"{r['transient_growth']:.3g}"
        if r["outcome"] is None:
            run = f"{'-':>9} {'-':>8} {'-':>8}"
        else:
            run = f"{r['status']:>9} {r['steps']:>8} {r['budget']:>8}"
        agree = {True: "yes", False: "NO", None: "-"}[r["agree"]]
        lines.append(f"{r['courant']:>7.4g} {r['eta']:>10.4g} {alpha:>7} "
                     f"{r['spectral_radius']:>14.10f} {r['verdict']:>9} {growth:>9} {pred:>10} "
                     f"| {run} | {agree}")
    for g in result.ranges():
        label = f"{g['formulation']} {g['scheme']}, eta {g['eta_spec']}"
        if g["alpha_spec"] is not None:
            label += f", alpha {g['alpha_spec']}"
        fmt = lambda iv: ", ".join(f"[{a:g}, {b:g}]" for a, b in iv) or "none"  # noqa: E731
        meas = "not run" if g["measured"] is None else fmt(g["measured"])
        lines.append(f"stable nu ({label}): predicted {fmt(g['predicted'])}; measured {meas}")
    d = result.disagreements
    n_agree = sum(r["agree"] is True for r in result.records)
    lines.append(f"{len(result.records)} settings: {n_agree} agree, {len(d)} disagree, "
                 f"{len(result.marginal)} marginal")
    for r in d:
        alpha = "" if r["alpha"] is None else f", alpha {r['alpha']:.3g}"
        lines.append(f"  DISAGREE nu {r['courant']:g}, eta {r['eta']:.4g}{alpha}: {r['note']}")
    for r in result.marginal:
        lines.append(f"  marginal nu {r['courant']:g}, eta {r['eta']:.4g}: {r['note']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# 4. the matched port's τ-step at the LQR fixed point
# --------------------------------------------------------------------------------------------
def matched_operator(problem, *, scheme: str = "upwind", courant: float = 1.0,
                     max_steps: int = 20_000) -> np.ndarray:
    """G of the matched τ-step (:mod:`wavecontrol.matched`) at an LQR problem's fixed point.

    The fixed point comes from ``solvers.wave.solve(problem, port="matched", scheme=...,
    courant=..., tol=1e-12)`` (imported here: this package does not import :mod:`solvers` at
    module level); its port state P (N + 1, n, n) is then iterated with the step until it no
    longer changes (its recursion does not depend on the fields for LQR; ValueError if it does
    not settle). With P frozen there, the step is affine in z = (x, λ, θ) flattened in that
    order (x, λ of shape (1, N + 1, n), θ (N, m); d = 2(N + 1)n + Nm), so column j is exactly
    (to round-off) G e_j = step(z* + e_j) − step(z*), each step taken from the same P. The
    boundary resets make the x_0 rows zero (x_0 = x_in) and the λ_N rows P_N times the x_N
    rows (λ_N = ∇ℓ(x_N) at the new x_N, i.e. s_N reset), which adds the eigenvalue 0 with
    multiplicity 2n. Returns G (d, d). For the theory (docs/theory.md §11) the rest of the
    spectrum is {1 − ν} (upwind), {(ν − 1)(ν − 2)/2} (lax-wendroff), and ρ = max(0, 1 − ν)
    (characteristic); G is nilpotent where that value is 0 — see :func:`nilpotency_index`:
    round-off spreads the eigenvalues of a defective Jordan block of size K by ~eps^(1/K), so
    ``eigvals`` does not resolve this spectrum (trace(G) / (d − 2n) does, as the mean of the
    cluster).
    """
    from solvers.wave import solve

    from .matched import MatchedPort, matched_step_numpy

    if getattr(problem, "family", None) != "affine":
        raise ValueError(f"matched_operator needs an affine-quadratic (LQR) problem, got "
                         f"{getattr(problem, 'name', problem)!r} of family "
                         f"{getattr(problem, 'family', None)!r}")
    port = MatchedPort()
    res = solve(problem, port=port, scheme=scheme, courant=courant, tol=1e-12,
                max_steps=max_steps, backend="numpy")
    if not res.success:
        raise ValueError(f"matched_operator: the fixed point was not reached ({res.message})")
    cfg = StepConfig(formulation="consistent", scheme=scheme, courant=courant,
                     allow_unstable=True).validate(problem.N)
    met = Metric(1.0, problem.n, problem.N)
    x, lam, theta = (np.array(a, dtype=float) for a in (res.x, res.lam, res.theta))
    P = np.array(port.state()["P"], dtype=float)

    def step(x, lam, theta, P):
        port.set_state({"P": P})
        x1, l1, th1, _, _ = matched_step_numpy(problem, met, cfg, x, lam, theta, port)
        return x1, l1, th1, np.array(port.state()["P"])

    # settle P at its fixed point (P's recursion is independent of the fields for LQR)
    scale = max(1.0, float(np.abs(P).max()))
    for _ in range(max_steps):
        P1 = step(x, lam, theta, P)[3]
        change = float(np.abs(P1 - P).max())
        P = P1
        if change <= 1e-14 * scale:
            break
    else:
        raise ValueError(f"matched_operator: P did not settle (last change {change:.3g})")

    shapes = (x.shape, lam.shape, theta.shape)
    sizes = [int(np.prod(s)) for s in shapes]
    z0 = np.concatenate([x.ravel(), lam.ravel(), theta.ravel()])

    def apply(z):
        parts = np.split(z, np.cumsum(sizes)[:-1])
        out = step(*(p.reshape(s) for p, s in zip(parts, shapes)), P)[:3]
        return np.concatenate([np.ravel(o) for o in out])

    d = z0.size
    f0 = apply(z0)
    G = np.empty((d, d))
    for j in range(d):
        z = z0.copy()
        z[j] += 1.0
        G[:, j] = apply(z) - f0
    return G


def nilpotency_index(G, tol: float = 1e-12):
    """The smallest n ≤ d with ‖Gⁿ‖₂ ≤ tol · max(1, max_{j<n} ‖G^j‖₂), or None (G is d × d).

    A nilpotent G has ρ = 0 exactly, but ``numpy.linalg.eigvals`` of a round-off perturbed
    nilpotent Jordan block of size K returns moduli ~eps^(1/K) (1e-16^(1/10) ≈ 0.025, and the
    matched upwind step at ν = 1 on ``problems.lqr()`` gives 0.36); the powers show the
    nilpotency directly. ‖G⁰‖₂ = 1 is among the j < n.

    The test is numerical: a G with ρ < 1 also passes once ρⁿ·poly(n) falls below ``tol``
    (the matched upwind step at ν = 0.8, ρ = 0.2, on ``problems.lqr()`` reports 81, while the
    nilpotent ν = 1 step reports 2N = 40 with ‖G⁴⁰‖₂ ≈ 3e-16). Read the index against a known
    bound on the nilpotency index (the light cone 2N + 2 for the matched LQR step). To check
    that the spectrum is {0, c} rather than {0} (e.g. c = 1 − ν), apply this to G (G − cI),
    which is nilpotent exactly when every eigenvalue of G is 0 or c.
    """
    G = np.asarray(G, dtype=float)
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ValueError(f"G must be square, got shape {G.shape}")
    d = G.shape[0]
    if d == 0:
        return 0
    best = 1.0
    Pn = np.eye(d)
    for n in range(1, d + 1):
        Pn = G @ Pn
        s = float(np.linalg.norm(Pn, 2))
        if not math.isfinite(s):
            return None
        if s <= tol * best:
            return n
        best = max(best, s)
    return None
