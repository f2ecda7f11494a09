"""``wavecontrol solve`` on every registered problem (problem flags, ports, references) and
``wavecontrol compare``: JSON schemas, agreement with exact references, input errors (exit 2).

Every number is checked against an exact reference: the problem factory called directly (same
arithmetic: equal), a forward pass of the returned θ (equal to round-off), the discrete Riccati
solution with a bound from the gradient and the smallest curvature of J, or the continuous
Riccati cost. Problems are kept small (LQR N ≤ 10, pendulum N = 6, MLPs of ~20 parameters) so
that the file runs in seconds; the wave runs here use the NumPy twin (``--backend numpy`` or a
port the kernels do not compile), so that the file never waits for numba to compile the fused
kernels (~45 s on a cold cache; tests/test_cli.py runs the compiled path).
"""

import json

import numpy as np
import pytest

from problems import get_problem, lqr, mlp, neural_ode
from solvers.lbfgs import solve_lbfgs
from solvers.riccati import continuous_riccati, discrete_riccati
from wavecontrol.cli import main
from wavecontrol.ports import curvature_matrix

EPS = np.finfo(float).eps

#: tiny instances of every registered problem (as --set / flag arguments)
SMALL = {
    "lqr": ["--set", "N=4", "--backend", "numpy"],
    "pendulum": ["--set", "N=6", "--set", "T=0.3"],
    "neural-ode": ["--set", "N=2", "--set", "n_samples=8", "--set", "augment=1"],
    "mlp": ["--widths", "2,3,3", "--set", "n_samples=9"],
}
#: the keys of solve --json before this change; they must all still be there
SOLVE_KEYS = {"problem", "formulation", "scheme", "courant", "status", "success", "steps",
              "residuals", "objective", "reference", "energy", "eta", "diverged_at", "message",
              "wall_s", "compile_s"}
ROW_KEYS = {"method", "status", "reason", "objective", "iterations", "iteration_unit", "wall_s",
            "compile_s", "grad_norm", "residual_norm", "residuals", "objective_gap", "theta_gap",
            "reference_gap", "message", "info"}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def small_problem(name):
    """The problem SMALL[name] describes, built by the factory itself."""
    params = {"lqr": {"N": 4}, "pendulum": {"N": 6, "T": 0.3},
              "neural-ode": {"N": 2, "n_samples": 8, "augment": 1},
              "mlp": {"widths": [2, 3, 3], "n_samples": 9}}[name]
    return get_problem(name, **params)


# -- solve ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SMALL))
def test_solve_json_on_every_problem(capsys, name):
    """30 τ-steps (not converged: exit 1) of each problem. The reported objective and residuals
    equal a forward pass and the residual operators applied to the returned fields (same
    arithmetic: 1e-14 relative covers a different BLAS path); the reference is Riccati for LQR
    (equal to discrete_riccati, 1e-12), L-BFGS for the pendulum (the same deterministic run:
    equal to 1e-12), and none with a reason for the networks."""
    code, out, err = run(capsys, "solve", name, *SMALL[name], "--steps", "30", "--json",
                         "--full", "--port", "gd")
    doc = json.loads(out)
    assert code == 1 and doc["status"] == "max_steps" and doc["steps"] == 30
    assert SOLVE_KEYS | {"port", "solution"} <= set(doc)
    problem = small_problem(name)
    x, lam, theta = (np.array(doc["solution"][k]) for k in ("x", "lambda", "theta"))
    assert x.shape == lam.shape == (problem.batch, problem.N + 1, problem.n)
    assert doc["objective"] == pytest.approx(problem.objective(theta), rel=1e-14)
    r = problem.residuals(x, lam, theta)
    for key, ri in zip(("x", "lambda", "theta"), r):
        assert doc["residuals"][key] == pytest.approx(np.abs(ri).max(), rel=1e-14, abs=1e-300)
    assert doc["port"]["name"] == "gd" and doc["port"]["eta"] == doc["eta"] > 0
    ref = doc["reference"]
    if name == "lqr":
        exact = discrete_riccati(problem)
        assert ref["name"] == "discrete-riccati" and ref["exact"] is True
        assert ref["objective"] == pytest.approx(exact.objective, rel=1e-12)
        assert ref["error"]["theta"] == pytest.approx(np.abs(theta - exact.theta).max(),
                                                      rel=1e-12)
    elif name == "pendulum":
        lb = solve_lbfgs(problem, tol=1e-10)
        assert ref["name"] == "lbfgs" and ref["exact"] is False and ref["converged"] is True
        assert ref["grad_norm"] <= 1e-10
        assert ref["objective"] == pytest.approx(lb.objective, rel=1e-12)
        assert ref["error"]["theta"] == pytest.approx(np.abs(theta - lb.theta).max(), rel=1e-9)
    else:
        assert ref is None and "network" in doc["reference_reason"]


