"""Parameter ports: how the parameters θ absorb the residual r_θ (eq. 60, §4.6, §4.8).

A port terminates the worldsheet at the parameters. Per τ-step it receives the effort
e = −r_θ (eq. 67: r_θ is the gradient ∇_θJ once the waves have converged for the current θ) and
answers with the flow f = θ' − θ (eq. 68: the parameter change per τ-step, Δτ = 1 in the port's
units). Its impedance Z (eqs. 69–71) is what relates the two; ``docs/theory.md`` section 10
("Parameter ports and reflection") derives every update law below.

Ports (registry :data:`PORTS`, look-up :func:`get_port`):

``"gd"`` — :class:`ResistivePort`
    θ' = θ − η r_θ, Z = I/η. The only port the compiled kernels implement.
``"newton"`` — :class:`NewtonPort` (curvature-matched)
    θ' = θ − κ Z⁻¹ r_θ with Z = H + μI, H the curvature of J (exact Hessian for
    affine-quadratic problems, Gauss–Newton otherwise; whole, per-layer blocks or diagonal).
``"momentum"`` — :class:`InductivePort` (heavy ball)
    Z(s) = R + sL: −r_θ = R v' + L (v' − v), θ' = θ + v' (velocity state v).
``"adaptive"`` — :class:`AdaptivePort` (diagonal)
    a per-parameter impedance estimated from the run itself (see the class).

Reflection convention. Every port reports the reflected wave of eq. 70,
b = (Z_ref^{-1/2} e − Z_ref^{1/2} f)/√2, for the step it just took. Measured with the port's own
Z, b is identically zero for every port that solves b = 0 (Theorem 4.4), which says nothing; the
paper's point (§4.8.1) is the mismatch between the port and the *landscape*. So b is measured
against the reference impedance Z_ref = the curvature of J w.r.t. θ (:func:`reference_curvature`):
the exact Hessian ∇²_θJ for affine-quadratic problems (J is quadratic, Z_ref is constant), a
dense Gauss–Newton matrix for other problems with d = N m ≤ :data:`MAX_DENSE` parameters, and a
diagonal Gauss–Newton estimate (Hutchinson, :data:`HUTCHINSON_PROBES` probes) beyond that; its
eigenvalues are floored at :data:`CURVATURE_FLOOR` times the largest, so that Z_ref ≻ 0. For
non-quadratic J it is evaluated once, at θ0. Then ‖b‖² = 0 exactly when f = −H⁻¹ r_θ, the Newton
step, and for the resistive port ‖b‖² = ½ r_θᵀ(H⁻¹ − 2ηI + η²H) r_θ.

Power. :meth:`Port.power` is the power the port absorbs in one step, e·f = −r_θ·(θ' − θ)
(η‖r_θ‖² ≥ 0 for the resistive port; an inductive port may give energy back, < 0).

State and binding. The driver calls :meth:`Port.bind` (the problem, for curvature and the
``"auto"`` parameters) before the first step. Ports with state (velocity, running estimates)
keep it in :meth:`Port.state` / :meth:`Port.set_state` (a dict of arrays, for saving and
resuming a run) and clear it with :meth:`Port.reset`; binding to a different problem resets,
binding again to the same one keeps the state, so a port object carries its state from one
solve to the next (call :meth:`Port.reset` to start afresh).
"""

from __future__ import annotations

import inspect
import math

import numpy as np

SQRT2 = math.sqrt(2.0)
#: eigenvalues of a curvature below this fraction of its largest are raised to it
CURVATURE_FLOOR = 1e-8
#: largest parameter count d = N m for which curvatures are formed as dense matrices
MAX_DENSE = 2048
#: probes of the Hutchinson estimate of a diagonal curvature (d > MAX_DENSE)
HUTCHINSON_PROBES = 32
#: the Newton port's "auto" gain κ = min(CAP, SCALE / cond H) / ((1 + 2N/ν) λ_max(Z⁻¹H)),
#: an empirical rule (docs/theory.md §10.4)
NEWTON_GAIN_CAP = 0.25
NEWTON_COND_SCALE = 50.0
CURVATURE_KINDS = ("auto", "exact", "gauss-newton")
STRUCTURES = ("full", "layer", "diagonal")


