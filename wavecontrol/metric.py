"""Metric factors Θ_k and the wave transforms of eqs. 38–40 and 57.

At node k the metric M_k = Θ_kᵀ Θ_k (eq. 8) defines the wave variables

    w±_k = (Θ_k x_k ± Θ_k^{-T} λ_k) / √2                       (eq. 38)
    x_k  = Θ_k^{-1} (w+_k + w-_k) / √2,  λ_k = Θ_kᵀ (w+_k − w-_k) / √2     (eqs. 39–40)
    E±_k = (Θ_k r_x,k ± Θ_k^{-T} r_λ,k) / √2                   (eq. 57)

and the characteristic variables of the consistent form a_k = Θ_k x_k, b_k = Θ_k^{-T} λ_k.
"""

from __future__ import annotations

import numpy as np

SQRT2 = np.sqrt(2.0)
KINDS = ("scalar", "diagonal", "full")


class Metric:
    """Θ_k for every node of a constant-width layout.

    Parameters
    ----------
    theta : float, array (n,), array (n, n) or array (N + 1, n, n)
        A scalar (Θ = s I), a diagonal, one matrix for all nodes, or one matrix per node.
        Every Θ_k must be finite and invertible (condition number below 1e12).
    n, N : int
        Width and number of layers of the layout.
    """

    def __init__(self, theta, n: int, N: int):
        arr = np.asarray(theta, dtype=float)
        if not np.all(np.isfinite(arr)):
            raise ValueError("metric: every entry of Θ must be finite")
        if arr.ndim == 0:
            kind, mats = "scalar", np.broadcast_to(arr * np.eye(n), (N + 1, n, n))
        elif arr.ndim == 1:
            if arr.shape != (n,):
                raise ValueError(f"metric: a diagonal Θ must have shape ({n},), got {arr.shape}")
            kind, mats = "diagonal", np.broadcast_to(np.diag(arr), (N + 1, n, n))
        elif arr.ndim == 2:
            if arr.shape != (n, n):
                raise ValueError(f"metric: a matrix Θ must have shape ({n}, {n}), got {arr.shape}")
            kind, mats = "full", np.broadcast_to(arr, (N + 1, n, n))
        elif arr.ndim == 3:
            if arr.shape != (N + 1, n, n):
                raise ValueError(f"metric: per-node Θ must have shape ({N + 1}, {n}, {n}), "
                                 f"got {arr.shape}")
            kind, mats = "full", arr
        else:
            raise ValueError(f"metric: Θ must be a scalar or an array of 1 to 3 dimensions, "
                             f"got {arr.ndim}")
        mats = np.ascontiguousarray(mats, dtype=float)
        if kind == "full" and np.all(mats == np.einsum("kij,ij->kij", mats, np.eye(n))):
            kind = "diagonal"
        cond = np.linalg.cond(mats)
        if not np.all(np.isfinite(cond)) or np.any(cond > 1e12):
            worst = int(np.argmax(np.where(np.isfinite(cond), cond, np.inf)))
            raise ValueError(f"metric: Θ_{worst} is singular or nearly so (condition number "
                             f"{cond[worst]:.3g}); every Θ_k must be invertible")
        self.kind = kind
        self.n, self.N = int(n), int(N)
        self.theta = mats
        self.theta_inv = np.ascontiguousarray(np.linalg.inv(mats))
        #: whether every Θ_k is diagonal (kernels then use the diagonal alone)
        self.is_diagonal = kind in ("scalar", "diagonal")
        self.spec = arr
        # diagonals (N + 1, n) for the transforms: the same numbers as the matrix products
        self._d = np.diagonal(mats, axis1=1, axis2=2).copy() if self.is_diagonal else None
        self._d_inv = (np.diagonal(self.theta_inv, axis1=1, axis2=2).copy()
                       if self.is_diagonal else None)

    @classmethod
    def from_blocks(cls, blocks) -> "Metric":
        """Metric of a varying-width layout from one Θ_k per node.

        ``blocks`` lists N + 1 entries, each a scalar (Θ_k = s I), a diagonal (n_k,) or a
        matrix (n_k, n_k); they are padded to the field width n = max n_k with the identity on
        the padding, so that every Θ_k acts on node k's own components only.
        """
        mats = [np.atleast_1d(np.asarray(b, dtype=float)) for b in blocks]
        if len(mats) < 2:
            raise ValueError(f"metric: from_blocks needs N + 1 >= 2 blocks, got {len(mats)}")
        sizes = [m.shape[0] if m.size > 1 else None for m in mats]
        n = max([s for s in sizes if s is not None] or [1])
        out = np.broadcast_to(np.eye(n), (len(mats), n, n)).copy()
        for k, m in enumerate(mats):
            if m.ndim > 2 or (m.ndim == 2 and m.shape[0] != m.shape[1]):
                raise ValueError(f"metric: block {k} must be a scalar, a diagonal or a square "
                                 f"matrix, got shape {m.shape}")
            if m.size == 1:
                out[k] *= float(m[0])
            else:
                nk = m.shape[0]
                out[k, :nk, :nk] = np.diag(m) if m.ndim == 1 else m
        return cls(out, n, len(mats) - 1)

    def check_widths(self, widths) -> "Metric":
        """Return self if every Θ_k is block-diagonal for node k's padding, else raise.

        With zero-padded varying widths (``widths`` the n_k), Θ_k must not mix node k's first
        n_k components with its padding; otherwise the padding would not stay zero.
        """
        widths = np.asarray(widths)
        key = tuple(widths.tolist())
        if getattr(self, "_checked", None) == key:
            return self
        if widths.size != self.N + 1 or widths.max() != self.n:
            raise ValueError(f"metric: built for width {self.n} and N = {self.N}, but the "
                             f"problem has widths {widths.tolist()}")
        if not self.is_diagonal:
            for k, nk in enumerate(widths):
                off = (np.abs(self.theta[k, :nk, nk:]).max(initial=0.0)
                       + np.abs(self.theta[k, nk:, :nk]).max(initial=0.0))
                if off != 0:
                    raise ValueError(f"metric: Θ_{k} mixes node {k}'s {nk} components with "
                                     "its zero padding; on varying widths every Θ_k must be "
                                     "block-diagonal (use Metric.from_blocks)")
        self._checked = key
        return self

    @property
    def diagonal(self):
        """(Θ_k)_ii as an (N + 1, n) array, and (Θ_k^{-1})_ii likewise; ``None`` unless
        :attr:`is_diagonal`."""
        if not self.is_diagonal:
            return None
        return self._d, self._d_inv

    def describe(self) -> str:
        """Short text, e.g. ``scalar 2.0`` or ``diagonal``."""
        if self.kind == "scalar":
            return f"scalar {float(self.spec):g}"
        return self.kind

    # -- transforms on arrays of shape (..., N + 1, n) --------------------------------------
    def apply(self, v):
        """Θ_k v_k."""
        if self.is_diagonal:
            return v * self._d
        return np.einsum("kij,...kj->...ki", self.theta, v)

    def apply_inv(self, v):
        """Θ_k^{-1} v_k."""
        if self.is_diagonal:
            return v * self._d_inv
        return np.einsum("kij,...kj->...ki", self.theta_inv, v)

    def apply_T(self, v):
        """Θ_kᵀ v_k."""
        if self.is_diagonal:
            return v * self._d
        return np.einsum("kji,...kj->...ki", self.theta, v)

    def apply_invT(self, v):
        """Θ_k^{-T} v_k."""
        if self.is_diagonal:
            return v * self._d_inv
        return np.einsum("kji,...kj->...ki", self.theta_inv, v)

    def to_waves(self, x, lam):
        """(w+, w-) from (x, λ) (eq. 38)."""
        a, b = self.apply(x), self.apply_invT(lam)
        return (a + b) / SQRT2, (a - b) / SQRT2

    def from_waves(self, wp, wm):
        """(x, λ) from (w+, w-) (eqs. 39–40)."""
        return self.apply_inv(wp + wm) / SQRT2, self.apply_T(wp - wm) / SQRT2

    def wave_residuals(self, r_x, r_lam):
        """(E+, E-) from the PMP residuals (eq. 57)."""
        a, b = self.apply(r_x), self.apply_invT(r_lam)
        return (a + b) / SQRT2, (a - b) / SQRT2

    def characteristic(self, x, lam):
        """(a, b) = (Θ x, Θ^{-T} λ), the consistent form's right- and left-moving variables."""
        return self.apply(x), self.apply_invT(lam)
