"""The wave-PMP driver ``solvers.wave.solve``: how runs end (statuses), what they report
(history, timings, objective), and the compiled kernel against its NumPy twin.

Problems are tiny (N = 2 to 4) so that everything here also runs with NUMBA_DISABLE_JIT=1
(tests/test_nojit.py runs this file that way).
"""

import time

import numpy as np
import pytest

import solvers.wave as wave
from problems import lqr
from solvers.riccati import discrete_riccati
from solvers.wave import HISTORY_COLUMNS, auto_eta, solve
from wavecontrol._jit import jit_disabled
from wavecontrol.kernels import HIST_COLUMNS
from wavecontrol.ledger import LEDGER_TERMS
from wavecontrol.ports import ResistivePort
from wavecontrol.problem import AffineQuadraticProblem
from wavecontrol.result import Status

BACKENDS = ["numba", "numpy"]
FULL = np.array([[1.0, 0.0], [0.3, 1.2]])


def _small():
    """Double integrator with N = 2, R = 1: converges in 300–630 τ-steps."""
    return lqr(N=2, R=1.0)


def _all_finite(r):
    arrays = [r.x, r.lam, r.theta, np.array(list(r.residuals.values())),
              np.array([r.objective, r.V_initial, r.V_final])]
    # the compiled kernels keep no r_θ: their 'reflection' column is NaN by design (ports.py)
    arrays += [v for k, v in r.history.items()
               if not (k == "reflection" and r.config["backend"] == "numba")]
    return all(np.all(np.isfinite(a)) for a in arrays)


# ------------------------------------------------------------------------------------------
# statuses
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scheme, nu", [("upwind", 1.0), ("upwind", 0.8),
                                        ("lax-wendroff", 1.5), ("characteristic", 2.0),
                                        ("characteristic", 1.5)])
def test_converged(scheme, nu, backend):
    """At convergence (residuals ≤ 1e-10) the objective is J(θ) by a forward pass and equals
    the Riccati optimum to 1e-10 relative (J − J* is quadratic in θ − θ* ≈ 3e-11: measured
    ≤ 3e-16 relative); θ is within 1e-9 of θ* (measured 3e-11)."""
    p = _small()
    ref = discrete_riccati(p)
    r = solve(p, port="gd", scheme=scheme, courant=nu, tol=1e-10, backend=backend)
    assert r.status is Status.CONVERGED and r.success
    assert "tol" in r.message and str(r.steps) in r.message
    assert 100 < r.steps < 1000 and r.diverged_at is None
    assert max(r.residuals.values()) <= 1e-10
    assert r.objective == p.objective(r.theta)
    assert r.objective == pytest.approx(ref.objective, rel=1e-10)
    assert np.abs(r.theta - ref.theta).max() <= 1e-9
    assert r.config["backend"] == backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_steps(backend):
    r = solve(_small(), port="gd", max_steps=50, backend=backend)
    assert r.status is Status.MAX_STEPS and not r.success
    assert r.steps == 50
    assert "max_steps = 50 reached" in r.message
    assert r.diverged_at is None
    assert _all_finite(r)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kwargs", [
    {"scheme": "upwind", "courant": 1.5, "allow_unstable": True},
    {"formulation": "paper"},
])
def test_diverged(kwargs, backend):
    """Growing runs stop with status diverged at the first step whose energy leaves the bound
    (1e12 · max(V_initial, 1)); nothing the result reports is NaN or inf."""
    p = lqr(N=4)
    r = solve(p, port="gd", max_steps=5000, record_every=1, backend=backend, **kwargs)
    assert r.status is Status.DIVERGED and not r.success
    assert r.diverged_at is not None and r.steps == r.diverged_at - 1
    assert f"diverged at τ-step {r.diverged_at}" in r.message
    assert _all_finite(r)
    h = r.history
    bound = 1e12 * max(r.V_initial, 1.0)
    np.testing.assert_array_equal(h["step"], np.arange(r.diverged_at))
    assert np.all(h["V"] <= bound) and h["V_next"][-1] > bound