# --------------------------------------------------------------------------------------------
# curvature of J(θ)
# --------------------------------------------------------------------------------------------
def _is_affine(problem) -> bool:
    return getattr(problem, "family", None) == "affine" and hasattr(problem, "B")


def _fd_step(theta) -> float:
    """Central-difference step for curvature products of non-quadratic J (error O(h²))."""
    return 1e-5 * max(1.0, float(np.abs(theta).max()))


def gauss_newton_product(problem, theta, v, x=None):
    """G v for the Gauss–Newton matrix G of J at θ; ``v`` and the result are (N, m).

    G drops the second derivatives of the layer maps and keeps those of the costs:
    G v = (∂x/∂θ)ᵀ (∇²ℓ δx_N + Σ_k ∇²R_k (δx_k, δθ_k)) with δx = (∂x/∂θ) v, back-propagated
    through the transposed layer Jacobians. For affine maps G = ∇²J exactly. The tangent δx and
    the cost curvatures come in closed form for affine-quadratic problems and from central
    differences (step :func:`_fd_step`) otherwise.
    """
    theta = np.asarray(theta, dtype=float)
    v = np.asarray(v, dtype=float)
    N = problem.N
    if x is None:
        x = problem.forward(theta)
    if _is_affine(problem):
        dx = np.zeros_like(x)
        for k in range(N):
            dx[:, k + 1] = dx[:, k] @ problem.A[k].T + problem.B[k] @ v[k]
        gx = np.einsum("kij,bkj->bki", problem.Q, dx[:, :-1])
        gt = np.einsum("kij,kj->ki", problem.R, v)
    else:
        h = _fd_step(theta)
        dx = (problem.forward(theta + h * v) - problem.forward(theta - h * v)) / (2 * h)
        xp, xm = x[:, :-1] + h * dx[:, :-1], x[:, :-1] - h * dx[:, :-1]
        tp, tm = theta + h * v, theta - h * v
        gx = (problem.running_grad_x(xp, tp) - problem.running_grad_x(xm, tm)) / (2 * h)
        gt = (problem.running_grad_theta(xp, tp) - problem.running_grad_theta(xm, tm)) / (2 * h)
    xi = np.zeros_like(x)
    xi[:, N] = problem.terminal_hvp(x[:, N], dx[:, N])
    for k in range(N - 1, -1, -1):
        xi[:, k] = problem._one_layer_vjp(k, x[:, k], theta, xi[:, k + 1]) + gx[:, k]
    return problem.vjp_theta(x[:, :-1], theta, xi[:, 1:]) + gt


def hessian_product(problem, theta, v):
    """∇²J(θ) v, ``v`` (N, m): exact for affine-quadratic problems (the Gauss–Newton product,
    J is quadratic), else central differences of :meth:`~LayeredProblem.gradient`."""
    if _is_affine(problem):
        return gauss_newton_product(problem, theta, v)
    h = _fd_step(theta)
    return (problem.gradient(theta + h * v) - problem.gradient(theta - h * v)) / (2 * h)


def _resolve_kind(problem, kind: str) -> str:
    if kind not in CURVATURE_KINDS:
        raise ValueError(f"unknown curvature {kind!r}; valid: {', '.join(CURVATURE_KINDS)}")
    if kind == "auto":
        return "exact" if _is_affine(problem) else "gauss-newton"
    return kind


def curvature_matrix(problem, theta=None, kind: str = "auto"):
    """Dense (d, d) curvature of J at θ (default θ0), d = N m, θ flattened row-major.

    ``kind``: ``"exact"`` (∇²J, :func:`hessian_product`), ``"gauss-newton"``
    (:func:`gauss_newton_product`) or ``"auto"`` (exact for affine-quadratic problems, else
    Gauss–Newton). Costs d products; symmetrized.
    """
    kind = _resolve_kind(problem, kind)
    theta = problem.theta0 if theta is None else np.asarray(theta, dtype=float)
    d = theta.size
    x = problem.forward(theta)
    H = np.empty((d, d))
    e = np.zeros(d)
    for j in range(d):
        e[j] = 1.0
        v = e.reshape(theta.shape)
        col = (hessian_product(problem, theta, v) if kind == "exact"
               else gauss_newton_product(problem, theta, v, x))
        H[:, j] = col.reshape(-1)
        e[j] = 0.0
    return 0.5 * (H + H.T)


