"""``wavecontrol stability``: the JSON document, the table, the figure, and bad input (exit 2).

Runs use lqr(N=3, R=1) with the NumPy backend and small step caps so that nothing compiles.
"""

import json

import numpy as np
import pytest

from problems import lqr
from solvers.wave import auto_eta
from wavecontrol import stability as st
from wavecontrol.cli import main
from wavecontrol.plotting import stability_figure

SMALL = ["--set", "N=3", "--set", "R=1", "--backend", "numpy"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_stability_json_schema_and_values(capsys):
    """One JSON document; per setting ν, η, α, ρ, transient growth, predicted steps, the run's
    status and steps and the agreement. ρ equals :func:`analyze` of the same step (the CLI and
    the API run the same code: equal), and η = auto is the driver's auto_eta (equal)."""
    code, out, err = run(capsys, "stability", "lqr", *SMALL, "--courant", "0.5,1.5",
                         "--max-steps", "400", "--n-max", "30", "--json")
    doc = json.loads(out)
    assert code == 0 and err == ""
    assert doc["problem"] == "lqr" and doc["settings"]["problem"]["N"] == 3
    assert set(doc) >= {"records", "disagreements", "marginal", "ranges", "summary"}
    p = lqr(N=3, R=1)
    for rec, nu in zip(doc["records"], (0.5, 1.5)):
        assert set(rec) >= {"courant", "eta", "alpha", "spectral_radius", "transient_growth",
                            "predicted_steps", "status", "steps", "agree", "verdict"}
        assert rec["courant"] == nu and rec["eta"] == auto_eta(p, nu) and rec["alpha"] is None
        sm = st.StepMap.from_settings(p, courant=nu, eta=rec["eta"])
        assert rec["spectral_radius"] == st.analyze(sm, n_max=30).spectral_radius
    stable, unstable = doc["records"]
    assert stable["verdict"] == "stable" and stable["status"] in ("converged", "max_steps")
    assert unstable["verdict"] == "unstable" and unstable["status"] == "diverged"
    assert unstable["predicted_steps"] is None and stable["predicted_steps"] > 0
    assert doc["summary"]["agree"] == 2 and doc["disagreements"] == []


def test_stability_range_spec_and_text_table(capsys):
    """``A:B:K`` gives K evenly spaced ν; the text output is the table and the summary."""
    code, out, err = run(capsys, "stability", "lqr", *SMALL, "--courant", "0.5:1.5:3",
                         "--eta", "auto,2*auto", "--predict-only", "--n-max", "20")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["nu", "eta", "alpha", "rho"]
    assert [float(line.split()[0]) for line in lines[1:7]] == [0.5, 0.5, 1.0, 1.0, 1.5, 1.5]
    assert "6 settings: 0 agree, 0 disagree, 0 marginal" in out
    assert err.count("... nu") == 6


def test_stability_paper_alpha_list(capsys):
    code, out, _ = run(capsys, "stability", "lqr", *SMALL, "--formulation", "paper",
                       "--courant", "1", "--alpha", "nu,0.1*nu", "--predict-only", "--json",
                       "--n-max", "20")
    doc = json.loads(out)
    assert code == 0
    assert [r["alpha"] for r in doc["records"]] == [1.0, 0.1]
    assert [r["alpha_spec"] for r in doc["records"]] == ["nu", "0.1*nu"]


@pytest.mark.parametrize("argv, pattern", [
    (["--courant", "1:2"], "courant: a range must read A:B:K"),
    (["--courant", "1:2:0"], "courant: K in A:B:K must be >= 1"),
    (["--courant", "0.5:1:x"], "courant: K in A:B:K must be an integer"),
    (["--courant=-1"], "courant: values must be >= 0"),
    (["--courant", "fast"], "courant: cannot parse 'fast'"),
    (["--eta", "-0.1"], "eta: values must be >= 0"),
    (["--alpha", "0.1"], "alpha: the source gain applies only to the paper formulation"),
    (["--set", "N=0"], "N must be"),
    (["--plot", "/nonexistent-folder/x.png"], "--plot: folder"),
])
def test_stability_bad_input_exits_2_with_message(capsys, argv, pattern):
    code, out, err = run(capsys, "stability", "lqr", *SMALL, "--predict-only", *argv)
    assert code == 2 and out == ""
    assert pattern in err and err.startswith("wavecontrol stability: error:")


def test_stability_unknown_scheme_lists_valid_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["stability", "lqr", "--scheme", "weno"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "upwind" in err and "lax-wendroff" in err and "characteristic" in err


def test_stability_plot_writes_the_figure(tmp_path, capsys):
    """--plot writes a PNG; the curve behind it is ρ − 1 of each record, and a second η per ν
    adds the (ν, η) map panel."""
    png = tmp_path / "stab.png"
    code, out, _ = run(capsys, "stability", "lqr", *SMALL, "--courant", "0.5,1.5",
                       "--max-steps", "100", "--n-max", "20", "--plot", str(png))
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in out
    res = st.stability_sweep(lqr(N=3, R=1), courants="0.5,1.5", etas="auto,3*auto",
                             auto_eta=auto_eta, run=False, n_max=20)
    fig = stability_figure(res.records, tmp_path / "map.png")
    ax, ax_map = fig.axes[:2]
    curves = [line for line in ax.get_lines() if line.get_label() and
              not line.get_label().startswith("_") and len(line.get_xdata()) == 2]
    want = {r["eta_spec"]: [] for r in res.records}
    for r in res.records:
        want[r["eta_spec"]].append(r["spectral_radius"] - 1)
    assert len(curves) == 2
    for line, spec in zip(curves, ("auto", "3*auto")):
        assert np.array_equal(line.get_ydata(), want[spec])
    assert "η / η_auto" in ax_map.get_ylabel()
    assert (tmp_path / "map.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="no stability records"):
        stability_figure([])