def test_solve_problem_flags_reach_the_problem(capsys):
    """--widths, --seed, --batch, --dataset set the parameters of those names: with 0 τ-steps
    the run returns θ0 and x_in, which must equal (exactly: same seeded generators) those of
    the problem the factory builds from the same parameters."""
    code, out, _ = run(capsys, "solve", "mlp", "--widths", "2,5,3", "--seed", "3", "--batch",
                       "8", "--dataset", "spirals", "--set", "n_samples=12", "--steps", "0",
                       "--json", "--full")
    doc = json.loads(out)
    ref = mlp(widths=[2, 5, 3], seed=3, batch=8, dataset="spirals", n_samples=12)
    x, theta = np.array(doc["solution"]["x"]), np.array(doc["solution"]["theta"])
    assert code == 1 and x.shape == (8, 3, 5)
    assert np.array_equal(theta, ref.theta0) and np.array_equal(x[:, 0], ref.x_in)
    assert doc["objective"] == pytest.approx(ref.objective(ref.theta0), rel=1e-14)
    # another seed gives other weights: the flag is not ignored
    assert not np.array_equal(theta, mlp(widths=[2, 5, 3], seed=4, batch=8, n_samples=12,
                                         dataset="spirals").theta0)

    code, out, _ = run(capsys, "solve", "neural-ode", "--dataset", "xor", "--seed", "1",
                       "--batch", "6", "--set", "N=3", "--set", "n_samples=12", "--steps", "0",
                       "--json", "--full")
    doc = json.loads(out)
    ref = neural_ode(dataset="xor", seed=1, batch=6, N=3, n_samples=12)
    x, theta = np.array(doc["solution"]["x"]), np.array(doc["solution"]["theta"])
    assert np.array_equal(theta, ref.theta0) and np.array_equal(x[:, 0], ref.x_in)


def _exact_gap_bound(problem, theta):
    """(‖∇J(θ)‖₂, smallest eigenvalue μ of ∇²J) for a quadratic J: then
    J(θ) − J* ≤ ‖∇J‖²/(2μ) and ‖θ − θ*‖₂ ≤ ‖∇J‖/μ exactly (strong convexity)."""
    g = np.linalg.norm(problem.gradient(theta))
    mu = np.linalg.eigvalsh(curvature_matrix(problem)).min()
    return g, mu


def test_solve_newton_port_converges_to_riccati(capsys):
    """The Newton port on LQR N = 5 to tol 1e-9. Against Riccati, with g the exact gradient at
    the returned θ and μ the smallest curvature (0.059): max|θ − θ*| ≤ g/μ and
    J − J* ≤ g²/(2μ), plus 16 eps |J| for the round-off of two evaluations of J."""
    code, out, _ = run(capsys, "solve", "lqr", "--set", "N=5", "--port", "newton",
                       "--port-param", "structure=full", "--tol", "1e-9", "--json", "--full")
    doc = json.loads(out)
    assert code == 0 and doc["status"] == "converged"
    assert doc["port"]["name"] == "newton" and doc["port"]["structure"] == "full"
    assert doc["eta"] is None              # eta is the gd port's; kept in the schema as null
    problem = lqr(N=5)
    theta = np.array(doc["solution"]["theta"])
    g, mu = _exact_gap_bound(problem, theta)
    exact = discrete_riccati(problem)
    assert doc["reference"]["error"]["theta"] <= g / mu * (1 + 1e-6) + 1e-14
    assert 0 <= doc["objective"] - exact.objective + 16 * EPS * abs(exact.objective)
    assert doc["objective"] - exact.objective <= g * g / (2 * mu) + 16 * EPS * exact.objective