def curvature_diagonal(problem, theta=None, kind: str = "auto",
                       probes: int = HUTCHINSON_PROBES, seed: int = 0):
    """Hutchinson estimate mean(z ⊙ Hz) of the curvature's diagonal over Rademacher probes z;
    (d,)."""
    kind = _resolve_kind(problem, kind)
    theta = problem.theta0 if theta is None else np.asarray(theta, dtype=float)
    rng = np.random.default_rng(seed)
    x = problem.forward(theta)
    acc = np.zeros(theta.shape)
    for _ in range(probes):
        z = rng.choice([-1.0, 1.0], size=theta.shape)
        hz = (hessian_product(problem, theta, z) if kind == "exact"
              else gauss_newton_product(problem, theta, z, x))
        acc += z * hz
    return (acc / probes).reshape(-1)


class Curvature:
    """A symmetric positive-definite impedance on θ flattened to d = N m entries.

    ``matrix`` is (d, d) (dense, stored by its eigendecomposition) or (d,) (diagonal).
    Eigenvalues below ``floor`` × the largest are raised to that value (to 1 when no eigenvalue
    is positive), so that every power Z^p exists.
    """

    def __init__(self, matrix, shape, *, kind: str, floor: float = CURVATURE_FLOOR):
        a = np.asarray(matrix, dtype=float)
        self.shape = tuple(shape)
        self.kind = kind
        self.dense = a.ndim == 2
        if self.dense:
            w, self.U = np.linalg.eigh(0.5 * (a + a.T))
        else:
            w, self.U = a.copy(), None
        top = float(w.max())
        self.floor = floor * top if top > 0 else 1.0
        self.raw_min = float(w.min())
        self.eigenvalues = np.maximum(w, self.floor)

    @property
    def largest(self) -> float:
        return float(self.eigenvalues.max())

    @property
    def smallest(self) -> float:
        return float(self.eigenvalues.min())

    def apply(self, vec, power: float = 1.0):
        """Z^p vec for ``vec`` of :attr:`shape`."""
        flat = np.asarray(vec, dtype=float).reshape(-1)
        s = self.eigenvalues ** power
        out = s * flat if not self.dense else self.U @ (s * (self.U.T @ flat))
        return out.reshape(self.shape)

    def matrix(self):
        """Z as a dense (d, d) matrix (after the floor)."""
        if not self.dense:
            return np.diag(self.eigenvalues)
        return (self.U * self.eigenvalues) @ self.U.T


def reference_curvature(problem, *, floor: float = CURVATURE_FLOOR,
                        max_dense: int = MAX_DENSE) -> Curvature:
    """Z_ref of the reflection (module docstring): the curvature of J at θ0, dense when
    d ≤ ``max_dense``, else a Hutchinson diagonal; floored positive definite."""
    theta = problem.theta0
    if theta.size <= max_dense:
        H = curvature_matrix(problem, theta)
    else:
        H = curvature_diagonal(problem, theta)
    return Curvature(H, theta.shape, kind=_resolve_kind(problem, "auto"), floor=floor)


def pipeline_delay(problem, courant: float) -> float:
    """D = 2N/ν: the τ-steps a change of θ_0 needs to reach t = T and come back (§7.1 of
    docs/theory.md)."""
    return 2.0 * problem.N / float(courant)


# --------------------------------------------------------------------------------------------
# ports
# --------------------------------------------------------------------------------------------
def _positive(name: str, value, *, allow_zero: bool = False, auto: bool = False,
              upper: float | None = None):
    """``value`` as a float, or ``"auto"``; ValueError naming ``name`` and the valid range."""
    if auto and isinstance(value, str) and value == "auto":
        return "auto"
    lo = ">= 0" if allow_zero else "> 0"
    rng = f"{lo} and < {upper:g}" if upper is not None else lo
    valid = f"a finite number {rng}" + (" or 'auto'" if auto else "")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be {valid}, got {value!r}")
    value = float(value)
    if (not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero)
            or (upper is not None and value >= upper)):
        raise ValueError(f"{name} must be {valid}, got {value!r}")
    return value


