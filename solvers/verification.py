"""The built-in verification suite behind ``wavecontrol verify``.

Each check compares a computed number with an exact reference and a bound, and says whether it
passed. Users run it to trust an install; the test suite runs the same checks.

Checks (issue 2, "What it must show"):

``fixed_point/...``
    consistent form, every scheme, two Courant numbers, two metrics, default LQR and a seeded
    random unstable LQR (n = 4, m = 2): max-abs distance of the converged (x, λ, θ) from the
    discrete Riccati solution, bound 1e-8;
``ledger/...``
    every formulation × scheme × termination (× source timing): the largest relative ledger
    error over 300 τ-steps, bound 1e-10;
``twin/...``
    compiled kernel vs NumPy twin over 20 τ-steps, relative to the field size, bound 1e-12;
``order/...``
    manufactured solutions (:func:`wavecontrol.manufactured.order_checks`);
``continuum/...``
    the distance of the Euler-discretized LQR optimum from the continuous one falls at first
    order in Δt (observed order between 0.9 and 1.1);
``integrator/...``
    per one-step integrator (euler, midpoint, rk4), the distance of the discrete optimum of a
    Van der Pol problem from the continuous optimum over the same piecewise-constant controls
    falls at the integrator's order (:func:`integrator_checks`).
"""

from __future__ import annotations

import time

import numpy as np

from problems import lqr, random_lqr
from solvers.riccati import continuous_riccati, discrete_riccati
from solvers.wave import auto_eta, solve

#: Courant numbers tried per consistent-form scheme (two inside each stable range)
FIXED_POINT_COURANTS = {"upwind": (1.0, 0.8), "lax-wendroff": (1.0, 1.5),
                        "characteristic": (1.0, 2.5)}
FIXED_POINT_BOUND = 1e-8
LEDGER_BOUND = 1e-10
TWIN_BOUND = 1e-12


def _check(name, value, bound, passed=None, relation="<=", **extra):
    """One check's record; ``relation`` says whether value must be ``<=`` or ``>=`` bound."""
    value = float(value)
    if passed is None:
        ok = value <= bound if relation == "<=" else value >= bound
        passed = bool(np.isfinite(value) and ok)
    return {"name": name, "passed": bool(passed), "value": value, "bound": float(bound),
            "relation": relation, **extra}


def _metrics(n):
    """Scalar metric and a full lower-triangular one (condition number ~ 5)."""
    L = np.tril(np.full((n, n), 0.3)) + np.eye(n)
    L[np.diag_indices(n)] = np.linspace(1.0, 2.0, n)
    return {"scalar": 1.0, "triangular": L}


def fixed_point_checks():
    """Consistent-form fixed points vs the discrete Riccati solution."""
    out = []
    for pname, prob in (("lqr", lqr()), ("random_lqr", random_lqr(n=4, m=2, seed=0,
                                                                 unstable=True))):
        ref = discrete_riccati(prob)
        for scheme, nus in FIXED_POINT_COURANTS.items():
            for nu in nus:
                # twice the default gain: measured stable (3x diverges), halves the run time
                eta = 2.0 * auto_eta(prob, nu)
                for mname, met in _metrics(prob.n).items():
                    r = solve(prob, scheme=scheme, courant=nu, eta=eta, metric=met, tol=1e-12,
                              max_steps=2_000_000)
                    err = max(np.abs(r.x - ref.x).max(), np.abs(r.lam - ref.lam).max(),
                              np.abs(r.theta - ref.theta).max())
                    out.append(_check(f"fixed_point/{pname}/{scheme}/nu={nu:g}/{mname}",
                                      err if r.success else np.inf, FIXED_POINT_BOUND,
                                      steps=r.steps))
    return out


def ledger_checks(steps: int = 300):
    """Largest relative ledger error over ``steps`` τ-steps for every combination."""
    out = []
    prob = lqr()
    met = _metrics(prob.n)["triangular"]
    for form in ("consistent", "paper"):
        for scheme, nu in (("upwind", 0.7), ("lax-wendroff", 0.9), ("characteristic", 1.0),
                           ("characteristic", 0.6)):
            for term in ("implicit", "explicit"):
                for src in (("after", "before") if form == "paper" else ("after",)):
                    r = solve(prob, formulation=form, scheme=scheme, courant=nu, eta=0.01,
                              metric=met, termination=term, sources=src, max_steps=steps,
                              tol=0.0)
                    name = f"ledger/{form}/{scheme}/nu={nu:g}/{term}"
                    name += f"/sources-{src}" if form == "paper" else ""
                    out.append(_check(name, r.ledger_max_rel_error, LEDGER_BOUND))
    return out


def twin_checks(steps: int = 20):
    """Compiled kernel vs NumPy twin (fields and θ, relative to the field size)."""
    out = []
    prob = random_lqr(n=4, m=2, seed=1)
    met = _metrics(prob.n)["triangular"]
    for form in ("consistent", "paper"):
        for scheme, nu in (("upwind", 0.7), ("lax-wendroff", 0.9), ("characteristic", 1.0)):
            for term in ("implicit", "explicit"):
                kw = dict(formulation=form, scheme=scheme, courant=nu, eta=0.01, metric=met,
                          termination=term, max_steps=steps, tol=0.0)
                a, b = solve(prob, backend="numba", **kw), solve(prob, backend="numpy", **kw)
                diff = 0.0
                for f, g in ((a.x, b.x), (a.lam, b.lam), (a.theta, b.theta)):
                    diff = max(diff, np.abs(f - g).max() / max(1.0, np.abs(g).max()))
                out.append(_check(f"twin/{form}/{scheme}/{term}", diff, TWIN_BOUND))
    return out


