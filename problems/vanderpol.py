"""The Van der Pol oscillator OCP of the CasADi examples, built through
:func:`problems.expressions.from_expressions`.

``x1' = (1 − x2²) x1 − x2 + u``, ``x2' = x1`` from x(0) = (0, 1) over T = 10 s, minimizing
``∫ (x1² + x2² + u²) dt`` with −1 ≤ u ≤ 1, on N = 20 control intervals integrated by RK4 with 4
steps per interval: the statement of CasADi's ``direct_single_shooting`` /
``direct_multiple_shooting`` examples (which add the state bound x1 ≥ −0.25 in the multiple
shooting one; the toolkit bounds controls only, so it is left out). One difference in the
discretization: CasADi integrates the running cost along with the state (RK4 quadrature), here
R_k = Δt L(x_k, u_k) at the node (docs/problems.md), so the discrete objectives differ by the
quadrature error.

References: CasADi examples ``docs/examples/python/direct_single_shooting.py`` and
``direct_multiple_shooting.py`` (J. Andersson, J. Gillis, M. Diehl et al.); the same problem is
OpenOCL's ``Examples/01VanDerPol`` (with u ∈ [−1, 1], x1 ≥ −0.25).
"""

from __future__ import annotations

import math
import numbers

from .expressions import from_expressions

DEFAULTS = {"T": 10.0, "N": 20, "x0": [0.0, 1.0], "u_min": -1.0, "u_max": 1.0, "mu": 1.0,
            "integrator": "rk4", "substeps": 4}


def positive(name, value):
    """A finite real number > 0, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def vanderpol(T: float = 10.0, N: int = 20, x0=(0.0, 1.0), u_min: float | None = -1.0,
              u_max: float | None = 1.0, mu: float = 1.0, integrator: str = "rk4",
              substeps: int = 4, theta0=None):
    """The Van der Pol OCP (module docstring); ``mu`` scales the nonlinear damping
    ``(1 − x2²) x1`` (1 in the example); ``u_min``/``u_max`` None open that side."""
    import sympy as sp

    x1, x2, u, m = sp.symbols("x1 x2 u mu")
    f = [m * (1 - x2 ** 2) * x1 - x2 + u, x1]
    L = x1 ** 2 + x2 ** 2 + u ** 2
    prob = from_expressions(f, L, sp.Integer(0), list(x0), T, N, x=(x1, x2), u=(u,),
                            params={m: mu}, lo=u_min, hi=u_max, integrator=integrator,
                            substeps=substeps, name="vanderpol", theta0=theta0)
    prob.params.update({"T": float(T), "N": int(N), "u_min": u_min, "u_max": u_max, "mu": mu})
    return prob


__all__ = ["vanderpol", "DEFAULTS", "positive"]
