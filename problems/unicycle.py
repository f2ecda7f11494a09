"""A unicycle driven to a target, built through :func:`problems.expressions.from_expressions`.

State ``x = (px, py, φ)`` (position in m, heading in rad), controls ``u = (v, ω)`` (forward
speed m/s, turn rate rad/s): ``px' = v cos φ``, ``py' = v sin φ``, ``φ' = ω``. Costs
``L = ½ (q |x − x_target|² + r |u|²)`` and ``Φ = ½ qf |x(T) − x_target|²``.

The defaults are the unicycle example of Crocoddyl (``examples/unicycle.py``,
``notebooks/unicycle_towards_origin``): from x0 = (−1, −1, 1) to the origin in 20 explicit-Euler
steps of 0.1 s (T = 2), with the example's per-step weights — ½|10 x|² on the state and ½|u|² on
the control at every knot, ½|10 x_N|² at the end — which with R_k = Δt L are q = 100/Δt = 1000,
r = 1/Δt = 10 and qf = 100 per unit time. The example has no bounds; ``v_max`` and ``w_max``
add |v| ≤ v_max, |ω| ≤ w_max.

Reference: Crocoddyl (C. Mastalli et al., "Crocoddyl: An Efficient and Versatile Framework for
Multi-Contact Optimal Control", ICRA 2020), ``ActionModelUnicycle`` and its unicycle examples.
"""

from __future__ import annotations

import numpy as np

from .expressions import from_expressions
from .vanderpol import positive

DEFAULTS = {"T": 2.0, "N": 20, "x0": [-1.0, -1.0, 1.0], "target": [0.0, 0.0, 0.0], "q": 1000.0,
            "r": 10.0, "qf": 100.0, "v_max": None, "w_max": None, "integrator": "euler",
            "substeps": 1}


def unicycle(T: float = 2.0, N: int = 20, x0=(-1.0, -1.0, 1.0), target=(0.0, 0.0, 0.0),
             q: float = 1000.0, r: float = 10.0, qf: float = 100.0, v_max: float | None = None,
             w_max: float | None = None, integrator: str = "euler", substeps: int = 1,
             theta0=None):
    """The unicycle to a target (module docstring); q, r > 0, qf ≥ 0."""
    import sympy as sp

    positive("q", q)
    positive("r", r)
    if not (isinstance(qf, (int, float)) and np.isfinite(qf) and qf >= 0):
        raise ValueError(f"qf must be a finite number >= 0, got {qf!r}")
    tgt = np.asarray(target, dtype=float)
    if tgt.shape != (3,) or not np.all(np.isfinite(tgt)):
        raise ValueError(f"target must be 3 finite numbers (px, py, phi), got {target!r}")
    bounds = [None if b is None else positive(name, b) for name, b in
              (("v_max", v_max), ("w_max", w_max))]
    px, py, ph, v, w = sp.symbols("px py phi v omega")
    Q, R, QF, a, b, c = sp.symbols("q r qf px_target py_target phi_target")
    e = [px - a, py - b, ph - c]
    f = [v * sp.cos(ph), v * sp.sin(ph), w]
    L = (Q * sum(z ** 2 for z in e) + R * (v ** 2 + w ** 2)) / 2
    Phi = QF * sum(z ** 2 for z in e) / 2
    lo = hi = None
    if any(bd is not None for bd in bounds):
        hi = [np.inf if bd is None else bd for bd in bounds]
        lo = [-h for h in hi]
    prob = from_expressions(f, L, Phi, list(x0), T, N, x=(px, py, ph), u=(v, w),
                            params={Q: q, R: r, QF: qf, a: tgt[0], b: tgt[1], c: tgt[2]},
                            lo=lo, hi=hi, integrator=integrator, substeps=substeps,
                            name="unicycle", theta0=theta0)
    prob.params.update({"T": float(T), "N": int(N), "target": tgt.tolist(), "q": q, "r": r,
                        "qf": qf, "v_max": v_max, "w_max": w_max})
    return prob


__all__ = ["unicycle", "DEFAULTS"]
