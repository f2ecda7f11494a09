"""The layered control problem of the paper's §4.4 (eqs. 47–52).

Nodes k = 0..N with widths n_k, layer maps x_{k+1} = f_k(x_k; θ_k), objective
J(θ) = ℓ(x_N) + Σ_{k<N} R_k(x_k, θ_k). A problem supplies the maps, their Jacobian–vector
products, the costs and their gradients, and a Hessian–vector product of ℓ. Every method works
on all layers at once (arrays with the layer index on axis 1, batch on axis 0), which is what the
NumPy twin of the τ-step needs; a problem of a family with compiled kernels also gives
:meth:`kernel_data`.

Shapes (constant width n, parameter size m per layer, batch B):
``x`` is ``(B, N + 1, n)``, ``lam`` likewise, ``theta`` is ``(N, m)``, ``x_in`` is ``(B, n)``.

Varying widths n_k are zero-padded to ``n = max_k n_k``: node k owns the first n_k components
of its row and its other components are zero in every field and every method's output (the
layer maps ignore them as inputs). Layers whose parameter sizes m_k differ pad θ_k to
``m = max_k m_k`` the same way (the padded entries get a zero residual and so never move).
docs/theory.md, "Width changes", shows that both formulations leave the padding at zero.
"""

from __future__ import annotations

import numpy as np

from .grid import Layout

#: central-difference step of the default cost Hessians (:meth:`LayeredProblem.running_hessians`)
HESSIAN_FD_STEP = 1e-5


