"""The ``wavecontrol`` command line: ``solve``, ``compare``, ``verify`` and ``demo``.

Every sub-command calls the same functions as the Python API (:func:`solvers.wave.solve`,
:func:`solvers.compare.compare_methods`, :func:`solvers.verification.run_verification`). Errors
in the input are reported as one line on stderr with exit status 2; ``solve`` exits 0 when the
run converged and 1 otherwise, ``compare`` 0 when every method that ran converged; ``verify``
exits 1 when a check fails. ``solve --out RUN.h5`` keeps the run in a file
(:mod:`wavecontrol.storage`), which ``show`` summarizes and ``plot`` draws; a missing, damaged
or foreign run file is an input error (exit status 2).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
from pathlib import Path

import numpy as np

from .formulations import FORMULATIONS, SCHEMES, SOURCE_TIMINGS, TERMINATIONS


def _parse_set(items):
    """``KEY=JSON`` pairs → dict (``--set A='[[0,1],[2,0]]'``)."""
    params = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"--set expects KEY=JSON, got {item!r}")
        key, text = item.split("=", 1)
        try:
            params[key.strip()] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--set {key}: value {text!r} is not valid JSON ({exc.msg})") from None
    return params


def _eta(text):
    if text == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"eta must be a number or 'auto', got {text!r}") from None


def _finite(v):
    v = float(v)
    return v if math.isfinite(v) else None


# -- problems, ports and references of ``solve`` and ``compare`` --------------------------------
#: flags that set a problem parameter of the same name (a problem that lacks it refuses the flag)
PROBLEM_FLAGS = ("batch", "dataset", "widths", "seed")
#: what ``solve --reference`` may ask for (:func:`reference_solution`)
REFERENCES = ("auto", "lbfgs", "none")
#: the L-BFGS reference: its tolerance on max|grad J| and its iteration budget
LBFGS_REFERENCE_TOL = 1e-10
LBFGS_REFERENCE_MAX_ITER = 10_000


def _widths(text):
    """``--widths 2,32,16,3`` → [2, 32, 16, 3]."""
    try:
        return [int(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"widths must be a comma list of integers such as 2,32,16,3, got {text!r}") from None


def problem_parameters(name: str) -> set | None:
    """Names of the parameters the problem factory ``name`` takes (None if it cannot be told:
    a ``**params`` factory whose module has no ``DEFAULTS``)."""
    from problems import PROBLEMS

    factory = PROBLEMS[name]
    params = inspect.signature(factory).parameters
    if any(q.kind is inspect.Parameter.VAR_KEYWORD for q in params.values()):
        defaults = getattr(sys.modules.get(factory.__module__), "DEFAULTS", None)
        return None if defaults is None else set(defaults)
    return set(params)


def build_problem(args):
    """The problem ``args.problem`` with ``--set`` and the flags of :data:`PROBLEM_FLAGS`.

    A flag whose parameter the problem does not take, or one also given with ``--set``, is an
    input error that names the flag.
    """
    from problems import PROBLEMS, get_problem

    user = is_user_file(args.problem)
    if not user and args.problem not in PROBLEMS:
        raise ValueError(f"unknown problem {args.problem!r}; valid: {', '.join(PROBLEMS)}, "
                         "or path/to/file.py:NAME")
    params = _parse_set(args.set)
    valid = None if user else problem_parameters(args.problem)
    for flag in PROBLEM_FLAGS:
        value = getattr(args, flag, None)
        if value is None:
            continue
        if valid is not None and flag not in valid:
            raise ValueError(f"--{flag} does not apply to problem {args.problem!r}: it has no "
                             f"parameter {flag!r} (its parameters: {', '.join(sorted(valid))})")
        if flag in params:
            raise ValueError(f"{flag} is given twice (--{flag} and --set {flag}=...)")
        params[flag] = value
    if user:
        return load_user_problem(args.problem, params)
    return get_problem(args.problem, **params)


def is_user_file(text: str) -> bool:
    """Whether a problem argument names a user's file, ``path/to/file.py:NAME``."""
    path, sep, name = text.rpartition(":")
    return bool(sep) and path.endswith(".py")


