"""IPOPT through CasADi (solvers/ipopt.py) and its ``compare`` row.

References and tolerances:

* LQR: the discrete Riccati recursion (solvers/riccati.py) is the exact discrete optimum; the
  problem is a QP, so IPOPT's Newton step lands on it: objective and θ within 1e-8 (the bound
  asked for; measured 1e-16 and 6e-14 on the default LQR, 2e-15 / 1e-13 on a random 4×2
  one).
* Pendulum swing-up (non-convex): L-BFGS to max|∇J| ≤ 1e-10 from the same θ0. Objectives agree
  to 1e-12 relative (measured 1e-16); θ to 1e-7: L-BFGS's own θ error is about
  max|∇J| / (smallest curvature of J), measured 2.5e-9 against IPOPT, whose gradient at its
  θ (the problem's adjoint, not CasADi's) is ≤ 1e-12 (measured 6e-15).
* The SymPy route: a pendulum written as expressions (Euler) is the same discrete problem as the
  hand-written one, so both transcriptions give the same θ to 1e-10 (measured 4e-15).
* Box bounds: the KKT conditions checked with the problem's own gradient g: |g| ≤ 1e-8 on free
  controls, g ≥ −1e-8 at a lower and ≤ 1e-8 at an upper bound.

The module skips, with one line saying why, when the optional extra is not installed;
tests/solvers/test_ipopt_optional.py checks what happens then.
"""

import numpy as np
import pytest

from problems import lqr, mlp, pendulum, random_lqr
from solvers.adjoint import forward_backward
from solvers.compare import compare_methods
from solvers.riccati import discrete_riccati

casadi = pytest.importorskip(
    "casadi", reason="CasADi is not installed (the optional extra wavecontrol[casadi]): IPOPT "
    "tests skipped")


@pytest.mark.parametrize("transcription", ["multiple-shooting", "single-shooting"])
@pytest.mark.parametrize("make", [lqr, lambda: random_lqr(n=4, m=2, seed=3)],
                         ids=["lqr", "random-4x2"])
def test_lqr_matches_riccati(make, transcription):
    from solvers.ipopt import solve_ipopt
    p = make()
    ref = discrete_riccati(p)
    res = solve_ipopt(p, transcription=transcription)
    assert res.status.value == "converged" and res.info["ipopt_status"] == "Solve_Succeeded"
    assert abs(res.objective - ref.objective) <= 1e-8
    assert np.abs(res.theta - ref.theta).max() <= 1e-8
    assert res.info["model"] == "affine-quadratic"
    n_var = p.N * p.m + (p.N * p.n if transcription == "multiple-shooting" else 0)
    assert res.info["variables"] == n_var
    assert res.wall_time > 0 and res.compile_time > 0


def test_pendulum_swing_up_matches_lbfgs():
    from solvers.ipopt import solve_ipopt
    from solvers.lbfgs import solve_lbfgs
    p = pendulum(task="swing-up")
    ref = solve_lbfgs(p, tol=1e-10)
    assert ref.status.value == "converged"
    res = solve_ipopt(p)
    assert res.status.value == "converged" and res.info["model"] == "pendulum"
    assert abs(res.objective - ref.objective) <= 1e-12 * abs(ref.objective)
    assert np.abs(res.theta - ref.theta).max() <= 1e-7
    assert np.abs(forward_backward(p, res.theta)[2]).max() <= 1e-12
    # IPOPT's own objective is J evaluated by CasADi: the same number to round-off
    assert abs(res.info["ipopt_objective"] - res.objective) <= 1e-12 * abs(res.objective)


def _expression_pendulum(**kw):
    import sympy as sp

    from problems.expressions import from_expressions
    th, om, u = sp.symbols("th om u")
    g, length, mass, b = sp.symbols("g l mass b")
    f = [om, -g / length * sp.sin(th) - b * om + u / (mass * length ** 2)]
    L = (sp.Rational(1, 2) * ((th - sp.pi) ** 2 + sp.Rational(1, 10) * om ** 2)
         + sp.Rational(1, 20) * u ** 2)
    Phi = sp.Rational(1, 2) * (10 * (th - sp.pi) ** 2 + om ** 2)
    return from_expressions(f, L, Phi, [0.0, 0.0], 2.0, 40, x=[th, om], u=[u],
                            params={g: 9.81, length: 1.0, mass: 1.0, b: 0.1}, **kw)


