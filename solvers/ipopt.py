"""IPOPT (through CasADi) on the same discrete problem: the field's standard locked NLP solver.

The layered problem (batch 1) is transcribed into a CasADi NLP over the controls θ = (u_0, ...,
u_{N−1}) and, for multiple shooting, the states x_1..x_N:

    minimize    Σ_k R_k(x_k, u_k) + ℓ(x_N)
    subject to  x_{k+1} = f_k(x_k, u_k),  k = 0..N−1,   x_0 = x_in     (multiple shooting)
                lo ≤ u_k ≤ hi                                         (where the problem has bounds)

(single shooting substitutes the recursion into the objective and keeps only θ). It is the
same J(θ) the other solvers minimize, written a second time in CasADi's symbols, so IPOPT's
optimum is an independent reference for J* and θ*. :func:`casadi_model` builds the layer maps:

- :class:`~wavecontrol.problem.AffineQuadraticProblem` (e.g. the LQR) from its matrices
  ``kernel_data()`` = (A, B, c, Q, R, Q_f, g_f, x_in): f_k = A_k x + B_k u + c_k,
  R_k = ½ xᵀQ_k x + ½ uᵀR_k u, ℓ = ½ xᵀQ_f x + g_fᵀ x;
- the Euler-discretized :class:`~problems.pendulum.Pendulum` from its parameters:
  f_k = x + Δt (ω, −(g/l) sin θ − b ω + u/(m l²)), R_k = Δt (½ eᵀQe + ½ uᵀRu), ℓ = ½ eᵀQ_f e;
- an :class:`~problems.expressions.ExpressionProblem` from its SymPy expressions
  (``problem.sympy``, converted with ``sympy.lambdify`` and a table of CasADi functions,
  :data:`CASADI_FUNCTIONS`), stepped by the same one-step integrator (Euler, midpoint or RK4
  tableau, ``substeps``) at t_k = k Δt, R_k = Δt L(x_k, u_k, t_k), ℓ = Φ(x_N), with its box
  ``problem.bounds`` as IPOPT's variable bounds.

IPOPT runs with exact Hessians (CasADi's automatic differentiation) and its termination test at
``tol`` on the scaled NLP error, with the unscaled dual infeasibility and constraint violation
also held to ``tol``. With multiple shooting that bounds the defects x_{k+1} − f_k(x_k, u_k)
and the gradient of the Lagrangian; the gradient of the reduced J(θ) at the returned controls
can be larger by the states' sensitivity to the defects (on an RK4 pendulum swing-up: max|∇J|
4e-9 at tol 1e-10, 6e-13 at tol 1e-12), and the result reports it. The result is a :class:`~wavecontrol.result.WaveResult` built like every
locked method's (:func:`solvers.adjoint.locked_result`): its fields, objective and residuals
are measured at IPOPT's θ with the problem's own forward and adjoint passes, so the gradient
column is the same measure as for L-BFGS. ``compile_time`` is the time CasADi took to build the
NLP and IPOPT's interface (not in ``wall_time``).

Needs the optional extra ``wavecontrol[casadi]`` (the CasADi wheel ships IPOPT).
"""

from __future__ import annotations

import time

import numpy as np

from wavecontrol.problem import AffineQuadraticProblem
from wavecontrol.result import Status

from .adjoint import check_count, check_positive, initial_theta, locked_result

CASADI_EXTRA = ("the ipopt method needs CasADi (its wheel ships IPOPT): pip install "
                "'wavecontrol[casadi]' (or pip install casadi)")
TRANSCRIPTIONS = ("multiple-shooting", "single-shooting")
#: IPOPT return statuses → the result's status (any other is ``max_steps``, with IPOPT's
#: status in the message: the run did not converge)
IPOPT_STATUS = {"Solve_Succeeded": Status.CONVERGED,
                "Maximum_Iterations_Exceeded": Status.MAX_STEPS,
                "Diverging_Iterates": Status.DIVERGED,
                "Invalid_Number_Detected": Status.DIVERGED}


def _casadi():
    try:
        import casadi
    except ImportError as err:
        raise ImportError(CASADI_EXTRA) from err
    return casadi


