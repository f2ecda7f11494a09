"""The ``wavecontrol`` command line: ``solve``, ``verify`` and ``demo``.

Every sub-command calls the same functions as the Python API (:func:`solvers.wave.solve`,
:func:`solvers.verification.run_verification`). Errors in the input are reported as one line on
stderr with exit status 2; ``solve`` exits 0 when the run converged and 1 otherwise; ``verify``
exits 1 when a check fails. ``solve --out RUN.h5`` keeps the run in a file
(:mod:`wavecontrol.storage`), which ``show`` summarizes and ``plot`` draws; a missing, damaged
or foreign run file is an input error (exit status 2).
"""

from __future__ import annotations

import argparse
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


def solve_command(args) -> tuple[dict, object]:
    """Build the problem and solve it; returns (report, result)."""
    from problems import get_problem
    from solvers.wave import solve

    problem = get_problem(args.problem, **_parse_set(args.set))
    progress = not (args.quiet or args.json) and sys.stderr.isatty()
    result = solve(problem, formulation=args.formulation, scheme=args.scheme,
                   courant=args.courant, alpha=args.alpha, eta=args.eta, metric=args.metric,
                   termination=args.termination, sources=args.sources, max_steps=args.steps,
                   tol=args.tol, backend=args.backend, allow_unstable=args.allow_unstable,
                   record_every=args.record_every, out=args.out, resume=args.resume,
                   snapshot_every=args.snapshot_every, progress=progress)
    report = make_report(args.problem, problem, result, full=args.full)
    if args.out is not None:
        report["out"] = str(args.out)
    return report, result


def make_report(name: str, problem, result, full: bool = False) -> dict:
    """The JSON document of a solve: settings, status, residuals, reference error, energy."""
    from solvers.riccati import discrete_riccati

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
    if problem.family == "affine" and problem.batch == 1:
        ref = discrete_riccati(problem)
        report["reference"] = {
            "name": "discrete-riccati",
            "objective": ref.objective,
            "error": {"x": _finite(np.abs(result.x - ref.x).max()),
                      "lambda": _finite(np.abs(result.lam - ref.lam).max()),
                      "theta": _finite(np.abs(result.theta - ref.theta).max())},
        }
    report["energy"] = {"V_initial": _finite(result.V_initial),
                        "V_final": _finite(result.V_final),
                        "ledger_max_rel_error": _finite(result.ledger_max_rel_error)}
    report["eta"] = cfg["port"].get("eta")
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
    p(f"problem      {report['problem']}  ({report['formulation']} formulation, "
      f"{report['scheme']} scheme, courant {report['courant']:g}, eta {report['eta']:.4g})")
    p(f"status       {report['status']}: {report['message']}")
    r = report["residuals"]
    p(f"residuals    x {r['x']:.3e}   lambda {r['lambda']:.3e}   theta {r['theta']:.3e}  "
      "(max-abs PMP residuals, eqs. 53-56, 59)")
    p(f"objective    {report['objective']:.12g}")
    if "reference" in report:
        e = report["reference"]["error"]
        fmt = lambda v: "nan" if v is None else f"{v:.3e}"  # noqa: E731
        p(f"vs exact     x {fmt(e['x'])}   lambda {fmt(e['lambda'])}   theta {fmt(e['theta'])}  "
          f"(max-abs distance from the {report['reference']['name']} solution, objective "
          f"{report['reference']['objective']:.12g})")
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
    print("Consistent formulation, upwind scheme, courant 1, resistive port with auto eta\n")
    result = solve(problem, scheme="upwind", courant=1.0, tol=1e-12, max_steps=300_000,
                   record_every=1)
    report = make_report("lqr", problem, result)
    _print_solve(report)
    path = out / "energy_balance.png"
    energy_balance_figure(result, path)
    print(f"\nwrote {path}")
    return 0 if result.success else 1


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
      f"{cfg.get('backend')}, divergence bound {cfg.get('divergence_bound'):g}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wavecontrol",
        description="Optimal control on the worldsheet: the wave relaxation of the PMP.")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solve", help="solve a problem with the wave-PMP relaxation")
    s.add_argument("problem", help="problem name (lqr)")
    s.add_argument("--set", action="append", metavar="KEY=JSON",
                   help="set a problem parameter, e.g. --set A='[[0,1],[2,0]]' (repeatable)")
    s.add_argument("--formulation", default="consistent", choices=FORMULATIONS)
    s.add_argument("--scheme", default="upwind", choices=SCHEMES)
    s.add_argument("--courant", type=float, default=1.0, help="Courant number nu (default 1)")
    s.add_argument("--alpha", type=float, default=None,
                   help="source gain of the paper form (default: alpha = nu)")
    s.add_argument("--eta", type=_eta, default="auto",
                   help="resistive port gain, a number or 'auto' (default)")
    s.add_argument("--metric", type=float, default=1.0, help="scalar metric factor Theta")
    s.add_argument("--termination", default="implicit", choices=TERMINATIONS)
    s.add_argument("--sources", default="after", choices=SOURCE_TIMINGS,
                   help="paper form: sources after (Algorithm 1) or before transport")
    s.add_argument("--steps", type=int, default=500_000, help="maximum number of tau-steps")
    s.add_argument("--tol", type=float, default=1e-10, help="tolerance on the max-abs residuals")
    s.add_argument("--backend", default="auto", choices=("auto", "numba", "numpy"))
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

    v = sub.add_parser("verify", help="run the built-in verification suite")
    v.add_argument("--json", action="store_true")
    v.add_argument("--suite", action="append", default=None,
                   help="run only this suite (twin, ledger, order, continuum, fixed_point)")

    d = sub.add_parser("demo", help="solve the default LQR and write the energy-balance figure")
    d.add_argument("--out", default="wavecontrol-demo", help="output folder (default: %(default)s)")

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
            if args.json:
                print(json.dumps(report))
            else:
                _print_solve(report)
            return 0 if result.success else 1
        if args.command == "verify":
            return verify_command(args)
        if args.command == "show":
            return show_command(args)
        if args.command == "plot":
            return plot_command(args)
        if args.command == "stability":
            return stability_command(args)
        return demo_command(args)
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        print(f"wavecontrol {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"wavecontrol {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