class LayeredProblem:
    """Base class: subclasses implement the vectorized layer methods below.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"lqr"``.
    layout : Layout
        Node widths and batch size.
    dt, T : float
        Depth step and horizon (``T = N dt``).
    x_in : array (B, n)
        Input state (the flow prescribed at t = 0): node 0's n_0 components, zero-padded.
    theta0 : array (N, m)
        Initial parameters.
    family : str or None
        Name of the compiled-kernel family that can run this problem, if any.
    bounds : (lo, hi) or None
        Box constraints lo ≤ θ_k ≤ hi; :meth:`residuals` then reports the projected r_θ
        (:meth:`project_residual`), while :meth:`residual_theta` and :meth:`gradient` stay
        the plain gradient.
    matched_settings : dict
        Parameters of :class:`~wavecontrol.matched.MatchedPort` that the port named
        ``"matched"`` (and :func:`solvers.wave.solve`'s default port) takes on this problem,
        e.g. ``{"hessian": "newton", "ramp_steps": 400}`` for a stiff terminal penalty; empty:
        the port's defaults. A port object passed to ``solve`` is used as it is.
    """

    name = "problem"
    family: str | None = None
    #: box bounds (lo, hi) on every θ_k, arrays broadcastable to (N, m), or None (unbounded)
    bounds = None
    #: the matched port's parameters for this problem (class docstring)
    matched_settings: dict = {}

    def __init__(self, layout: Layout, dt: float, x_in, theta0):
        self.layout = layout
        self.dt = float(dt)
        self.T = self.dt * layout.N
        x_in = np.asarray(x_in, dtype=float)
        if x_in.ndim == 1:
            x_in = np.broadcast_to(x_in, (layout.batch, x_in.size)).copy()
        n0, width = int(layout.widths[0]), int(layout.widths.max())
        if x_in.shape not in ((layout.batch, n0), (layout.batch, width)):
            raise ValueError(f"x0 must have shape ({n0},) or ({layout.batch}, {n0}), "
                             f"got {x_in.shape}")
        if not np.all(np.isfinite(x_in)):
            raise ValueError("x0 must be finite")
        if x_in.shape[1] != width:      # zero-pad node 0 to the field width
            x_in = np.concatenate([x_in, np.zeros((layout.batch, width - n0))], axis=1)
        elif np.any(x_in[:, n0:] != 0):
            raise ValueError(f"x0 has nonzero entries beyond node 0's width {n0}")
        self.x_in = x_in
        theta0 = np.asarray(theta0, dtype=float)
        if theta0.ndim != 2 or theta0.shape[0] != layout.N:
            raise ValueError(f"theta0 must have shape (N={layout.N}, m), got {theta0.shape}")
        self.theta0 = theta0.copy()

    # -- sizes ------------------------------------------------------------------------------
    @property
    def N(self) -> int:
        return self.layout.N

    @property
    def n(self) -> int:
        """Width of the field arrays: the node width n, or max_k n_k when widths vary (the
        nodes are then zero-padded; their own widths are ``layout.widths``)."""
        return int(self.layout.widths.max())

    @property
    def node_mask(self) -> np.ndarray:
        """(N + 1, n) array, 1 on the components node k owns and 0 on its padding."""
        return (np.arange(self.n)[None, :] < self.layout.widths[:, None]).astype(float)

    @property
    def m(self) -> int:
        """Parameter size per layer."""
        return int(self.theta0.shape[1])

    @property
    def batch(self) -> int:
        return self.layout.batch

    def config(self) -> dict:
        """JSON-serializable description of the problem (its parameters)."""
        return {"name": self.name, "N": self.N, "T": self.T, **getattr(self, "params", {})}

    # -- the interface (vectorized over layers) ---------------------------------------------
    def layer_maps(self, x, theta):
        """f_k(x_k; θ_k) for k = 0..N−1: ``x`` (B, N, n) → (B, N, n_{k+1})."""
        raise NotImplementedError

    def jvp(self, x, theta, v):
        """J_k v_k with J_k = ∂f_k/∂x_k: ``v`` (B, N, n_k) → (B, N, n_{k+1})."""
        raise NotImplementedError

    def vjp_x(self, x, theta, w):
        """J_kᵀ w_k: ``w`` (B, N, n_{k+1}) → (B, N, n_k)."""
        raise NotImplementedError

    def vjp_theta(self, x, theta, w):
        """(∇_θ f_k)ᵀ w_k summed over the batch: → (N, m)."""
        raise NotImplementedError

    def running_cost(self, x, theta) -> float:
        """Σ_k R_k(x_k, θ_k) over k < N (and the batch)."""
        raise NotImplementedError

    def running_grad_x(self, x, theta):
        """∇_x R_k(x_k, θ_k): (B, N, n)."""
        raise NotImplementedError

    def running_grad_theta(self, x, theta):
        """∇_θ R_k(x_k, θ_k) summed over the batch: (N, m)."""
        raise NotImplementedError

    def terminal_cost(self, xN) -> float:
        """ℓ(x_N) summed over the batch; ``xN`` is (B, n_N)."""
        raise NotImplementedError

    def terminal_grad(self, xN):
        """∇ℓ(x_N): (B, n_N)."""
        raise NotImplementedError

    def terminal_hvp(self, xN, v):
        """∇²ℓ(x_N) v: (B, n_N)."""
        raise NotImplementedError

    # -- second-order data (the matched port, :mod:`wavecontrol.matched`) ---------------------
    # Defaults built from the first-order interface, for batch 1: exact Jacobians from jvp and
    # vjp_theta on unit vectors, cost Hessians by central differences of the gradients
    # (step :data:`HESSIAN_FD_STEP`, error O(h²)); problems override them with closed forms.
    def layer_jacobians(self, x, theta):
        """A_k = ∂f_k/∂x_k (N, n, n) and B_k = ∂f_k/∂θ_k (N, n, m) at ``x`` (1, N, n)."""
        N, n, m = self.N, self.n, self.m
        A = np.empty((N, n, n))
        Bm = np.empty((N, n, m))
        e = np.zeros((1, N, n))
        for j in range(n):
            e[...] = 0.0
            e[:, :, j] = 1.0
            A[:, :, j] = self.jvp(x, theta, e)[0]
        for i in range(n):
            e[...] = 0.0
            e[:, :, i] = 1.0
            Bm[:, i, :] = self.vjp_theta(x, theta, e)
        return A, Bm

    def running_hessians(self, x, theta):
        """∇²R_k at ``x`` (1, N, n): R_xx (N, n, n), R_ux = ∂²R/∂θ∂x (N, m, n), R_uu (N, m, m)."""
        N, n, m = self.N, self.n, self.m
        h = HESSIAN_FD_STEP
        Rxx, Rux = np.empty((N, n, n)), np.empty((N, m, n))
        Ruu, Rxu = np.empty((N, m, m)), np.empty((N, n, m))
        for j in range(n):
            d = np.zeros_like(x)
            d[:, :, j] = h
            Rxx[:, :, j] = (self.running_grad_x(x + d, theta)
                            - self.running_grad_x(x - d, theta))[0] / (2 * h)
            Rux[:, :, j] = (self.running_grad_theta(x + d, theta)
                            - self.running_grad_theta(x - d, theta)) / (2 * h)
        for j in range(m):
            d = np.zeros_like(theta)
            d[:, j] = h
            Ruu[:, :, j] = (self.running_grad_theta(x, theta + d)
                            - self.running_grad_theta(x, theta - d)) / (2 * h)
            Rxu[:, :, j] = (self.running_grad_x(x, theta + d)
                            - self.running_grad_x(x, theta - d))[0] / (2 * h)
        sym = lambda M: 0.5 * (M + np.swapaxes(M, 1, 2))   # noqa: E731
        return sym(Rxx), 0.5 * (Rux + np.swapaxes(Rxu, 1, 2)), sym(Ruu)

    def terminal_hessian(self, xN):
        """∇²ℓ(x_N) (n, n) at ``xN`` (1, n), exact from :meth:`terminal_hvp`."""
        n = self.n
        H = np.empty((n, n))
        for j in range(n):
            e = np.zeros((1, n))
            e[0, j] = 1.0
            H[:, j] = self.terminal_hvp(xN, e)[0]
        return 0.5 * (H + H.T)

    def kernel_data(self):
        """Arrays for the compiled kernels of :attr:`family`."""
        raise NotImplementedError(f"problem {self.name!r} has no compiled kernel family")

    def node_kernel(self):
        """``(source, data)``: the node functions of this problem as module text and their data
        tuple of float64 arrays (:mod:`wavecontrol.nodekernels`), or None when it has none; the
        compiled node kernels (the matched port) run a problem that gives them."""
        return None

    # -- derived, exact discrete PMP quantities ---------------------------------------------
    def forward(self, theta):
        """States x_k of the forward pass (eq. 47): (B, N + 1, n)."""
        theta = np.asarray(theta, dtype=float)
        x = np.zeros((self.batch, self.N + 1, self.n))
        x[:, 0] = self.x_in
        for k in range(self.N):
            # one layer at a time: evaluate the vectorized map on a window of one layer
            x[:, k + 1] = self._one_layer_map(k, x[:, k], theta)
        return x

    def adjoint(self, x, theta):
        """Costates of the adjoint recursion (eqs. 50–51): (B, N + 1, n)."""
        lam = np.zeros_like(x)
        lam[:, self.N] = self.terminal_grad(x[:, self.N])
        gx = self.running_grad_x(x[:, :-1], theta)
        for k in range(self.N - 1, -1, -1):
            lam[:, k] = self._one_layer_vjp(k, x[:, k], theta, lam[:, k + 1]) + gx[:, k]
        return lam

    def objective(self, theta) -> float:
        """J(θ) = ℓ(x_N) + Σ R_k (eq. 48)."""
        x = self.forward(theta)
        return float(self.terminal_cost(x[:, -1]) + self.running_cost(x[:, :-1], theta))

    def gradient(self, theta):
        """∇_θ J by the exact discrete adjoint (eq. 52): (N, m)."""
        x = self.forward(theta)
        lam = self.adjoint(x, theta)
        return self.residual_theta(x, lam, theta)

    def residuals(self, x, lam, theta):
        """PMP residuals (eqs. 53–56, 59): r_x (B,N+1,n), r_λ (B,N+1,n), r_θ (N,m).

        ``r_x,0 = x_0 − x_in``, ``r_x,k = x_k − f_{k−1}(x_{k−1})``, ``r_λ,N = λ_N − ∇ℓ(x_N)``,
        ``r_λ,k = λ_k − J_kᵀ λ_{k+1} − ∇_x R_k``, ``r_θ,k = ∇_θ R_k + (∇_θ f_k)ᵀ λ_{k+1}``.
        """
        r_x = np.empty_like(x)
        r_x[:, 0] = x[:, 0] - self.x_in
        r_x[:, 1:] = x[:, 1:] - self.layer_maps(x[:, :-1], theta)
        r_l = np.empty_like(lam)
        r_l[:, -1] = lam[:, -1] - self.terminal_grad(x[:, -1])
        r_l[:, :-1] = (lam[:, :-1] - self.vjp_x(x[:, :-1], theta, lam[:, 1:])
                       - self.running_grad_x(x[:, :-1], theta))
        return r_x, r_l, self.project_residual(theta, self.residual_theta(x, lam, theta))

    def project_residual(self, theta, r_theta):
        """r_θ itself without :attr:`bounds`; with bounds (lo, hi) the projected gradient
        θ − clip(θ − r_θ, lo, hi), which vanishes exactly where u_k minimizes the layer's
        Hamiltonian over the box to first order (the KKT conditions), and is what
        :meth:`residuals` reports and convergence is judged on."""
        if self.bounds is None:
            return r_theta
        lo, hi = self.bounds
        return theta - np.clip(theta - r_theta, lo, hi)

    def residual_theta(self, x, lam, theta):
        """r_θ,k (eq. 59): (N, m)."""
        return (self.running_grad_theta(x[:, :-1], theta)
                + self.vjp_theta(x[:, :-1], theta, lam[:, 1:]))

    # single-layer helpers built on the vectorized methods (used by the sequential references)
    def _one_layer_map(self, k, xk, theta):
        raise NotImplementedError

    def _one_layer_vjp(self, k, xk, theta, w):
        raise NotImplementedError


