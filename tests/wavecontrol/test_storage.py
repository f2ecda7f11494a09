"""Run files (``wavecontrol.storage``, ``solve(out=...)``): the HDF5 schema, the round trip, a
run killed with SIGKILL, resume bit-identical to an uninterrupted run, and the errors on
missing, foreign, truncated or mismatched files.

Every comparison of stored numbers is exact (``np.array_equal``, ``==``): the file keeps float64
bits, so a stored value either is the computed one or the storage is wrong. Resumed runs are
compared exactly as well: the driver is deterministic and chunk-invariant (a τ-step depends on
the fields alone), so a run continued from its stored fields repeats the same operations.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import wavecontrol
from problems import lqr
from solvers import recording
from solvers.wave import solve
from wavecontrol.formulations import energy
from wavecontrol.kernels import HIST_COLUMNS
from wavecontrol.metric import Metric
from wavecontrol.plotting import run_figure, worldsheet_figure
from wavecontrol.ports import ResistivePort
from wavecontrol.result import Status
from wavecontrol.storage import (FORMAT, RESUMABLE_KEYS, SCHEMA_VERSION, open_run,
                                 worldsheet_energy)

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["numba", "numpy"]


def _small():
    """Double integrator with N = 2, R = 1: converges (tol 1e-10) in 525 τ-steps."""
    return lqr(N=2, R=1.0)


def _assert_same_result(a, b):
    """Two WaveResults are the same run: fields, history, scalars all bit-identical."""
    assert a.status == b.status and a.steps == b.steps and a.message == b.message
    for name in ("x", "lam", "theta"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert set(a.history) == set(b.history)
    for key in a.history:       # NaN: a column the backend does not record (reflection)
        assert np.array_equal(a.history[key], b.history[key], equal_nan=True), key
    assert a.residuals == b.residuals and a.objective == b.objective
    assert a.ledger_max_rel_error == b.ledger_max_rel_error
    assert a.V_initial == b.V_initial and a.V_final == b.V_final


def _assert_same_file(p, q):
    """Two run files hold the same run (history, snapshots, final record, status)."""
    a, b = open_run(p), open_run(q)
    assert (a.status, a.steps, a.message) == (b.status, b.steps, b.message)
    for key in a.history:
        assert np.array_equal(a.history[key], b.history[key], equal_nan=True), key
    assert set(a.snapshots) == set(b.snapshots)
    for key in a.snapshots:
        assert np.array_equal(a.snapshots[key], b.snapshots[key], equal_nan=True), key
    for key in ("x", "lam", "theta"):
        assert np.array_equal(a.final[key], b.final[key]), key
    assert a.final["residuals"] == b.final["residuals"]


# ------------------------------------------------------------------------------------------
# schema and round trip
# ------------------------------------------------------------------------------------------
def test_schema(tmp_path):
    path = tmp_path / "run.h5"
    p = lqr(N=4)
    r = solve(p, port="gd", out=path, max_steps=120, tol=0.0, eta=0.02, record_every=5, snapshot_every=40,
              backend="numpy")
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format"] == FORMAT and a["schema_version"] == SCHEMA_VERSION
        assert a["wavecontrol_version"] == wavecontrol.__version__
        assert json.loads(a["config"]) == json.loads(json.dumps(r.config))
        assert a["state_fields"] == "x, lambda" and a["status"] == "max_steps"
        assert json.loads(a["progress"])["steps"] == 120
        # dimension scales: t (nodes) and tau (history and snapshots)
        t = f["t"]
        assert t.is_scale and np.array_equal(t[()], np.arange(5) * p.dt)
        h = f["history"]
        assert h["tau"].is_scale
        assert set(h) == set(r.history) and set(HIST_COLUMNS) <= set(h)
        for name in r.history:
            ds = h[name]
            assert ds.maxshape == (None,) and ds.shape == (24,)
            if name != "tau":
                assert ds.dims[0][0] == h["tau"] and ds.dims[0].label == "tau"
        s = f["snapshots"]
        assert s.attrs["fields"] == "w+, w-" and s["tau"].is_scale
        assert s["w_plus"].shape == (4, 1, 5, 2) and s["w_plus"].maxshape == (None, 1, 5, 2)
        assert s["w_plus"].dims[2][0] == t and s["w_minus"].dims[0][0] == s["tau"]
        assert s["reflection"].shape == (4, 4)
        assert np.array_equal(s["step"][()], [0, 40, 80, 120])
        assert set(f["state"]) == {"0", "1"} and set(f["final"]) == {"x", "lam", "theta"}
        assert set(f["state/0"]) == {"u", "v", "theta", "port"}
        assert np.array_equal(f["widths"][()], [2] * 5)
        assert np.array_equal(f["metric"][()], np.broadcast_to(np.eye(2), (5, 2, 2)))


@pytest.mark.parametrize("formulation", ["consistent", "paper"])
def test_round_trip(tmp_path, formulation):
    """What open_run reads is exactly what the run returned; the snapshots are w± (eq. 38) of
    the fields, and ½ Δt Σ_k (‖w+_k‖² + ‖w−_k‖²) is the V of the history at the same τ-step
    to 1e-13 relative (two summation orders of ≤ 20 positive terms: round-off ~1e-15)."""
    path = tmp_path / "run.h5"
    p = lqr(N=4)
    r = solve(p, port="gd", formulation=formulation, out=path, max_steps=90, tol=0.0, eta=0.02,
              record_every=1, snapshot_every=30, divergence_bound=1e100, backend="numpy")
    run = open_run(path)
    assert run.status == r.status.value and run.message == r.message and run.steps == 90
    assert run.complete and run.success is False and run.config == json.loads(
        json.dumps(r.config))
    assert set(run.history) == set(r.history)
    for key in r.history:
        assert np.array_equal(run.history[key], r.history[key], equal_nan=True), key
    for key in ("x", "lam", "theta"):
        assert np.array_equal(run.final[key], getattr(r, key))
    assert run.final["residuals"] == r.residuals and run.final["objective"] == r.objective
    assert run.final["V_final"] == r.V_final and run.V_initial == r.V_initial
    assert run.ledger_max_rel_error == r.ledger_max_rel_error
    with pytest.raises(ValueError, match="read-only"):
        run.history["V"][0] = 1.0
    # snapshots
    met = Metric(1.0, 2, 4)
    np.testing.assert_array_equal(run.snapshots["step"], [0, 30, 60, 90])
    wp, wm = met.to_waves(r.x, r.lam)
    if formulation == "consistent":     # the state is (x, λ): w± computed from it alone
        assert run.state["fields"] == "x, lambda"
        assert np.array_equal(run.snapshots["w_plus"][-1], wp)
        assert np.array_equal(run.snapshots["w_minus"][-1], wm)
    else:       # the state is w± itself; x, λ were reconstructed from it (eqs. 39-40), so
        # w± from them agrees to round-off of the two transforms (1e-14 relative)
        assert run.state["fields"] == "w+, w-"
        assert np.array_equal(run.snapshots["w_plus"][-1], run.state["u"])
        assert np.array_equal(run.snapshots["w_minus"][-1], run.state["v"])
        scale = np.abs(wp).max()
        np.testing.assert_allclose(run.snapshots["w_plus"][-1], wp, rtol=0, atol=1e-14 * scale)
    assert np.array_equal(run.snapshots["theta"][-1], r.theta)
    tau, t, Ep, Em = worldsheet_energy(run)
    V_snap = 0.5 * p.dt * (Ep + Em).sum(axis=1)
    V_hist = np.append(r.history["V"], r.V_final)[run.snapshots["step"]]
    np.testing.assert_allclose(V_snap, V_hist, rtol=1e-13, atol=0)
    assert np.array_equal(tau, run.snapshots["step"] * 1.0 * p.dt)
    # the port's reflection ‖b_k‖² per layer (eq. 70): ≥ 0, and in the consistent form its sum
    # is the history's reflection of the same τ-step (the step the driver takes from those
    # fields): sums of the same N m squares in two orders, 1e-13 relative
    refl = run.snapshots["reflection"]
    assert refl.shape == (4, 4) and np.all(refl >= 0)
    if formulation == "consistent":
        steps = run.snapshots["step"][:-1]          # the last (90) has no history row
        np.testing.assert_allclose(refl[:-1].sum(axis=1), r.history["reflection"][steps],
                                   rtol=1e-13, atol=0)


def test_diverged_run_is_kept_with_its_status(tmp_path):
    path = tmp_path / "run.h5"
    r = solve(lqr(N=4), port="gd", courant=1.5, allow_unstable=True, max_steps=5000, record_every=1,
              out=path, backend="numpy")
    assert r.status is Status.DIVERGED
    run = open_run(path)
    assert run.status == "diverged" and run.diverged_at == r.diverged_at == r.steps + 1
    assert run.message == r.message
    assert np.array_equal(run.final["x"], r.x) and np.all(np.isfinite(run.final["x"]))
    assert np.array_equal(run.history["V_next"], r.history["V_next"])


def test_worldsheet_figure_numbers(tmp_path):
    """The worldsheet panels draw E± of worldsheet_energy (clipped 12 decades below the top)."""
    path = tmp_path / "run.h5"
    solve(lqr(N=4), port="gd", out=path, max_steps=60, tol=0.0, eta=0.02, snapshot_every=20,
          backend="numpy")
    run = open_run(path)
    png = tmp_path / "ws.png"
    fig = worldsheet_figure(run, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _, _, Ep, Em = worldsheet_energy(run)
    floor = max(Ep.max(), Em.max()) * 1e-12
    for ax, E in zip(fig.axes[:2], (Ep, Em)):
        assert np.array_equal(np.asarray(ax.collections[0].get_array()).reshape(E.shape),
                              np.maximum(E, floor))
    with pytest.raises(ValueError, match="unknown figure kind 'x'; valid: energy, worldsheet"):
        run_figure(run, "x")


# ------------------------------------------------------------------------------------------
# resume
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stop", ["max_steps", "callback", "ctrl-c"])
def test_resume_is_bit_identical(tmp_path, backend, stop):
    """Stopped at τ-step 200 (by max_steps, a callback, or SIGINT) and resumed, the run ends
    exactly as the uninterrupted one (converged at the same step, same fields, history,
    snapshots)."""
    p = _small()
    kw = dict(tol=1e-10, max_steps=5000, record_every=1, snapshot_every=64, backend=backend,
              port="gd")
    ref = solve(p, out=tmp_path / "ref.h5", **kw)
    assert ref.status is Status.CONVERGED and ref.steps > 300
    path = tmp_path / "run.h5"
    if stop == "max_steps":
        first = solve(p, out=path, **{**kw, "max_steps": 200})
    elif stop == "callback":
        first = solve(p, out=path, callback=lambda step, info: step >= 200, callback_every=100,
                      **kw)
    else:
        def ctrl_c(step, info):
            if step == 200:
                os.kill(os.getpid(), signal.SIGINT)   # first Ctrl-C: stop after this chunk
        first = solve(p, out=path, callback=ctrl_c, callback_every=100, **kw)
        assert "Ctrl-C" in first.message
    assert first.steps == 200 and first.status in (Status.MAX_STEPS, Status.INTERRUPTED)
    stored = open_run(path)
    assert stored.status == first.status.value and stored.complete
    # 200 is off the snapshot grid (64): the stop snapshot is there now and dropped on resume
    assert stored.snapshots["step"][-1] == 200
    resumed = solve(p, out=path, resume=True, **{**kw, "record_every": None,
                                                  "snapshot_every": None})
    _assert_same_result(resumed, ref)
    _assert_same_file(path, tmp_path / "ref.h5")
    run = open_run(path)
    assert [r["at_step"] for r in run.resumes] == [200]
    assert run.resumes[0]["changed"] == ({"max_steps": [200, 5000]}
                                         if stop == "max_steps" else {})


def test_resume_paper_form_and_a_finished_run(tmp_path):
    """Paper form (the stored state is w±): resumed at 70 of 150 steps, bit-identical; then
    resuming the finished file with the same budget takes no step and changes nothing."""
    p = lqr(N=4)
    kw = dict(formulation="paper", scheme="lax-wendroff", courant=0.7, tol=0.0, eta=0.02,
              record_every=3, snapshot_every=25, divergence_bound=1e100, backend="numpy")
    ref = solve(p, out=tmp_path / "ref.h5", max_steps=150, **kw)
    path = tmp_path / "run.h5"
    solve(p, out=path, max_steps=70, **kw)
    assert open_run(path).state["fields"] == "w+, w-"
    _assert_same_result(solve(p, out=path, resume=True, max_steps=150, **kw), ref)
    again = solve(p, out=path, resume=True, max_steps=150, **kw)
    assert again.steps == 150 and np.array_equal(again.theta, ref.theta)
    _assert_same_file(path, tmp_path / "ref.h5")


@pytest.mark.parametrize("port", ["momentum", "adaptive"])
def test_resume_restores_the_port_state(tmp_path, port):
    """Ports with state (the heavy ball's velocity, the adaptive port's estimates) are resumed
    from the stored state: bit-identical again (the adaptive port diverges on the way)."""
    p = lqr(N=4)
    kw = dict(port=port, tol=0.0, record_every=1, snapshot_every=50, backend="numpy")
    ref = solve(p, out=tmp_path / "ref.h5", max_steps=300, **kw)
    path = tmp_path / "run.h5"
    solve(p, out=path, max_steps=130, **kw)
    assert set(open_run(path).state["port"]) == set(
        {"momentum": ["velocity"]}.get(port, open_run(path).state["port"]))
    _assert_same_result(solve(p, out=path, resume=True, max_steps=300, **kw), ref)
    _assert_same_file(path, tmp_path / "ref.h5")


def test_resume_refuses_a_different_configuration(tmp_path):
    path = tmp_path / "run.h5"
    p = lqr(N=4)
    solve(p, port="gd", out=path, max_steps=20, tol=0.0, eta=0.02, record_every=2, backend="numpy")
    before = path.read_bytes()
    with pytest.raises(ValueError) as exc:
        solve(p, port="gd", out=path, resume=True, max_steps=40, eta=0.03, scheme="lax-wendroff",
              courant=1.5, backend="numpy")
    msg = str(exc.value)
    assert msg.startswith(f"{path}: cannot resume") and "3 setting(s)" in msg
    assert "courant: stored 1.0 vs requested 1.5" in msg
    assert "port.eta: stored 0.02 vs requested 0.03" in msg
    assert 'scheme: stored "upwind" vs requested "lax-wendroff"' in msg
    for key in RESUMABLE_KEYS:
        assert key in msg.split("may change only")[1]
    with pytest.raises(ValueError, match=r"2 setting\(s\): digests\.problem_data: stored "
                                         r'"\w+" vs requested "\w+"; problem\.R: stored 0\.1 '
                                         r"vs requested 0\.5 \("):
        solve(lqr(N=4, R=0.5), port="gd", out=path, resume=True, eta=0.02, backend="numpy")
    with pytest.raises(ValueError, match="record_every: stored 2 vs requested 4"):
        solve(p, port="gd", out=path, resume=True, eta=0.02, record_every=4, backend="numpy")
    with pytest.raises(ValueError, match="metric: stored"):
        solve(p, port="gd", out=path, resume=True, eta=0.02, metric=[1.0, 2.0], backend="numpy")
    assert path.read_bytes() == before      # a refused resume leaves the file alone


def test_resume_ignores_init(tmp_path):
    """A run started from given arrays resumes without them (its state is in the file) and
    keeps init = "arrays" in its configuration."""
    p = lqr(N=4)
    init = (p.forward(p.theta0), np.zeros((1, 5, 2)), p.theta0)
    kw = dict(tol=0.0, eta=0.02, backend="numpy")
    ref = solve(p, init=init, max_steps=60, **kw)
    path = tmp_path / "run.h5"
    solve(p, init=init, out=path, max_steps=25, **kw)
    resumed = solve(p, out=path, resume=True, max_steps=60, **kw)
    assert resumed.config["init"] == "arrays" and np.array_equal(resumed.theta, ref.theta)


def test_resume_of_a_missing_file_starts_the_run(tmp_path):
    p = lqr(N=4)
    a = solve(p, port="gd", out=tmp_path / "a.h5", resume=True, max_steps=30, tol=0.0, eta=0.02,
              backend="numpy")
    b = solve(p, port="gd", max_steps=30, tol=0.0, eta=0.02, backend="numpy")
    assert np.array_equal(a.theta, b.theta) and open_run(tmp_path / "a.h5").resumes == []


def test_keyboard_interrupt_in_a_callback_keeps_the_file(tmp_path):
    def callback(step, info):
        raise KeyboardInterrupt

    path = tmp_path / "run.h5"
    r = solve(_small(), port="gd", out=path, callback=callback, callback_every=5, backend="numpy")
    assert r.status is Status.INTERRUPTED and r.steps == 5
    run = open_run(path)
    assert run.status == "interrupted" and run.steps == 5
    assert np.array_equal(run.final["theta"], r.theta)


# ------------------------------------------------------------------------------------------
# a run killed with SIGKILL
# ------------------------------------------------------------------------------------------
def test_sigkill_leaves_a_readable_file_that_resumes(tmp_path):
    """`wavecontrol solve --out` killed with SIGKILL after two flushes: the file opens, holds
    the history up to the last flush and a state to resume from; resuming it ends exactly
    where an uninterrupted run of the same settings ends."""
    path = tmp_path / "run.h5"
    argv = [sys.executable, "-m", "wavecontrol.cli", "solve", "lqr", "--set", "N=4",
            "--backend", "numpy", "--eta", "0.02", "--tol", "0", "--steps", "2000000",
            "--record-every", "400", "--snapshot-every", "1000", "--out", str(path), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run file got no rows within 60 s"
            try:
                seen = open_run(path)
                if len(seen.history["step"]) >= 2:
                    break
            except (FileNotFoundError, ValueError):   # not created or mid-write: poll again
                pass
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    run = open_run(path)
    assert run.status == "running" and not run.complete and run.final is None
    S = run.steps
    assert S >= seen.steps > 0
    h = run.history["step"]
    np.testing.assert_array_equal(h, np.arange(0, S, 400))
    assert np.all(np.isfinite(run.state["u"])) and np.all(np.isfinite(run.history["V"]))
    assert run.snapshots["step"][0] == 0 and np.all(run.snapshots["step"] % 1000 == 0)

    kw = dict(backend="numpy", eta=0.02, tol=0.0, max_steps=S + 300, record_every=400,
              snapshot_every=1000)
    resumed = solve(lqr(N=4), out=path, resume=True, **kw)
    ref = solve(lqr(N=4), **kw)
    _assert_same_result(resumed, ref)
    assert open_run(path).resumes[0]["status_before"] == "running"


# ------------------------------------------------------------------------------------------
# reading a run while it is written
# ------------------------------------------------------------------------------------------
_WRITER = """
import sys
from solvers import recording
recording.FLUSH_SECONDS = 0.0      # commit after every chunk
recording.CHUNK_SECONDS = 0.01     # and chunks of about 10 ms: ~100 commits a second
from problems import lqr
from solvers.wave import solve
solve(lqr(N=24), backend="numpy", eta=0.002, tol=0.0, max_steps=10**9, record_every=50,
      snapshot_every=10**6, out=sys.argv[1])
