"""The library's classic benchmarks (cart-pole, Van der Pol, unicycle): built through the
expression path, registered, derivatives checked, and the wave solver at the same local optimum
as L-BFGS."""

import numpy as np
import pytest

from problems import PROBLEMS, cartpole, get_problem, unicycle, vanderpol
from problems.expressions import CACHE_ENV, ExpressionProblem, check_derivatives
from solvers.lbfgs import solve_lbfgs
from solvers.wave import solve
from wavecontrol.result import Status


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "codegen"))


@pytest.mark.parametrize("name", ["cartpole", "vanderpol", "unicycle"])
def test_registered_and_derivatives_check(name):
    p = get_problem(name)
    assert isinstance(p, ExpressionProblem) and p.name == name and name in PROBLEMS
    assert max(check_derivatives(p).values()) <= 1e-6
    assert p.config()["expressions"]["f"]


def test_classic_statements():
    """The defaults of the cited statements (docs/problems.md)."""
    c = cartpole()
    assert (c.n, c.m, c.N, c.T, c.integrator) == (4, 1, 40, 2.0, "rk4")
    assert c.bounds[0][0] == -20.0 and c.bounds[1][0] == 20.0
    v = vanderpol()
    assert (v.n, v.m, v.N, v.T, v.integrator, v.substeps) == (2, 1, 20, 10.0, "rk4", 4)
    assert v.bounds[0][0] == -1.0 and v.bounds[1][0] == 1.0
    u = unicycle()
    assert (u.n, u.m, u.N, u.dt, u.integrator, u.bounds) == (3, 2, 20, 0.1, "euler", None)
    assert np.array_equal(u.x_in[0], [-1.0, -1.0, 1.0])


@pytest.mark.parametrize("make, kwargs", [
    (vanderpol, dict(u_min=None, u_max=None)),
    (unicycle, {}),
    (cartpole, dict(u_max=None, N=20, wf=10.0)),
])
def test_matched_wave_and_lbfgs_reach_the_same_optimum(make, kwargs):
    """Wave (matched port, NumPy step, residuals ≤ 1e-10) and L-BFGS (max|∇J| ≤ 1e-10) from the
    same θ0: objectives within 1e-8 relative (measured ≤ 2e-16) and θ within 1e-6. Measured
    τ-steps: Van der Pol 60, unicycle 74, cart-pole (wf = 10, N = 20, with its matched_settings:
    Newton model, ramp 200) 323. The default cart-pole (wf = 1000) is
    tests/wavecontrol/test_matched_newton.py's."""
    p = make(**kwargs)
    ref = solve_lbfgs(p, tol=1e-10)
    assert ref.status is Status.CONVERGED
    r = solve(p, port="matched", backend="numpy", tol=1e-10, max_steps=2000)
    assert r.status is Status.CONVERGED, r.message
    assert abs(r.objective - ref.objective) <= 1e-8 * abs(ref.objective)
    assert np.abs(r.theta - ref.theta).max() <= 1e-6


def test_vanderpol_bound_is_active_and_lbfgs_b_respects_it():
    """With the example's −1 ≤ u ≤ 1 the bound is active at the optimum (one layer at N = 20):
    L-BFGS-B stops on the projected gradient, the bounded J is above the unbounded one."""
    p = vanderpol()
    r = solve_lbfgs(p, tol=1e-9)
    assert r.status is Status.CONVERGED
    lo, hi = p.bounds
    assert r.theta.min() >= -1.0 and r.theta.max() <= 1.0
    at = (r.theta <= lo + 1e-9) | (r.theta >= hi - 1e-9)
    assert at.sum() >= 1
    assert r.residuals["theta"] <= 1e-9
    free = solve_lbfgs(vanderpol(u_min=None, u_max=None), tol=1e-9)
    assert free.objective < r.objective


@pytest.mark.parametrize("make, bad, match", [
    (cartpole, dict(m1=0.0), "m1 must be a finite number > 0"),
    (cartpole, dict(u_max=-1.0), "u_max must be a finite number > 0"),
    (unicycle, dict(target=[0.0, 0.0]), "target must be 3 finite numbers"),
    (unicycle, dict(qf=-1.0), "qf must be a finite number >= 0"),
    (vanderpol, dict(integrator="rk3"), "unknown integrator"),
])
def test_bad_parameters(make, bad, match):
    with pytest.raises(ValueError, match=match):
        make(**bad)


def test_run_file_keeps_the_expressions_and_show_and_plot_read_it(tmp_path, capsys):
    """The run file's config attribute holds the formulas as text; show prints them, plot
    draws from the file."""
    from wavecontrol.cli import main
    from wavecontrol.storage import open_run

    path = tmp_path / "run.h5"
    r = solve(unicycle(), port="matched", backend="numpy", tol=1e-10, max_steps=500, out=path)
    assert r.status is Status.CONVERGED
    stored = open_run(path).config["problem"]["expressions"]
    assert stored["f"] == ["v*cos(phi)", "v*sin(phi)", "omega"]
    assert stored["x"] == ["px", "py", "phi"] and stored["integrator"] == "euler"
    assert main(["show", str(path)]) == 0
    assert "v*cos(phi)" in capsys.readouterr().out
    assert main(["plot", str(path), "--kind", "residuals", "--out",
                 str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").stat().st_size > 0


def test_compare_on_expression_problems():
    """compare runs wave and lbfgs on a generated problem (same optimum, 1e-8 relative); on a
    bounded one sweep and backprop are skipped with the reason."""
    from solvers.compare import compare_methods

    doc = compare_methods(vanderpol(u_min=None, u_max=None), methods=("wave", "lbfgs"),
                          wave={"port": "matched", "backend": "numpy"})
    rows = {r["method"]: r for r in doc["methods"]}
    assert all(r["status"] == "converged" for r in rows.values())
    assert abs(rows["wave"]["objective_gap"]) <= 1e-8 * abs(rows["lbfgs"]["objective"])
    doc = compare_methods(vanderpol(), methods=("lbfgs", "sweep", "backprop"))
    rows = {r["method"]: r for r in doc["methods"]}
    assert rows["lbfgs"]["status"] == "converged" and rows["lbfgs"]["grad_norm"] <= 1e-10
    for m in ("sweep", "backprop"):
        assert rows[m]["status"] == "skipped" and "control bounds" in rows[m]["reason"]
