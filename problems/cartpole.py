"""Cart-pole swing-up (Kelly 2017, §6), built through :func:`problems.expressions.from_expressions`.

A cart of mass m1 on a horizontal track carries a pole (point mass m2 at distance l) on a free
joint; the force u on the cart is the control. State ``x = (q1, q2, q1', q2')``: cart position
(m), pole angle (rad, 0 hanging down, π upright) and their rates. Dynamics (Kelly's eqs. 6.1–6.2)::

    q1'' = (l m2 sin q2 q2'² + u + m2 g cos q2 sin q2) / (m1 + m2 (1 − cos² q2))
    q2'' = −(l m2 cos q2 sin q2 q2'² + u cos q2 + (m1 + m2) g sin q2) / (l m1 + l m2 (1 − cos² q2))

Kelly's task moves the cart by d = 1 m and swings the pole up in T = 2 s from rest at the origin,
minimizing ∫ u² dt with |u| ≤ u_max = 20 N, m1 = 1 kg, m2 = 0.3 kg, l = 0.5 m, g = 9.81 m/s².
Here the terminal state x(T) = (d, π, 0, 0), a hard constraint in Kelly's statement, is a
quadratic penalty ``Φ = ½ wf |x(T) − x_target|²``, and his track limit |q1| ≤ 2 m (a state
bound) is left out: the toolkit bounds controls only. The default wf = 1000 gives a genuine
swing-up (at N = 40, RK4: x(T) = (1.005, 3.093, −0.007, 0.009), max|u| = 12.4 N, so the force
bound is inactive); with wf = 100 the pole ends at 2.88 rad and with wf = 10 at 1.2 rad, a
different local optimum that does not swing up (L-BFGS, docs/problems.md).

Reference: M. Kelly, "An Introduction to Trajectory Optimization: How to Do Your Own Direct
Collocation", SIAM Review 59(4), 849–904 (2017), section 6.
"""

from __future__ import annotations



from .expressions import from_expressions
from .vanderpol import positive

DEFAULTS = {"T": 2.0, "N": 40, "d": 1.0, "m1": 1.0, "m2": 0.3, "l": 0.5, "g": 9.81, "r": 1.0,
            "wf": 1000.0, "u_max": 20.0, "integrator": "rk4", "substeps": 1}


def cartpole(T: float = 2.0, N: int = 40, d: float = 1.0, m1: float = 1.0, m2: float = 0.3,
             l: float = 0.5, g: float = 9.81, r: float = 1.0, wf: float = 1000.0,
             u_max: float | None = 20.0, integrator: str = "rk4", substeps: int = 1,
             theta0=None):
    """The cart-pole swing-up (module docstring) as an
    :class:`~problems.expressions.ExpressionProblem`.

    ``L = r u²``; ``u_max`` None drops the force bound. Parameters in SI units; m1, m2, l, g,
    r, wf must be > 0.
    """
    import sympy as sp

    for name, v in (("m1", m1), ("m2", m2), ("l", l), ("g", g), ("r", r), ("wf", wf)):
        positive(name, v)
    if u_max is not None:
        positive("u_max", u_max)
    q1, q2, v1, v2, u = sp.symbols("q1 q2 q1dot q2dot u")
    M1, M2, Lp, G, R, W, D = sp.symbols("m1 m2 l g r wf d")
    s, c = sp.sin(q2), sp.cos(q2)
    f = [v1, v2,
         (Lp * M2 * s * v2 ** 2 + u + M2 * G * c * s) / (M1 + M2 * (1 - c ** 2)),
         -(Lp * M2 * c * s * v2 ** 2 + u * c + (M1 + M2) * G * s) / (Lp * M1 + Lp * M2 * (1 - c ** 2))]
    L = R * u ** 2
    Phi = W / 2 * ((q1 - D) ** 2 + (q2 - sp.pi) ** 2 + v1 ** 2 + v2 ** 2)
    prob = from_expressions(
        f, L, Phi, [0.0, 0.0, 0.0, 0.0], T, N, x=(q1, q2, v1, v2), u=(u,),
        params={M1: m1, M2: m2, Lp: l, G: g, R: r, W: wf, D: d},
        lo=None if u_max is None else -u_max, hi=None if u_max is None else u_max,
        integrator=integrator, substeps=substeps, name="cartpole", theta0=theta0)
    prob.params.update({"T": float(T), "N": int(N), "d": d, "m1": m1, "m2": m2, "l": l, "g": g,
                        "r": r, "wf": wf, "u_max": u_max})
    prob.matched_settings = matched_settings(N)
    return prob


def matched_settings(N: int) -> dict:
    """The matched port's settings for the swing-up (docs/theory.md §11.7): the Newton node
    model, and the terminal penalty ramped in over 10 N τ-steps (5 light cones of 2N/ν at ν = 1) from 1 % of
    its weight. The Gauss–Newton model diverges here (the optimum is an unstable fixed point of
    its map, docs/findings.md)."""
    return {"hessian": "newton", "ramp_steps": 10 * int(N), "ramp_from": 1e-2,
            "newton_below": 1e-2}


__all__ = ["cartpole", "matched_settings", "DEFAULTS"]