class Port:
    """Base class of parameter ports.

    Subclasses implement :meth:`_step` (pure: θ, r_θ and the state in, θ' and the new state
    out) and may override :meth:`_bind` (what depends on the problem), :meth:`_initial_state`
    and :meth:`config`.
    """

    name = "port"
    #: whether the compiled kernels implement this port (else the NumPy step is used)
    compiled = False
    #: whether the port keeps θ inside a problem's box bounds (:attr:`LayeredProblem.bounds`);
    #: binding a port without it to a bounded problem is refused
    supports_bounds = False

    def __init__(self):
        self.problem = None
        self.courant = 1.0
        self._reference = None
        self._curvature = None
        self._state = {}
        self._previous = None

    # -- binding and state -----------------------------------------------------------------
    def bind(self, problem, *, courant: float = 1.0) -> "Port":
        """Attach ``problem`` (curvature, ``"auto"`` parameters; ``courant`` ν sets the
        pipeline delay 2N/ν those assume). A new problem resets the state; the same one keeps
        it. Returns self."""
        if getattr(problem, "bounds", None) is not None and not self.supports_bounds:
            raise ValueError(f"port {self.name!r} does not handle the control bounds of problem "
                             f"{getattr(problem, 'name', '?')!r}; use port 'matched' (box-"
                             "constrained local solve) or 'gd' (projected steps)")
        if problem is not self.problem:
            self.problem = problem
            self._reference = None
            self._curvature = None
            self.reset()
        self.courant = float(courant)
        self._bind(problem)
        return self

    def _bind(self, problem) -> None:
        pass

    def reset(self) -> None:
        """Clear the state (velocity, running estimates) to its initial value."""
        self._state = self._initial_state()
        self._previous = None

    def _initial_state(self) -> dict:
        return {}

    def state(self) -> dict:
        """The port's state as a dict of arrays (copies); ``{}`` for a stateless port."""
        return {k: np.array(v, copy=True) for k, v in self._state.items()}

    def set_state(self, state: dict) -> None:
        """Restore a :meth:`state` (after :meth:`bind`); the continuation is bit-identical."""
        if state:
            self._shape()
        want = self._initial_state()
        if set(state) != set(want):
            raise ValueError(f"port {self.name!r} state must have the keys {sorted(want)}, "
                             f"got {sorted(state)}")
        new = {}
        for k, ref in want.items():
            a = np.array(state[k], dtype=np.asarray(ref).dtype, copy=True)
            if a.shape != np.shape(ref):
                raise ValueError(f"port {self.name!r} state {k!r} must have shape "
                                 f"{np.shape(ref)}, got {a.shape}")
            new[k] = a
        self._state = new
        self._previous = None

    def may_converge(self, step: int) -> bool:
        """Whether a run may stop as converged at τ-step ``step`` (False while a port's own
        continuation, such as the matched port's terminal ramp, still changes the problem)."""
        return True

    def divergence_hint(self) -> str:
        """What to try when a run with this port diverges, for the driver's message ("" where
        nothing measured says more than the message does)."""
        return ""

    def undo(self) -> None:
        """Take back the state change of the last :meth:`update` (the driver calls this when it
        discards a computed step: convergence or divergence found on the step's start)."""
        if self._previous is not None:
            self._state = self._previous
            self._previous = None

    def _shape(self):
        if self.problem is None:
            raise ValueError(f"port {self.name!r} is not bound to a problem; call "
                             "port.bind(problem) first (solve does)")
        return self.problem.theta0.shape

    # -- the step --------------------------------------------------------------------------
    def update(self, theta, r_theta):
        """Return θ' for one τ-step; ``theta`` and ``r_theta`` are (N, m). Advances the state."""
        theta1, new = self._step(np.asarray(theta, dtype=float),
                                 np.asarray(r_theta, dtype=float), self._state)
        self._previous, self._state = self._state, new
        return theta1

    def step(self, theta, r_theta, state=None):
        """The pure step: (θ', new state) from ``state`` (default: the current one), leaving
        the port unchanged (for looking ahead, e.g. a snapshot's reflection)."""
        return self._step(np.asarray(theta, dtype=float), np.asarray(r_theta, dtype=float),
                          self._state if state is None else state)

    def _step(self, theta, r_theta, state):
        raise NotImplementedError

    def power(self, r_theta, dtheta) -> float:
        """Power absorbed in one step, e·f = −r_θ·(θ' − θ) (eqs. 67–68)."""
        return -float(np.sum(r_theta * dtheta))

    # -- reflection ------------------------------------------------------------------------
    @property
    def reference(self) -> Curvature:
        """Z_ref of the reflection (:func:`reference_curvature`; computed once per problem)."""
        if self._reference is None:
            self._shape()
            self._reference = self._curvature or reference_curvature(self.problem)
        return self._reference

    def reflected_wave(self, r_theta, dtheta):
        """b = (Z_ref^{-1/2} e − Z_ref^{1/2} f)/√2 (eq. 70) with e = −r_θ, f = θ' − θ: (N, m)."""
        Z = self.reference
        return (Z.apply(-np.asarray(r_theta, float), -0.5)
                - Z.apply(np.asarray(dtheta, float), 0.5)) / SQRT2

    def reflection(self, r_theta, dtheta) -> float:
        """‖b‖² of :meth:`reflected_wave`."""
        b = self.reflected_wave(r_theta, dtheta)
        return float(np.sum(b * b))

    def layer_reflection(self, x, lam, theta):
        """‖b_k‖² per layer (N,) of the step the port takes from the consistent-form fields
        x, λ, θ: r_θ of these fields, θ' from the pure step with the current state (the
        snapshots' per-layer reflection)."""
        r_t = self.problem.residual_theta(x, lam, theta)
        theta1, _ = self._step(np.asarray(theta, float), r_t, self.state())
        b = self.reflected_wave(r_t, theta1 - theta)
        return np.sum(b * b, axis=1)

    def config(self) -> dict:
        """JSON-serializable description (``"auto"`` parameters as resolved by :meth:`bind`)."""
        return {"name": self.name}