def load_user_problem(text: str, params: dict | None = None):
    """The problem ``NAME`` of ``path/to/file.py:NAME``: a problem object (a
    :class:`~wavecontrol.problem.LayeredProblem`) defined in the file, or a function (factory)
    that returns one, called with ``params`` (``--set``). Each failure is a ValueError of one
    line: a missing file, a file that does not import, a missing name, parameters given for a
    problem object, a factory that refuses its parameters or fails, not a problem."""
    import hashlib
    import importlib.util

    from .problem import LayeredProblem

    params = dict(params or {})
    path_text, _, name = text.rpartition(":")
    path = Path(path_text)
    if not name.isidentifier():
        raise ValueError(f"problem {text!r}: NAME after the colon must be a Python name, "
                         f"got {name!r}")
    if not path.is_file():
        raise ValueError(f"problem file {path_text!r} does not exist")
    mod_name = "wavecontrol_user_" + hashlib.sha256(
        str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:            # the user's file: report it in one line
        raise ValueError(f"problem file {path_text!r} failed to import: "
                         f"{type(exc).__name__}: {exc}") from None
    if not hasattr(module, name):
        defined = sorted(k for k, v in vars(module).items()
                         if not k.startswith("_") and (isinstance(v, LayeredProblem)
                                                       or inspect.isfunction(v)))
        raise ValueError(f"problem file {path_text!r} has no name {name!r} (problems and "
                         f"functions it defines: {', '.join(defined) or 'none'})")
    obj = getattr(module, name)
    if isinstance(obj, LayeredProblem):
        if params:
            raise ValueError(f"{text} is a problem object, not a factory: it takes no "
                             f"parameters (--set {', '.join(sorted(params))})")
        return obj
    if not callable(obj):
        raise ValueError(f"{text} is not a problem (a LayeredProblem, e.g. from "
                         "problems.from_expressions) or a function returning one: it is of "
                         f"type {type(obj).__name__}")
    try:
        inspect.signature(obj).bind(**params)
    except TypeError as exc:
        raise ValueError(f"{text} does not take the parameters {sorted(params)}: {exc}") from None
    except ValueError:
        pass                            # no signature to check (a builtin): just call it
    try:
        prob = obj(**params)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{text}({', '.join(sorted(params))}) failed: "
                         f"{type(exc).__name__}: {exc}") from None
    if not isinstance(prob, LayeredProblem):
        raise ValueError(f"{text} returned an object of type {type(prob).__name__}, not a "
                         "problem (a LayeredProblem, e.g. from problems.from_expressions)")
    return prob


def _port_parameters(name: str) -> list:
    from .ports import PORTS

    return [q for q in inspect.signature(PORTS[name].__init__).parameters if q != "self"]


def _parse_port_params(items):
    """``--port-param KEY=VALUE`` pairs → dict; VALUE is JSON, or else a bare word taken as a
    string (``gain=auto``, ``structure=layer``)."""
    params = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"--port-param expects KEY=VALUE, got {item!r}")
        key, text = (part.strip() for part in item.split("=", 1))
        if key in params:
            raise ValueError(f"--port-param {key} is given twice")
        try:
            params[key] = json.loads(text)
        except json.JSONDecodeError:
            params[key] = text
    return params


def port_settings(args):
    """(eta, port) for :func:`solvers.wave.solve` from ``--port``, ``--port-param``, ``--eta``.

    The resistive port ``gd`` goes through ``eta`` (its ``auto`` gain and the compiled kernels);
    the other ports are built here from their parameters (:func:`wavecontrol.ports.get_port`).
    """
    from .ports import get_port

    params = _parse_port_params(args.port_param)
    name = args.port
    if name is None:
        if not params and args.eta is None:
            return "auto", None         # solve's default_port: matched for control problems
        name = "gd"                     # --eta (or --port-param) without --port: the gd port
    if name == "gd":
        if "eta" in params and args.eta is not None:
            raise ValueError("the gd port's gain is given twice (--eta and --port-param eta=...)")
        eta = params.pop("eta", "auto" if args.eta is None else args.eta)
        if params:
            get_port("gd", **params)        # refuses the unknown parameters, listing eta
        return eta, "gd"
    if args.eta is not None:
        raise ValueError(f"--eta is the gain of the gd port; port {name!r} takes "
                         f"--port-param KEY=VALUE (its parameters: "
                         f"{', '.join(_port_parameters(name))})")
    if name == "matched" and not params:
        return "auto", name             # by name: solve applies the problem's matched_settings
    return "auto", get_port(name, **params)