#: the SymPy function names :func:`casadi_model` converts (plus the constants pi and E)
CASADI_FUNCTIONS = ("sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh",
                    "tanh", "asinh", "acosh", "atanh", "exp", "log", "sqrt", "Abs", "sign",
                    "Min", "Max", "floor", "ceiling", "erf")
_CASADI_NAMES = {"Abs": "fabs", "Min": "fmin", "Max": "fmax", "ceiling": "ceil"}


def casadi_functions(ca) -> dict:
    """SymPy names → CasADi functions and constants (the ``modules`` table of ``lambdify``)."""
    table = {name: getattr(ca, _CASADI_NAMES.get(name, name)) for name in CASADI_FUNCTIONS}
    table.update(pi=np.pi, E=np.e)
    return table


class CasadiModel:
    """The discrete problem in CasADi symbols: ``step(k, x, u)`` → x_{k+1},
    ``running(k, x, u)`` → R_k, ``terminal(x)`` → ℓ, with ``n``, ``m``, ``N``, ``x_in`` (n,)
    and ``bounds`` ((lo, hi) arrays (m,) or None)."""

    def __init__(self, n, m, N, x_in, step, running, terminal, bounds=None, kind=""):
        self.n, self.m, self.N = int(n), int(m), int(N)
        self.x_in = np.asarray(x_in, dtype=float).reshape(self.n)
        self.step, self.running, self.terminal = step, running, terminal
        self.bounds = bounds
        self.kind = kind


def applicability(problem) -> str | None:
    """None when :func:`casadi_model` can transcribe ``problem``, else the reason."""
    if problem.batch != 1:
        return f"the IPOPT transcription needs batch = 1, the problem has {problem.batch}"
    if isinstance(problem, AffineQuadraticProblem):
        return None
    if hasattr(problem, "sympy") and hasattr(problem, "integrator"):
        return None
    from problems.pendulum import Pendulum
    if isinstance(getattr(problem, "continuous", None), Pendulum) and _is_euler(problem):
        return None
    return (f"problem {problem.name!r} has no CasADi transcription (affine-quadratic "
            "problems, the pendulum and problems from SymPy expressions have one)")


def _is_euler(problem):
    from problems.builder import EulerProblem
    return isinstance(problem, EulerProblem)


def casadi_model(problem, ca=None) -> CasadiModel:
    """The CasADi form of ``problem`` (module docstring); ValueError when there is none."""
    ca = _casadi() if ca is None else ca
    reason = applicability(problem)
    if reason is not None:
        raise ValueError(reason)
    if isinstance(problem, AffineQuadraticProblem):
        return _affine(problem, ca)
    if hasattr(problem, "sympy"):
        return _expressions(problem, ca)
    return _pendulum(problem, ca)


def _affine(problem, ca):
    A, B, c, Q, R, Qf, gf, x_in = problem.kernel_data()
    DM = ca.DM

    def step(k, x, u):
        return ca.mtimes(DM(A[k]), x) + ca.mtimes(DM(B[k]), u) + DM(c[k])

    def running(k, x, u):
        return 0.5 * ca.bilin(DM(Q[k]), x, x) + 0.5 * ca.bilin(DM(R[k]), u, u)

    def terminal(x):
        return 0.5 * ca.bilin(DM(Qf), x, x) + ca.dot(DM(gf), x)

    return CasadiModel(problem.n, problem.m, problem.N, x_in[0], step, running, terminal,
                       kind="affine-quadratic")


def _pendulum(problem, ca):
    p, dt = problem.continuous, problem.dt
    Q, R, Qf, target = (ca.DM(a) for a in (p.Q, p.R, p.Qf, p.target))

    def step(k, x, u):
        acc = -p.w2 * ca.sin(x[0]) - p.b * x[1] + p.gain * u[0]
        return x + dt * ca.vertcat(x[1], acc)

    def running(k, x, u):
        e = x - target
        return dt * (0.5 * ca.bilin(Q, e, e) + 0.5 * ca.bilin(R, u, u))

    def terminal(x):
        e = x - target
        return 0.5 * ca.bilin(Qf, e, e)

    return CasadiModel(2, 1, problem.N, problem.x_in[0], step, running, terminal,
                       kind="pendulum")


