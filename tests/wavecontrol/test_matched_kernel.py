"""The compiled matched kernel (:mod:`wavecontrol.nodekernels`, generated per problem by
:mod:`wavecontrol.codegen`) against its NumPy twin :func:`wavecontrol.matched.matched_step_numpy`.

Both backends run the same number of τ-steps (tol = 0, so neither stops early) from the same start;
fields, port state and every history column must agree to TWIN_BOUND. The two sum the same terms in
different orders (einsum vs written-out loops, eigh from different LAPACK builds for m > 1), so
they differ in the last bits per step; the maps contract, and the measured gap after 40 steps is
≤ 3e-14 (fields of size ≤ 30). 1e-12 is the issue's bound and leaves 30× margin.
"""

import numpy as np
import pytest

from problems import lqr, pendulum, random_lqr
from problems.builder import ContinuousProblem, EulerProblem
from solvers.wave import HISTORY_COLUMNS, solve
from wavecontrol import codegen

TWIN_BOUND = 1e-12
SETTINGS = [("upwind", 1.0), ("upwind", 0.8), ("lax-wendroff", 1.0), ("lax-wendroff", 1.5),
            ("characteristic", 0.7), ("characteristic", 2.0), ("characteristic", 2.5)]
PROBLEMS = {
    "lqr": lambda: lqr(),
    "random": lambda: random_lqr(n=5, m=2, N=30, seed=0, unstable=True),
    "swing-up": lambda: pendulum("swing-up"),
}


def _both(problem, steps=40, **kw):
    kw = dict(port="matched", tol=0.0, max_steps=steps, record_every=1, **kw)
    return solve(problem, backend="numpy", **kw), solve(problem, backend="numba", **kw)


def _scale(a):
    return max(1.0, float(np.nanmax(np.abs(a))))


@pytest.mark.parametrize("scheme, nu", SETTINGS)
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_compiled_matched_equals_numpy_twin(name, scheme, nu):
    rn, rc = _both(PROBLEMS[name](), scheme=scheme, courant=nu)
    assert rc.config["backend"] == "numba" and rn.config["backend"] == "numpy"
    assert (rc.status, rc.steps) == (rn.status, rn.steps), (rc.message, rn.message)
    for f in ("x", "lam", "theta"):
        a, b = getattr(rn, f), getattr(rc, f)
        assert np.abs(a - b).max() <= TWIN_BOUND * _scale(a), f
    assert rn.history["step"].size == rc.history["step"].size
    for col in HISTORY_COLUMNS:
        a, b = rn.history[col], rc.history[col]
        assert np.array_equal(np.isnan(a), np.isnan(b)), col
        ok = ~np.isnan(a)
        if col == "ledger_error":
            # round-off of the closure itself (each ≤ 1e-14): compare the bound, not the bits
            assert np.all(b[ok] <= 1e-13), col
            continue
        scale = _scale(rn.history["V"]) if col not in ("res_x", "res_lambda", "res_theta",
                                                      "objective", "step") else _scale(a)
        assert np.abs(a[ok] - b[ok]).max(initial=0.0) <= TWIN_BOUND * scale, col


def test_compiled_matched_metric_and_explicit_termination():
    p = random_lqr(n=5, m=2, N=30, seed=0, unstable=True)
    rng = np.random.default_rng(3)
    theta = np.eye(5) + 0.2 * rng.standard_normal((5, 5))      # a full, constant metric factor
    rn, rc = _both(p, metric=theta, termination="explicit", scheme="lax-wendroff", courant=1.5)
    assert np.abs(rn.theta - rc.theta).max() <= TWIN_BOUND * _scale(rn.theta)
    for col in ("V", "source", "port_power", "reflection"):
        a, b = rn.history[col], rc.history[col]
        assert np.abs(a - b).max() <= TWIN_BOUND * _scale(rn.history["V"]), col


def test_compiled_matched_converges_at_the_reference():
    """The compiled run reaches the exact Riccati solution in the light cone (ν = 1)."""
    from solvers.riccati import discrete_riccati
    p = lqr()
    ref = discrete_riccati(p)
    r = solve(p, port="matched", backend="numba", tol=1e-10, max_steps=1000)
    assert r.success and r.steps <= 2 * p.N + 2, r.message
    assert np.abs(r.theta - ref.theta).max() <= 1e-9


def test_compiled_matched_divergence_is_a_status():
    """An unstable setting ends with status diverged and the step, fields finite."""
    p = random_lqr(n=5, m=2, N=30, seed=0, unstable=True)
    r = solve(p, port="matched", backend="numba", scheme="upwind", courant=1.6,
              allow_unstable=True, max_steps=2000, divergence_bound=1e6)
    rn = solve(p, port="matched", backend="numpy", scheme="upwind", courant=1.6,
               allow_unstable=True, max_steps=2000, divergence_bound=1e6)
    assert r.status.value == "diverged" and r.diverged_at == rn.diverged_at
    assert np.all(np.isfinite(r.theta)) and np.all(np.isfinite(r.x))


class _Cubic(ContinuousProblem):
    """ẋ = −x³ + u, L = ½(x² + u²): a problem without node functions."""

    def __init__(self):
        super().__init__(1, 1, 1.0, [1.0])

    def f(self, x, u):
        return -x ** 3 + u

    def jac_x(self, x, u):
        return (-3 * x ** 2)[..., None]

    def jac_u(self, x, u):
        return np.ones(x.shape + (1,))

    def L(self, x, u):
        return 0.5 * (x[..., 0] ** 2 + u[..., 0] ** 2)

    def L_x(self, x, u):
        return x

    def L_u(self, x, u):
        return u

    def Phi(self, x):
        return 0.5 * x[..., 0] ** 2

    def Phi_x(self, x):
        return x

    def Phi_xx(self, x):
        return np.ones(x.shape[:-1] + (1, 1))


def test_backend_numba_needs_node_functions():
    p = EulerProblem(_Cubic(), 10)
    assert p.node_kernel() is None
    with pytest.raises(ValueError, match="node functions"):
        solve(p, port="matched", backend="numba", max_steps=1)
    r = solve(p, port="matched", tol=1e-10, max_steps=500)      # auto: the NumPy twin
    assert r.success and r.config["backend"] == "numpy"


def test_generated_module_is_cached_by_text(tmp_path, monkeypatch):
    """The same node source gives one file (so numba's disk cache is found again); another
    source another file."""
    monkeypatch.setenv("WAVECONTROL_CACHE_DIR", str(tmp_path))
    src = "X = 1\n"
    m1 = codegen.load_module(src, tag="t")
    m2 = codegen.load_module(src, tag="t")
    m3 = codegen.load_module("X = 2\n", tag="t")
    assert m1 is m2 and m1.X == 1 and m3.X == 2
    files = sorted(p.name for p in tmp_path.glob("*.py"))
    assert len(files) == 2 and all(f.startswith(codegen.MODULE_PREFIX) for f in files)
