"""Small classifiers as layered control problems (paper §4.3–4.4, eqs. 43–52).

Layer k maps node k (width n_k) to node k+1 (width n_{k+1}):

    f_k(x; θ_k) = s x + h σ_k(W_k x + b_k),       W_k ∈ R^{n_{k+1}×n_k}, b_k ∈ R^{n_{k+1}}

with ``s = 1, h = Δt`` for an Euler-discretized neural ODE (constant width) and ``s = 0, h = 1``
for a feed-forward network (any widths; σ_k is the identity on a linear last layer). The batch
axis B carries the samples of the mini-batch; the parameters are shared, so every θ-gradient is
summed over it. The objective is

    J(θ) = ℓ(x_N) + Σ_k (wd/2) ‖θ_k‖²,   ℓ = (1/B) Σ_b loss(P x_N,b, y_b)

with a *fixed* linear read-out P (K × n_N; it is not trained: θ is per layer, eqs. 47–52) and
loss ``mse`` (½‖z − onehot(y)‖²) or ``cross-entropy`` (softmax; −log p_y). R_k does not depend
on x_k, and counts once, not per sample.

Parameters per layer: θ_k = (W_k row-major, b_k), m_k = n_{k+1}(n_k + 1) entries, zero-padded
to m = max m_k; fields are zero-padded to n = max n_k (see :mod:`wavecontrol.problem`).
:meth:`NetworkProblem.layers` gives the unpadded (W_k, b_k).

Two code paths on purpose: the vectorized padded methods the wave solver calls (``layer_maps``,
``jvp``, ``vjp_x``, ``vjp_theta``, ...) and a plain per-layer forward and reverse pass on the
unpadded matrices (:meth:`~NetworkProblem.objective`, :meth:`~NetworkProblem.gradient`,
:meth:`~NetworkProblem.predict`), which is the backprop reference the tests compare to.
"""

from __future__ import annotations

import numpy as np

from wavecontrol.grid import Layout
from wavecontrol.netkernels import ACT_CODES, LOSS_CODES
from wavecontrol.problem import LayeredProblem

from .datasets import accuracy as _accuracy
from .datasets import check_arrays


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


#: name → (σ, σ')
ACTIVATIONS = {
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "softplus": (lambda z: np.logaddexp(0.0, z), _sigmoid),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
    "identity": (lambda z: z, np.ones_like),
}
LOSSES = ("mse", "cross-entropy")


def check_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    return name


def check_loss(name: str) -> str:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
    return name


def check_data(X, labels, n_classes: int, d: int | None = None, rows: int | None = None,
               what: str = ""):
    """Validated copies of (X (B, d), labels (B,)); errors name ``X`` or ``labels``
    (:func:`problems.datasets.check_arrays`)."""
    X, labels, _ = check_arrays(X, labels, max(int(n_classes), 2), d=d, rows=rows, what=what)
    if labels.max() >= n_classes:       # n_classes = 1: every label must be 0
        raise ValueError(f"{what}labels must lie in 0..{n_classes - 1} (K = {n_classes} "
                         f"classes), got {labels.min()}..{labels.max()}")
    return X, labels