"""


def test_a_run_reads_while_its_writer_commits(tmp_path):
    """A reader polling a run that commits ~100 times a second for 4 s never gets an error and
    sees the committed step never go back. Without the retry in ``open_run``, about 1 read in
    250 met a commit half written (measured: 6 of 1586 reads in 20 s failed, with 'bad
    object header', 'addr overflow', or a state slot newer than the progress record)."""
    path = tmp_path / "run.h5"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE)
    steps = []
    try:
        deadline = time.monotonic() + 60
        while not path.exists() or path.stat().st_size == 0:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no run file within 60 s"
            time.sleep(0.05)
        time.sleep(0.5)                     # past the first commit
        end = time.monotonic() + 4.0
        while time.monotonic() < end:
            assert proc.poll() is None, proc.stderr.read().decode()
            steps.append(open_run(path).steps)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert len(steps) >= 50 and len(set(steps)) >= 10, (len(steps), len(set(steps)))
    assert all(a <= b for a, b in zip(steps, steps[1:]))


def test_open_run_retries_only_a_file_that_changes(tmp_path, good_file, monkeypatch):
    """The retry rule of ``open_run``, with the read made to fail: one failure is retried
    once; a file that fails twice and has not changed in between is reported at once; one
    that keeps changing is retried until SETTLE_SECONDS has passed."""
    from wavecontrol import storage
    real = storage._open_once
    calls = []

    def failing(times, touch=False):
        def _open(path):
            calls.append(path)
            if len(calls) <= times:
                if touch:                  # a writer: size and mtime change
                    with open(path, "ab") as f:
                        f.write(b"\0")
                raise ValueError(f"{path}: damaged wavecontrol run file (mid-write)")
            return real(path)
        return _open

    monkeypatch.setattr(storage, "_open_once", failing(1))
    assert open_run(good_file).steps == 40 and len(calls) == 2

    calls.clear()
    monkeypatch.setattr(storage, "_open_once", failing(10**6))
    with pytest.raises(ValueError, match="mid-write"):
        open_run(good_file)
    assert len(calls) == 2

    calls.clear()
    monkeypatch.setattr(storage, "SETTLE_SECONDS", 0.5)
    monkeypatch.setattr(storage, "_open_once", failing(10**6, touch=True))
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="mid-write"):
        open_run(good_file)
    # 0.05 s between tries: at most 11 in 0.5 s, fewer where a read is slow
    assert 0.5 <= time.monotonic() - t0 < 5 and 3 <= len(calls) <= 12


