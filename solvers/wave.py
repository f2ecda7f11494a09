"""The wave-PMP relaxation driver: run τ-steps until the PMP residuals vanish.

:func:`solve` is the one entry point. It validates the settings, picks a compiled kernel or
the NumPy twin, loops over chunks of τ-steps inside compiled code, returns to Python only for
callbacks, and reports a :class:`~wavecontrol.result.WaveResult` whose status says how the run
ended. The compiled kernels are :func:`wavecontrol.kernels.affine_run` (problem family
``affine``: both formulations, three schemes, the resistive port) and
:func:`wavecontrol.netkernels.network_run` (family ``network``: the consistent form, upwind,
the resistive port, a metric Θ_k = c_k I; float64 or float32); for a problem that gives node
functions (:meth:`~wavecontrol.problem.LayeredProblem.node_kernel`), the generated modules of
:mod:`wavecontrol.codegen` run the matched port (``matched_run``) and, in the consistent form,
the resistive port (:func:`wavecontrol.nodekernels_gd.gd_run`, three schemes, projected on
bounds). Every other setting takes the NumPy twin, and ``backend="numba"`` on such a setting is
an error that says why.
"""

from __future__ import annotations

import math
import numbers
import time

import numpy as np

from wavecontrol import kernels, netkernels
from wavecontrol._jit import jit_disabled
from wavecontrol.codegen import kernel_module
from wavecontrol.formulations import (StepConfig, consistent_step_numpy, energy,
                                      ledger_error, paper_step_numpy, transport_scheme)
from wavecontrol.kernels import HIST_COLUMNS
from wavecontrol.matched import bound_arrays, matched_step_numpy
from wavecontrol.ledger import LEDGER_TERMS
from wavecontrol.metric import Metric
from wavecontrol.ports import Port, ResistivePort, get_port
from wavecontrol.result import Status, WaveResult
from wavecontrol.schemes import SCHEME_CODES

BACKENDS = ("auto", "numba", "numpy")
DTYPES = ("float64", "float32")
#: the history columns of a run: the kernel's, then ``reflection``, the port's ‖b‖² of eq. 70
#: against the landscape curvature (:mod:`wavecontrol.ports`); the compiled kernels keep no
#: r_θ, so on the compiled path it is NaN (run ``backend="numpy"`` to record it)
HISTORY_COLUMNS = HIST_COLUMNS + ("reflection",)
_COMPILED = set()      # the kernels (family, dtype) this process has compiled or loaded


def network_compiled_reason(problem, cfg, port, metric) -> str | None:
    """Why the compiled network kernel cannot run this setting, or None if it can.

    :func:`wavecontrol.netkernels.network_run` implements the consistent form with upwind
    transport, the resistive port and a metric Θ_k = c_k I (scalar per node).
    """
    if cfg.formulation != "consistent":
        return f"formulation {cfg.formulation!r} (it implements 'consistent')"
    if cfg.scheme != "upwind":
        return f"scheme {cfg.scheme!r} (it implements 'upwind')"
    if not isinstance(port, ResistivePort):
        return f"port {port.name!r} (it implements 'gd')"
    if _node_scalars(problem, metric) is None:
        return "a metric that is not a scalar per node (Θ_k = c_k I)"
    return None


def node_gd_compiled_reason(problem, cfg, port, node) -> str | None:
    """Why the compiled resistive-port loop over node functions
    (:func:`wavecontrol.nodekernels_gd.gd_run`) cannot run this setting, or None if it can.

    It runs a problem that gives node functions (``node``: its
    :meth:`~wavecontrol.problem.LayeredProblem.node_kernel`, batch 1, uniform widths) in the
    consistent form with the resistive port, all three schemes.
    """
    if node is None or problem.batch != 1 or not problem.layout.uniform:
        return (f"problem {problem.name!r} of family {problem.family!r} (compiled: 'affine', "
                "'network', or node functions of batch 1 and uniform width: "
                "LayeredProblem.node_kernel)")
    if cfg.formulation != "consistent":
        return f"formulation {cfg.formulation!r} on node functions (compiled: 'consistent')"
    if not isinstance(port, ResistivePort):
        return f"port {port.name!r} on node functions (compiled: 'gd', 'matched')"
    return None


