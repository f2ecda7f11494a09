"""Network problems (problems/network.py, neural_ode.py, mlp.py) and the varying-width engine.

References and tolerances:

* Backprop: ``problem.gradient`` is a plain per-layer reverse pass on the unpadded matrices that
  shares no code with the padded methods the solver calls. The consistent form at ν = 1 with θ
  frozen (η = 0) reaches the exact discrete PMP fields after 2N τ-steps (one pipelined forward
  and one backward pass), so its r_θ and backprop are both exact: they differ by round-off in
  sums over B ≈ 32 samples and N ≤ 6 layers (measured ≤ 6e-17 relative); 1e-12 leaves a margin
  of 10⁴.
* Central finite differences of J with h = 1e-5: truncation h²|J'''|/6 and rounding
  ε·(size of the summed terms)/h, each ≲ 1e-10 relative (measured ≤ 4e-10); 1e-6 is far above
  both and far below the gradient's own size.
* Adjoint identities ⟨J v, w⟩ = ⟨v, Jᵀ w⟩: both sides are the same O(10) sums computed in a
  different order (measured ≤ 1e-15 relative); 1e-12.
* Finite differences of jvp, vjp_theta, terminal_grad and terminal_hvp with step 1e-6: error
  ≈ 1e-16/1e-6 rounding + 1e-12 truncation ≈ 1e-10 relative to the entries' scale (measured
  ≤ 2e-10); 1e-7.
* The transformer transport (eqs. 45–46) against dense T_k = Θ_{k+1} J_k Θ_k^{-1} built from
  the layer matrices: same arithmetic up to association, 1e-13 relative.
"""

import json

import numpy as np
import pytest

from problems import get_problem, mlp, neural_ode
from problems.network import ACTIVATIONS, NetworkProblem, resampling_callback
from solvers.wave import solve
from wavecontrol.formulations import (StepConfig, consistent_step_numpy, ledger_error,
                                      paper_step_numpy)
from wavecontrol.metric import Metric

#: at least two width changes (2→6, 6→4, 4→3) and one constant-width link (4→4)
MLP_WIDTHS = (2, 6, 4, 4, 3)


def small_ode(**kw):
    args = dict(n_samples=32, N=6, T=1.5, augment=2, seed=1)
    return neural_ode(**{**args, **kw})


def small_mlp(**kw):
    args = dict(widths=MLP_WIDTHS, n_samples=33, seed=1)
    return mlp(**{**args, **kw})


CASES = {
    "ode-mse": lambda: small_ode(loss="mse"),
    "ode-ce-wd": lambda: small_ode(loss="cross-entropy", weight_decay=1e-2, dataset="circles"),
    "mlp-ce": lambda: small_mlp(loss="cross-entropy"),
    "mlp-mse-wd-sigmoid": lambda: small_mlp(loss="mse", weight_decay=1e-2,
                                            activation="sigmoid", linear_output=False),
}


def generic_theta(p, seed=5):
    """θ0 with nonzero biases (θ0 has b = 0) and zero padding."""
    rng = np.random.default_rng(seed)
    return p.theta0 + 0.3 * rng.normal(size=p.theta0.shape) * p.theta_mask


def fd_gradient(p, theta, h=1e-5):
    g = np.zeros_like(theta)
    for idx in zip(*np.nonzero(p.theta_mask)):
        e = np.zeros_like(theta)
        e[idx] = h
        g[idx] = (p.objective(theta + e) - p.objective(theta - e)) / (2 * h)
    return g


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def frozen_fields(p, theta):
    x = np.zeros((p.batch, p.N + 1, p.n))
    x[:, 0] = p.x_in
    return x, np.zeros_like(x), theta