# ------------------------------------------------------------------------------------------
# bad files and bad arguments
# ------------------------------------------------------------------------------------------
@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.h5"
    solve(lqr(N=4), port="gd", out=path, max_steps=40, tol=0.0, eta=0.02, backend="numpy")
    return path


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope.h5'}: no such run file"):
        open_run(tmp_path / "nope.h5")


def test_not_hdf5_and_directory(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not a run")
    with pytest.raises(ValueError, match=f"{text}: not an HDF5 file"):
        open_run(text)
    with pytest.raises(ValueError, match=f"{tmp_path}: is a directory"):
        open_run(tmp_path)


def test_foreign_hdf5_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(ValueError, match=f"{path}: not a wavecontrol run file.*no 'format'"):
        open_run(path)
    with h5py.File(path, "a") as f:
        f.attrs["format"] = "netcdf"
    with pytest.raises(ValueError, match="format 'netcdf'"):
        open_run(path)
    with pytest.raises(ValueError, match="not a wavecontrol run file"):
        solve(lqr(N=4), port="gd", out=path, resume=True)


@pytest.mark.parametrize("fraction", [0.9, 0.5, 0.01])
def test_truncated_file(tmp_path, good_file, fraction):
    bad = tmp_path / "cut.h5"
    shutil.copy(good_file, bad)
    with open(bad, "r+b") as f:
        f.truncate(int(bad.stat().st_size * fraction))
    with pytest.raises(ValueError, match=f"{bad}: truncated or damaged"):
        open_run(bad)


def test_newer_schema_is_refused(tmp_path, good_file):
    with h5py.File(good_file, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(ValueError, match="schema 99 .*reads schema 1 and older"):
        open_run(good_file)


def test_bad_arguments(tmp_path, good_file):
    with pytest.raises(FileExistsError, match="already exists; pass resume=True"):
        solve(lqr(N=4), port="gd", out=good_file, max_steps=5)
    with pytest.raises(ValueError, match="resume=True needs out="):
        solve(lqr(N=4), port="gd", resume=True, max_steps=5)
    with pytest.raises(ValueError, match="snapshot_every must be an integer >= 0"):
        solve(lqr(N=4), port="gd", out=tmp_path / "x.h5", snapshot_every=-1, max_steps=5)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        solve(lqr(N=4), port="gd", out=tmp_path / "no" / "x.h5", max_steps=5)
    with pytest.raises(ValueError, match="cannot store the configuration"):
        solve(lqr(N=4), out=tmp_path / "y.h5", max_steps=5, port=_OddPort())
    assert not (tmp_path / "y.h5").exists()


class _OddPort(ResistivePort):
    """A port whose configuration JSON cannot hold."""

    def config(self):
        return {"name": "odd", "gain": object()}


def test_no_snapshots(tmp_path):
    path = tmp_path / "run.h5"
    solve(lqr(N=4), port="gd", out=path, max_steps=10, snapshot_every=0, backend="numpy")
    run = open_run(path)
    assert run.snapshots == {} and run.snapshot_every == 0
    with pytest.raises(ValueError, match="kept no snapshots"):
        worldsheet_energy(run)


def test_progress_bar(capsys):
    solve(lqr(N=4), port="gd", max_steps=50, tol=0.0, eta=0.02, progress=True, backend="numpy")
    err = capsys.readouterr().err
    assert "τ-steps" in err and "50/50" in err and "residual" in err and ", V " in err


def test_default_snapshot_interval():
    """About 200 snapshots per budget, fewer when 200 would exceed 64 MiB."""
    assert recording.default_snapshot_every(500_000, (1, 21, 2), (20, 1)) == 2500
    assert recording.default_snapshot_every(100, (1, 21, 2), (20, 1)) == 1
    big = recording.default_snapshot_every(1000, (256, 33, 64), (32, 4096))
    per = 8 * (2 * 256 * 33 * 64 + 32 * 4096 + 32)
    assert per * (1000 // big + 1) <= 64 * 2**20 + per


def test_energy_of_stored_fields_matches_the_driver(tmp_path):
    """V_initial in the file is the driver's V of the initial fields (formulations.energy)."""
    path = tmp_path / "run.h5"
    p = lqr(N=4)
    solve(p, port="gd", out=path, max_steps=0, backend="numpy")
    run = open_run(path)
    x0 = np.zeros((1, 5, 2))
    x0[:, 0] = p.x_in
    assert run.V_initial == energy(x0, np.zeros_like(x0), p.dt)


def test_large_configuration_goes_into_a_dataset(tmp_path):
    """A configuration JSON beyond the 48 kB attribute limit (here a 60-state random LQR,
    ~100 kB) is stored as /_json/config and read back equal."""
    from problems import random_lqr

    path = tmp_path / "big.h5"
    r = solve(random_lqr(n=60, m=30, N=2), port="gd", out=path, max_steps=1, eta=1e-3, backend="numpy")
    with h5py.File(path, "r") as f:
        assert f.attrs["config"] == "@/_json/config" and "config" in f["_json"]
    assert open_run(path).config == json.loads(json.dumps(r.config))