def reference_solution(problem, kind: str = "auto"):
    """(name, result, reason) of the solution a run is measured against.

    ``auto``: the exact discrete solution where one exists (affine-quadratic, batch 1: the
    discrete Riccati recursion, :func:`solvers.compare.exact_reference`); else, for a problem
    with a continuous-time form (the pendulum), L-BFGS with the exact adjoint gradient to
    max|grad J| <= :data:`LBFGS_REFERENCE_TOL` (a local optimum, not exact; tenths of a second
    at the default sizes); else (networks) none. ``lbfgs``: L-BFGS for any problem. ``none``:
    none. Without a reference, result is None and ``reason`` says why.
    """
    from solvers.compare import exact_reference
    from solvers.lbfgs import solve_lbfgs

    if kind not in REFERENCES:
        raise ValueError(f"unknown reference {kind!r}; valid: {', '.join(REFERENCES)}")
    if kind == "none":
        return None, None, "not asked for (--reference none)"
    if kind == "auto":
        name, ref = exact_reference(problem)
        if name is not None:
            return name, ref, None
        if getattr(problem, "continuous", None) is None:
            none = (" (cross-entropy without weight decay: none at finite theta)"
                    if getattr(problem, "loss", None) == "cross-entropy"
                    and not getattr(problem, "weight_decay", 0.0) else "")
            return None, None, (
                f"problem {problem.name!r} is a network: non-convex, no unique optimum{none}; "
                "L-BFGS from theta0 would cost a training run and may end at another "
                "stationary point; --reference lbfgs runs it anyway")
    ref = solve_lbfgs(problem, tol=LBFGS_REFERENCE_TOL, max_iter=LBFGS_REFERENCE_MAX_ITER)
    return "lbfgs", ref, None


def solve_command(args) -> tuple[dict, object]:
    """Build the problem and solve it; returns (report, result). Under ``mpiexec -n P`` with
    P > 1 the depth-parallel driver runs it (docs/parallel.md) and ranks other than 0 get no
    report (None)."""
    from solvers import parallel, wave

    solve = parallel.solve_parallel if parallel.launched_ranks() > 1 else wave.solve
    problem = build_problem(args)
    eta, port = port_settings(args)
    progress = not (args.quiet or args.json) and sys.stderr.isatty()
    result = solve(problem, formulation=args.formulation, scheme=args.scheme,
                   courant=args.courant, alpha=args.alpha, eta=eta, port=port,
                   metric=args.metric,
                   termination=args.termination, sources=args.sources, max_steps=args.steps,
                   tol=args.tol, backend=args.backend, allow_unstable=args.allow_unstable,
                   record_every=args.record_every, out=args.out, resume=args.resume,
                   snapshot_every=args.snapshot_every, progress=progress, dtype=args.dtype)
    if result.config.get("parallel", {}).get("rank", 0) != 0:
        return None, result
    report = make_report(args.problem, problem, result, full=args.full,
                         reference=args.reference)
    if args.out is not None:
        report["out"] = str(args.out)
    return report, result


def make_report(name: str, problem, result, full: bool = False, reference: str = "auto") -> dict:
    """The JSON document of a solve: settings, status, residuals, reference error, energy.

    ``reference`` (:func:`reference_solution`): the document's ``reference`` is null when there
    is none, and ``reference_reason`` then says why.
    """
    cfg = result.config
    report = {
        "problem": name,
        "formulation": cfg["formulation"],
        "scheme": cfg["scheme"],
        "courant": cfg["courant"],
        "status": result.status.value,
        "success": result.success,
        "steps": result.steps,
        "residuals": {k: _finite(v) for k, v in result.residuals.items()},
        "objective": _finite(result.objective),
    }
    ref_name, ref, reason = reference_solution(problem, reference)
    if ref is None:
        report["reference"] = None
        report["reference_reason"] = reason
    else:
        report["reference"] = {
            "name": ref_name,
            "exact": ref_name == "discrete-riccati",
            "objective": ref.objective,
            "error": {"x": _finite(np.abs(result.x - ref.x).max()),
                      "lambda": _finite(np.abs(result.lam - ref.lam).max()),
                      "theta": _finite(np.abs(result.theta - ref.theta).max())},
            "converged": ref.success,
            "grad_norm": _finite(ref.residuals["theta"]),
            "wall_s": ref.wall_time,
        }
    report["energy"] = {"V_initial": _finite(result.V_initial),
                        "V_final": _finite(result.V_final),
                        "ledger_max_rel_error": _finite(result.ledger_max_rel_error)}
    report["eta"] = cfg["port"].get("eta")
    report["port"] = cfg["port"]
    report["diverged_at"] = result.diverged_at
    report["message"] = result.message
    report["wall_s"] = result.wall_time
    report["compile_s"] = result.compile_time
    if full:
        report["solution"] = {"x": result.x.tolist(), "lambda": result.lam.tolist(),
                              "theta": result.theta.tolist()}
    return report