def _expressions(problem, ca):
    import sympy

    from problems.integrators import TABLEAUX

    s = problem.sympy
    xs, us, t = s["x"], s["u"], s["t"]
    params = s["params"]
    subs = {sym: float(val) for sym, val in params.items()}
    table = casadi_functions(ca)
    args = [list(xs), list(us), t if t is not None else sympy.Symbol("_t_unused")]

    def convert(what, expr, arguments):
        expr = sympy.sympify(expr).subs(subs)
        unknown = sorted({f.func.__name__ for f in expr.atoms(sympy.Function)}
                         - set(CASADI_FUNCTIONS))
        if unknown:
            raise ValueError(f"{what} uses {unknown}, which have no CasADi counterpart here; "
                             f"convertible: {', '.join(CASADI_FUNCTIONS)}")
        return sympy.lambdify(arguments, expr, modules=[table])

    f_fns = [convert(f"f[{i}]", e, args) for i, e in enumerate(s["f"])]
    L_fn = convert("L", s["L"], args)
    Phi_fn = convert("Phi", s["Phi"], [list(xs)])
    n, m, N, dt = problem.n, problem.m, problem.N, problem.dt
    c_, a_, b_ = TABLEAUX[problem.integrator]
    sub = int(s["substeps"])

    def rhs(x, u, tt):
        xl, ul = [x[i] for i in range(n)], [u[j] for j in range(m)]
        return ca.vertcat(*[fn(xl, ul, tt) for fn in f_fns])

    def step(k, x, u):
        h = dt / sub
        for j in range(sub):
            tt = k * dt + j * h
            K = rhs(x, u, tt + c_[0] * h)
            acc = b_[0] * K
            for i in range(1, len(c_)):
                K = rhs(x + h * a_[i - 1] * K, u, tt + c_[i] * h)
                acc = acc + b_[i] * K
            x = x + h * acc
        return x

    def running(k, x, u):
        return dt * L_fn([x[i] for i in range(n)], [u[j] for j in range(m)], k * dt)

    def terminal(x):
        return Phi_fn([x[i] for i in range(n)])

    return CasadiModel(n, m, N, problem.x_in[0], step, running, terminal,
                       bounds=problem.bounds, kind=f"expressions ({problem.integrator})")


def _check_options(options):
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(f"options must be a dict of IPOPT options, got "
                         f"{type(options).__name__}")
    return dict(options)


