"""The command line: JSON schema of ``solve``, errors as exit status 2, ``verify``, ``demo``."""

import json

import numpy as np
import pytest

from problems import lqr
from solvers.riccati import discrete_riccati
from wavecontrol.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_solve_json_schema_and_values(capsys):
    code, out, err = run(capsys, "solve", "lqr", "--json", "--tol", "1e-11", "--eta", "0.02")
    doc = json.loads(out)  # stdout holds one JSON document and nothing else
    assert code == 0 and doc["status"] == "converged" and doc["success"] is True
    for key in ("problem", "formulation", "scheme", "courant", "status", "success", "steps",
                "residuals", "objective", "reference", "energy", "wall_s"):
        assert key in doc
    assert set(doc["residuals"]) == {"x", "lambda", "theta"}
    assert set(doc["reference"]["error"]) == {"x", "lambda", "theta"}
    assert set(doc["energy"]) >= {"V_initial", "V_final", "ledger_max_rel_error"}
    # residuals below tol at convergence; distance to Riccati ~ tol / smallest curvature
    # (0.01), so 1e-8 has a 10x margin
    assert max(doc["residuals"].values()) <= 1e-11
    assert max(doc["reference"]["error"].values()) <= 1e-8
    assert doc["energy"]["ledger_max_rel_error"] <= 1e-10
    assert "solution" not in doc


def test_solve_set_and_full(capsys):
    code, out, _ = run(capsys, "solve", "lqr", "--set", "A=[[0,1],[2,0]]", "--set", "N=10",
                       "--json", "--full", "--steps", "50", "--eta", "0.01")
    doc = json.loads(out)
    assert code == 1 and doc["status"] == "max_steps" and doc["steps"] == 50
    x = np.array(doc["solution"]["x"])
    assert x.shape == (1, 11, 2)
    # the reference is the Riccati solution of the modified problem, not of the default one
    ref = discrete_riccati(lqr(A=[[0, 1], [2, 0]], N=10))
    assert doc["reference"]["objective"] == pytest.approx(ref.objective, rel=1e-12)


@pytest.mark.parametrize("argv, pattern", [
    (["--courant", "1.5"], "courant 1.5 is outside the stable range"),
    (["--set", "R=0"], "R must be positive definite"),
    (["--set", "A=[[0,1]]"], "A must be square"),
    (["--set", "A=[[0,1],[0,0]"], "not valid JSON"),
    (["--set", "foo=1"], "unknown lqr parameter"),
    (["--eta", "-1"], "eta must be"),
    (["--metric", "0"], "singular"),
])
def test_solve_bad_input_exits_2_with_message(capsys, argv, pattern):
    code, out, err = run(capsys, "solve", "lqr", "--steps", "10", *argv)
    assert code == 2 and out == ""
    assert pattern in err


def test_unknown_scheme_lists_valid_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["solve", "lqr", "--scheme", "weno"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "upwind" in err and "lax-wendroff" in err and "characteristic" in err


def test_allow_unstable_runs_to_divergence(capsys):
    code, out, _ = run(capsys, "solve", "lqr", "--courant", "1.6", "--allow-unstable", "--json",
                       "--eta", "0.01", "--steps", "100000")
    doc = json.loads(out)
    assert code == 1 and doc["status"] == "diverged"
    assert doc["diverged_at"] == doc["steps"] + 1 > 1
    assert all(np.isfinite(v) for v in doc["residuals"].values())


def test_verify_json_subset(capsys):
    code, out, _ = run(capsys, "verify", "--json", "--suite", "twin", "--suite", "ledger")
    doc = json.loads(out)
    assert code == 0 and doc["passed"] is True
    assert len(doc["checks"]) > 10
    for c in doc["checks"]:
        assert set(c) >= {"name", "passed", "value", "bound"}
        assert c["passed"] and c["value"] <= c["bound"]


def test_demo_writes_energy_figure(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path))
    png = tmp_path / "energy_balance.png"
    assert code == 0 and png.exists()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "converged" in out and "ledger closes" in out
    # the demo also writes the stability figure; on the default LQR prediction and experiment
    # agree everywhere on the quick grids (no disagreement: docs/findings.md)
    assert (tmp_path / "fig_stability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.count("disagree on 0,") == 2


def test_figures_command_writes_the_named_figure(tmp_path, capsys):
    code, out, _ = run(capsys, "figures", "--quick", "--only", "energy", "--out", str(tmp_path))
    assert code == 0 and (tmp_path / "energy_balance.png").exists()
    assert "energy" in out
    code, _, err = run(capsys, "figures", "--only", "nope", "--out", str(tmp_path))
    assert code == 2 and "unknown figure" in err
