"""The compiled network τ-step (wavecontrol/netkernels.py) against its NumPy twin.

References and tolerances:

* ``tanh_into`` against ``numpy.tanh`` (glibc's, correctly rounded to within 1 ulp): the
  range-reduced degree-14 expm1 polynomial errs by at most 2.2 ulp (measured 4.8e-16
  relative) on the grid below; 1e-15 relative (4.5 ulp) leaves a factor 2. Its float32 twin
  (degree 8, float32 arithmetic) errs by at most 1.4 ulp of float32; 3 ulp allowed.
* Kernel vs twin (``solvers.wave._numpy_run`` with ``consistent_step_numpy``), same start, a few
  τ-steps: both compute the same expressions; the kernel multiplies unpadded blocks with BLAS
  and sums in another order, so fields and ledger terms differ by round-off of sums over
  B·n ≈ 200 products (measured ≤ 1e-15 relative to the largest entry); 1e-12 leaves 10³.
  The ledger errors themselves are round-off (measured ≤ 7e-15); both must stay ≤ 1e-13.
* float32 vs float64 kernel: float32 round-off 6e-8 per operation, grown over 3 steps of ≈ 10
  operations (measured ≤ 1.3e-7 relative); 1e-5. Its ledger is an identity in the stored
  numbers, summed in float64: ≤ 1e-13 as in float64.
"""

import numba
import numpy as np
import pytest

from problems import mlp, neural_ode
from problems.network import resampling_callback
from solvers import wave
from solvers.wave import HISTORY_COLUMNS, solve
from wavecontrol import netkernels
from wavecontrol.formulations import StepConfig
from wavecontrol.metric import Metric
from wavecontrol.ports import ResistivePort


def test_tanh_into_matches_numpy():
    z = np.concatenate([np.linspace(-25, 25, 200001), np.logspace(-300, 1.5, 20000),
                        -np.logspace(-300, 1.5, 20000)])
    out = np.empty_like(z)
    netkernels.tanh_into(z, out, np.empty(z.size, np.int64))
    ref = np.tanh(z)
    np.testing.assert_allclose(out, ref, rtol=1e-15, atol=0)
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 5e-324])
    out = np.empty_like(special)
    netkernels.tanh_into(special, out, np.empty(6, np.int64))
    np.testing.assert_array_equal(out, [1.0, -1.0, np.nan, 0.0, -0.0, 5e-324])
    assert np.signbit(out[4])
    # float32 in and out (float32 arithmetic): measured ≤ 1.4 ulp; 3 ulp of float32 allowed
    z32 = np.concatenate([np.linspace(-12, 12, 100001), np.logspace(-37, 1.5, 10000),
                          -np.logspace(-37, 1.5, 10000)]).astype(np.float32)
    o32 = np.empty_like(z32)
    netkernels.tanh_into(z32, o32, np.empty(z32.size, np.int64))
    ref = np.tanh(z32.astype(np.float64))
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(o32 - ref) / ulp) <= 3.0
    special = special.astype(np.float32)
    out = np.empty_like(special)
    netkernels.tanh_into(special, out, np.empty(6, np.int64))
    np.testing.assert_array_equal(out[:5], [1.0, -1.0, np.nan, 0.0, -0.0])


def _perturbed_start(p, seed=1):
    """Exact forward/adjoint fields plus noise (so every residual is nonzero), padding zero."""
    x, lam, theta = wave._initial_fields(p, "forward")
    rng = np.random.default_rng(seed)
    mask = np.arange(p.n)[None, :] < p.layout.widths[:, None]
    x = x + 0.1 * rng.normal(size=x.shape) * mask
    lam = lam + 0.1 * rng.normal(size=x.shape) * mask
    x[:, 0] = p.x_in
    theta = theta + 0.05 * rng.normal(size=theta.shape) * p.theta_mask
    return x, lam, theta


def _twin(p, nu, eta, metric, termination, start, steps):
    met = Metric(metric, p.n, p.N)
    cfg = StepConfig(courant=nu, eta=eta, termination=termination)
    port = ResistivePort(eta)
    port.bind(p, courant=nu)
    u, v, t = (a.copy() for a in start)
    hist = np.full((steps, len(HISTORY_COLUMNS)), np.nan)
    out = wave._numpy_run(p, met, cfg, port, u, v, t, 0, steps, 0.0, 1, hist, 0, 1e12)
    return u, v, t, hist, out