class ResistivePort(Port):
    """Gradient descent: θ' = θ − η r_θ (eq. 60 with M = I/η, impedance Z = I/η).

    On a problem with box bounds (lo, hi) the step is projected, θ' = clip(θ − η r_θ, lo, hi)
    (r_θ the gradient, not the projected residual), and :meth:`power` is −r_θ·(θ' − θ).

    Parameters
    ----------
    eta : float ≥ 0
        The gain (step size per τ-step, units of θ per unit of r_θ). η = 0 freezes θ.
    """

    name = "gd"
    compiled = True
    supports_bounds = True

    def __init__(self, eta: float = 1.0):
        super().__init__()
        self.eta = _positive("eta", eta, allow_zero=True)
        self._bounds = None

    def _bind(self, problem):
        self._bounds = getattr(problem, "bounds", None)

    def _step(self, theta, r_theta, state):
        if self._bounds is None:
            return theta - self.eta * r_theta, state
        return np.clip(theta - self.eta * r_theta, *self._bounds), state

    def power(self, r_theta, dtheta=None) -> float:
        """η‖r_θ‖² (= −r_θ·(θ' − θ); computed as the compiled kernel does); with bounds
        −r_θ·(θ' − θ) of the projected step."""
        if self._bounds is not None and dtheta is not None:
            return -float(np.sum(r_theta * dtheta))
        return self.eta * float(np.sum(r_theta * r_theta))

    def config(self) -> dict:
        return {"name": self.name, "eta": self.eta}

    def __repr__(self) -> str:
        return f"ResistivePort(eta={self.eta:g})"