@pytest.mark.parametrize("backend", BACKENDS)
def test_diverged_fields_are_the_last_ones_inside_the_bound(backend):
    """WaveResult documents the fields of a diverged run as 'the last finite fields, at step
    diverged_at − 1': their energy is the last V recorded, inside the bound."""
    p = lqr(N=4)
    r = solve(p, port="gd", scheme="upwind", courant=1.5, allow_unstable=True, max_steps=5000,
              record_every=1, backend=backend)
    assert r.status is Status.DIVERGED
    assert r.V_final == pytest.approx(r.history["V"][-1], rel=1e-13)
    assert r.V_final <= 1e12 * max(r.V_initial, 1.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("formulation", ["consistent", "paper"])
def test_diverged_with_huge_gain_reports_finite_numbers(formulation, backend):
    """η = 1e200 overflows θ within a few steps: the run must still report status diverged
    with finite fields, residuals, objective and history (DESIGN: 'Divergence is a status with
    the step it happened at, not a NaN array')."""
    with np.errstate(all="ignore"):
        r = solve(lqr(N=4), port="gd", formulation=formulation, eta=1e200, max_steps=5000,
                  record_every=1, backend=backend)
    assert r.status is Status.DIVERGED and r.steps == r.diverged_at - 1
    assert _all_finite(r), (r.residuals, r.objective, r.V_final)


@pytest.mark.parametrize("backend", BACKENDS)
def test_interrupted_by_callback(backend):
    seen = []

    def callback(step, info):
        seen.append(step)
        assert info["theta"].shape == (2, 1) and len(info["residuals"]) == 3
        return step >= 21

    r = solve(_small(), port="gd", callback=callback, callback_every=7, backend=backend)
    assert r.status is Status.INTERRUPTED and not r.success
    assert seen == [7, 14, 21] and r.steps == 21
    assert "stopped by callback at τ-step 21" in r.message


@pytest.mark.parametrize("backend", BACKENDS)
def test_keyboard_interrupt_is_a_status(backend):
    def callback(step, info):
        raise KeyboardInterrupt

    r = solve(_small(), port="gd", callback=callback, callback_every=5, backend=backend)
    assert r.status is Status.INTERRUPTED and r.steps == 5
    assert "Ctrl-C" in r.message


# ------------------------------------------------------------------------------------------
# what a run reports
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_history_schedule_and_tau(backend):
    p = lqr(N=4)
    nu = 0.8
    r = solve(p, port="gd", courant=nu, max_steps=100, record_every=5, tol=0.0, backend=backend)
    h = r.history
    assert set(h) == set(HISTORY_COLUMNS) | {"tau"}
    assert HISTORY_COLUMNS == HIST_COLUMNS + ("reflection",)
    np.testing.assert_array_equal(h["step"], np.arange(0, 100, 5))
    assert np.all(np.diff(h["step"]) == 5)
    # τ = step · Δτ with Δτ = ν Δt / c (c = 1)
    np.testing.assert_allclose(h["tau"], h["step"] * nu * p.dt, rtol=1e-15, atol=0)
    assert h["V"][0] == pytest.approx(r.V_initial, rel=1e-14)
    assert h["objective"][0] == pytest.approx(p.objective(p.theta0), rel=1e-13)
    # the default schedule: max_steps // 5000 (at least 1)
    r2 = solve(p, port="gd", max_steps=20_000, tol=0.0, backend="numba") if not jit_disabled() else None
    if r2 is not None:
        assert np.all(np.diff(r2.history["step"]) == 4)


def test_compile_time_is_apart_from_wall_time(monkeypatch):
    """The first numba run times compilation (or loading the cache) apart from stepping: the
    two intervals are disjoint, so they sum to less than the whole call."""
    monkeypatch.setattr(wave, "_COMPILED", set())
    p = lqr(N=4)
    t0 = time.perf_counter()
    r = solve(p, port="gd", max_steps=2000, tol=0.0, backend="numba")
    elapsed = time.perf_counter() - t0
    assert r.wall_time > 0 and r.compile_time >= 0
    assert r.compile_time + r.wall_time <= elapsed
    if not jit_disabled():
        assert r.compile_time > 0
    assert solve(p, port="gd", max_steps=10, backend="numpy").compile_time == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_eta_auto_and_port_object(backend):
    p = lqr(N=4)
    r = solve(p, port="gd", courant=0.8, max_steps=30, tol=0.0, backend=backend)
    assert r.config["port"] == {"name": "gd", "eta": pytest.approx(auto_eta(p, 0.8),
                                                                   rel=1e-14)}
    a = solve(p, port="gd", eta=0.02, max_steps=30, tol=0.0, backend=backend)
    b = solve(p, port=ResistivePort(0.02), max_steps=30, tol=0.0, backend=backend)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert a.config["port"] == b.config["port"] == {"name": "gd", "eta": 0.02}


@pytest.mark.parametrize("backend", BACKENDS)
def test_init_options(backend):
    p = _small()
    r = solve(p, port="gd", init="forward", max_steps=0, backend=backend)
    np.testing.assert_array_equal(r.x, p.forward(p.theta0))
    np.testing.assert_array_equal(r.lam, p.adjoint(r.x, p.theta0))
    assert r.residuals["x"] <= 1e-15 and r.residuals["lambda"] <= 1e-15
    ref = discrete_riccati(p)
    done = solve(p, port="gd", init=(ref.x, ref.lam, ref.theta), backend=backend)
    assert done.success and done.steps == 0
    with pytest.raises(ValueError, match="unknown init 'ones'; valid: zeros, forward"):
        solve(p, port="gd", init="ones")
    with pytest.raises(ValueError, match="init x must have shape \\(1, 3, 2\\)"):
        solve(p, port="gd", init=(np.zeros((3, 2)), ref.lam, ref.theta))


# ------------------------------------------------------------------------------------------
# compiled kernel vs NumPy twin
# ------------------------------------------------------------------------------------------
def _metric(kind, p):
    if kind == "scalar":
        return 1.0
    if kind == "full":
        return FULL
    rng = np.random.default_rng(1)
    return np.tril(0.3 * rng.normal(size=(p.N + 1, 2, 2)), -1) + np.eye(2) * (
        1.0 + rng.random((p.N + 1, 1, 2)))


TWIN_COURANT = {("consistent", "upwind"): 0.8, ("consistent", "lax-wendroff"): 1.5,
                ("consistent", "characteristic"): 2.5, ("paper", "upwind"): 0.8,
                ("paper", "lax-wendroff"): 0.7, ("paper", "characteristic"): 2.5}
TWIN_CASES = [(form, scheme, term, src, met)
              for (form, scheme) in TWIN_COURANT
              for term in ("implicit", "explicit")
              for src in (("after", "before") if form == "paper" else ("after",))
              for met in ("scalar", "full", "per-node")]


@pytest.mark.parametrize("form, scheme, term, src, met", TWIN_CASES)
def test_numba_and_numpy_backends_agree(form, scheme, term, src, met):
    """20 τ-steps from the same start: fields, θ, residuals and every history column agree to
    1e-12 relative to max(1, max |quantity|) (energy columns: relative to max(V, 1) of the
    step). Both do the same O(N n²) flops per step in a different order, so they differ by
    round-off, grown by the (possibly unstable) map over 20 steps: measured ≤ 1.2e-13 on all
    cases, so 1e-12 leaves ~8×."""
    p = lqr(N=4)
    opts = dict(formulation=form, scheme=scheme, courant=TWIN_COURANT[(form, scheme)],
                termination=term, sources=src, metric=_metric(met, p), eta=0.05,
                max_steps=20, tol=0.0, record_every=1, divergence_bound=1e100)
    a = solve(p, backend="numba", **opts)
    b = solve(p, backend="numpy", **opts)
    assert a.config["backend"] == "numba" and b.config["backend"] == "numpy"
    assert a.status == b.status and a.steps == b.steps == 20

    def rel(u, v):
        u, v = np.asarray(u, float), np.asarray(v, float)
        return float(np.abs(u - v).max() / max(1.0, np.abs(v).max()))

    for name in ("x", "lam", "theta"):
        assert rel(getattr(a, name), getattr(b, name)) <= 1e-12, name
    for key in a.residuals:
        assert rel(a.residuals[key], b.residuals[key]) <= 1e-12, key
    assert set(a.history) == set(b.history)
    energy_scale = np.maximum(b.history["V"], 1.0)
    for key in a.history:
        assert a.history[key].shape == b.history[key].shape == (20,)
        if key == "reflection":         # the kernel keeps no r_θ: NaN there (ports.py)
            assert np.all(np.isnan(a.history[key])) and np.all(np.isfinite(b.history[key]))
        elif key == "ledger_error":     # round-off itself: compare against the ledger bound
            assert np.all(a.history[key] <= 1e-10) and np.all(b.history[key] <= 1e-10)
        elif key in LEDGER_TERMS or key in ("V", "V_next", "rhs"):
            # pieces of ΔV: their scale is the step's energy max(V, 1) (a boundary term can be
            # 1e-9 of V on a growing run, so its own size is the wrong yardstick)
            diff = np.abs(a.history[key] - b.history[key]) / energy_scale
            assert diff.max() <= 1e-12, key
        else:
            assert rel(a.history[key], b.history[key]) <= 1e-12, key
    assert rel(a.objective, b.objective) <= 1e-12
    assert rel(a.V_final, b.V_final) <= 1e-12


def _batch_problem():
    """Affine problem with c_k ≠ 0, g_f ≠ 0, n = 3, m = 2 and a batch of two inputs."""
    rng = np.random.default_rng(2)
    N, n, m = 4, 3, 2
    return AffineQuadraticProblem(
        A=np.eye(n) + 0.1 * rng.normal(size=(N, n, n)), B=rng.normal(size=(N, n, m)),
        c=0.1 * rng.normal(size=(N, n)), Q=np.broadcast_to(0.1 * np.eye(n), (N, n, n)),
        R=np.broadcast_to(0.1 * np.eye(m), (N, m, m)), Qf=np.eye(n), gf=rng.normal(size=n),
        dt=0.25, x_in=rng.normal(size=(2, n)))


@pytest.mark.parametrize("form, scheme", list(TWIN_COURANT))
@pytest.mark.parametrize("term", ["implicit", "explicit"])
def test_backends_agree_with_batch_and_offsets(form, scheme, term):
    """As above on a batch of two trajectories with affine offsets, and in the paper form a
    source gain α ≠ ν (measured ≤ 6e-15)."""
    p = _batch_problem()
    opts = dict(formulation=form, scheme=scheme, courant=TWIN_COURANT[(form, scheme)],
                alpha=0.5 if form == "paper" else None, termination=term, eta=0.05,
                max_steps=20, tol=0.0, record_every=1, divergence_bound=1e100)
    a = solve(p, backend="numba", **opts)
    b = solve(p, backend="numpy", **opts)
    assert a.steps == b.steps == 20 and a.x.shape == (2, 5, 3)
    for u, v in ((a.x, b.x), (a.lam, b.lam), (a.theta, b.theta), (a.objective, b.objective)):
        assert np.abs(np.asarray(u) - v).max() <= 1e-12 * max(1.0, np.abs(v).max())
    assert a.ledger_max_rel_error <= 1e-10 and b.ledger_max_rel_error <= 1e-10


def test_resistive_port_by_name_uses_eta_and_auto_gain():
    """port="gd" is the default port: it takes η from ``eta`` ("auto" by default) rather than
    the port class's default gain 1, which diverges on the default LQR. Same run to the bit."""
    p = lqr(N=6)
    a = solve(p, port="gd", max_steps=300, tol=0.0)
    b = solve(p, port="gd", max_steps=300, tol=0.0)
    assert a.config["port"] == b.config["port"]
    assert np.array_equal(a.theta, b.theta)
    c = solve(p, port="gd", eta=0.02, max_steps=300, tol=0.0)
    assert c.config["port"]["eta"] == 0.02