def _print_solve(report, out=None):
    out = sys.stdout if out is None else out
    p = lambda *a: print(*a, file=out)  # noqa: E731
    port = report.get("port") or {"name": "gd", "eta": report["eta"]}
    if port["name"] == "gd":
        port_text = f"eta {port['eta']:.4g}"
    else:
        port_text = f"port {port['name']} " + ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in port.items() if k != "name")
    p(f"problem      {report['problem']}  ({report['formulation']} formulation, "
      f"{report['scheme']} scheme, courant {report['courant']:g}, {port_text})")
    p(f"status       {report['status']}: {report['message']}")
    r = report["residuals"]
    p(f"residuals    x {r['x']:.3e}   lambda {r['lambda']:.3e}   theta {r['theta']:.3e}  "
      "(max-abs PMP residuals, eqs. 53-56, 59)")
    p(f"objective    {report['objective']:.12g}")
    ref = report.get("reference")
    if ref is not None:
        e = ref["error"]
        fmt = lambda v: "nan" if v is None else f"{v:.3e}"  # noqa: E731
        exact = ref.get("exact", True)
        how = "" if exact else (
            f"; not exact: L-BFGS {'converged' if ref['converged'] else 'stopped'} at "
            f"max|grad J| {fmt(ref['grad_norm'])}")
        p(f"{'vs exact' if exact else 'vs L-BFGS':<13}x {fmt(e['x'])}   lambda {fmt(e['lambda'])}"
          f"   theta {fmt(e['theta'])}  (max-abs distance from the {ref['name']} solution, "
          f"objective {ref['objective']:.12g}{how})")
    elif report.get("reference_reason"):
        p(f"reference    none: {report['reference_reason']}")
    en = report["energy"]
    p(f"energy       V {en['V_initial']:.6g} -> {en['V_final']:.6g};  ledger closes to "
      f"{en['ledger_max_rel_error']:.2e} (max over all steps of |dV - sum of terms| / max(V, 1))")
    p(f"time         {report['wall_s']:.3f} s stepping, {report['compile_s']:.3f} s compiling")
    if "out" in report:
        p(f"run file     {report['out']}  (wavecontrol show {report['out']})")


def verify_command(args) -> int:
    from solvers.verification import run_verification

    progress = None if args.json else (lambda name: print(f"... {name}", file=sys.stderr))
    summary = run_verification(args.suite, progress=progress)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        width = max(len(c["name"]) for c in summary["checks"])
        for c in summary["checks"]:
            rel = c.get("relation", "<=")
            print(f"{'PASS' if c['passed'] else 'FAIL'}  {c['name']:<{width}}  "
                  f"{c['value']:.3e} {rel} {c['bound']:.1e}")
        n_fail = sum(not c["passed"] for c in summary["checks"])
        print(f"{len(summary['checks']) - n_fail} of {len(summary['checks'])} checks passed "
              f"in {summary['wall_s']:.1f} s")
    return 0 if summary["passed"] else 1


def demo_command(args) -> int:
    from problems import lqr
    from solvers.wave import solve

    from .plotting import energy_balance_figure

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problem = lqr()
    print("Default LQR: double integrator, N = 20, T = 2, Q = I, R = 0.1, Qf = 5I, x0 = [1, 0]")
    print("Consistent formulation, upwind scheme, courant 1, matched (Riccati-impedance) port "
          "(the default for control problems; --port gd in solve for the resistive one)\n")
    result = solve(problem, scheme="upwind", courant=1.0, tol=1e-12, max_steps=300_000,
                   record_every=1)
    report = make_report("lqr", problem, result)
    _print_solve(report)
    path = out / "energy_balance.png"
    energy_balance_figure(result, path)
    print(f"\nwrote {path}")
    from figures import fig_stability

    print("\nStability vs Courant number (default LQR, every scheme and formulation, quick grids)")
    info = fig_stability.main(out, quick=True)
    for panel, c in info["numbers"].items():
        print(f"  {panel}: {c['settings']} settings, prediction (spectral radius) and run agree "
              f"on {c['agree']}, disagree on {c['disagree']}, marginal {c['marginal']}")
    print(f"wrote {info['path']}")
    return 0 if result.success else 1


def figures_command(args) -> int:
    """``wavecontrol figures``: every figure of :mod:`figures` into ``--out``."""
    import figures

    done = figures.make_figures(args.out, quick=args.quick, only=args.only)
    for name, info in done.items():
        print(f"{name:12s} {info['seconds']:6.1f} s  {info['path']}")
    return 0


def show_command(args) -> int:
    """``wavecontrol show RUN.h5``: what a run file holds, for a person (or ``--json``)."""
    from .storage import open_run, run_summary

    summary = run_summary(open_run(args.file))
    if args.json:
        print(json.dumps(summary))
    else:
        _print_show(summary)
    return 0