class NewtonPort(Port):
    """Curvature-matched port: θ' = θ − κ Z⁻¹ r_θ with Z = H + μI (eq. 71 with Z = H, §4.8.1).

    With κ = 1, μ = 0 and ``structure="full"`` the port is transparent: its reflection against
    Z_ref = H vanishes whenever r_θ = ∇J. The gradient reaches the port late (about 2N/ν
    τ-steps for layer 0), and a full Newton step on a delayed gradient overshoots (it diverges
    within tens of τ-steps on LQR), so κ ≪ 1 is what makes the pipelined update stable; it
    then reflects the fraction ((1 − κ)/(1 + κ))² of the incident energy in every mode.

    Parameters
    ----------
    gain : float > 0 or ``"auto"``
        κ. ``"auto"``: κ = min(1/4, 50/cond H) / ((1 + 2N/ν) λ_max(Z⁻¹H)), an empirical rule
        (docs/theory.md §10.4): the resistive port's delay rule 1/(1 + 2N/ν) alone is not
        stable for the Newton port, whose largest stable κ falls with cond H. Stable on the
        120 LQR settings it was checked on; not a guarantee.
    damping : float ≥ 0
        μ (Levenberg–Marquardt damping, units of H).
    curvature : ``"auto"``, ``"exact"`` or ``"gauss-newton"``
        H: the exact Hessian (affine-quadratic problems: exact by construction; others: central
        differences of the gradient) or the Gauss–Newton matrix; ``"auto"`` picks exact for
        affine-quadratic problems and Gauss–Newton otherwise. Evaluated once, at θ0.
    structure : ``"full"``, ``"layer"`` or ``"diagonal"``
        Which part of H is used: all of it, the per-layer blocks H_k = ∇²_{θ_k}J (the paper's
        per-layer impedance; local to each layer), or its diagonal (Jacobi scaling).
    """

    name = "newton"

    def __init__(self, gain="auto", damping: float = 0.0, curvature: str = "auto",
                 structure: str = "full"):
        super().__init__()
        self.gain_setting = _positive("gain", gain, auto=True)
        self.damping = _positive("damping", damping, allow_zero=True)
        if curvature not in CURVATURE_KINDS:
            raise ValueError(f"unknown curvature {curvature!r}; valid: "
                             f"{', '.join(CURVATURE_KINDS)}")
        if structure not in STRUCTURES:
            raise ValueError(f"unknown structure {structure!r}; valid: {', '.join(STRUCTURES)}")
        self.curvature, self.structure = curvature, structure
        self.gain = None if gain == "auto" else float(gain)
        self.impedance = None
        self.condition = self.match = None

    def _bind(self, problem):
        if self.impedance is None:
            self._build(problem)
        if self.gain_setting == "auto":
            self.gain = (min(NEWTON_GAIN_CAP, NEWTON_COND_SCALE / self.condition)
                         / ((1.0 + pipeline_delay(problem, self.courant)) * self.match))
        else:
            self.gain = self.gain_setting

    def _build(self, problem):
        theta = problem.theta0
        kind = _resolve_kind(problem, self.curvature)
        if theta.size > MAX_DENSE and self.structure != "diagonal":
            raise ValueError(f"port 'newton' with structure {self.structure!r} forms a dense "
                             f"curvature of d = {theta.size} > {MAX_DENSE} parameters; use "
                             "structure 'diagonal' or the 'adaptive' port")
        H = (curvature_matrix(problem, theta, kind) if theta.size <= MAX_DENSE
             else curvature_diagonal(problem, theta, kind))
        whole = Curvature(H, theta.shape, kind=kind)
        if H.ndim == 2 and kind == _resolve_kind(problem, "auto"):
            # the reflection's reference is this same matrix: compute it once
            self._curvature = whole
        m = theta.shape[1]
        Z = H
        if self.structure == "layer":
            layer = np.arange(theta.size) // m
            Z = np.where(layer[:, None] == layer[None, :], H, 0.0)
        elif self.structure == "diagonal" and H.ndim == 2:
            Z = np.diag(H).copy()
        Z = Z + self.damping * (np.eye(theta.size) if Z.ndim == 2 else 1.0)
        self.impedance = Curvature(Z, theta.shape, kind=kind)
        #: cond(H) (after the floor) and λ_max(Z⁻¹H), the inputs of the "auto" gain
        self.condition = whole.largest / whole.smallest
        if H.ndim == 2:
            Zi = self.impedance
            root = ((Zi.U * Zi.eigenvalues ** -0.5) @ Zi.U.T if Zi.dense
                    else np.diag(Zi.eigenvalues ** -0.5))
            self.match = float(np.linalg.eigvalsh(root @ whole.matrix() @ root).max())
        else:
            self.match = float((whole.eigenvalues / self.impedance.eigenvalues).max())

    def bind(self, problem, *, courant: float = 1.0) -> "Port":
        if problem is not self.problem:
            self.impedance = None
        return super().bind(problem, courant=courant)

    def _step(self, theta, r_theta, state):
        if self.impedance is None:
            self._shape()
        return theta - self.gain * self.impedance.apply(r_theta, -1.0), state

    def config(self) -> dict:
        kind = (self.curvature if self.problem is None
                else _resolve_kind(self.problem, self.curvature))
        return {"name": self.name, "gain": self.gain if self.gain is not None else "auto",
                "damping": self.damping, "curvature": kind, "structure": self.structure}

    def __repr__(self) -> str:
        g = "auto" if self.gain is None else f"{self.gain:g}"
        return (f"NewtonPort(gain={g}, damping={self.damping:g}, curvature={self.curvature!r}, "
                f"structure={self.structure!r})")