# --------------------------------------------------------------------------------------------
# (1) gradient at fixed θ: consistent wave fixed point = backprop = finite differences
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_consistent_wave_gradient_is_backprop_and_fd(case, backend):
    """Both the compiled network kernel and the NumPy twin."""
    p = CASES[case]()
    theta = generic_theta(p)
    res = solve(p, formulation="consistent", courant=1.0, eta=0.0, max_steps=2 * p.N + 2,
                tol=0.0, init=frozen_fields(p, theta), backend=backend)
    assert res.config["backend"] == backend
    assert res.residuals["x"] <= 1e-14 and res.residuals["lambda"] <= 1e-14
    np.testing.assert_array_equal(res.theta, theta)
    r_theta = p.residual_theta(res.x, res.lam, theta)
    g_bp = p.gradient(theta)
    g_fd = fd_gradient(p, theta)
    assert rel(r_theta, g_bp) <= 1e-12
    assert rel(g_bp, g_fd) <= 1e-6
    assert rel(r_theta, g_fd) <= 1e-6
    # the padded entries of θ get an exactly zero residual
    assert np.all(r_theta[p.theta_mask == 0] == 0)
    # objective: plain forward = padded forward + terminal + running costs
    x = p.forward(theta)
    assert p.objective(theta) == pytest.approx(
        p.terminal_cost(x[:, -1]) + p.running_cost(x[:, :-1], theta), rel=1e-14)


# --------------------------------------------------------------------------------------------
# (2) jvp / vjp consistency and finite differences
# --------------------------------------------------------------------------------------------
def random_fields(p, rng):
    """x (B, N, n), v, w with zero padding where node k (input) or k+1 (output) has none."""
    mask = p.node_mask
    B, N, n = p.batch, p.N, p.n
    x = rng.normal(size=(B, N, n)) * mask[:-1]
    v = rng.normal(size=(B, N, n)) * mask[:-1]
    w = rng.normal(size=(B, N, n)) * mask[1:]
    return x, v, w