def _fmt(v, spec=".3e"):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _print_show(s, out=None):
    out = sys.stdout if out is None else out
    p = lambda *a: print(*a, file=out)  # noqa: E731
    prob = dict(s["problem"])
    name = prob.pop("name", "?")
    params = "  ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in prob.items())
    cfg = s["solver"]
    port = cfg.get("port", {})
    port_text = " ".join([str(port.get("name", "?"))] + [
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in port.items() if k != "name"])
    p(f"file         {s['path']}  ({s['file_bytes'] / 1024:.1f} kB, {s['format']} schema "
      f"{s['schema_version']}, wavecontrol {s['wavecontrol_version']}, created {s['created']})")
    p(f"problem      {name}  {params}")
    p(f"solver       {cfg.get('formulation')} formulation, {cfg.get('scheme')} scheme, courant "
      f"{cfg.get('courant'):g}, port {port_text}, metric {cfg.get('metric')}, termination "
      f"{cfg.get('termination')}, sources {cfg.get('sources')}, init {cfg.get('init', '?')}")
    p(f"run          max_steps {cfg.get('max_steps')}, tol {cfg.get('tol'):g}, backend "
      f"{cfg.get('backend')} ({cfg.get('dtype', 'float64')}), divergence bound "
      f"{cfg.get('divergence_bound'):g}")
    status = s["status"]
    if not s["complete"]:
        status = ("running, or stopped without closing the file (killed?): what it flushed "
                  f"last, at {s['updated']}, is kept")
    elif s["message"]:
        status = f"{status}: {s['message']}"
    p(f"status       {status}")
    p(f"steps        {s['steps']} τ-steps (τ = {_fmt(s['tau'], '.6g')})"
      + (f", diverged at τ-step {s['diverged_at']}" if s["diverged_at"] is not None else ""))
    r = s["residuals"]
    p(f"residuals    x {_fmt(r.get('x'))}   lambda {_fmt(r.get('lambda'))}   theta "
      f"{_fmt(r.get('theta'))}  (max-abs PMP residuals, {s['residuals_from']})")
    p(f"objective    {_fmt(s['objective'], '.12g')}  "
      f"(initial {_fmt(s['objective_initial'], '.12g')})")
    p(f"energy       V {_fmt(s['V_initial'], '.6g')} -> {_fmt(s['V_final'], '.6g')};  ledger "
      f"closes to {_fmt(s['ledger_max_rel_error'], '.2e')} (max over all steps of "
      "|dV - sum of terms| / max(V, 1))")
    snaps = (f"{s['snapshots']} snapshots of w+, w- every {s['snapshot_every']} τ-steps"
             if s["snapshot_every"] else "no snapshots")
    if s["reflection_rows"]:
        snaps += f"; port reflection in {s['reflection_rows']} history rows"
    p(f"stored       {s['history_rows']} history rows every {s['record_every']} τ-steps; "
      f"{snaps}; fields {tuple(s['field_shape'])}, theta {tuple(s['theta_shape'])}")
    for r in s["resumes"]:
        changed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in r["changed"].items())
        p(f"resumed      at τ-step {r['at_step']} ({r['status_before']}) on {r['time']}"
          + (f"; {changed}" if changed else ""))
    if "wall_s" in s:
        p(f"time         {s['wall_s']:.3f} s stepping, {s['compile_s']:.3f} s compiling "
          "(last session)")


def plot_command(args) -> int:
    """``wavecontrol plot RUN.h5 --kind K --out FILE``."""
    from .plotting import run_figure
    from .storage import open_run

    run_figure(open_run(args.file), args.kind, args.out)
    print(f"wrote {args.out}")
    return 0


def stability_command(args) -> int:
    """Spectral radius of the τ-step against runs over a (ν, η, α) sweep; 0 once it has run.

    Disagreements between prediction and experiment are findings, not errors: they are listed
    in the output (and under ``disagreements`` in the JSON), and the exit status stays 0.
    """
    from problems import get_problem
    from solvers.wave import auto_eta, solve

    from .stability import format_table, stability_sweep

    if args.plot is not None and not Path(args.plot).resolve().parent.is_dir():
        raise ValueError(f"--plot: folder {str(Path(args.plot).parent)!r} does not exist")
    problem = get_problem(args.problem, **_parse_set(args.set))
    progress = None
    if not args.json:
        def progress(r):
            run = "" if r["outcome"] is None else f", {r['status']} after {r['steps']} steps"
            print(f"... nu {r['courant']:g}, eta {r['eta']:.4g}: rho {r['spectral_radius']:.8f}"
                  f"{run}", file=sys.stderr)
    result = stability_sweep(problem, solve=solve, auto_eta=auto_eta,
                             formulation=args.formulation, scheme=args.scheme,
                             courants=args.courant, etas=args.eta, alphas=args.alpha,
                             metric=args.metric, termination=args.termination,
                             sources=args.sources, tol=args.tol, max_steps=args.max_steps,
                             divergence_bound=args.divergence_bound, backend=args.backend,
                             n_max=args.n_max, run=not args.predict_only, progress=progress)
    if args.plot is not None:
        from .plotting import stability_figure

        stability_figure(result.records, args.plot)
    if args.json:
        print(json.dumps({"problem": args.problem, **result.to_dict()}))
    else:
        print(format_table(result))
        if args.plot is not None:
            print(f"wrote {args.plot}")
    return 0