def solve_ipopt(problem, *, tol: float = 1e-10, max_iter: int = 3000,
                transcription: str = "multiple-shooting", theta0=None, options=None,
                print_level: int = 0):
    """Minimize J(θ) with IPOPT on the CasADi transcription of ``problem`` (module docstring).

    Parameters
    ----------
    problem : LayeredProblem with batch 1 that :func:`applicability` accepts
    tol : float > 0
        IPOPT's ``tol``, ``dual_inf_tol`` and ``constr_viol_tol``.
    max_iter : int ≥ 1
        IPOPT iterations.
    transcription : ``"multiple-shooting"`` (u and x, the dynamics as equality constraints;
        the default) or ``"single-shooting"`` (u only)
    theta0 : array (N, m), optional
        Initial controls (default ``problem.theta0``); the initial states are its forward pass.
    options : dict, optional
        More IPOPT options (without the ``ipopt.`` prefix), e.g. ``{"mu_strategy":
        "adaptive"}``; they override the ones set here.
    print_level : int
        IPOPT's print level (0: silent).

    Returns
    -------
    WaveResult
        ``steps`` = IPOPT iterations; ``history`` has ``step``, ``objective`` (IPOPT's f) and
        ``inf_pr``, ``inf_du`` per iteration; ``info`` has ``ipopt_status``, ``transcription``,
        ``model`` (which transcription of the problem), ``variables``, ``constraints`` and
        ``casadi`` (the version).
    """
    ca = _casadi()
    tol = check_positive("tol", tol)
    max_iter = check_count("max_iter", max_iter)
    if transcription not in TRANSCRIPTIONS:
        raise ValueError(f"unknown transcription {transcription!r}; valid: "
                         f"{', '.join(TRANSCRIPTIONS)}")
    extra = _check_options(options)
    theta = initial_theta(problem, theta0)
    t_build = time.perf_counter()
    model = casadi_model(problem, ca)
    n, m, N = model.n, model.m, model.N
    U = ca.SX.sym("u", m, N)
    lo_u, hi_u = ((np.full(m, -np.inf), np.full(m, np.inf)) if model.bounds is None
                  else (np.asarray(model.bounds[0], float), np.asarray(model.bounds[1], float)))
    x = ca.DM(model.x_in)
    J = 0
    g = []
    if transcription == "multiple-shooting":
        X = ca.SX.sym("x", n, N)
        for k in range(N):
            J = J + model.running(k, x, U[:, k])
            nxt = model.step(k, x, U[:, k])
            g.append(X[:, k] - nxt)
            x = X[:, k]
        J = J + model.terminal(x)
        w = ca.vertcat(ca.vec(U), ca.vec(X))
        x0_states = problem.forward(theta)[0, 1:]                     # (N, n)
        w0 = np.concatenate([theta.ravel(), x0_states.ravel()])
        lbw = np.concatenate([np.tile(lo_u, N), np.full(n * N, -np.inf)])
        ubw = np.concatenate([np.tile(hi_u, N), np.full(n * N, np.inf)])
    else:
        for k in range(N):
            J = J + model.running(k, x, U[:, k])
            x = model.step(k, x, U[:, k])
        J = J + model.terminal(x)
        w = ca.vec(U)
        w0, lbw, ubw = theta.ravel(), np.tile(lo_u, N), np.tile(hi_u, N)
    G = ca.vertcat(*g) if g else ca.SX(0, 1)
    opts = {"ipopt.tol": tol, "ipopt.dual_inf_tol": tol, "ipopt.constr_viol_tol": tol,
            "ipopt.max_iter": max_iter, "ipopt.print_level": int(print_level),
            "ipopt.sb": "yes", "print_time": False, "record_time": True}
    opts.update({f"ipopt.{k}": v for k, v in extra.items()})
    hist = {"step": [], "objective": [], "inf_pr": [], "inf_du": []}
    solver = ca.nlpsol("ipopt_wavecontrol", "ipopt", {"x": w, "f": J, "g": G}, opts)
    build = time.perf_counter() - t_build
    t0 = time.perf_counter()
    out = solver(x0=w0, lbx=lbw, ubx=ubw, lbg=0, ubg=0)
    wall = time.perf_counter() - t0
    stats = solver.stats()
    it = stats.get("iterations", {})
    for key_hist, key_ipopt in (("objective", "obj"), ("inf_pr", "inf_pr"),
                                ("inf_du", "inf_du")):
        hist[key_hist] = [float(v) for v in it.get(key_ipopt, [])]
    hist["step"] = list(range(len(hist["objective"])))
    # U is stored column-major by vec(): the first N·m entries are u_0, u_1, ... each of m;
    # the interior point may sit up to IPOPT's bound relaxation (~1e-8 relative) outside a
    # bound, so the controls are clipped into the box
    u = np.clip(np.array(out["x"]).ravel()[:N * m].reshape(N, m), lo_u, hi_u)
    ipopt_status = str(stats.get("return_status", "unknown"))
    status = IPOPT_STATUS.get(ipopt_status, Status.MAX_STEPS)
    steps = int(stats.get("iter_count", len(hist["step"]) - 1))
    res = locked_result(problem, u, status=status, message="", steps=steps, history=hist,
                        wall_time=wall,
                        config={"method": "ipopt", "tol": tol, "max_iter": max_iter,
                                "transcription": transcription, "options": extra},
                        info={"ipopt_status": ipopt_status, "transcription": transcription,
                              "model": model.kind, "variables": int(w.numel()),
                              "constraints": int(G.numel()), "casadi": ca.__version__,
                              "ipopt_objective": float(out["f"]), "build_s": build})
    gnorm = res.residuals["theta"]
    res.message = (f"IPOPT {ipopt_status} after {steps} iterations ({transcription}, "
                   f"{int(w.numel())} variables); max|grad J| = {gnorm:.3g} at its controls")
    res.compile_time = build
    return res


__all__ = ["solve_ipopt", "casadi_model", "applicability", "CasadiModel", "TRANSCRIPTIONS",
           "CASADI_EXTRA", "CASADI_FUNCTIONS"]
