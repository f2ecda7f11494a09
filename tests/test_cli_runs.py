"""The command line with run files: ``solve --out/--resume``, ``show``, ``plot``, Ctrl-C, and
bad files as exit status 2 with one line on stderr.

Numbers shown or reported are compared exactly: they travel as float64 through the file and as
shortest round-trip decimals through JSON.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from wavecontrol.cli import main
from wavecontrol.storage import open_run

ROOT = Path(__file__).resolve().parents[1]
SOLVE = ["solve", "lqr", "--set", "N=4", "--eta", "0.02", "--tol", "0", "--record-every", "10",
         "--snapshot-every", "100", "--backend", "numpy"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def stored(tmp_path, capsys):
    """A 300-step run kept in a file, and its JSON report."""
    path = tmp_path / "run.h5"
    code, out, err = run(capsys, *SOLVE, "--steps", "300", "--out", path, "--json")
    assert code == 1 and err == ""          # max_steps: not converged
    return path, json.loads(out)


def test_solve_out_and_show_json(stored, capsys):
    path, doc = stored
    assert doc["out"] == str(path) and doc["steps"] == 300 and doc["status"] == "max_steps"
    code, out, err = run(capsys, "show", path, "--json")
    s = json.loads(out)
    assert code == 0 and err == ""
    assert s["status"] == "max_steps" and s["complete"] and s["steps"] == 300
    assert s["objective"] == doc["objective"] and s["residuals"] == doc["residuals"]
    assert s["ledger_max_rel_error"] == doc["energy"]["ledger_max_rel_error"]
    assert s["V_final"] == doc["energy"]["V_final"]
    assert s["history_rows"] == 30 and s["record_every"] == 10
    assert s["snapshots"] == 4 and s["snapshot_every"] == 100
    assert s["reflection_rows"] == 30        # the NumPy backend records the port's reflection
    assert s["field_shape"] == [1, 5, 2] and s["theta_shape"] == [4, 1]
    assert s["problem"]["name"] == "lqr" and s["problem"]["N"] == 4
    assert s["solver"]["port"] == {"name": "gd", "eta": 0.02}
    assert s["format"] == "wavecontrol-run" and s["file_bytes"] == path.stat().st_size


def test_show_text(stored, capsys):
    path, doc = stored
    code, out, err = run(capsys, "show", path)
    assert code == 0 and err == ""
    lines = {line[:12].strip(): line[13:] for line in out.splitlines()}
    assert set(lines) >= {"file", "problem", "solver", "run", "status", "steps", "residuals",
                          "objective", "energy", "stored"}
    assert lines["status"].startswith("max_steps: max_steps = 300 reached")
    assert lines["steps"].startswith("300 τ-steps")
    assert f"{doc['objective']:.12g}" in lines["objective"]
    assert "ledger closes to" in lines["energy"]
    assert ("30 history rows every 10 τ-steps; 4 snapshots of w+, w- every 100 τ-steps; port "
            "reflection in 30 history rows") in lines["stored"]
    assert "N=4" in lines["problem"] and "consistent formulation" in lines["solver"]


def test_plot_every_kind(stored, capsys, tmp_path):
    path, _ = stored
    for kind in ("energy", "worldsheet", "residuals", "reflection"):
        png = tmp_path / f"{kind}.png"
        code, out, err = run(capsys, "plot", path, "--kind", kind, "--out", png)
        assert code == 0 and out == f"wrote {png}\n" and err == ""
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_via_cli(stored, capsys, tmp_path):
    """300 steps then --resume to 500 equals 500 steps in one go (exact objective and
    residuals; the fields agree bitwise, see tests/wavecontrol/test_storage.py)."""
    path, _ = stored
    code, out, _ = run(capsys, *SOLVE, "--steps", "500", "--out", path, "--resume", "--json")
    resumed = json.loads(out)
    code2, out2, _ = run(capsys, *SOLVE, "--steps", "500", "--json", "--full")
    whole = json.loads(out2)
    assert code == code2 == 1 and resumed["steps"] == whole["steps"] == 500
    assert resumed["objective"] == whole["objective"]
    assert resumed["residuals"] == whole["residuals"]
    assert np.array_equal(open_run(path).final["theta"], np.array(whole["solution"]["theta"]))
    code, out, _ = run(capsys, "show", path)
    assert "resumed      at τ-step 300 (max_steps)" in out and "max_steps 300 -> 500" in out


def _one_line_error(code, out, err, *needles):
    assert code == 2 and out == ""
    assert err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("command", ["show", "plot"])
@pytest.mark.parametrize("kind", ["missing", "text", "foreign", "truncated"])
def test_bad_file_exits_2(tmp_path, capsys, command, kind):
    path = tmp_path / "bad.h5"
    expected = {"missing": "no such run file", "text": "not an HDF5 file",
                "foreign": "not a wavecontrol run file", "truncated": "truncated or damaged"}
    if kind == "text":
        path.write_text("hello")
    elif kind == "foreign":
        with h5py.File(path, "w") as f:
            f["x"] = np.zeros(3)
    elif kind == "truncated":
        with h5py.File(path, "w") as f:
            f["x"] = np.zeros(10_000)
        with open(path, "r+b") as f:
            f.truncate(4000)
    extra = ["--out", tmp_path / "x.png"] if command == "plot" else []
    code, out, err = run(capsys, command, path, *extra)
    _one_line_error(code, out, err, f"wavecontrol {command}: error: {path}", expected[kind])
    assert not (tmp_path / "x.png").exists()


def test_plot_reflection_without_snapshots_exits_2(tmp_path, capsys):
    path = tmp_path / "run.h5"
    assert run(capsys, "solve", "lqr", "--set", "N=4", "--steps", "20", "--snapshot-every", "0",
               "--out", path, "--quiet", "--port", "gd")[0] == 1
    code, out, err = run(capsys, "plot", path, "--kind", "reflection", "--out",
                         tmp_path / "r.png")
    _one_line_error(code, out, err, "no reflection record")


def test_solve_out_errors(stored, capsys, tmp_path):
    path, _ = stored
    _one_line_error(*run(capsys, *SOLVE, "--steps", "10", "--out", path), "already exists")
    _one_line_error(*run(capsys, *SOLVE, "--steps", "10", "--resume"), "needs out=")
    _one_line_error(*run(capsys, *SOLVE, "--eta", "0.03", "--steps", "600", "--out", path,
                         "--resume"), "port.eta: stored 0.02 vs requested 0.03")
    # the backend may change on resume (it is how the run is computed, not what)
    code, out, _ = run(capsys, *SOLVE[:-2], "--backend", "numba", "--steps", "400", "--out",
                       path, "--resume", "--json")
    assert code == 1 and json.loads(out)["steps"] == 400
    _one_line_error(*run(capsys, *SOLVE, "--eta", "0.03", "--steps", "600", "--out", path,
                         "--resume"), "port.eta: stored 0.02 vs requested 0.03")


def test_progress_bar_on_a_tty_unless_quiet(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = run(capsys, *SOLVE, "--steps", "30")
    assert "τ-steps" in err and "30/30" in err and "residual" in err
    code, _, err = run(capsys, *SOLVE, "--steps", "30", "--quiet")
    assert err == ""
    code, out, err = run(capsys, *SOLVE, "--steps", "30", "--json")
    assert err == "" and json.loads(out)["steps"] == 30


def test_ctrl_c_ends_the_run_as_interrupted_with_the_file_intact(tmp_path):
    """SIGINT to `wavecontrol solve --out`: exit status 1, status interrupted, final fields and
    history in the file."""
    path = tmp_path / "run.h5"
    argv = [sys.executable, "-m", "wavecontrol.cli", *SOLVE, "--steps", "2000000",
            "--record-every", "50", "--out", str(path), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run file got no rows within 60 s"
            try:
                if len(open_run(path).history["step"]) >= 1:
                    break
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err.decode()
    assert b"status       interrupted: interrupted (Ctrl-C) at" in out
    run_ = open_run(path)
    assert run_.status == "interrupted" and run_.complete
    assert len(run_.history["step"]) == (run_.steps + 49) // 50
    assert np.array_equal(run_.final["theta"], run_.state["theta"])