def compare_command(args) -> int:
    """``wavecontrol compare PROBLEM --methods ...``: 0 when every method that ran converged."""
    from solvers.compare import check_methods, compare_methods

    methods = check_methods(args.methods) if args.methods is not None else None
    problem = build_problem(args)
    eta, port = port_settings(args)
    wave = {"formulation": args.formulation, "scheme": args.scheme, "courant": args.courant,
            "eta": eta, "port": port, "backend": args.backend}
    progress = None if args.json else (lambda m: print(f"... {m}", file=sys.stderr))
    kw = {} if methods is None else {"methods": methods}
    doc = compare_methods(problem, max_steps=args.steps, tol=args.tol, wave=wave,
                          progress=progress, **kw)
    doc = {"problem": args.problem, "problem_config": problem.config(), **doc}
    if args.json:
        print(json.dumps(doc))
    else:
        _print_compare(doc)
    return 0 if doc["all_converged"] else 1


def _print_compare(doc, out=None):
    out = sys.stdout if out is None else out
    p = lambda *a: print(*a, file=out)  # noqa: E731
    cfg = dict(doc["problem_config"])
    cfg.pop("name", None)
    shown = "  ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in cfg.items()
                      if k not in ("data", "dataset_params") and v is not None)
    p(f"problem     {doc['problem']}  {shown}")
    ref = doc["reference"]
    p("reference   " + (f"{ref['name']} (exact), objective {ref['objective']:.12g}" if ref
                        else f"none: {doc['reference_reason']}"))
    p(f"tolerance   {doc['tol']:g} (wave: max-abs PMP residuals; sweep, lbfgs, backprop: "
      "max|grad J|" + ("; ipopt: its NLP error" if any(r["method"] == "ipopt"
                                                       for r in doc["methods"]) else "") + ")")
    p("")
    head = (f"{'method':<9}{'status':<11}{'objective':>20}{'J - best':>11}{'|th - best|':>12}"
            f"{'iterations':>11}  {'unit':<12}{'max|grad J|':>12}{'residual':>10}{'wall s':>9}")
    p(head)
    p("-" * len(head))
    f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for r in doc["methods"]:
        if r["status"] == "skipped":
            p(f"{r['method']:<9}skipped: {r['reason']}")
            continue
        p(f"{r['method']:<9}{r['status']:<11}{f(r['objective'], '.12g'):>20}"
          f"{f(r['objective_gap'], '.2e'):>11}{f(r['theta_gap'], '.2e'):>12}"
          f"{r['iterations']:>11}  {r['iteration_unit'].split()[0]:<12}"
          f"{f(r['grad_norm'], '.2e'):>12}{f(r['residual_norm'], '.2e'):>10}"
          f"{r['wall_s']:>9.3f}")
    p("")
    if doc["best"] is not None:
        p(f"best        {doc['best']['method']}, objective {doc['best']['objective']:.12g}; "
          "J - best and |th - best| (max-abs) are distances to it")
    p("columns     max|grad J|: exact gradient at the final theta (one forward-backward pass); "
      "residual: largest max-abs PMP residual of the fields the method returned; wall s "
      "excludes compiling")
    for r in doc["methods"]:
        if r["method"] == "bvp" and r["status"] != "skipped":
            p(f"bvp         solves the continuous PMP: continuous cost "
              f"{r['info']['continuous_cost']:.12g}; its objective is J of the sampled "
              "continuous controls, off the discrete optimum by the discretization")
        if r["method"] == "wave" and r["status"] != "skipped" and r["compile_s"] > 0:
            p(f"wave        compiled its kernels in {r['compile_s']:.3f} s (not in wall s)")


def _add_problem_flags(parser) -> None:
    from problems import PROBLEMS
    from problems.datasets import DATASETS, LIBRARY

    parser.add_argument("problem", help=f"problem name: {', '.join(PROBLEMS)}; or a problem "
                        "in a file of yours, path/to/file.py:NAME (a problem object or a "
                        "function returning one, called with the --set parameters)")
    parser.add_argument("--set", action="append", metavar="KEY=JSON",
                        help="set a problem parameter, e.g. --set A='[[0,1],[2,0]]' (repeatable)")
    parser.add_argument("--batch", type=int, default=None,
                        help="mini-batch size (networks; default: the whole data set)")
    parser.add_argument("--dataset", default=None,
                        help=f"data set: {', '.join([*DATASETS, *LIBRARY])} (networks; "
                        "digits needs the extra wavecontrol[digits])")
    parser.add_argument("--widths", type=_widths, default=None, metavar="N0,...,NN",
                        help="node widths, e.g. 2,32,16,3 (mlp)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the data set, the initial weights and the first "
                        "mini-batch (networks)")


