"""Linear-quadratic regulator problems.

The default is the double integrator ``A = [[0, 1], [0, 0]]``, ``B = [[0], [1]]``, ``Q = I``,
``R = 0.1``, ``Q_f = 5 I``, ``T = 2``, ``N = 20``, ``x0 = [1, 0]``.
"""

from __future__ import annotations

import numpy as np

from .builder import LinearQuadratic, euler_discretize

DEFAULTS = {
    "A": [[0.0, 1.0], [0.0, 0.0]],
    "B": [[0.0], [1.0]],
    "Q": 1.0,
    "R": 0.1,
    "Qf": 5.0,
    "T": 2.0,
    "N": 20,
    "x0": [1.0, 0.0],
}


def lqr(**params):
    """Euler-discretized LQR; keyword arguments override :data:`DEFAULTS`.

    ``Q``, ``R``, ``Qf`` may be scalars (times the identity), diagonals or matrices. Returns an
    :class:`~wavecontrol.problem.AffineQuadraticProblem` with attributes ``continuous`` (the
    :class:`LinearQuadratic` problem) and ``params`` (the settings used).
    """
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown lqr parameter(s) {sorted(unknown)}; valid: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    cont = LinearQuadratic(p["A"], p["B"], p["Q"], p["R"], p["Qf"], p["T"], p["x0"])
    prob = euler_discretize(cont, p["N"])
    prob.name = "lqr"
    prob.params = {k: np.asarray(v).tolist() for k, v in p.items()}
    return prob


def random_lqr(n: int = 4, m: int = 2, seed: int = 0, unstable: bool = True, N: int = 20,
               T: float = 2.0):
    """A seeded random LQR; with ``unstable=True`` A has an eigenvalue with real part ≥ 0.5."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n)) / np.sqrt(n)
    if unstable:
        shift = 0.5 - np.linalg.eigvals(A).real.max()
        A = A + max(shift, 0.0) * np.eye(n)
    B = rng.normal(size=(n, m))
    return lqr(A=A.tolist(), B=B.tolist(), Q=1.0, R=0.1, Qf=5.0, T=T, N=N,
               x0=rng.normal(size=n).tolist())