def test_sympy_route_matches_hand_written_pendulum_and_respects_bounds():
    from solvers.ipopt import solve_ipopt
    p = _expression_pendulum()
    res = solve_ipopt(p)
    hand = solve_ipopt(pendulum(task="swing-up"))
    assert res.info["model"] == "expressions (euler)"
    assert np.abs(res.theta - hand.theta).max() <= 1e-10
    assert abs(res.objective - hand.objective) <= 1e-12 * abs(hand.objective)
    # rk4 steps, two substeps: the problem's own adjoint gradient vanishes at IPOPT's θ.
    # tol 1e-12: IPOPT's test bounds the defects x_{k+1} - f_k(x_k, u_k), which the unstable
    # swing-up amplifies into the reduced gradient (measured 4e-9 at tol 1e-10, 6e-13 here)
    q = _expression_pendulum(integrator="rk4", substeps=2)
    r = solve_ipopt(q, tol=1e-12)
    assert r.status.value == "converged" and r.info["model"] == "expressions (rk4)"
    assert np.abs(forward_backward(q, r.theta)[2]).max() <= 1e-10
    # box bounds |u| <= 3 (the unbounded swing-up needs larger torques)
    bq = _expression_pendulum(lo=-3.0, hi=3.0)
    rb = solve_ipopt(bq)
    assert rb.status.value == "converged"
    th, g = rb.theta, forward_backward(bq, rb.theta)[2]
    assert th.min() >= -3.0 and th.max() <= 3.0
    lower, upper = th <= -3.0 + 1e-7, th >= 3.0 - 1e-7
    free = ~(lower | upper)
    assert lower.any() and upper.any()
    assert np.abs(g[free]).max() <= 1e-8
    assert g[lower].min() >= -1e-8 and g[upper].max() <= 1e-8


def test_compare_row_and_cli(capsys):
    from wavecontrol.cli import main
    doc = compare_methods(lqr(), methods="lbfgs,ipopt")
    row = {r["method"]: r for r in doc["methods"]}["ipopt"]
    assert row["status"] == "converged" and row["iteration_unit"] == "IPOPT iterations"
    assert abs(row["reference_gap"]) <= 1e-12 and row["grad_norm"] <= 1e-12
    assert row["info"]["ipopt_status"] == "Solve_Succeeded"
    skipped = {r["method"]: r for r in compare_methods(
        mlp(widths=(2, 3, 3), n_samples=6), methods=["ipopt"])["methods"]}["ipopt"]
    assert skipped["status"] == "skipped" and "batch = 1" in skipped["reason"]
    assert main(["compare", "lqr", "--methods", "ipopt", "--set", "N=6"]) == 0
    out = capsys.readouterr().out
    assert "ipopt    converged" in out


def test_bad_input():
    from solvers.ipopt import casadi_model, solve_ipopt
    p = lqr(N=4)
    with pytest.raises(ValueError, match="unknown transcription 'collocation'; valid: "
                                         "multiple-shooting, single-shooting"):
        solve_ipopt(p, transcription="collocation")
    with pytest.raises(ValueError, match="tol"):
        solve_ipopt(p, tol=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        solve_ipopt(p, max_iter=0)
    with pytest.raises(ValueError, match="options must be a dict"):
        solve_ipopt(p, options=["tol"])
    with pytest.raises(ValueError, match="theta0 must have shape"):
        solve_ipopt(p, theta0=np.zeros(3))
    with pytest.raises(ValueError, match="has no CasADi transcription"):
        casadi_model(mlp(widths=(2, 3, 3), n_samples=6, batch=1))
    # an iteration budget that runs out is max_steps, not converged
    res = solve_ipopt(pendulum(task="swing-up"), max_iter=2)
    assert res.status.value == "max_steps" and "Maximum_Iterations_Exceeded" in res.message