class NetworkProblem(LayeredProblem):
    """A classifier on a data set as a layered problem (see the module docstring).

    Parameters
    ----------
    widths : sequence of int
        Node widths n_0..n_N (n_0 = data dimension + ``augment``).
    X, labels : arrays (P, d), (P,)
        The data set (the pool mini-batches are drawn from); with ``batches``, its first
        mini-batch.
    n_classes : int
        K.
    activation : str
        A name in :data:`ACTIVATIONS`.
    loss : ``"mse"`` or ``"cross-entropy"``
    weight_decay : float ≥ 0
        wd in R_k = (wd/2)‖θ_k‖².
    residual : bool
        True: f_k = x + Δt σ(W x + b) (needs constant widths); False: f_k = σ_k(W x + b).
    dt : float
        Depth step Δt (the neural ODE's T/N; 1 for a feed-forward network).
    linear_output : bool
        Last layer without σ (feed-forward networks).
    readout : array (K, n_N)
        The fixed read-out P.
    augment : int
        Zero components appended to every input.
    batch : int
        Mini-batch size B ≤ P (the first batch is a seeded choice, all of the pool if B = P).
    theta0 : array (N, m), optional
        Initial parameters; default :meth:`init_theta` with seed ``[seed, 1]``.
    init_scale : float
        Scale of the default initial weights.
    seed : int
        Seeds the default θ0 and the choice of the first mini-batch.
    batches : callable, optional
        The user's mini-batch source: ``batches()`` returns the next ``(X, labels)`` of B
        samples; :meth:`resample` calls it instead of drawing from (X, labels).
    test_data : (X, labels), optional
        A held-out test set (:meth:`test_accuracy`).
    """

    family = "network"

    def __init__(self, widths, X, labels, n_classes, *, activation="tanh", loss="mse",
                 weight_decay=0.0, residual=False, dt=1.0, linear_output=False, readout=None,
                 augment=0, batch=None, theta0=None, init_scale=1.0, seed=0, name="network",
                 params=None, batches=None, test_data=None):
        self.name = name
        self.activation = check_activation(activation)
        self.loss = check_loss(loss)
        wd = float(weight_decay)
        if not np.isfinite(wd) or wd < 0:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        self.weight_decay = wd
        if not np.isfinite(init_scale) or init_scale < 0:
            raise ValueError(f"init_scale must be a finite number >= 0, got {init_scale!r}")
        widths = np.asarray(widths)
        if (widths.ndim != 1 or widths.size < 2 or not np.issubdtype(widths.dtype, np.integer)
                or np.any(widths < 1)):
            raise ValueError(f"widths must list N + 1 >= 2 integers >= 1, got "
                             f"{np.asarray(widths).tolist()}")
        self.n_classes = int(n_classes)
        self.augment = int(augment)
        X, labels = check_data(X, labels, self.n_classes)
        d = X.shape[1]
        if int(widths[0]) != d + self.augment:
            raise ValueError(f"widths[0] = {int(widths[0])} must equal the data dimension "
                             f"d = {d}" + (f" + augment = {self.augment}" if self.augment
                                           else ""))
        if residual and np.any(widths != widths[0]):
            raise ValueError(f"a residual (neural ODE) network needs constant widths, got "
                             f"{widths.tolist()}")
        nN = int(widths[-1])
        if readout is None:
            if nN < self.n_classes:
                raise ValueError(f"widths[-1] = {nN} must be >= the number of classes "
                                 f"K = {self.n_classes} (the read-out takes the first K "
                                 "components)")
            readout = np.eye(self.n_classes, nN)
        readout = np.array(readout, dtype=float)
        if readout.shape != (self.n_classes, nN) or not np.all(np.isfinite(readout)):
            raise ValueError(f"readout must be a finite ({self.n_classes}, {nN}) matrix, got "
                             f"shape {readout.shape}")
        self.readout = readout
        self.residual = bool(residual)
        self._s, self._h = (1.0, float(dt)) if residual else (0.0, 1.0)
        self.X_pool, self.labels_pool = X, labels
        if batches is not None and not callable(batches):
            raise ValueError(f"batches must be a callable returning (X, labels), got "
                             f"{type(batches).__name__}")
        self.batches = batches
        self.test_set = None
        if test_data is not None:
            self.test_set = check_data(test_data[0], test_data[1], self.n_classes, d=d,
                                       what="test_data: ")
        P = X.shape[0]
        B = P if batch is None else batch
        if isinstance(B, bool) or int(B) != B or not 1 <= B <= P:
            raise ValueError(f"batch must be an integer in 1..{P} (the data set size), got "
                             f"{batch!r}")
        B = int(B)
        if batches is not None and B != P:
            raise ValueError(f"batch must be None or {P} (the size of the data callable's "
                             f"first mini-batch), got {batch!r}")
        idx = (np.arange(P) if B == P
               else np.sort(np.random.default_rng([seed, 2]).choice(P, B, replace=False)))

        layout = Layout(widths, batch=B)
        N, n = layout.N, int(widths.max())
        nin, nout = layout.widths[:-1], layout.widths[1:]
        self.param_sizes = nout * (nin + 1)
        m = int(self.param_sizes.max())
        L = n * n + n
        src = np.full((N, m), L, dtype=np.int64)       # θ entry → slot of the padded (W, b)
        for k in range(N):
            j = np.arange(nout[k] * nin[k])
            src[k, j.size:j.size + nout[k]] = n * n + np.arange(nout[k])
            src[k, j] = (j // nin[k]) * n + j % nin[k]
        self._src, self._L = src, L
        self.theta_mask = (src != L).astype(float)
        self._lin = np.zeros(N, dtype=bool)
        self._lin[-1] = bool(linear_output)
        mask = (np.arange(n)[None, :] < layout.widths[:, None]).astype(float)
        self._mask_in, self._mask_out = mask[:-1], mask[1:]
        super().__init__(layout, dt, np.zeros((B, n)),
                         np.zeros((N, m)) if theta0 is None else theta0)
        self.theta0 = (self.init_theta([seed, 1], init_scale) if theta0 is None
                       else self.theta0 * self.theta_mask)
        self.labels = np.zeros(B, dtype=np.int64)
        self.targets = np.zeros((B, self.n_classes))
        self._set_batch(X[idx], labels[idx])
        self.params = dict(params or {})

    # -- parameters -------------------------------------------------------------------------
    def init_theta(self, seed=0, scale=1.0):
        """Seeded θ: W_k ~ N(0, scale²/n_k), b_k = 0, as an (N, m) array."""
        rng = np.random.default_rng(seed)
        w = self.layout.widths
        return self.pack([scale * rng.normal(size=(w[k + 1], w[k])) / np.sqrt(w[k])
                          for k in range(self.N)], [np.zeros(w[k + 1]) for k in range(self.N)])

    def pack(self, Ws, bs):
        """θ (N, m) from lists of W_k (n_{k+1}, n_k) and b_k (n_{k+1},)."""
        theta = np.zeros(self.theta0.shape)
        w = self.layout.widths
        for k in range(self.N):
            W, b = np.asarray(Ws[k], dtype=float), np.asarray(bs[k], dtype=float)
            if W.shape != (w[k + 1], w[k]) or b.shape != (w[k + 1],):
                raise ValueError(f"layer {k}: W must be ({w[k + 1]}, {w[k]}) and b "
                                 f"({w[k + 1]},), got {W.shape} and {b.shape}")
            theta[k, :W.size] = W.ravel()
            theta[k, W.size:W.size + b.size] = b
        return theta

    def layers(self, theta):
        """Unpadded [(W_k, b_k)] of θ (views)."""
        theta = self._check_theta(theta)
        w = self.layout.widths
        out = []
        for k in range(self.N):
            nw = w[k + 1] * w[k]
            out.append((theta[k, :nw].reshape(w[k + 1], w[k]), theta[k, nw:nw + w[k + 1]]))
        return out

    def _check_theta(self, theta):
        theta = np.asarray(theta, dtype=float)
        if theta.shape != self.theta0.shape:
            raise ValueError(f"theta must have shape {self.theta0.shape}, got {theta.shape}")
        return theta

    def _unpack(self, theta):
        """Padded W (N, n, n) and b (N, n)."""
        N, n, L = self.N, self.n, self._L
        flat = np.zeros((N, L + 1))
        np.put_along_axis(flat, self._src, theta * self.theta_mask, axis=1)
        return flat[:, :n * n].reshape(N, n, n), flat[:, n * n:L]

    def _pack_grad(self, gW, gb):
        flat = np.concatenate([gW.reshape(self.N, -1), gb, np.zeros((self.N, 1))], axis=1)
        return np.take_along_axis(flat, self._src, axis=1)

    def kernel_data(self):
        """Codes and arrays for :func:`wavecontrol.netkernels.network_run`.

        Returns ``(w, s, h, act, lin_last, loss, wd, P, targets, x_in)``: the node widths
        (int64), the layer-map factors s and h, the activation and loss codes, whether the last
        layer is linear, the weight decay, the read-out (K, n_N), the one-hot targets (B, K)
        and the unpadded inputs (B, n_0) of the current mini-batch (fresh copies: call again
        after :meth:`resample`).
        """
        w = self.layout.widths.astype(np.int64)
        return (w, float(self._s), float(self._h), ACT_CODES[self.activation],
                bool(self._lin[-1]), LOSS_CODES[self.loss], float(self.weight_decay),
                np.ascontiguousarray(self.readout), self.targets.copy(),
                np.ascontiguousarray(self.x_in[:, :w[0]]))

    # -- the vectorized layer methods (padded; what the wave solver calls) --------------------
    def _pre(self, x, theta):
        """z = W_k x_k + b_k, σ_k(z), σ_k'(z) (masked), and W: for x (B, N, n)."""
        W, b = self._unpack(theta)
        z = np.matmul(x.transpose(1, 0, 2), W.transpose(0, 2, 1)).transpose(1, 0, 2) + b
        a, d = _act(self.activation, z)
        if self._lin.any():
            a[:, self._lin] = z[:, self._lin]
            d[:, self._lin] = 1.0
        return a * self._mask_out, d * self._mask_out, W

    @staticmethod
    def _apply(W, v):
        return np.matmul(v.transpose(1, 0, 2), W.transpose(0, 2, 1)).transpose(1, 0, 2)

    @staticmethod
    def _apply_T(W, w):
        return np.matmul(w.transpose(1, 0, 2), W).transpose(1, 0, 2)

    def layer_maps(self, x, theta):
        a, _, _ = self._pre(x, theta)
        return self._s * x * self._mask_out + self._h * a

    def jvp(self, x, theta, v):
        _, d, W = self._pre(x, theta)
        return self._s * v * self._mask_out + self._h * d * self._apply(W, v)

    def vjp_x(self, x, theta, w):
        _, d, W = self._pre(x, theta)
        return (self._s * w * self._mask_in + self._apply_T(W, self._h * d * w)) * self._mask_in

    def vjp_theta(self, x, theta, w):
        _, d, _ = self._pre(x, theta)
        g = self._h * d * w                                     # (B, N, n)
        gW = np.matmul(g.transpose(1, 2, 0), x.transpose(1, 0, 2))  # Σ_b g_b x_bᵀ: (N, n, n)
        return self._pack_grad(gW, g.sum(axis=0))

    def running_cost(self, x, theta):
        return 0.5 * self.weight_decay * float(np.sum((theta * self.theta_mask) ** 2))

    def running_grad_x(self, x, theta):
        return np.zeros_like(x)

    def running_grad_theta(self, x, theta):
        return self.weight_decay * theta * self.theta_mask

    def _scores(self, xN):
        return xN[:, :self.layout.widths[-1]] @ self.readout.T

    def _pad(self, g):
        out = np.zeros((g.shape[0], self.n))
        out[:, :g.shape[1]] = g
        return out

    def terminal_cost(self, xN):
        return _loss(self.loss, self._scores(xN), self.labels, self.targets)

    def terminal_grad(self, xN):
        z = self._scores(xN)
        return self._pad(_loss_grad(self.loss, z, self.targets) @ self.readout)

    def terminal_hvp(self, xN, v):
        z, u = self._scores(xN), self._scores(v)
        B = z.shape[0]
        if self.loss == "mse":
            hu = u / B
        else:
            p = _softmax(z)
            hu = (p * u - p * np.sum(p * u, axis=1, keepdims=True)) / B
        return self._pad(hu @ self.readout)

    def _one_layer(self, k, xk, theta):
        W, b = self._unpack(np.asarray(theta, dtype=float))
        z = xk @ W[k].T + b[k]
        f, df = ACTIVATIONS[self.activation]
        a, d = (z, np.ones_like(z)) if self._lin[k] else (f(z), df(z))
        return a * self._mask_out[k], d * self._mask_out[k], W[k]

    def _one_layer_map(self, k, xk, theta):
        a, _, _ = self._one_layer(k, xk, theta)
        return self._s * xk * self._mask_out[k] + self._h * a

    def _one_layer_vjp(self, k, xk, theta, w):
        _, d, W = self._one_layer(k, xk, theta)
        return (self._s * w + (self._h * d * w) @ W) * self._mask_in[k]

    # -- the plain per-layer reference (unpadded; exact backprop) ---------------------------
    def inputs(self, X):
        """Network inputs x_0 (B, n_0): X with ``augment`` zero components appended."""
        return np.concatenate([X, np.zeros((X.shape[0], self.augment))], axis=1)

    def _plain_forward(self, theta, X):
        f, _ = ACTIVATIONS[self.activation]
        xs, zs = [self.inputs(X)], []
        for k, (W, b) in enumerate(self.layers(theta)):
            z = xs[-1] @ W.T + b
            a = z if self._lin[k] else f(z)
            zs.append(z)
            xs.append(xs[-1] + self._h * a if self.residual else a)
        return xs, zs

    def logits(self, theta, X=None):
        """Read-out scores P x_N (B, K) of inputs X (default: the whole data set)."""
        X = self.X_pool if X is None else check_data(X, np.zeros(len(X)), 1,
                                                     d=self.X_pool.shape[1])[0]
        xs, _ = self._plain_forward(theta, X)
        return xs[-1] @ self.readout.T

    def predict(self, theta, X=None):
        """Predicted class labels (argmax of the read-out) of X (default: the data set)."""
        return np.argmax(self.logits(theta, X), axis=1)

    def accuracy(self, theta, X=None, labels=None) -> float:
        """Fraction of correct predictions on (X, labels) (default: the whole data set)."""
        if X is None:
            X, labels = self.X_pool, self.labels_pool
        else:
            X, labels = check_data(X, labels, self.n_classes, d=self.X_pool.shape[1])
        return _accuracy(self.predict(theta, X), labels)

    def test_accuracy(self, theta) -> float:
        """Accuracy on the held-out test set (``test_data``, or a library data set's test
        split); ValueError when the problem has none."""
        if self.test_set is None:
            raise ValueError(f"problem {self.name!r} has no test set: pass test_data=(X, "
                             "labels) or use a library data set (dataset='digits')")
        return self.accuracy(theta, *self.test_set)

    def objective(self, theta) -> float:
        """J(θ) on the current mini-batch (eq. 48), by the plain forward pass."""
        xs, _ = self._plain_forward(theta, self.X_batch)
        z = xs[-1] @ self.readout.T
        return float(_loss(self.loss, z, self.labels, self.targets)
                     + self.running_cost(None, theta))

    def gradient(self, theta):
        """∇_θ J on the current mini-batch by an explicit reverse pass (backprop): (N, m)."""
        theta = self._check_theta(theta)
        _, df = ACTIVATIONS[self.activation]
        xs, zs = self._plain_forward(theta, self.X_batch)
        z = xs[-1] @ self.readout.T
        delta = _loss_grad(self.loss, z, self.targets) @ self.readout      # ∂J/∂x_N
        Ws, bs = [], []
        for k in range(self.N - 1, -1, -1):
            W, _ = self.layers(theta)[k]
            g = self._h * delta * (1.0 if self._lin[k] else df(zs[k]))
            Ws.append(g.T @ xs[k])
            bs.append(g.sum(axis=0))
            delta = (delta + g @ W) if self.residual else g @ W
        grad = self.pack(Ws[::-1], bs[::-1])
        return grad + self.weight_decay * theta * self.theta_mask

    # -- mini-batches -----------------------------------------------------------------------
    def _set_batch(self, X, labels):
        d = X.shape[1]
        self.X_batch = X.copy()
        self.x_in[...] = 0.0
        self.x_in[:, :d] = X                 # in place: running solvers read problem.x_in
        self.labels[...] = labels
        self.targets[...] = np.eye(self.n_classes)[labels]

    def set_batch(self, X, labels):
        """Replace the mini-batch by X (B, d) and labels (B,) (B = ``batch``), in place."""
        X, labels = check_data(X, labels, self.n_classes, d=self.X_pool.shape[1],
                               rows=self.batch)
        self._set_batch(X, labels)

    def resample(self, rng=None):
        """Draw a new mini-batch of ``batch`` samples from the data set (without replacement).

        ``rng`` is a ``numpy.random.Generator`` or a seed. The input x_in and the targets are
        swapped in place, so a run in progress sees the new batch at its next τ-step. With a
        ``batches`` callable the next batch is ``batches()`` instead (``rng`` is not used; the
        return value is None rather than the indices drawn).
        """
        if self.batches is not None:
            out = self.batches()
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise ValueError(f"the data callable must return a pair (X, labels), got "
                                 f"{type(out).__name__}")
            X, labels = check_data(out[0], out[1], self.n_classes, d=self.X_pool.shape[1],
                                   rows=self.batch, what="the data callable's mini-batch: ")
            self._set_batch(X, labels)
            return None
        rng = np.random.default_rng(rng)
        idx = rng.choice(self.X_pool.shape[0], size=self.batch, replace=False)
        self._set_batch(self.X_pool[idx], self.labels_pool[idx])
        return idx


def _act(name, z):
    """(σ(z), σ'(z)) sharing the work where they can."""
    if name == "tanh":
        a = np.tanh(z)
        return a, 1.0 - a * a
    if name == "sigmoid":
        a = _sigmoid(z)
        return a, a * (1.0 - a)
    f, df = ACTIVATIONS[name]
    return f(z), df(z)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _loss(kind, z, labels, targets) -> float:
    B = z.shape[0]
    if kind == "mse":
        return 0.5 * float(np.sum((z - targets) ** 2)) / B
    zmax = z.max(axis=1, keepdims=True)
    lse = zmax[:, 0] + np.log(np.sum(np.exp(z - zmax), axis=1))
    return float(np.sum(lse - z[np.arange(B), labels])) / B


def _loss_grad(kind, z, targets):
    B = z.shape[0]
    if kind == "mse":
        return (z - targets) / B
    return (_softmax(z) - targets) / B


def resampling_callback(problem, seed=0):
    """A :func:`solvers.wave.solve` callback that draws a new mini-batch at every call.

    Use ``solve(problem, callback=resampling_callback(problem), callback_every=s)`` to stream
    a new mini-batch every s τ-steps (the paper's Discussion); the waves carry over.
    """
    rng = np.random.default_rng(seed)

    def callback(step, info):
        problem.resample(rng)
        return False

    return callback
