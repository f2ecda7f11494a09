"""The discretized worldsheet: nodes in depth t, steps in optimization time τ, and the field layout.

Nodes ``k = 0..N`` sit at ``t_k = k Δt`` with ``Δt = T/N``; τ-steps sit at ``τ_n = n Δτ``.
The Courant number is ``ν = c Δτ / Δt`` (eq. 30). Fields are stored in one packed buffer of
shape ``(B, total)`` where ``B`` is the batch size and node ``k`` owns the columns
``offsets[k] : offsets[k] + widths[k]``; with constant widths the buffer reshapes, without a
copy, to ``(B, N + 1, n)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


class Layout:
    """Per-node widths ``n_k`` (k = 0..N) and a batch size, with packed-buffer offsets.

    Parameters
    ----------
    widths : sequence of int
        Width ``n_k`` of every node, length ``N + 1`` (N ≥ 1), each ≥ 1.
    batch : int
        Number of independent trajectories (mini-batch columns) sharing the parameters.
    """

    def __init__(self, widths, batch: int = 1):
        widths = np.asarray(widths)
        if widths.ndim != 1 or widths.size < 2:
            raise ValueError(f"widths must list N + 1 >= 2 node widths, got shape {widths.shape}")
        if not np.issubdtype(widths.dtype, np.integer) or np.any(widths < 1):
            raise ValueError(f"widths must be integers >= 1, got {widths.tolist()}")
        if int(batch) != batch or batch < 1:
            raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
        self.widths = widths.astype(np.int64)
        self.batch = int(batch)
        self.offsets = np.concatenate([[0], np.cumsum(self.widths)]).astype(np.int64)

    @property
    def N(self) -> int:
        """Number of layers (nodes minus one)."""
        return self.widths.size - 1

    @property
    def total(self) -> int:
        """Length of one packed column (Σ_k n_k)."""
        return int(self.offsets[-1])

    @property
    def uniform(self) -> bool:
        """True when every node has the same width."""
        return bool(np.all(self.widths == self.widths[0]))

    @property
    def shape(self) -> tuple[int, int]:
        """Shape ``(B, total)`` of a packed field."""
        return (self.batch, self.total)

    def zeros(self) -> np.ndarray:
        """A packed field of zeros."""
        return np.zeros(self.shape)

    def node(self, field: np.ndarray, k: int) -> np.ndarray:
        """View of node ``k`` of a packed field, shape ``(B, n_k)``."""
        return field[:, self.offsets[k] : self.offsets[k + 1]]

    def as_grid(self, field: np.ndarray) -> np.ndarray:
        """View a packed field as ``(B, N + 1, n)``; only for constant widths."""
        if not self.uniform:
            raise ValueError("as_grid needs constant widths; this layout has widths "
                             f"{self.widths.tolist()}")
        return field.reshape(self.batch, self.N + 1, int(self.widths[0]))

    def pack(self, nodes) -> np.ndarray:
        """Packed field from a list of ``N + 1`` arrays of shape ``(B, n_k)`` (or ``(n_k,)``)."""
        if len(nodes) != self.N + 1:
            raise ValueError(f"expected {self.N + 1} node arrays, got {len(nodes)}")
        out = self.zeros()
        for k, v in enumerate(nodes):
            v = np.asarray(v, dtype=float)
            v = np.broadcast_to(v, (self.batch, self.widths[k])) if v.ndim == 1 else v
            if v.shape != (self.batch, self.widths[k]):
                raise ValueError(f"node {k}: expected shape {(self.batch, int(self.widths[k]))}, "
                                 f"got {v.shape}")
            self.node(out, k)[...] = v
        return out

    def __repr__(self) -> str:
        w = self.widths
        shown = f"{int(w[0])}x{w.size}" if self.uniform else str(w.tolist())
        return f"Layout(widths={shown}, batch={self.batch})"


@dataclass(frozen=True)
class Worldsheet:
    """The (t, τ) grid: horizon ``T`` split in ``N`` layers, wave speed ``c`` and τ-step ``Δτ``.

    Build it from a Courant number with :meth:`from_courant`. ``tau(n) = n Δτ`` (computed, never
    accumulated).
    """

    T: float
    N: int
    c: float
    dtau: float

    def __post_init__(self):
        _positive("T", self.T)
        if int(self.N) != self.N or self.N < 1:
            raise ValueError(f"N must be an integer >= 1, got {self.N!r}")
        _positive("c", self.c)
        _positive("dtau", self.dtau)

    @classmethod
    def from_courant(cls, T: float, N: int, courant: float, c: float = 1.0) -> "Worldsheet":
        """Grid with ``Δτ = ν Δt / c``."""
        courant = _positive("courant", courant)
        T, c = _positive("T", T), _positive("c", c)
        if int(N) != N or N < 1:
            raise ValueError(f"N must be an integer >= 1, got {N!r}")
        return cls(T=T, N=int(N), c=c, dtau=courant * (T / int(N)) / c)

    @property
    def dt(self) -> float:
        """Node spacing Δt = T / N (units of t)."""
        return self.T / self.N

    @property
    def courant(self) -> float:
        """Courant number ν = c Δτ / Δt (dimensionless)."""
        return self.c * self.dtau / self.dt

    @property
    def t(self) -> np.ndarray:
        """Node times t_k = k Δt, shape ``(N + 1,)``."""
        return np.arange(self.N + 1) * self.dt

    def tau(self, n) -> np.ndarray | float:
        """Optimization time τ_n = n Δτ."""
        return np.asarray(n) * self.dtau