def test_solve_port_parameters_are_passed(capsys):
    """--port-param eta=0.02 is the same run as --eta 0.02 (bit for bit: both are the resistive
    port with that gain), and the momentum port reports the resistance and inductance given."""
    base = ["solve", "lqr", "--set", "N=4", "--steps", "200", "--json", "--backend", "numpy"]
    _, out_a, _ = run(capsys, *base, "--eta", "0.02")
    _, out_b, _ = run(capsys, *base, "--port-param", "eta=0.02")
    a, b = json.loads(out_a), json.loads(out_b)
    for doc in (a, b):
        del doc["reference"]["wall_s"]
    for key in ("objective", "residuals", "steps", "reference", "energy", "eta", "port"):
        assert a[key] == b[key]
    code, out, _ = run(capsys, *base, "--port", "momentum", "--port-param", "resistance=50",
                       "--port-param", "inductance=10", "--full")
    doc = json.loads(out)
    assert code == 1 and doc["port"] == {"name": "momentum", "resistance": 50.0,
                                         "inductance": 10.0}
    theta = np.array(doc["solution"]["theta"])
    assert doc["objective"] == pytest.approx(lqr(N=4).objective(theta), rel=1e-14)


@pytest.mark.parametrize("command", ["solve", "compare"])
@pytest.mark.parametrize("argv, pattern", [
    (["lqr", "--widths", "2,3"], "--widths does not apply to problem 'lqr'"),
    (["lqr", "--batch", "2"], "--batch does not apply to problem 'lqr'"),
    (["pendulum", "--seed", "1"], "--seed does not apply to problem 'pendulum'"),
    (["neural-ode", "--widths", "4,4"], "--widths does not apply to problem 'neural-ode'"),
    (["mlp", "--seed", "1", "--set", "seed=2"], "seed is given twice"),
    (["mlp", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["nope"], "unknown problem 'nope'; valid: lqr, pendulum, neural-ode, mlp"),
    (["lqr", "--port", "newton", "--eta", "0.1"], "--eta is the gain of the gd port"),
    (["lqr", "--port", "newton", "--port-param", "foo=1"],
     "unknown parameter(s) ['foo'] of port 'newton'; valid: gain, damping"),
    (["lqr", "--eta", "0.1", "--port-param", "eta=0.2"], "gain is given twice"),
    (["lqr", "--port", "adaptive", "--port-param", "decay=2"], "decay must be"),
    (["lqr", "--port-param", "eta"], "--port-param expects KEY=VALUE"),
])
def test_bad_problem_or_port_input_exits_2(capsys, command, argv, pattern):
    """Refused before anything runs: exit 2, nothing on stdout, one line naming the flag."""
    code, out, err = run(capsys, command, *argv, "--steps", "5")
    assert code == 2 and out == ""
    assert pattern in err and err.count("\n") == 1


def test_unknown_port_and_bad_widths_are_argparse_errors(capsys):
    for argv in (["--port", "nope"], ["--widths", "2,x"]):
        with pytest.raises(SystemExit) as exc:
            main(["solve", "mlp", *argv])
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "gd" in err and "newton" in err and "momentum" in err and "adaptive" in err
    assert "comma list of integers" in err


# -- compare ----------------------------------------------------------------------------------
def test_compare_lqr_all_methods_agree_with_riccati(capsys):
    """All five methods on LQR N = 10 at tol 1e-10 (wave with the Newton port: ~1700 τ-steps).

    wave, sweep, lbfgs, backprop: J − J* ≤ d g²/(2μ) + 64 eps |J| with g the reported max-abs
    exact gradient (d = 10 controls, μ = 0.022 the smallest curvature: the first term is
    ~2e-18) and 64 eps |J| (1e-14) for the round-off of two evaluations of J, each a sum over
    10 layers; and J ≥ J* up to that round-off (J* is the minimum).
    bvp solves the continuous problem: its continuous cost must equal the continuous Riccati
    cost to 1e-6 relative (solve_bvp's collocation tolerance is 1e-8; measured 1e-12), and its
    discrete objective (of the sampled continuous controls) must be ≥ J*.
    """
    code, out, err = run(capsys, "compare", "lqr", "--set", "N=10", "--port", "newton",
                         "--json")
    doc = json.loads(out)
    problem = lqr(N=10)
    exact = discrete_riccati(problem)
    mu = np.linalg.eigvalsh(curvature_matrix(problem)).min()
    assert code == 0 and doc["all_converged"] is True and err == ""
    assert doc["reference"]["name"] == "discrete-riccati"
    assert doc["reference"]["objective"] == pytest.approx(exact.objective, rel=1e-14)
    rows = {r["method"]: r for r in doc["methods"]}
    assert list(rows) == ["wave", "sweep", "lbfgs", "bvp", "backprop"]
    roundoff = 64 * EPS * exact.objective
    for name in ("wave", "sweep", "lbfgs", "backprop"):
        r = rows[name]
        assert set(r) == ROW_KEYS and r["status"] == "converged" and r["reason"] is None
        assert r["grad_norm"] <= 2e-10 and r["residual_norm"] <= 1e-10
        bound = problem.N * r["grad_norm"] ** 2 / (2 * mu) + roundoff
        assert -roundoff <= r["objective"] - exact.objective <= bound
        assert r["reference_gap"] == r["objective"] - doc["reference"]["objective"]
    assert rows["wave"]["iteration_unit"] == "tau-steps" and rows["wave"]["iterations"] > 0
    assert rows["wave"]["info"]["port"]["name"] == "newton"
    bvp = rows["bvp"]
    cont = continuous_riccati(problem.continuous, [0.0, problem.T])["cost"]
    assert bvp["status"] == "converged"
    assert bvp["info"]["continuous_cost"] == pytest.approx(cont, rel=1e-6)
    assert bvp["objective"] > exact.objective
    best = min(r["objective"] for r in rows.values())
    assert doc["best"]["objective"] == best and rows[doc["best"]["method"]]["theta_gap"] == 0
    for r in rows.values():
        assert r["objective_gap"] == r["objective"] - best >= 0


def test_compare_table_for_people(capsys):
    """The text table lists each method with the objective the JSON gives (same run settings,
    deterministic methods: equal when printed to 12 digits) and the exact reference."""
    argv = ["compare", "lqr", "--set", "N=4", "--methods", "lbfgs,bvp"]
    code, out, err = run(capsys, *argv)
    assert code == 0 and "... lbfgs" in err
    exact = discrete_riccati(lqr(N=4)).objective
    assert f"discrete-riccati (exact), objective {exact:.12g}" in out
    _, js, _ = run(capsys, *argv, "--json")
    for r in json.loads(js)["methods"]:
        line = next(ln for ln in out.splitlines() if ln.startswith(r["method"] + " "))
        assert r["status"] in line and f"{r['objective']:.12g}" in line
    assert "continuous cost" in out


def test_compare_network_skips_bvp(capsys):
    """On an MLP bvp does not apply: skipped with the reason, every measured field null, not an
    error. The methods that cannot raise J (the sweep rejects a rise; L-BFGS's line search
    demands a decrease) end at or below J(θ0) of the factory's problem (round-off: 1e-13)."""
    code, out, _ = run(capsys, "compare", "mlp", *SMALL["mlp"], "--methods",
                       "wave,sweep,lbfgs,bvp", "--steps", "40", "--json")
    doc = json.loads(out)
    rows = {r["method"]: r for r in doc["methods"]}
    assert code == (0 if doc["all_converged"] else 1)
    skipped = rows["bvp"]
    assert skipped["status"] == "skipped" and "continuous-time form" in skipped["reason"]
    assert all(skipped[k] is None for k in ROW_KEYS - {"method", "status", "reason",
                                                      "iteration_unit"})
    assert doc["reference"] is None and "no exact discrete solution" in doc["reference_reason"]
    problem = small_problem("mlp")
    J0 = problem.objective(problem.theta0)
    for name in ("sweep", "lbfgs"):
        assert rows[name]["objective"] <= J0 * (1 + 1e-13)
        assert rows[name]["iterations"] <= 40
    assert rows["wave"]["iterations"] == 40 and np.isfinite(rows["wave"]["objective"])


@pytest.mark.parametrize("argv, pattern", [
    (["--methods", "wave,newton"],
     "unknown method(s) ['newton']; valid: wave, sweep, lbfgs, bvp, backprop"),
    (["--methods", "lbfgs,lbfgs"], "listed more than once"),
    (["--steps", "0"], "max_steps must be an integer >= 1"),
    (["--tol", "0"], "tol must be a finite number > 0"),
    (["--set", "N=[1"], "not valid JSON"),
])
def test_compare_bad_input_exits_2(capsys, argv, pattern):
    code, out, err = run(capsys, "compare", "lqr", "--set", "N=4", *argv)
    assert code == 2 and out == ""
    assert pattern in err


@pytest.mark.parametrize("name, cones", [("lqr", 1), ("pendulum", 3)])
def test_solve_defaults_to_the_matched_port_on_control_problems(capsys, name, cones):
    """Without --port a control problem takes the matched port and converges within a few light
    cones 2N/ν (LQR: one cone, the τ-step map is nilpotent at ν = 1; pendulum stabilize:
    94 τ-steps, 2.35 cones, measured)."""
    code, out, err = run(capsys, "solve", name, "--json")
    doc = json.loads(out)
    from problems import get_problem
    N = get_problem(name).N
    assert code == 0 and doc["status"] == "converged", doc["message"]
    assert doc["port"]["name"] == "matched"
    assert doc["steps"] <= cones * 2 * N + 2