class InductivePort(Port):
    """Heavy ball: the impedance Z(s) = R + sL of eq. 72, −∇J = R θ̇ + L θ̈.

    Discretized per τ-step (Δτ = 1 in the port's units) with the velocity v = θ̇ as state, the
    inertia explicit and the friction implicit::

        L (v' − v) = −r_θ − R v',   i.e.   v' = (L v − r_θ) / (L + R),   θ' = θ + v'.

    This is heavy-ball momentum with step 1/(L + R) and momentum factor β = L/(L + R) ∈ (0, 1)
    for every R, L > 0 (the explicit friction −R v would need R < 2L to stay dissipative), and
    L → 0 recovers the resistive port with η = 1/R. The state is v (zero after :meth:`reset`).

    Parameters
    ----------
    resistance : float > 0 or ``"auto"``
        R (units of r_θ per unit θ-velocity). ``"auto"``: R = L_H (1 + 2N/ν), the inverse of the
        resistive port's automatic gain, L_H the largest curvature of J (so that a constant
        force drives the same terminal velocity as ``gd`` with ``eta="auto"``).
    inductance : float > 0 or ``"auto"``
        L (the mass). ``"auto"``: L = R, i.e. β = 1/2.
    """

    name = "momentum"

    def __init__(self, resistance="auto", inductance="auto"):
        super().__init__()
        self.resistance_setting = _positive("resistance", resistance, auto=True)
        self.inductance_setting = _positive("inductance", inductance, auto=True)
        self.resistance = None if resistance == "auto" else float(resistance)
        self.inductance = None if inductance == "auto" else float(inductance)

    def _bind(self, problem):
        R = self.resistance_setting
        if R == "auto":
            R = self.reference.largest * (1.0 + pipeline_delay(problem, self.courant))
        L = R if self.inductance_setting == "auto" else self.inductance_setting
        self.resistance, self.inductance = float(R), float(L)

    def _initial_state(self):
        if self.problem is None:
            return {}
        return {"velocity": np.zeros(self.problem.theta0.shape)}

    def _step(self, theta, r_theta, state):
        if self.resistance is None or not state:
            self._shape()
            raise ValueError("port 'momentum' has 'auto' parameters; bind it first")
        L, R = self.inductance, self.resistance
        v1 = (L * state["velocity"] - r_theta) / (L + R)
        return theta + v1, {"velocity": v1}

    def config(self) -> dict:
        return {"name": self.name,
                "resistance": self.resistance if self.resistance is not None else "auto",
                "inductance": self.inductance if self.inductance is not None else "auto"}

    def __repr__(self) -> str:
        return f"InductivePort(resistance={self.resistance}, inductance={self.inductance})"


