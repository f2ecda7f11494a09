"""Depth-parallel runs (:mod:`solvers.parallel`) against the serial driver.

The parallel runs go through ``mpiexec -n P`` (oversubscribed: P up to 4 on 2 cores) in a
subprocess (:mod:`tests.mpi.mpi_case`); the serial reference runs here. Bit-identity is exact
equality of every array (no tolerance): node arithmetic does not depend on the block, and the
global numbers (history, convergence) come from the serial kernel on the gathered fields.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install -e '.[mpi]'): "
                    "the MPI tests are skipped")
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                        os.environ.get("PATH", "")]))
if MPIEXEC is None:
    pytest.skip("mpiexec is not on PATH (pip install -e '.[mpi]' brings MPICH's): the MPI "
                "tests are skipped", allow_module_level=True)

import problems  # noqa: E402
from solvers.parallel import partition, solve_parallel, stencil_reach, world  # noqa: E402
from solvers.wave import solve  # noqa: E402
from tests.mpi.mpi_case import build  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ("x", "lam", "theta")


def run_mpi(P, cases, tmp_path, timeout=240):
    """Run ``cases`` under ``mpiexec -n P``; the list of their saved results."""
    spec = tmp_path / f"cases_{P}.json"
    spec.write_text(json.dumps(cases))
    out = tmp_path / f"res_{P}"
    proc = subprocess.run([MPIEXEC, "-n", str(P), sys.executable, "-m", "tests.mpi.mpi_case",
                           str(spec), str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [dict(np.load(f"{out}_{i}.npz")) for i in range(len(cases))]


def assert_identical(got, ref, history=True):
    """Every field, the step count, the status and (``history``) every history column equal."""
    for name in FIELDS:
        assert np.array_equal(got[name], getattr(ref, name)), name
    assert int(got["steps"]) == ref.steps
    assert str(got["status"]) == ref.status.value
    if history:
        for k, v in ref.history.items():
            assert np.array_equal(got[f"history_{k}"], v, equal_nan=True), k
    if ref.status.value == "converged":
        assert json.loads(str(got["residuals"])) == ref.residuals


def case(problem, params=None, **solve):
    return {"problem": problem, "params": params or {},
            "solve": {"record_every": 1, "tol": 1e-10, "allow_unstable": True, **solve}}


#: one case per kernel branch: both formulations and three schemes of the affine kernel (gd),
#: the matched port's three schemes on LQR and the pendulum, and the network kernel
CASES = [
    case("lqr", {"N": 24}, eta=0.01, max_steps=60),
    case("random_lqr", {"n": 3, "m": 2, "N": 30}, eta=0.01, scheme="lax-wendroff",
         courant=0.8, max_steps=60),
    case("random_lqr", {"n": 3, "m": 2, "N": 30}, eta=0.01, scheme="characteristic",
         courant=1.5, max_steps=60, metric=2.0, termination="explicit"),
    case("lqr", {"N": 24}, eta=0.01, formulation="paper", courant=0.6, max_steps=60),
    case("random_lqr", {"n": 3, "m": 2, "N": 30}, eta=0.01, formulation="paper",
         scheme="lax-wendroff", max_steps=60, sources="before"),
    case("lqr", {"N": 24}, eta=0.01, formulation="paper", scheme="characteristic",
         courant=2.3, max_steps=60, termination="explicit"),
    case("lqr", {"N": 24}, max_steps=80),          # the default port (matched: converges, 48)
    case("pendulum", {"N": 30}, port="matched", scheme="lax-wendroff", courant=0.9,
         max_steps=50),
    case("random_lqr", {"n": 3, "m": 2, "N": 30}, port="matched", scheme="characteristic",
         courant=1.6, max_steps=50),
    case("mlp", {"widths": [2, 8, 6, 6, 5, 3], "n_samples": 16}, eta=0.05, courant=0.9,
         max_steps=40),
]


@pytest.mark.parametrize("P", [2, pytest.param(1, marks=pytest.mark.slow),
                               pytest.param(3, marks=pytest.mark.slow),
                               pytest.param(4, marks=pytest.mark.slow)])
def test_bit_identical_to_serial(P, tmp_path):
    """Every kernel branch on P ranks equals the serial run bit for bit (convergence checked
    every step, as the serial driver does, so status and steps agree too)."""
    results = run_mpi(P, CASES, tmp_path)
    for spec, got in zip(CASES, results):
        assert json.loads(str(got["parallel"]))["ranks"] == P
        assert_identical(got, solve(build(spec), **spec["solve"]))


def test_checks_on_the_schedule_and_deep_halos(tmp_path):
    """check_every = 5, record_every = 2, halo_depth = 3, 2 threads per rank on 3 ranks (6
    sub-blocks on 2 cores): the matched LQR run
    (serial: converged after 48 τ-steps) converges at the first check after it, 50, with
    the fields of the serial run stopped at 50 (tol = 0 never converges) and its history."""
    spec = case("lqr", {"N": 24}, port="matched", max_steps=200, record_every=2)
    spec["parallel"] = {"check_every": 5, "halo_depth": 3, "threads": 2}
    got = run_mpi(3, [spec], tmp_path)[0]
    assert str(got["status"]) == "converged" and int(got["steps"]) == 50
    stats = json.loads(str(got["parallel"]))
    # gathers at the steps 0..50 that are multiples of 2 (26) or of 5 (5 more)
    assert stats["checks"] == 31 and stats["halo_depth"] == 3
    ref = solve(build(spec), **{**spec["solve"], "tol": 0.0, "max_steps": 50})
    for name in FIELDS:
        assert np.array_equal(got[name], getattr(ref, name)), name
    for k, v in ref.history.items():
        assert np.array_equal(got[f"history_{k}"], v, equal_nan=True), k
    assert max(json.loads(str(got["residuals"])).values()) <= 1e-10


def test_divergence_found_at_a_check_and_replayed(tmp_path):
    """The resistive port at 4x its auto gain diverges (serially: at τ-step 2117); on 2 ranks,
    checking every 500 steps, the check at 2500 finds it and rank 0 replays from the check at
    2000: the same step, fields and history as the serial run."""
    from solvers.wave import auto_eta
    eta = 4 * auto_eta(problems.lqr(N=24), 1.0)
    spec = case("lqr", {"N": 24}, eta=eta, max_steps=5000, record_every=500)
    got = run_mpi(2, [spec], tmp_path)[0]
    ref = solve(build(spec), **spec["solve"])
    assert ref.status.value == "diverged" and int(got["diverged_at"]) == ref.diverged_at
    assert_identical(got, ref)


@pytest.mark.slow
def test_killed_run_is_readable_and_resumes_with_other_P(tmp_path):
    """A run on 3 ranks killed (SIGKILL of every process) mid-way leaves a readable file;
    resumed on 2 ranks (and halo depth 8) it ends bit-identical to an uninterrupted serial
    run."""
    from wavecontrol import storage
    path = tmp_path / "run.h5"
    kw = {"eta": 0.002, "tol": 1e-12, "max_steps": 40_000, "record_every": 500,
          "out": str(path)}
    spec = tmp_path / "kill.json"
    spec.write_text(json.dumps([{"problem": "lqr", "params": {"N": 24}, "solve": kw}]))
    proc = subprocess.Popen([MPIEXEC, "-n", "3", sys.executable, "-m", "tests.mpi.mpi_case",
                             str(spec), str(tmp_path / "killed")], cwd=ROOT,
                            start_new_session=True)
    stored, t0 = 0, time.time()
    try:
        while stored < 2000 and time.time() - t0 < 120 and proc.poll() is None:
            time.sleep(0.2)
            if path.exists():
                try:
                    stored = storage.open_run(path).state["step"]
                except (OSError, KeyError):    # the first commit is being written
                    continue
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode != 0, "the run ended before it could be killed"
    run = storage.open_run(path)
    assert 2000 <= run.state["step"] < kw["max_steps"] and run.status == "running"
    resumed = run_mpi(2, [{"problem": "lqr", "params": {"N": 24}, "parallel": {"halo_depth": 8},
                           "solve": {**kw, "resume": True}}], tmp_path)[0]
    ref = solve(problems.lqr(N=24), **{k: v for k, v in kw.items() if k != "out"})
    assert_identical(resumed, ref)
    done = storage.open_run(path)
    assert done.status == "max_steps" and done.state["step"] == kw["max_steps"]


def test_run_files_cross_between_serial_and_parallel(tmp_path):
    """A parallel run file resumes serially and a serial one in parallel (2 ranks), both to
    the uninterrupted serial run bit for bit: the file is the serial format."""
    kw = {"record_every": 100, "eta": 0.002, "tol": 1e-12}
    par, ser = str(tmp_path / "par.h5"), str(tmp_path / "ser.h5")
    solve(problems.lqr(N=24), max_steps=2000, out=ser, **kw)
    cases = [{"problem": "lqr", "params": {"N": 24},
              "solve": {**kw, "max_steps": 2000, "out": par}},
             {"problem": "lqr", "params": {"N": 24},
              "solve": {**kw, "max_steps": 4000, "out": ser, "resume": True}}]
    resumed_in_parallel = run_mpi(2, cases, tmp_path)[1]
    ref = solve(problems.lqr(N=24), max_steps=4000, **kw)
    resumed_serially = solve(problems.lqr(N=24), max_steps=4000, out=par, resume=True, **kw)
    assert_identical(resumed_in_parallel, ref)
    for name in FIELDS:
        assert np.array_equal(getattr(resumed_serially, name), getattr(ref, name)), name
    for k, v in ref.history.items():
        assert np.array_equal(resumed_serially.history[k], v, equal_nan=True), k


@pytest.mark.slow
def test_asynchronous_mode_keeps_the_fixed_point(tmp_path):
    """Halos d = 2 τ-steps late (deterministic ``lag``) and the ``newest`` mode on 3 ranks
    still converge to the PMP solution: within 1e-9 of the serial converged fields (both
    are within ~tol of the same fixed point), in more τ-steps than the synchronous 48."""
    cases = [case("lqr", {"N": 24}, port="matched", max_steps=2000),
             case("lqr", {"N": 24}, port="matched", max_steps=2000)]
    cases[0]["parallel"] = {"staleness": 2, "async_mode": "lag"}
    cases[1]["parallel"] = {"staleness": 2, "async_mode": "newest"}
    ref = solve(problems.lqr(N=24), port="matched", record_every=1, tol=1e-10, max_steps=2000)
    for got in run_mpi(3, cases, tmp_path):
        assert str(got["status"]) == "converged"
        for name in FIELDS:
            assert np.abs(got[name] - getattr(ref, name)).max() <= 1e-9, name
    lag = run_mpi(3, cases[:1], tmp_path)[0]
    assert int(lag["steps"]) > ref.steps


def test_cli_under_mpiexec(tmp_path):
    """``mpiexec -n 2 wavecontrol solve`` runs the parallel driver and prints one report (rank
    0) with the serial run's numbers."""
    exe = Path(sys.executable).parent / "wavecontrol"
    cmd = [MPIEXEC, "-n", "2", str(exe), "solve", "lqr", "--steps", "100", "--json"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    doc = json.loads(lines[0])
    ref = solve(problems.lqr(), max_steps=100)
    assert doc["status"] == ref.status.value and doc["steps"] == ref.steps
    assert doc["residuals"] == ref.residuals and doc["objective"] == ref.objective


# -- in this process, on one rank (COMM_SELF) ---------------------------------------------------
def self_comm():
    world()                         # initializes MPI
    from mpi4py import MPI
    return MPI.COMM_SELF


def test_one_rank_in_process_equals_serial():
    """P = 1 through the parallel driver (no mpiexec) is the serial run bit for bit."""
    comm = self_comm()
    p = problems.random_lqr(n=3, m=2, N=30)
    kw = {"eta": 0.01, "scheme": "lax-wendroff", "courant": 0.8, "max_steps": 40,
          "record_every": 1}
    got, ref = solve_parallel(p, comm, **kw), solve(p, **kw)
    for name in FIELDS:
        assert np.array_equal(getattr(got, name), getattr(ref, name))
    assert got.config["parallel"]["ranks"] == 1


def test_refusals():
    comm = self_comm()
    p = problems.lqr()
    with pytest.raises(ValueError, match="staleness"):
        solve_parallel(p, comm, staleness=-1)
    with pytest.raises(ValueError, match="async_mode"):
        solve_parallel(p, comm, async_mode="sometimes")
    with pytest.raises(ValueError, match="check_every"):
        solve_parallel(p, comm, check_every=2.5, max_steps=10)
    with pytest.raises(ValueError, match="halo_depth"):
        solve_parallel(p, comm, halo_depth=0)
    with pytest.raises(ValueError, match="callback"):
        solve_parallel(p, comm, callback=lambda step, info: False)
    with pytest.raises(ValueError, match="compiled"):
        solve_parallel(p, comm, backend="numpy", max_steps=10)
    from wavecontrol.matched import MatchedPort
    with pytest.raises(ValueError, match="Gauss–Newton model without a terminal ramp"):
        solve_parallel(p, comm, port=MatchedPort(hessian="newton"), max_steps=10)
    with pytest.raises(ValueError, match="Gauss–Newton model without a terminal ramp"):
        solve_parallel(p, comm, port=MatchedPort(ramp_steps=5), max_steps=10)


def test_partition_and_reach():
    """Blocks cover nodes 0..N once, sizes differ by at most one; the reach table."""
    for N, P in ((20, 3), (7, 8), (100, 4)):
        parts = partition(N, P)
        assert parts[0][0] == 0 and parts[-1][1] == N + 1
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
        sizes = [hi - lo for lo, hi in parts]
        assert max(sizes) - min(sizes) <= 1
    assert stencil_reach("consistent", "upwind", 1.0) == 1
    assert stencil_reach("consistent", "lax-wendroff", 0.8) == 2
    assert stencil_reach("consistent", "characteristic", 2.3) == 3
    assert stencil_reach("consistent", "characteristic", 2.0) == 2
    assert stencil_reach("paper", "upwind", 1.0) == 2
    assert stencil_reach("paper", "characteristic", 1.5) == 3