def _kernel(p, nu, eta, metric, termination, start, steps, dtype=np.float64):
    u, v, t = (a.copy() for a in start)
    hist = np.full((steps, len(HISTORY_COLUMNS)), np.nan)
    cm = np.full(p.N + 1, float(metric))
    out = netkernels.network_run(*p.kernel_data(), cm, nu, eta, termination == "explicit",
                                 u, v, t, np.empty(0, dtype), 0, steps, 0.0, 1, hist, 0, 1e12,
                                 p.dt)
    return u, v, t, hist, out


CASES = {
    "mlp-ce-tanh": (lambda: mlp(widths=(2, 16, 8, 8, 3), n_samples=40), 1.0, 0.05, 1.0,
                    "implicit"),
    "mlp-mse-sigmoid-metric": (lambda: mlp(widths=(2, 16, 8, 8, 3), n_samples=40, loss="mse",
                                           activation="sigmoid", linear_output=False),
                               0.7, 0.05, 2.0, "implicit"),
    "mlp-softplus-wd-explicit": (lambda: mlp(widths=(2, 5, 9, 3), n_samples=30,
                                             activation="softplus", weight_decay=0.01),
                                 0.5, 0.1, 1.0, "explicit"),
    "mlp-relu": (lambda: mlp(widths=(2, 8, 8, 3), n_samples=30, activation="relu"), 0.9,
                 0.05, 1.0, "implicit"),
    "ode-augmented": (lambda: neural_ode(n_samples=30, N=5, augment=2), 1.0, 0.05, 0.5,
                      "implicit"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_equals_numpy_twin(case):
    make, nu, eta, metric, term = CASES[case]
    p = make()
    start = _perturbed_start(p)
    u, v, t, h, out = _twin(p, nu, eta, metric, term, start, 3)
    u2, v2, t2, h2, out2 = _kernel(p, nu, eta, metric, term, start, 3)
    assert out2[:3] == out[:3] == (3, netkernels.RUNNING, 3)
    for a, b in ((u, u2), (v, v2), (t, t2)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-12 * max(1.0, np.abs(a).max()))
    np.testing.assert_allclose(out2[4:], out[4:], rtol=1e-12)
    for j, name in enumerate(HISTORY_COLUMNS):
        if name == "ledger_error":
            assert h[:, j].max() <= 1e-13 and h2[:, j].max() <= 1e-13, name
        elif name == "reflection":
            assert np.all(np.isnan(h2[:, j]))          # the compiled path records none
        else:
            np.testing.assert_allclose(h2[:, j], h[:, j], rtol=0,
                                       atol=1e-12 * max(1.0, np.abs(h[:, j]).max()),
                                       err_msg=name)


def test_float32_kernel_tracks_float64():
    make, nu, eta, metric, term = CASES["mlp-ce-tanh"]
    p = make()
    start = _perturbed_start(p)
    u, v, t, h, _ = _kernel(p, nu, eta, metric, term, start, 3)
    u2, v2, t2, h2, _ = _kernel(p, nu, eta, metric, term, start, 3, dtype=np.float32)
    for a, b in ((u, u2), (v, v2), (t, t2)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * np.abs(a).max())
    assert h2[:, HISTORY_COLUMNS.index("ledger_error")].max() <= 1e-13


def test_driver_picks_the_kernel_and_agrees_with_numpy():
    """A whole solve: compiled and NumPy backends end on the same fields and history."""
    p = mlp(widths=(2, 12, 6, 3), n_samples=48)
    a = solve(p, max_steps=120, record_every=10)
    b = solve(p, max_steps=120, record_every=10, backend="numpy")
    assert a.config["backend"] == "numba" and b.config["backend"] == "numpy"
    assert a.steps == b.steps == 120 and a.status == b.status
    np.testing.assert_allclose(a.theta, b.theta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.x, b.x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.history["objective"], b.history["objective"], rtol=1e-12)
    assert a.ledger_max_rel_error <= 1e-13
    # float32: the same run to float32 accuracy
    c = solve(p, max_steps=120, record_every=10, dtype="float32")
    assert c.config["dtype"] == "float32"
    np.testing.assert_allclose(c.theta, a.theta, rtol=0, atol=1e-4 * np.abs(a.theta).max())


def test_kernel_converges_and_stops_like_numpy():
    """Both backends stop at the same τ-step with status converged, on the fields of the step
    whose residuals were measured (the converged step does not update them)."""
    # MSE with weight decay 1: a strict minimum, reached in 828 τ-steps (measured)
    p = mlp(widths=(2, 6, 4, 3), n_samples=20, loss="mse", weight_decay=1.0)
    a = solve(p, max_steps=2000, tol=1e-9)
    b = solve(p, max_steps=2000, tol=1e-9, backend="numpy")
    assert a.status.value == b.status.value == "converged"
    assert 0 < a.steps == b.steps < 2000
    np.testing.assert_allclose(a.theta, b.theta, rtol=0, atol=1e-12)
    assert max(a.residuals.values()) <= 1e-9


def test_kernel_divergence_matches_numpy():
    """A ReLU network with a huge gain blows up: both backends stop at the same step."""
    p = mlp(widths=(2, 8, 8, 3), n_samples=20, activation="relu", init_scale=3.0)
    a = solve(p, eta=50.0, max_steps=500, divergence_bound=1e6)
    b = solve(p, eta=50.0, max_steps=500, divergence_bound=1e6, backend="numpy")
    assert a.status.value == b.status.value == "diverged"
    assert a.diverged_at == b.diverged_at
    assert np.all(np.isfinite(a.theta))


def test_same_numbers_for_any_thread_count():
    """Per-node sums are added in node order: 1 and 2 threads give identical bits."""
    p = mlp(widths=(2, 12, 12, 12, 3), n_samples=40)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = solve(p, max_steps=40, record_every=1)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        b = solve(p, max_steps=40, record_every=1)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.history["V"], b.history["V"])


def test_resampling_runs_in_the_kernel():
    """A callback's new mini-batch reaches the compiled run (compared with the NumPy twin)."""
    runs = []
    for backend in ("auto", "numpy"):
        q = neural_ode(n_samples=40, batch=8, N=4)
        runs.append(solve(q, eta=1e-2, max_steps=13, callback=resampling_callback(q, seed=5),
                          callback_every=4, backend=backend))
    assert runs[0].config["backend"] == "numba"
    np.testing.assert_allclose(runs[0].theta, runs[1].theta, rtol=0, atol=1e-12)


def test_bad_dtype_and_uncompiled_settings():
    p = mlp(widths=(2, 4, 3), n_samples=10)
    with pytest.raises(ValueError, match="unknown dtype 'float16'"):
        solve(p, max_steps=1, dtype="float16")
    with pytest.raises(ValueError, match="dtype 'float32' needs the compiled network kernel"):
        solve(p, max_steps=1, dtype="float32", backend="numpy")
    with pytest.raises(ValueError, match="formulation 'paper'"):
        solve(p, max_steps=1, formulation="paper", backend="numba")
    with pytest.raises(ValueError, match="port 'momentum'"):
        solve(p, max_steps=1, port="momentum", backend="numba")
    with pytest.raises(ValueError, match="not a scalar per node"):
        solve(p, max_steps=1, metric=np.linspace(1, 2, p.n), backend="numba")
    # auto falls back to the NumPy twin for those
    assert solve(p, max_steps=1, port="momentum").config["backend"] == "numpy"


def test_solve_holds_blas_at_one_thread_while_the_kernel_runs():
    """The kernel calls BLAS from every thread; BLAS's own threads must be off meanwhile (all
    BLAS libraries, scipy's that numba uses included), and back afterwards."""
    from threadpoolctl import threadpool_info

    seen = []

    def callback(step, info):
        seen.extend(d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas")
        return False

    p = mlp(widths=(2, 6, 3), n_samples=10)
    before = [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
    solve(p, max_steps=4, callback=callback, callback_every=2)
    after = [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
    assert seen and set(seen) == {1}
    assert len(after) >= 2                     # numpy's and scipy's BLAS
    assert after[:len(before)] == before