class AdaptivePort(Port):
    """Diagonal adaptive port: a per-parameter impedance Z = diag(c)/η estimated along the run.

    The paper's Discussion remarks that "structured or diagonal approximations (e.g.,
    per-parameter scalings) may already reduce reflections". This port is such a scaling, built
    from nothing but the r_θ the port itself sees: the RMSprop/Adam second moment

        s' = ρ s + (1 − ρ) r_θ²,   ŝ = s' / (1 − ρⁿ)   (n: the steps taken, bias correction),

    whose root q = √ŝ is the per-parameter curvature proxy (for J ≈ ½ δᵀHδ with comparable
    errors δ_i, |r_θ,i| grows with H_ii). Normalized to a dimensionless factor with RMS one over
    the parameters and clipped, c_i = clip(q_i / rms_j(q_j), 1/``max_ratio``, ``max_ratio``),
    it redistributes a resistive gain η over the parameters: θ' = θ − η r_θ / c. When every
    parameter has the same RMS residual this is the resistive port with gain η; the
    normalization keeps the port's overall gain, and so its stability under the pipeline
    delay, that of the resistive port (a raw RMSprop step of size η per parameter stalls at
    amplitude ~η instead of converging, and a running secant estimate of diag H is negative
    while the waves arrive: Δr·Δθ < 0; both were tried, docs/theory.md §10).

    State: the second moment s (N, m) and the step count n (zero after :meth:`reset`).

    Parameters
    ----------
    gain : float > 0 or ``"auto"``
        η. ``"auto"``: the resistive port's automatic gain 1/(L_H (1 + 2N/ν)), L_H the largest
        curvature of J.
    decay : float in (0, 1)
        ρ (the averaging window is about 1/(1 − ρ) τ-steps; the default 0.999 spans many
        pipeline delays 2N/ν).
    max_ratio : float ≥ 1
        Bound on the per-parameter factor c and its inverse.
    """

    name = "adaptive"

    def __init__(self, gain="auto", decay: float = 0.999, max_ratio: float = 10.0):
        super().__init__()
        self.gain_setting = _positive("gain", gain, auto=True)
        self.decay = _positive("decay", decay, upper=1.0)
        max_ratio = _positive("max_ratio", max_ratio)
        if max_ratio < 1:
            raise ValueError(f"max_ratio must be a finite number >= 1, got {max_ratio!r}")
        self.max_ratio = max_ratio
        self.gain = None if gain == "auto" else float(gain)

    def _bind(self, problem):
        if self.gain_setting == "auto":
            self.gain = 1.0 / (self.reference.largest
                               * (1.0 + pipeline_delay(problem, self.courant)))
        else:
            self.gain = self.gain_setting

    def _initial_state(self):
        if self.problem is None:
            return {}
        return {"second_moment": np.zeros(self.problem.theta0.shape),
                "count": np.array(0, dtype=np.int64)}

    def factors(self, state=None):
        """The per-parameter factor c (N, m) of the current (or the given) state."""
        state = self._state if state is None else state
        s, n = state["second_moment"], int(state["count"])
        if n == 0:
            return np.ones_like(s)
        q = np.sqrt(s / (1.0 - self.decay ** n))
        scale = math.sqrt(float(np.mean(q * q)))
        if not scale > 0:
            return np.ones_like(s)
        return np.clip(q / scale, 1.0 / self.max_ratio, self.max_ratio)

    def _step(self, theta, r_theta, state):
        if self.gain is None or not state:
            self._shape()
            raise ValueError("port 'adaptive' has 'auto' parameters; bind it first")
        rho = self.decay
        new = {"second_moment": rho * state["second_moment"] + (1 - rho) * r_theta * r_theta,
               "count": np.array(int(state["count"]) + 1, dtype=np.int64)}
        return theta - self.gain * r_theta / self.factors(new), new

    def config(self) -> dict:
        return {"name": self.name, "gain": self.gain if self.gain is not None else "auto",
                "decay": self.decay, "max_ratio": self.max_ratio}

    def __repr__(self) -> str:
        g = "auto" if self.gain is None else f"{self.gain:g}"
        return f"AdaptivePort(gain={g}, decay={self.decay:g}, max_ratio={self.max_ratio:g})"


from .matched import MatchedPort  # noqa: E402  (it builds on Port, defined above)

#: name → port class
PORTS = {"gd": ResistivePort, "newton": NewtonPort, "momentum": InductivePort,
         "adaptive": AdaptivePort, "matched": MatchedPort}


def get_port(port, **params) -> Port:
    """A port from a name (with its parameters) or a :class:`Port` instance."""
    if isinstance(port, Port):
        if params:
            raise ValueError("port parameters may only be given with a port name")
        return port
    if port not in PORTS:
        raise ValueError(f"unknown port {port!r}; valid: {', '.join(PORTS)}")
    cls = PORTS[port]
    valid = [q for q in inspect.signature(cls.__init__).parameters if q != "self"]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} of port {port!r}; valid: "
                         f"{', '.join(valid)}")
    return cls(**params)