def _check_matrix(name, M, shape, *, symmetric=False, positive=None):
    M = np.asarray(M, dtype=float)
    if M.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {M.shape}")
    if not np.all(np.isfinite(M)):
        raise ValueError(f"{name} must be finite")
    if symmetric and not np.allclose(M, M.T, rtol=1e-12, atol=1e-14 * max(1.0, np.abs(M).max())):
        raise ValueError(f"{name} must be symmetric")
    if positive is not None:
        ev = np.linalg.eigvalsh((M + M.T) / 2)
        if positive == "definite" and ev.min() <= 0:
            raise ValueError(f"{name} must be positive definite (smallest eigenvalue "
                             f"{ev.min():.3g} is not > 0)")
        if positive == "semidefinite" and ev.min() < -1e-12 * max(1.0, abs(ev).max()):
            raise ValueError(f"{name} must be positive semidefinite (smallest eigenvalue "
                             f"{ev.min():.3g} is < 0)")
    return M


class AffineQuadraticProblem(LayeredProblem):
    """Affine layer maps with quadratic costs (the compiled family ``"affine"``).

    ``f_k(x, θ) = A_k x + B_k θ + c_k``, ``R_k = ½ Σ_b x_bᵀ Q_k x_b + ½ θᵀ R_k θ``,
    ``ℓ(x) = Σ_b (½ x_bᵀ Q_f x_b + g_fᵀ x_b)``.

    Parameters
    ----------
    A : array (N, n, n); B : array (N, n, m); c : array (N, n)
    Q : array (N, n, n), symmetric positive semidefinite; R : array (N, m, m), positive definite
    Qf : array (n, n), symmetric positive semidefinite; gf : array (n,)
    dt : float; x_in : array (n,) or (B, n); theta0 : array (N, m) (default zeros)
    """

    name = "affine"
    family = "affine"

    def __init__(self, A, B, c, Q, R, Qf, gf, dt, x_in, theta0=None, batch=1):
        A = np.asarray(A, dtype=float)
        if A.ndim != 3 or A.shape[1] != A.shape[2]:
            raise ValueError(f"A must have shape (N, n, n), got {A.shape}")
        N, n = A.shape[0], A.shape[1]
        B = np.asarray(B, dtype=float)
        if B.ndim != 3 or B.shape[:2] != (N, n):
            raise ValueError(f"B must have shape ({N}, {n}, m), got {B.shape}")
        m = B.shape[2]
        self.A = _check_matrix("A", A, (N, n, n))
        self.B = _check_matrix("B", B, (N, n, m))
        self.c = _check_matrix("c", c, (N, n))
        self.Q = _check_matrix("Q", Q, (N, n, n))
        self.R = _check_matrix("R", R, (N, m, m))
        for k in range(N):
            _check_matrix(f"Q[{k}]", self.Q[k], (n, n), symmetric=True, positive="semidefinite")
            _check_matrix(f"R[{k}]", self.R[k], (m, m), symmetric=True, positive="definite")
        self.Qf = _check_matrix("Qf", Qf, (n, n), symmetric=True, positive="semidefinite")
        self.gf = _check_matrix("gf", gf, (n,))
        theta0 = np.zeros((N, m)) if theta0 is None else theta0
        x_in = np.asarray(x_in, dtype=float)
        batch = x_in.shape[0] if x_in.ndim == 2 else batch
        super().__init__(Layout(np.full(N + 1, n), batch=batch), dt, x_in, theta0)

    def layer_maps(self, x, theta):
        return (np.einsum("kij,bkj->bki", self.A, x) + np.einsum("kij,kj->ki", self.B, theta)
                + self.c)

    def jvp(self, x, theta, v):
        return np.einsum("kij,bkj->bki", self.A, v)

    def vjp_x(self, x, theta, w):
        return np.einsum("kji,bkj->bki", self.A, w)

    def vjp_theta(self, x, theta, w):
        return np.einsum("kji,bkj->ki", self.B, w)

    def running_cost(self, x, theta):
        return float(0.5 * np.einsum("bki,kij,bkj->", x, self.Q, x)
                     + 0.5 * np.einsum("ki,kij,kj->", theta, self.R, theta))

    def running_grad_x(self, x, theta):
        return np.einsum("kij,bkj->bki", self.Q, x)

    def running_grad_theta(self, x, theta):
        return np.einsum("kij,kj->ki", self.R, theta)

    def terminal_cost(self, xN):
        return float(0.5 * np.einsum("bi,ij,bj->", xN, self.Qf, xN) + np.sum(xN @ self.gf))

    def terminal_grad(self, xN):
        return xN @ self.Qf.T + self.gf

    def terminal_hvp(self, xN, v):
        return v @ self.Qf.T

    def _one_layer_map(self, k, xk, theta):
        return xk @ self.A[k].T + self.B[k] @ theta[k] + self.c[k]

    def _one_layer_vjp(self, k, xk, theta, w):
        return w @ self.A[k]

    def layer_jacobians(self, x, theta):
        return self.A.copy(), self.B.copy()

    def running_hessians(self, x, theta):
        return self.Q.copy(), np.zeros((self.N, self.m, self.n)), self.R.copy()

    def terminal_hessian(self, xN):
        return self.Qf.copy()

    def node_kernel(self):
        """The node functions of :mod:`wavecontrol.nodes_affine` with D = (A, B, c, Q, R, Qf,
        gf); None for a batch > 1 (the node kernels run batch 1)."""
        if self.batch != 1:
            return None
        from . import nodes_affine
        from .codegen import source_of
        return source_of(nodes_affine), self.kernel_data()[:-1]

    def kernel_data(self):
        """Contiguous arrays for the ``affine`` kernels: (A, B, c, Q, R, Qf, gf, x_in)."""
        c = np.ascontiguousarray
        return (c(self.A), c(self.B), c(self.c), c(self.Q), c(self.R), c(self.Qf), c(self.gf),
                c(self.x_in))