def _node_scalars(problem, metric):
    """c_k of a metric Θ_k = c_k I on node k's components, as an (N + 1,) array, or None."""
    if not metric.is_diagonal:
        return None
    d, _ = metric.diagonal
    c = np.array([d[k, 0] for k in range(problem.N + 1)])
    for k, nk in enumerate(problem.layout.widths):
        if np.any(d[k, :nk] != c[k]):
            return None
    return c


def hessian_norm(problem, iters: int = 60, seed: int = 0) -> float:
    """Largest eigenvalue L of ∇²J(θ0) by power iteration on gradient differences.

    Exact for affine-quadratic problems (J is quadratic); for others a finite-difference
    estimate with a step of 1e-4 relative to ‖θ0‖.
    """
    rng = np.random.default_rng(seed)
    th = problem.theta0
    g0 = problem.gradient(th)
    eps = 1.0 if problem.family == "affine" else 1e-4 * max(1.0, float(np.abs(th).max()))
    v = rng.normal(size=th.shape)
    v /= np.linalg.norm(v)
    lam = 0.0
    for _ in range(iters):
        hv = (problem.gradient(th + eps * v) - g0) / eps
        new = float(np.linalg.norm(hv))
        if new == 0.0:
            return 0.0
        v = hv / new
        if abs(new - lam) <= 1e-10 * new:
            return new
        lam = new
    return lam


def auto_eta(problem, courant: float) -> float:
    """Default resistive gain η = 1 / (L (1 + 2N/ν)).

    L is the largest curvature of J (:func:`hessian_norm`). The gradient reaches layer k about
    2(N − k)/ν τ-steps after the controls changed, and gradient descent with a delay D is stable
    for η L below about π/(2D + 1); this choice keeps η L(1 + 2N/ν) = 1 inside that bound for
    every delay.
    """
    L = hessian_norm(problem)
    if L <= 0:
        return 1.0
    return 1.0 / (L * (1.0 + 2.0 * problem.N / courant))


def default_port(problem, formulation: str = "consistent") -> str:
    """The port :func:`solve` takes when none is given: ``"matched"`` (a few light cones to the
    solution, :mod:`wavecontrol.matched`; with control bounds its box-constrained local solve)
    for a control problem — per-node controls (batch 1), uniform widths, not a network — in
    the consistent form; ``"gd"`` (the resistive port) otherwise: for networks, whose
    parameters are shared across the batch, and for the paper form, where the matched port
    does not apply."""
    control = (problem.family != "network" and problem.batch == 1
               and problem.layout.uniform)
    return "matched" if control and formulation == "consistent" else "gd"


def _initial_fields(problem, init):
    """(x, λ, θ) to start from: ``"zeros"`` (x_0 = x_in, all else 0) or ``"forward"``."""
    B, N, n = problem.batch, problem.N, problem.n
    theta = problem.theta0.copy()
    if isinstance(init, str):
        if init == "zeros":
            x = np.zeros((B, N + 1, n))
            x[:, 0] = problem.x_in
            return x, np.zeros_like(x), theta
        if init == "forward":
            x = problem.forward(theta)
            return x, problem.adjoint(x, theta), theta
        raise ValueError(f"unknown init {init!r}; valid: zeros, forward, or a (x, lam, theta) "
                         "tuple")
    x, lam, theta = (np.array(a, dtype=float) for a in init)
    for name, arr, shape in (("init x", x, (B, N + 1, n)), ("init lam", lam, (B, N + 1, n)),
                             ("init theta", theta, problem.theta0.shape)):
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
    return x, lam, theta