def continuum_checks(Ns=(20, 40, 80)):
    """Order of the distance between the discrete and the continuous LQR optimum."""
    errs = []
    for N in Ns:
        prob = lqr(N=N)
        ref = discrete_riccati(prob)
        t = np.arange(N + 1) * prob.dt
        cont = continuous_riccati(prob.continuous, t)
        errs.append(float(np.abs(ref.x[0] - cont["x"]).max()))
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    lo = float(orders.min())
    return [_check("continuum/lqr-euler-vs-riccati-ode/order", lo, 0.9,
                   passed=bool(0.9 <= orders.min() and orders.max() <= 1.1), relation=">=",
                   errors=errs)]


#: the integrator check: layers N, the reference's RK4 substeps per layer, L-BFGS tolerance
INTEGRATOR_NS = (20, 40, 80)
INTEGRATOR_REF_SUBSTEPS = 16
INTEGRATOR_TOL = 1e-13
#: an observed order passes when it lies in [order − 0.2, order + 0.5]
INTEGRATOR_ORDER_SLACK = (0.2, 0.5)


def integrator_problem(integrator, N, substeps=1):
    """The smooth problem of :func:`integrator_checks`: a Van der Pol oscillator
    x1' = x2, x2' = −x1 + (1 − x1²) x2 + u from (1, 0) over T = 2, L = u²/2, Φ = 5|x(T)|²."""
    import sympy as sp

    from problems.expressions import from_expressions

    x1, x2, u = sp.symbols("x1 x2 u")
    return from_expressions([x2, -x1 + (1 - x1 ** 2) * x2 + u], u ** 2 / 2,
                            5 * (x1 ** 2 + x2 ** 2), [1.0, 0.0], 2.0, N, x=(x1, x2), u=(u,),
                            integrator=integrator, substeps=substeps, name="vdp-order")


def integrator_checks(Ns=INTEGRATOR_NS):
    """Observed order of each one-step integrator in the distance to the continuous optimum.

    The controls are piecewise constant on the N layers (the layered problem's θ_k), so the
    continuous optimum they can reach is that over piecewise-constant controls; its reference
    is the same problem with RK4 on :data:`INTEGRATOR_REF_SUBSTEPS` substeps per layer (error
    16⁴ times below RK4's own). L = u²/2 depends on u alone, so R_k = Δt L(u_k) is the exact
    integral of L over the layer and the distance measures the integrator alone. (With a
    smooth continuous u*(t) and L depending on x, piecewise-constant controls and the node rule
    R_k = Δt L(x_k, u_k) are first order whatever the integrator: docs/problems.md.) The
    distance is max|θ − θ_ref|, both optima by L-BFGS to max|∇J| ≤ 1e-13.
    """
    from problems.integrators import ORDERS
    from solvers.lbfgs import solve_lbfgs

    refs = [solve_lbfgs(integrator_problem("rk4", N, INTEGRATOR_REF_SUBSTEPS),
                        tol=INTEGRATOR_TOL).theta for N in Ns]
    out = []
    lo_slack, hi_slack = INTEGRATOR_ORDER_SLACK
    for name, p in ORDERS.items():
        errs = [float(np.abs(solve_lbfgs(integrator_problem(name, N), tol=INTEGRATOR_TOL).theta
                             - ref).max()) for N, ref in zip(Ns, refs)]
        orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
        ok = bool(p - lo_slack <= orders.min() and orders.max() <= p + hi_slack)
        out.append(_check(f"integrator/{name}/order", float(orders.min()), p - lo_slack,
                          passed=ok, relation=">=", errors=errs, orders=orders.tolist(),
                          expected=p))
    return out


def order_checks():
    """Manufactured-solution orders (see :mod:`wavecontrol.manufactured`)."""
    from wavecontrol.manufactured import order_checks as checks
    return checks()


SUITES = {"twin": twin_checks, "ledger": ledger_checks, "order": order_checks,
          "continuum": continuum_checks, "integrator": integrator_checks,
          "fixed_point": fixed_point_checks}


def run_verification(suites=None, progress=None) -> dict:
    """Run the checks; returns ``{"passed": bool, "checks": [...], "wall_s": float}``.

    ``suites`` selects some of :data:`SUITES` (default all); ``progress(name)`` is called
    before each suite.
    """
    names = list(SUITES) if suites is None else list(suites)
    unknown = [s for s in names if s not in SUITES]
    if unknown:
        raise ValueError(f"unknown verification suite(s) {unknown}; valid: {', '.join(SUITES)}")
    t0 = time.perf_counter()
    checks = []
    for name in names:
        if progress is not None:
            progress(name)
        checks.extend(SUITES[name]())
    return {"passed": all(c["passed"] for c in checks), "checks": checks,
            "wall_s": time.perf_counter() - t0}