def _add_port_flags(parser) -> None:
    from .ports import PORTS

    parser.add_argument("--port", default=None, choices=tuple(PORTS),
                        help="parameter port (default: matched for control problems in the "
                        "consistent form, gd for networks and the paper form)")
    params = "; ".join(f"{name}: {', '.join(_port_parameters(name))}" for name in PORTS)
    parser.add_argument("--port-param", action="append", metavar="KEY=VALUE",
                        help="a parameter of the port, VALUE in JSON or a bare word, e.g. "
                        f"--port-param gain=auto (repeatable). Parameters: {params}")
    parser.add_argument("--eta", type=_eta, default=None,
                        help="gain of the gd port, a number or 'auto' (default auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wavecontrol",
        description="Optimal control on the worldsheet: the wave relaxation of the PMP.")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solve", help="solve a problem with the wave-PMP relaxation")
    _add_problem_flags(s)
    s.add_argument("--formulation", default="consistent", choices=FORMULATIONS)
    s.add_argument("--scheme", default="upwind", choices=SCHEMES)
    s.add_argument("--courant", type=float, default=1.0, help="Courant number nu (default 1)")
    s.add_argument("--alpha", type=float, default=None,
                   help="source gain of the paper form (default: alpha = nu)")
    _add_port_flags(s)
    s.add_argument("--metric", type=float, default=1.0, help="scalar metric factor Theta")
    s.add_argument("--termination", default="implicit", choices=TERMINATIONS)
    s.add_argument("--sources", default="after", choices=SOURCE_TIMINGS,
                   help="paper form: sources after (Algorithm 1) or before transport")
    s.add_argument("--steps", type=int, default=500_000, help="maximum number of tau-steps")
    s.add_argument("--tol", type=float, default=1e-10, help="tolerance on the max-abs residuals")
    s.add_argument("--backend", default="auto", choices=("auto", "numba", "numpy"))
    s.add_argument("--dtype", default="float64", choices=("float64", "float32"),
                   help="working precision of the compiled network kernel (float32 needs it)")
    s.add_argument("--allow-unstable", action="store_true",
                   help="accept a Courant number outside the scheme's stable range")
    s.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    s.add_argument("--full", action="store_true", help="with --json: add the solution arrays")
    s.add_argument("--record-every", type=int, default=None, metavar="K",
                   help="history interval in tau-steps (default: steps / 5000, at least 1)")
    s.add_argument("--out", default=None, metavar="FILE.h5",
                   help="keep the run in this HDF5 file (docs/storage.md)")
    s.add_argument("--resume", action="store_true",
                   help="with --out: continue the run stored in the file")
    s.add_argument("--snapshot-every", type=int, default=None, metavar="K",
                   help="with --out: store the wave fields every K tau-steps (0: none)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--reference", default="auto", choices=REFERENCES,
                   help="what the run is measured against: auto (default) = the exact discrete "
                   "solution where one exists (LQR: Riccati), else L-BFGS for problems with a "
                   "continuous-time form (pendulum), else none (networks); lbfgs = L-BFGS "
                   "(max|grad J| <= 1e-10) for any problem; none")

    c = sub.add_parser("compare", help="run the wave solver and the locked methods on one "
                       "problem and compare objectives, iterations, times and gradients")
    _add_problem_flags(c)
    c.add_argument("--methods", default=None, metavar="M1,M2,...",
                   help="comma list of wave, sweep, lbfgs, bvp, backprop, ipopt (default: all "
                   "but ipopt, which needs the extra wavecontrol[casadi]); a "
                   "method that does not apply to the problem is listed as skipped")
    c.add_argument("--steps", type=int, default=None,
                   help="budget of every iterative method: tau-steps (wave), sweeps, "
                   "iterations (default: each method's own, wave 500000, sweep 100000, lbfgs "
                   "10000, backprop 100000); bvp ignores it")
    c.add_argument("--tol", type=float, default=1e-10,
                   help="tolerance: max-abs PMP residuals (wave), max|grad J| (sweep, lbfgs, "
                   "backprop), relative collocation residual floored at 1e-8 (bvp)")
    c.add_argument("--formulation", default="consistent", choices=FORMULATIONS,
                   help="wave method's formulation")
    c.add_argument("--scheme", default="upwind", choices=SCHEMES, help="wave method's scheme")
    c.add_argument("--courant", type=float, default=1.0, help="wave method's Courant number")
    _add_port_flags(c)
    c.add_argument("--backend", default="auto", choices=("auto", "numba", "numpy"),
                   help="wave method's backend")
    c.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    v = sub.add_parser("verify", help="run the built-in verification suite")
    v.add_argument("--json", action="store_true")
    v.add_argument("--suite", action="append", default=None,
                   help="run only this suite (twin, ledger, order, continuum, fixed_point)")

    d = sub.add_parser("demo", help="solve the default LQR and write the energy-balance and "
                                    "stability figures")
    d.add_argument("--out", default="wavecontrol-demo", help="output folder (default: %(default)s)")

    fg = sub.add_parser("figures", help="write the toolkit's figures (energy balance, stability, "
                                        "worldsheet, convergence, reflection) as PNGs")
    fg.add_argument("--out", default="wavecontrol-figures",
                    help="output folder (default: %(default)s)")
    fg.add_argument("--quick", action="store_true", help="short runs and coarse grids")
    fg.add_argument("--only", action="append", default=None, metavar="NAME",
                    help="only this figure (repeatable)")

    sh = sub.add_parser("show", help="summarize a run file written by solve --out")
    sh.add_argument("file", help="the run's HDF5 file")
    sh.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    pl = sub.add_parser("plot", help="draw a figure from a run file written by solve --out")
    pl.add_argument("file", help="the run's HDF5 file")
    pl.add_argument("--kind", default="energy",
                    choices=("energy", "worldsheet", "residuals", "reflection"),
                    help="energy balance (Theorem 2.6), wave energy per node over (t, tau), "
                         "residual norms, or the parameter port's reflection")
    pl.add_argument("--out", required=True, metavar="FILE", help="image file to write (.png)")

    st = sub.add_parser("stability", help="spectral radius of the tau-step against Courant "
                        "number, compared with runs")
    st.add_argument("problem", help="problem name (lqr)")
    st.add_argument("--set", action="append", metavar="KEY=JSON",
                    help="set a problem parameter, e.g. --set N=10 (repeatable)")
    st.add_argument("--formulation", default="consistent", choices=FORMULATIONS)
    st.add_argument("--scheme", default="upwind", choices=SCHEMES)
    st.add_argument("--courant", default="0.05:1.5:30",
                    help="Courant numbers: A:B:K (K evenly spaced values from A to B) or a "
                    "comma list (default %(default)s)")
    st.add_argument("--eta", default="auto",
                    help="port gains: A:B:K or a comma list of numbers, 'auto' or multiples "
                    "such as 2*auto (default auto)")
    st.add_argument("--alpha", default=None,
                    help="paper form source gains: A:B:K or a comma list of numbers, 'nu' or "
                    "multiples such as 0.1*nu (default alpha = nu)")
    st.add_argument("--metric", type=float, default=1.0, help="scalar metric factor Theta")
    st.add_argument("--termination", default="implicit", choices=TERMINATIONS)
    st.add_argument("--sources", default="after", choices=SOURCE_TIMINGS)
    st.add_argument("--max-steps", type=int, default=1_000_000,
                    help="cap on each run's step budget (default %(default)s)")
    st.add_argument("--tol", type=float, default=1e-10, help="convergence tolerance of the runs")
    st.add_argument("--divergence-bound", type=float, default=1e6,
                    help="a run diverges when V exceeds this times max(V0, 1) (default 1e6)")
    st.add_argument("--backend", default="auto", choices=("auto", "numba", "numpy"))
    st.add_argument("--n-max", type=int, default=None,
                    help="horizon of the transient growth max ||G^n|| (default 4N/nu, within "
                    "100..2000)")
    st.add_argument("--predict-only", action="store_true", help="skip the runs")
    st.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    st.add_argument("--plot", metavar="FILE", help="write the stability figure (PNG)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "solve":
            report, result = solve_command(args)
            if report is None:          # a parallel run's rank other than 0
                return 0 if result.success else 1
            if args.json:
                print(json.dumps(report))
            else:
                _print_solve(report)
            return 0 if result.success else 1
        if args.command == "compare":
            return compare_command(args)
        if args.command == "verify":
            return verify_command(args)
        if args.command == "show":
            return show_command(args)
        if args.command == "plot":
            return plot_command(args)
        if args.command == "stability":
            return stability_command(args)
        if args.command == "figures":
            return figures_command(args)
        return demo_command(args)
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        print(f"wavecontrol {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"wavecontrol {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