def solve(problem, *, formulation: str = "consistent", scheme: str = "upwind",
          courant: float = 1.0, alpha: float | None = None, eta="auto", port=None,
          metric=1.0, termination: str = "implicit", sources: str = "after",
          max_steps: int = 500_000, tol: float = 1e-10, record_every: int | None = None,
          callback=None, callback_every: int = 10_000, backend: str = "auto",
          allow_unstable: bool = False, divergence_bound: float = 1e12,
          init="zeros", out=None, resume: bool = False, snapshot_every: int | None = None,
          progress: bool = False, dtype: str = "float64") -> WaveResult:
    """Relax the PMP of ``problem`` on the worldsheet until its residuals fall below ``tol``.

    Parameters
    ----------
    problem : LayeredProblem
        E.g. ``problems.lqr()``.
    formulation : ``"consistent"`` or ``"paper"``
    scheme : ``"upwind"``, ``"characteristic"`` or ``"lax-wendroff"``
    courant : float
        ν = c Δτ / Δt; must lie in the scheme's stable range unless ``allow_unstable``.
    alpha : float, optional
        Source gain of the paper form (default α = ν).
    eta : float or ``"auto"``
        Gain of the resistive port (``port`` None or ``"gd"``; ignored for another port);
        ``"auto"`` is :func:`auto_eta`.
    port : Port or str, optional
        A parameter port object or registry name (``"matched"`` by name takes the problem's
        ``matched_settings``). Default (None): :func:`default_port` —
        ``"matched"`` for a control problem in the consistent form, else ``"gd"``; a number
        given as ``eta`` means ``"gd"``.
    metric : float, array (n,), (n, n) or (N + 1, n, n)
        Metric factor Θ (see :class:`~wavecontrol.metric.Metric`).
    termination : ``"implicit"`` or ``"explicit"``
        Terminal effort termination (Lemma 2.5; explicit = Algorithm 1 line 26).
    sources : ``"after"`` or ``"before"`` transport (paper form).
    max_steps : int
        Budget of τ-steps.
    tol : float
        The run converges when the max-abs norms of r_x, r_λ and r_θ are all ≤ tol.
    record_every : int, optional
        History sampling interval in τ-steps (default: max_steps / 5000, at least 1).
    callback : callable, optional
        ``callback(step, info)`` every ``callback_every`` steps with ``info`` holding the
        current fields and residual norms; returning True stops the run (``interrupted``).
    backend : ``"auto"``, ``"numba"`` or ``"numpy"``
    divergence_bound : float
        The run is ``diverged`` at the first τ-step whose new fields would have V (or the
        parameter energy ½‖θ‖²) above ``divergence_bound · max(V_initial, 1)`` or non-finite;
        the result then holds the fields of the step before, and ``diverged_at = steps + 1``.
    init : ``"zeros"``, ``"forward"`` or a tuple (x, λ, θ)
        Initial fields.
    out : path, optional
        Keep the run in this HDF5 file (:mod:`wavecontrol.storage`, ``docs/storage.md``):
        history, snapshots, the state to resume from (flushed every
        :data:`solvers.recording.FLUSH_SECONDS`) and the final fields. The file must not exist
        unless ``resume``.
    resume : bool
        Continue the run stored in ``out`` from its last flushed state (a missing file starts
        a new run). The configuration must equal the stored one except for ``max_steps``,
        ``tol``, ``backend`` and ``divergence_bound``; ``record_every`` and ``snapshot_every``
        default to the stored ones. A deterministic run resumed this way ends bit-identical to
        an uninterrupted one.
    snapshot_every : int, optional
        With ``out``: store the wave fields w± every this many τ-steps (0: none); default
        :func:`solvers.recording.default_snapshot_every`.
    progress : bool
        Show a progress bar (tqdm, on stderr): τ-steps, residual, V.
    dtype : ``"float64"`` or ``"float32"``
        Working precision of the compiled network kernel (float32 needs it: a network problem,
        the consistent form, upwind, the resistive port). The fields returned are float64 in
        both; a float32 run's residuals stall near 1e-7 of the fields' size, so a smaller
        ``tol`` runs to ``max_steps``. Ledger sums and the history are float64 in both.
    """
    N = problem.N
    if port is None and isinstance(eta, str) and eta == "auto":
        port = default_port(problem, formulation)
    if isinstance(port, str) and port == "gd":
        # the resistive port by name takes its gain from ``eta`` (default: auto), like no port
        port = None
    if eta == "auto" and port is None:
        eta_value = None
    else:
        eta_value = None if port is not None else _number("eta", eta, lower=0.0)
    cfg = StepConfig(formulation=formulation, scheme=scheme, courant=courant, alpha=alpha,
                     eta=0.0 if eta_value is None else eta_value, termination=termination,
                     sources=sources, allow_unstable=allow_unstable)
    if isinstance(courant, bool) or not isinstance(courant, numbers.Real):
        raise ValueError(f"courant must be a number, got {courant!r}")
    courant = float(courant)
    cfg.validate(N)
    if port is None:
        port = ResistivePort(auto_eta(problem, float(courant)) if eta_value is None
                             else eta_value)
    elif isinstance(port, str) and port == "matched":
        port = get_port(port, **problem.matched_settings)
    else:
        port = get_port(port)
    port.bind(problem, courant=courant)
    if isinstance(port, ResistivePort):
        cfg = StepConfig(**{**cfg.to_dict(), "eta": port.eta})
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    met = metric if isinstance(metric, Metric) else Metric(metric, problem.n, N)
    family = problem.family
    if port.name == "matched":
        if cfg.formulation != "consistent":
            raise ValueError("port 'matched' runs in formulation 'consistent' (its fixed points "
                             f"are the discrete PMP there), got {cfg.formulation!r}")
        node = problem.node_kernel()
        why = (None if node is not None else
               f"port 'matched' on problem {problem.name!r} (it gives no node functions: "
               "LayeredProblem.node_kernel)")
    elif family == "affine":
        why = None if port.compiled else f"port {port.name!r} (it implements 'gd')"
    elif family == "network":
        why = network_compiled_reason(problem, cfg, port, met)
    else:
        node = problem.node_kernel()
        why = node_gd_compiled_reason(problem, cfg, port, node)
    if backend == "numba" and why is not None:
        raise ValueError(f"backend 'numba' has no compiled kernel for {why}; use backend "
                         "'numpy' or 'auto'")
    use_numba = why is None and backend != "numpy"
    if dtype == "float32" and not (use_numba and family == "network"):
        raise ValueError("dtype 'float32' needs the compiled network kernel (a network problem, "
                         "formulation 'consistent', scheme 'upwind', port 'gd', a scalar "
                         f"metric, backend 'auto' or 'numba'); here: {why or 'backend numpy'}")
    if int(max_steps) != max_steps or max_steps < 0:
        raise ValueError(f"max_steps must be an integer >= 0, got {max_steps!r}")
    max_steps = int(max_steps)
    tol = _number("tol", tol, lower=0.0)
    recorder = None
    if out is not None or progress or resume:
        from solvers.recording import RunRecorder
        recorder = RunRecorder(out, resume=resume, progress=progress,
                               snapshot_every=snapshot_every)
    stored = None if recorder is None else recorder.stored
    if record_every is None:
        record_every = (stored.record_every if stored is not None
                        else max(1, max_steps // 5000))
    if int(record_every) != record_every or record_every < 1:
        raise ValueError(f"record_every must be an integer >= 1, got {record_every!r}")
    if int(callback_every) != callback_every or callback_every < 1:
        raise ValueError(f"callback_every must be an integer >= 1, got {callback_every!r}")
    divergence_bound = _number("divergence_bound", divergence_bound, lower=0.0)

    if stored is not None:      # resume: the driver's fields of the stored state
        u, v, theta, V0 = recorder.initial_state()
    else:
        x, lam, theta = _initial_fields(problem, init)
        if cfg.formulation == "paper":
            u, v = met.to_waves(x, lam)
            V0 = energy(u, v, problem.dt)
        else:
            u, v = x, lam
            a, b = met.characteristic(x, lam)
            V0 = energy(a, b, problem.dt)
    u, v = np.ascontiguousarray(u), np.ascontiguousarray(v)
    theta = np.ascontiguousarray(theta)
    bound = divergence_bound * max(V0, 1.0)
    hist = np.full((max_steps // record_every + 1, len(HISTORY_COLUMNS)), np.nan)

    config = {"formulation": cfg.formulation, "scheme": cfg.scheme, "courant": float(courant),
              "alpha": cfg.source_gain if cfg.formulation == "paper" else None,
              "port": port.config(), "metric": met.describe(), "termination": cfg.termination,
              "sources": cfg.sources, "max_steps": max_steps, "tol": tol,
              "record_every": int(record_every), "backend": "numba" if use_numba else "numpy",
              "dtype": dtype,
              "allow_unstable": bool(allow_unstable), "divergence_bound": divergence_bound,
              "init": init if isinstance(init, str) else "arrays",
              "problem": problem.config()}
    step, rows, maxerr = 0, 0, 0.0
    if recorder is not None:
        hist, step, rows, maxerr = recorder.begin(
            problem=problem, metric=met, formulation=cfg.formulation, port=port, config=config,
            columns=HISTORY_COLUMNS, hist=hist, u=u, v=v, theta=theta, V_initial=V0,
            max_steps=max_steps)
    compile_time = 0.0
    if use_numba and port.name == "matched":
        module, lead, tail = _node_run_data(problem, cfg, met, node)
        family = ("matched", module.__name__)
        head = (*lead, port.floor, port.newton, port.newton_below, port.ramp_steps,
                port.ramp_from, *tail)

        def run_chunk(start, n):
            return module.matched_run(*head, u[0], v[0], theta, port.kernel_state(),
                                      port.kernel_switch(), start, n, tol, record_every, hist,
                                      rows, bound, problem.dt)

        def warm_up():
            module.matched_run(*head, u[0].copy(), v[0].copy(), theta.copy(),
                               port.kernel_state().copy(), port.kernel_switch().copy(), 0, 0,
                               tol, record_every, hist[:0].copy(), 0, bound, problem.dt)
    elif use_numba and family not in ("affine", "network"):
        # the resistive port over node functions (wavecontrol.nodekernels_gd)
        module, lead, tail = _node_run_data(problem, cfg, met, node)
        family = ("gd", module.__name__)
        gd_args = (*lead, float(port.eta), *tail)

        def run_chunk(start, n):
            return module.gd_run(*gd_args, u[0], v[0], theta, start, n, tol, record_every,
                                 hist, rows, bound, problem.dt)

        def warm_up():
            module.gd_run(*gd_args, u[0].copy(), v[0].copy(), theta.copy(), 0, 0, tol,
                          record_every, hist[:0].copy(), 0, bound, problem.dt)
    elif use_numba and family == "affine":
        data = problem.kernel_data()
        A, Bm, c, Q, R, Qf, gf, x_in = data
        Ti_N = met.theta_inv[-1]
        Mterm = np.ascontiguousarray(np.linalg.inv(np.eye(problem.n) + Ti_N.T @ Qf @ Ti_N))
        args = (kernels.FORM_CODES[cfg.formulation],
                SCHEME_CODES[transport_scheme(cfg.formulation, cfg.scheme)],
                cfg.termination == "explicit", cfg.sources == "before", float(cfg.courant),
                float(cfg.source_gain), float(port.eta), A, Bm, c, Q, R, Qf, gf, x_in,
                met.theta, met.theta_inv, Mterm)

        def run_chunk(start, n):
            return kernels.affine_run(*args, u, v, theta, start, n, tol, record_every, hist,
                                      rows, bound, problem.dt)

        def warm_up():
            kernels.affine_run(*args, u.copy(), v.copy(), theta.copy(), 0, 0, tol,
                               record_every, hist[:0].copy(), 0, bound, problem.dt)
    elif use_numba:
        cm = _node_scalars(problem, met)
        proto = np.empty(0, dtype=dtype)
        explicit = cfg.termination == "explicit"

        def run_chunk(start, n):
            # the mini-batch is read at every chunk: a callback may have drawn a new one
            return netkernels.network_run(*problem.kernel_data(), cm, float(cfg.courant),
                                          float(port.eta), explicit, u, v, theta, proto,
                                          start, n, tol, record_every, hist, rows, bound,
                                          problem.dt)

        def warm_up():
            netkernels.network_run(*problem.kernel_data(), cm, float(cfg.courant),
                                   float(port.eta), explicit, u.copy(), v.copy(), theta.copy(),
                                   proto, 0, 0, tol, record_every, hist[:0].copy(), 0, bound,
                                   problem.dt)
    if use_numba and (family, dtype) not in _COMPILED and not jit_disabled():
        t0 = time.perf_counter()
        warm_up()
        compile_time = time.perf_counter() - t0
        _COMPILED.add((family, dtype))
    # the network kernel makes one BLAS call per layer on each thread: BLAS's own threads
    # would oversubscribe the cores (and make small products 2-4x slower)
    blas_limit = (netkernels.blas_single_thread() if use_numba and family == "network"
                  else None)

    status, message, diverged_at = Status.MAX_STEPS, "", None
    res = (math.nan, math.nan, math.nan) if stored is None else stored.residuals
    t_loop = time.perf_counter()
    try:
        while True:
            chunk = min(max_steps - step, callback_every - step % callback_every)
            if recorder is not None:
                chunk = recorder.chunk_length(step, chunk)
            last_res = res
            if use_numba:
                done, code, rows, err, *res = run_chunk(step, chunk)
            else:
                done, code, rows, err, *res = _numpy_run(problem, met, cfg, port, u, v, theta,
                                                         step, chunk, tol, record_every, hist,
                                                         rows, bound)
            if done == 0 and code == kernels.RUNNING:   # an empty chunk measured nothing
                res = last_res
            step += done
            maxerr = max(maxerr, err)
            if code == kernels.CONVERGED:
                status = Status.CONVERGED
                message = f"all residuals <= tol = {tol:g} after {step} τ-steps"
                break
            if code == kernels.DIVERGED:
                status, diverged_at = Status.DIVERGED, step + 1
                message = (f"diverged at τ-step {diverged_at}: the wave energy V would exceed "
                           f"{divergence_bound:g} x max(V_initial, 1) (or ½|θ|² would);"
                           f" the fields returned are those of τ-step {step}")
                if hint := port.divergence_hint():
                    message += f". Hint: {hint}"
                break
            if step >= max_steps:
                message = (f"max_steps = {max_steps} reached; residuals (x {res[0]:.3g}, lambda "
                           f"{res[1]:.3g}, theta {res[2]:.3g}) > tol = {tol:g}")
                break
            if callback is not None and step % callback_every == 0:
                info = {"u": u, "v": v, "theta": theta, "residuals": tuple(res)}
                if callback(step, info):
                    status, message = Status.INTERRUPTED, f"stopped by callback at τ-step {step}"
                    break
            if recorder is not None and recorder.chunk_done(step, u, v, theta, hist, rows,
                                                            maxerr, res):
                status, message = Status.INTERRUPTED, f"interrupted (Ctrl-C) at τ-step {step}"
                break
    except KeyboardInterrupt:
        if recorder is not None:
            step, rows, maxerr = recorder.rewind(step, u, v, theta, rows, maxerr)
        status, message = Status.INTERRUPTED, f"interrupted (Ctrl-C) at τ-step {step}"
    except BaseException:
        if recorder is not None:
            recorder.close()
        raise
    finally:
        if blas_limit is not None:
            blas_limit.restore_original_limits()
    wall = time.perf_counter() - t_loop

    return final_result(problem, met, config, status, message, diverged_at, step, u, v, theta,
                        hist, rows, maxerr, res, V0, wall, compile_time, recorder)


def final_result(problem, met, config, status, message, diverged_at, step, u, v, theta, hist,
                 rows, maxerr, res, V0, wall, compile_time, recorder) -> WaveResult:
    """The result of a run (and the run file's final record) from the driver's whole fields
    (u, v), θ and history; :func:`solve` and :func:`solvers.parallel.solve_parallel` end here.
    ``res`` are the residual norms the run measured last."""
    if config["formulation"] == "paper":
        x, lam = met.from_waves(u, v)
        V_final = energy(u, v, problem.dt)
    else:
        x, lam = u.copy(), v.copy()
        V_final = energy(*met.characteristic(x, lam), problem.dt)
    with np.errstate(all="ignore"):
        r_x, r_l, r_t = problem.residuals(x, lam, theta)
        objective = problem.objective(theta)
    residuals = {"x": float(np.abs(r_x).max()), "lambda": float(np.abs(r_l).max()),
                 "theta": float(np.abs(r_t).max())}
    if status == Status.CONVERGED:
        # the status was judged on the residuals the run measured on these very fields; report
        # exactly those (a NumPy recomputation may differ from the kernel's sums in the last
        # bits, and a reported residual must never contradict the status)
        residuals = {"x": float(res[0]), "lambda": float(res[1]), "theta": float(res[2])}
    history = {name: hist[:rows, j].copy() for j, name in enumerate(HISTORY_COLUMNS)}
    history["step"] = history["step"].astype(np.int64)
    history["tau"] = history["step"] * config["courant"] * problem.dt
    if recorder is not None:
        recorder.finish(status=status.value, message=message, diverged_at=diverged_at,
                        step=step, u=u, v=v, theta=theta, hist=hist, rows=rows,
                        ledger_max=maxerr, res=tuple(res),
                        final={"x": x, "lam": lam, "theta": theta, "residuals": residuals,
                               "objective": objective, "V_final": V_final, "wall_time": wall,
                               "compile_time": compile_time})
    return WaveResult(status=status, message=message, steps=step, x=x, lam=lam,
                      theta=theta.copy(), residuals=residuals, objective=float(objective),
                      history=history, diverged_at=diverged_at, wall_time=wall,
                      compile_time=compile_time, config=config,
                      ledger_max_rel_error=float(maxerr), V_initial=float(V0),
                      V_final=float(V_final))


def _node_run_data(problem, cfg, met, node):
    """What the compiled loops over node functions (``matched_run``, ``gd_run``) take around
    their port's parameters: (generated module, (scheme code, explicit termination, ν),
    (bounded, lo, hi, node data, x_in, Θ, Θ⁻¹))."""
    module = kernel_module(node[0])
    lead = (SCHEME_CODES[cfg.scheme], cfg.termination == "explicit", float(cfg.courant))
    tail = (problem.bounds is not None, *bound_arrays(problem), node[1],
            np.ascontiguousarray(problem.x_in[0], dtype=float),
            np.ascontiguousarray(met.theta), np.ascontiguousarray(met.theta_inv))
    return module, lead, tail


def _numpy_run(problem, met, cfg, port, u, v, theta, start, nsteps, tol, record_every, hist,
               rows, bound):
    """NumPy twin of :func:`wavecontrol.kernels.affine_run` (same contract, any problem)."""
    step_fn = paper_step_numpy if cfg.formulation == "paper" else consistent_step_numpy
    matched = port.name == "matched"
    if matched:
        step_fn = matched_step_numpy
    maxerr = 0.0
    res = (math.nan, math.nan, math.nan)
    for it in range(nsteps):
        # the matched port's terminal ramp runs on the τ-step's index
        kw = {"step": start + it} if matched else {}
        with np.errstate(all="ignore"):
            u1, v1, th1, led, (r_x, r_l, r_t) = step_fn(problem, met, cfg, u, v, theta, port,
                                                        **kw)
        if not (led["V"] <= bound):
            port.undo()
            return it, kernels.DIVERGED, rows, maxerr, *res
        res = (float(np.abs(r_x).max()), float(np.abs(r_l).max()), float(np.abs(r_t).max()))
        if max(res) <= tol and port.may_converge(start + it):
            if cfg.formulation != "paper":
                port.undo()
                return it, kernels.CONVERGED, rows, maxerr, *res
            # the paper step's residuals are those of the transported fields: confirm on the
            # fields that would be returned
            x, lam = met.from_waves(u, v)
            conf = tuple(float(np.abs(r).max()) for r in problem.residuals(x, lam, theta))
            if max(conf) <= tol:
                port.undo()
                return it, kernels.CONVERGED, rows, maxerr, *conf
        bad = not (led["V_next"] <= bound and 0.5 * float(np.sum(th1 * th1)) <= bound)
        err = ledger_error(led)
        if not bad:
            maxerr = max(maxerr, err)
        step = start + it
        due = step % record_every == 0 and rows < hist.shape[0]
        refl = math.nan
        if due:
            with np.errstate(all="ignore"):
                refl = port.reflection(r_t, th1 - theta)
        # the diverging step's row is kept only when its numbers are finite
        keep = not bad or (math.isfinite(led["V_next"]) and math.isfinite(err)
                           and math.isfinite(refl))
        if keep and due:
            values = {**led, "step": step, "ledger_error": err, "res_x": res[0],
                      "res_lambda": res[1], "res_theta": res[2],
                      "objective": problem.objective(theta), "reflection": refl}
            hist[rows] = [values[name] for name in HISTORY_COLUMNS]
            rows += 1
        if bad:
            port.undo()
            return it, kernels.DIVERGED, rows, maxerr, *res
        u[...], v[...], theta[...] = u1, v1, th1
    return nsteps, kernels.RUNNING, rows, maxerr, *res


def _number(name, value, lower=None):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (lower is not None and value < lower):
        raise ValueError(f"{name} must be a finite number >= {lower:g}, got {value!r}")
    return value


__all__ = ["solve", "default_port", "auto_eta", "hessian_norm", "BACKENDS", "HISTORY_COLUMNS",
           "LEDGER_TERMS", "Port"]