@pytest.mark.parametrize("case", sorted(CASES))
def test_adjoint_identities(case, rng):
    p = CASES[case]()
    theta = generic_theta(p)
    x, v, w = random_fields(p, rng)
    lhs = np.sum(p.jvp(x, theta, v) * w)
    rhs = np.sum(v * p.vjp_x(x, theta, w))
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)
    # θ-direction: ⟨(∇_θ f) δθ, w⟩ by a directional finite difference (no θ-jvp exists)
    d = rng.normal(size=theta.shape) * p.theta_mask
    h = 1e-6
    fd = np.sum((p.layer_maps(x, theta + h * d) - p.layer_maps(x, theta - h * d)) * w) / (2 * h)
    ad = np.sum(d * p.vjp_theta(x, theta, w))
    assert abs(fd - ad) <= 1e-7 * max(abs(ad), 1.0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_jvp_and_terminal_derivatives_by_finite_differences(case, rng):
    p = CASES[case]()
    theta = generic_theta(p)
    x, v, _ = random_fields(p, rng)
    h = 1e-6
    fd = (p.layer_maps(x + h * v, theta) - p.layer_maps(x - h * v, theta)) / (2 * h)
    jv = p.jvp(x, theta, v)
    assert np.abs(fd - jv).max() <= 1e-7 * np.abs(jv).max()
    xN = rng.normal(size=(p.batch, p.n)) * p.node_mask[-1]
    u = rng.normal(size=xN.shape) * p.node_mask[-1]
    fd = (p.terminal_cost(xN + h * u) - p.terminal_cost(xN - h * u)) / (2 * h)
    assert fd == pytest.approx(np.sum(p.terminal_grad(xN) * u), rel=1e-7, abs=1e-12)
    fd = (p.terminal_grad(xN + h * u) - p.terminal_grad(xN - h * u)) / (2 * h)
    hv = p.terminal_hvp(xN, u)
    assert np.abs(fd - hv).max() <= 1e-7 * np.abs(hv).max()


def test_padding_is_ignored_and_never_written(rng):
    p = small_mlp()
    theta = generic_theta(p)
    x, v, w = random_fields(p, rng)
    junk = rng.normal(size=x.shape) * (1 - p.node_mask[:-1])
    pad_out = 1 - p.node_mask[1:]
    for out in (p.layer_maps(x, theta), p.jvp(x, theta, v)):
        assert np.all(out * pad_out == 0)
    assert np.all(p.vjp_x(x, theta, w) * (1 - p.node_mask[:-1]) == 0)
    np.testing.assert_array_equal(p.layer_maps(x + junk, theta), p.layer_maps(x, theta))
    np.testing.assert_array_equal(p.jvp(x, theta, v + junk), p.jvp(x, theta, v))
    xN = rng.normal(size=(p.batch, p.n)) * p.node_mask[-1]
    assert np.all(p.terminal_grad(xN) * (1 - p.node_mask[-1]) == 0)
    assert p.x_in.shape == (p.batch, 6) and np.all(p.x_in[:, 2:] == 0)
    # the padded vectorized forward and the plain per-layer forward agree
    xs, _ = p._plain_forward(theta, p.X_batch)
    xf = p.forward(theta)
    for k in range(p.N + 1):
        np.testing.assert_allclose(xf[:, k, :MLP_WIDTHS[k]], xs[k], rtol=1e-14, atol=1e-15)


# --------------------------------------------------------------------------------------------
# varying widths in the two formulations
# --------------------------------------------------------------------------------------------
def block_metric(p, rng):
    blocks = []
    for nk in p.layout.widths:
        a = rng.normal(size=(nk, nk))
        blocks.append(np.eye(nk) + 0.3 * a / np.sqrt(nk))
    return Metric.from_blocks(blocks)


def dense_T(p, theta, metric, xk, k):
    """T_k = Θ_{k+1} J_k Θ_k^{-1} for one sample, J_k = diag(σ'(z)) W_k (eq. 44)."""
    W, b = p.layers(theta)[k]
    n0, n1 = W.shape[1], W.shape[0]
    z = W @ xk[:n0] + b
    s = np.ones(n1) if p._lin[k] else ACTIVATIONS[p.activation][1](z)
    J = s[:, None] * W
    return metric.theta[k + 1][:n1, :n1] @ J @ metric.theta_inv[k][:n0, :n0]


def test_paper_transport_uses_the_transformer_on_width_changes(rng):
    p = small_mlp(n_samples=5)
    theta = generic_theta(p)
    met = block_metric(p, rng)
    mask = p.node_mask
    wp = rng.normal(size=(p.batch, p.N + 1, p.n)) * mask
    wm = rng.normal(size=wp.shape) * mask
    nu = 0.7
    cfg = StepConfig(formulation="paper", courant=nu, alpha=0.0, eta=0.0)
    wp2, wm2, th2, led, _ = paper_step_numpy(p, met, cfg, wp, wm, theta)
    np.testing.assert_array_equal(th2, theta)
    x, _ = met.from_waves(wp, wm)
    exp_p, exp_m = wp.copy(), wm.copy()
    w = p.layout.widths
    for b in range(p.batch):
        for k in range(p.N):
            n0, n1 = w[k], w[k + 1]
            if n0 == n1:            # eqs. 41–42: identity shift
                exp_p[b, k + 1] = (1 - nu) * wp[b, k + 1] + nu * wp[b, k]
                exp_m[b, k] = (1 - nu) * wm[b, k] + nu * wm[b, k + 1]
            else:                   # eqs. 45–46
                T = dense_T(p, theta, met, x[b, k], k)
                exp_p[b, k + 1, :n1] = (1 - nu) * wp[b, k + 1, :n1] + nu * T @ wp[b, k, :n0]
                exp_m[b, k, :n0] = (1 - nu) * wm[b, k, :n0] + nu * T.T @ wm[b, k + 1, :n1]
    scale = np.abs(exp_p).max()
    # nodes set by the terminations (w+_0, w-_N) excluded
    np.testing.assert_allclose(wp2[:, 1:], exp_p[:, 1:], rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(wm2[:, :-1], exp_m[:, :-1], rtol=0, atol=1e-13 * scale)
    assert ledger_error(led) <= 1e-13


@pytest.mark.parametrize("formulation", ["consistent", "paper"])
@pytest.mark.parametrize("scheme", ["upwind", "lax-wendroff", "characteristic"])
def test_padding_stays_zero_and_ledger_closes(formulation, scheme, rng):
    p = small_mlp(n_samples=6, loss="cross-entropy")
    theta = generic_theta(p)
    met = block_metric(p, rng)
    mask = p.node_mask
    u = rng.normal(size=(p.batch, p.N + 1, p.n)) * mask
    v = rng.normal(size=u.shape) * mask
    if formulation == "paper" and scheme == "lax-wendroff":
        cfg = StepConfig(formulation="paper", scheme=scheme, courant=0.5)
        with pytest.raises(ValueError, match="scheme 'lax-wendroff'.*upwind"):
            paper_step_numpy(p, met, cfg, u, v, theta)
        return
    nu = 0.6 if formulation == "paper" else 1.3 if scheme == "lax-wendroff" else 0.8
    cfg = StepConfig(formulation=formulation, scheme=scheme, courant=nu, alpha=0.5 * nu,
                     eta=1e-2).validate(p.N)
    step = paper_step_numpy if formulation == "paper" else consistent_step_numpy
    for _ in range(5):
        u, v, theta, led, _ = step(p, met, cfg, u, v, theta)
        assert np.all(u * (1 - mask) == 0) and np.all(v * (1 - mask) == 0)
        assert np.all(theta * (1 - p.theta_mask) == 0)
        assert ledger_error(led) <= 1e-13


def test_metric_must_respect_the_padding(rng):
    p = small_mlp(n_samples=4)
    theta = generic_theta(p)
    full = np.eye(p.n) + 0.1 * rng.normal(size=(p.n, p.n))
    x, lam, _ = frozen_fields(p, theta)
    for form, step in (("consistent", consistent_step_numpy), ("paper", paper_step_numpy)):
        cfg = StepConfig(formulation=form, courant=1.0)
        with pytest.raises(ValueError, match=r"metric: Θ_0 mixes node 0's 2 components"):
            step(p, Metric(full, p.n, p.N), cfg, x, lam, theta)
    with pytest.raises(ValueError, match="metric"):
        solve(p, metric=full, eta=0.0, max_steps=1)
    # scalars and diagonals are always block-diagonal
    solve(p, metric=2.0, eta=0.0, max_steps=2)
    solve(p, metric=np.linspace(1, 2, p.n), eta=0.0, max_steps=2)
    met = Metric.from_blocks([1.0, np.eye(6), np.arange(1.0, 5.0), 2.0, np.eye(3)])
    assert met.theta.shape == (5, 6, 6)
    np.testing.assert_array_equal(met.theta[2], np.diag([1, 2, 3, 4, 1, 1.0]))
    assert met.check_widths(p.layout.widths) is met
    with pytest.raises(ValueError, match="widths"):
        met.check_widths([2, 6, 4, 3])


def test_backend_auto_is_the_network_kernel_unless_the_setting_has_none():
    p = small_ode(n_samples=8, N=3)
    assert solve(p, eta=0.0, max_steps=2).config["backend"] == "numba"
    res = solve(p, eta=0.0, max_steps=2, scheme="lax-wendroff", courant=0.5)
    assert res.config["backend"] == "numpy"
    with pytest.raises(ValueError, match="backend 'numba' has no compiled kernel for scheme"):
        solve(p, eta=0.0, max_steps=2, backend="numba", scheme="lax-wendroff", courant=0.5)


# --------------------------------------------------------------------------------------------
# batches, prediction, registry
# --------------------------------------------------------------------------------------------
def test_batch_shares_parameters():
    """r_θ of a batch is the sum of the single-sample r_θ (θ shared, eq. 52 summed)."""
    p = small_mlp(n_samples=4, loss="mse")
    theta = generic_theta(p)
    x = p.forward(theta)
    lam = p.adjoint(x, theta)
    total = p.vjp_theta(x[:, :-1], theta, lam[:, 1:])
    parts = sum(p.vjp_theta(x[b:b + 1, :-1], theta, lam[b:b + 1, 1:]) for b in range(4))
    np.testing.assert_allclose(total, parts, rtol=1e-13, atol=1e-15)


def test_resample_streams_minibatches():
    p = small_ode(n_samples=40, batch=8)
    assert p.batch == 8 and p.X_pool.shape == (40, 2)
    x_in = p.x_in
    idx = p.resample(np.random.default_rng(3))
    assert p.x_in is x_in                                  # swapped in place
    np.testing.assert_array_equal(p.x_in[:, :2], p.X_pool[idx])
    np.testing.assert_array_equal(p.x_in[:, 2:], 0.0)
    np.testing.assert_array_equal(p.labels, p.labels_pool[idx])
    np.testing.assert_array_equal(p.targets, np.eye(2)[p.labels_pool[idx]])
    assert len(set(idx.tolist())) == 8
    np.testing.assert_array_equal(p.resample(11), np.random.default_rng(11).choice(40, 8,
                                                                                 replace=False))
    # in a run: a new batch every 4 τ-steps, drawn from one seeded generator
    q = small_ode(n_samples=40, batch=8)
    res = solve(q, eta=1e-2, max_steps=13, callback=resampling_callback(q, seed=5),
                callback_every=4)
    assert res.steps == 13 and np.isfinite(res.objective)
    rng = np.random.default_rng(5)
    for _ in range(3):                                     # after steps 4, 8, 12
        last = rng.choice(40, 8, replace=False)
    np.testing.assert_array_equal(q.labels, q.labels_pool[last])


def test_predict_and_accuracy():
    p = small_mlp(n_samples=30)
    theta = generic_theta(p)
    scores = p.forward(theta)[:, -1, :3]
    np.testing.assert_array_equal(p.predict(theta), np.argmax(scores, axis=1))
    acc = p.accuracy(theta)
    assert acc == np.mean(np.argmax(scores, axis=1) == p.labels_pool)
    assert p.accuracy(theta, p.X_pool[:3], p.labels_pool[:3]) in (0.0, 1 / 3, 2 / 3, 1.0)
    # neural ODE: read-out = the first K = 2 state components
    q = small_ode(n_samples=10)
    th = generic_theta(q)
    np.testing.assert_array_equal(q.predict(th), np.argmax(q.forward(th)[:, -1, :2], axis=1))


def test_registry_defaults_and_config():
    p = get_problem("mlp")
    assert list(p.layout.widths) == [2, 32, 16, 16, 3] and p.batch == 96
    assert p.n == 32 and p.m == 16 * 33 and p.name == "mlp"
    q = get_problem("neural-ode")
    assert q.layout.uniform and q.n == 4 and q.N == 10 and q.dt == pytest.approx(0.2)
    assert q.m == 20 and q.loss == "mse" and q.activation == "tanh"
    for prob in (p, q):
        json.dumps(prob.config())
    # θ0 is seeded: same seed, same θ0; W_k ~ N(0, 1/n_k)
    np.testing.assert_array_equal(mlp(seed=4).theta0, mlp(seed=4).theta0)
    assert not np.array_equal(mlp(seed=4).theta0, mlp(seed=5).theta0)


# --------------------------------------------------------------------------------------------
# (4) bad input
# --------------------------------------------------------------------------------------------
def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match=r"unknown dataset 'swirl'; valid: circles, moons"):
        neural_ode(dataset="swirl")
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'; valid: tanh, sigmoid, "
                                         r"softplus, relu, identity"):
        mlp(activation="gelu")
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; valid: mse, cross-entropy"):
        neural_ode(loss="hinge")
    with pytest.raises(ValueError, match=r"widths\[0\] = 3 must equal the data dimension d = 2"):
        mlp(widths=(3, 8, 3))
    with pytest.raises(ValueError, match=r"widths\[-1\] = 2 must equal the number of classes "
                                         r"K = 3"):
        mlp(widths=(2, 8, 2))
    with pytest.raises(ValueError, match="widths must list"):
        mlp(widths=(2, 0, 3))
    with pytest.raises(ValueError, match=r"unknown mlp parameter\(s\) \['width'\]"):
        mlp(width=(2, 3))
    with pytest.raises(ValueError, match="augment"):
        neural_ode(augment=-1)
    with pytest.raises(ValueError, match="weight_decay"):
        mlp(weight_decay=-1.0)
    with pytest.raises(ValueError, match=r"batch must be an integer in 1\.\.16"):
        neural_ode(n_samples=16, batch=17)
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="X must be finite"):
        neural_ode(data=(X, y))
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\)"):
        neural_ode(data=(np.zeros((10, 2)), y[:9]))
    p = small_ode(n_samples=12, batch=4)
    with pytest.raises(ValueError, match=r"X must have shape \(4, 2\), got \(5, 2\)"):
        p.set_batch(np.zeros((5, 2)), np.zeros(5))
    with pytest.raises(ValueError, match=r"X must have shape \(4, 2\), got \(4, 3\)"):
        p.set_batch(np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1"):
        p.set_batch(np.zeros((4, 2)), [0, 1, 2, 0])
    with pytest.raises(ValueError, match="X must be finite"):
        p.set_batch(np.full((4, 2), np.inf), [0, 1, 1, 0])
    with pytest.raises(ValueError, match=r"theta must have shape \(6, 20\)"):
        p.gradient(np.zeros((6, 19)))
    assert isinstance(p, NetworkProblem)
    with pytest.raises(ValueError, match="scheme 'lax-wendroff' with courant 0.5"):
        solve(small_mlp(n_samples=4), formulation="paper", scheme="lax-wendroff", courant=0.5,
              eta=0.0, max_steps=1)
