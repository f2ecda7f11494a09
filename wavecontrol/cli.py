"""The ``wavecontrol`` command line: ``solve``, ``verify`` and ``demo``.

Every sub-command calls the same functions as the Python API (:func:`solvers.wave.solve`,
:func:`solvers.verification.run_verification`). Errors in the input are reported as one line on
stderr with exit status 2; ``solve`` exits 0 when the run converged and 1 otherwise; ``verify``
exits 1 when a check fails.
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
    result = solve(problem, formulation=args.formulation, scheme=args.scheme,
                   courant=args.courant, alpha=args.alpha, eta=args.eta, metric=args.metric,
                   termination=args.termination, sources=args.sources, max_steps=args.steps,
                   tol=args.tol, backend=args.backend, allow_unstable=args.allow_unstable)
    return make_report(args.problem, problem, result, full=args.full), result


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

    v = sub.add_parser("verify", help="run the built-in verification suite")
    v.add_argument("--json", action="store_true")
    v.add_argument("--suite", action="append", default=None,
                   help="run only this suite (twin, ledger, order, continuum, fixed_point)")

    d = sub.add_parser("demo", help="solve the default LQR and write the energy-balance figure")
    d.add_argument("--out", default="wavecontrol-demo", help="output folder (default: %(default)s)")
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
        return demo_command(args)
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"wavecontrol {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
