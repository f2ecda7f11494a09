"""Several solvers on one problem, side by side (what ``wavecontrol compare`` prints).

:func:`compare_methods` runs the methods of :data:`METHODS` on the same problem object, from the
same θ0, and lines up per method: the status, the objective J(θ) at its final θ (eq. 48), the
iterations (τ-steps for the wave driver), the wall time, the exact gradient norm max|∇J(θ)| at
the final θ (one forward–backward pass, eqs. 50–52: the same measure for every method) and the
largest PMP residual of the fields the method returned, and the distance of its objective (and
θ) from the best objective found among them. A method that does not apply to the problem
(:func:`applicability`) is reported as skipped with the reason.

``bvp`` solves the *continuous* PMP (``solve_bvp``) and samples it at the Euler nodes: its
objective is J of the sampled continuous controls, which differs from the discrete optimum by
the discretization (O(Δt) in the controls), not by a solver error; its row also carries the
continuous cost it found (``info["continuous_cost"]``).

``ipopt`` transcribes the same discrete problem into CasADi and solves it with IPOPT
(:mod:`solvers.ipopt`; the optional extra ``wavecontrol[casadi]``). It is not in the default
list (:data:`DEFAULT_METHODS`); ask for it by name. Without CasADi it is reported as skipped.
"""

from __future__ import annotations

import importlib
import math
import time

import numpy as np

from wavecontrol.problem import AffineQuadraticProblem

from .adjoint import check_count, check_positive, forward_backward

#: the methods, in the order they are run and listed
METHODS = ("wave", "sweep", "lbfgs", "bvp", "backprop", "ipopt")
#: what runs when no methods are named (ipopt, an optional extra, only by name)
DEFAULT_METHODS = ("wave", "sweep", "lbfgs", "bvp", "backprop")
#: what one iteration of each method is
ITERATION_UNITS = {"wave": "tau-steps", "sweep": "sweeps", "lbfgs": "iterations",
                   "bvp": "solve_bvp iterations", "backprop": "iterations",
                   "ipopt": "IPOPT iterations"}
#: solve_bvp's relative collocation tolerance is floored here (its residual is relative, and
#: below ~1e-8 it refines the mesh for round-off rather than for the solution)
BVP_TOL_FLOOR = 1e-8
#: the keys of a row (a skipped method has None for every measured one)
ROW_KEYS = ("method", "status", "reason", "objective", "iterations", "iteration_unit",
            "wall_s", "compile_s", "grad_norm", "residual_norm", "residuals", "objective_gap",
            "theta_gap", "reference_gap", "message", "info")


def check_methods(methods) -> tuple:
    """``methods`` (a sequence of names or one comma list) as a tuple; ValueError listing the
    valid names for an unknown one, and for an empty or repeated list."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",")]
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid: {', '.join(METHODS)}")
    if not methods:
        raise ValueError(f"no method given; valid: {', '.join(METHODS)}")
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:
        raise ValueError(f"method(s) {repeated} listed more than once")
    return methods


def applicability(method: str, problem) -> str | None:
    """None when ``method`` applies to ``problem``, else the reason it does not."""
    check_methods([method])
    if method == "ipopt":
        from .ipopt import applicability as ipopt_applicability
        try:
            importlib.import_module("casadi")
        except ImportError:
            return ("CasADi is not installed (the optional extra: pip install "
                    "'wavecontrol[casadi]')")
        return ipopt_applicability(problem)
    if getattr(problem, "bounds", None) is not None and method in ("sweep", "bvp", "backprop"):
        return (f"problem {problem.name!r} has control bounds, which {method} does not handle "
                "(wave with port gd, and lbfgs, do)")
    if method != "bvp":
        return None          # the others need only forward, adjoint and gradient
    cont = getattr(problem, "continuous", None)
    if cont is None:
        return (f"problem {problem.name!r} has no continuous-time form (no ContinuousProblem "
                "with a closed-form u*(x, lambda)); solve_bvp solves the continuous PMP")
    if problem.batch != 1:
        return f"solve_bvp needs batch = 1, the problem has {problem.batch}"
    try:
        cont.argmin_hamiltonian(cont.x0, cont.x0)
    except NotImplementedError:
        return (f"problem {problem.name!r} has no closed-form minimizer u*(x, lambda) of the "
                "Hamiltonian, which the BVP needs to eliminate u")
    return None


def exact_reference(problem):
    """(name, WaveResult) of the exact discrete optimum where one exists (affine-quadratic,
    batch 1: the discrete Riccati recursion), else (None, reason)."""
    if isinstance(problem, AffineQuadraticProblem) and problem.batch == 1:
        from .riccati import discrete_riccati
        return "discrete-riccati", discrete_riccati(problem)
    return None, (f"no exact discrete solution for problem {problem.name!r} (it is not "
                  "affine-quadratic with batch 1); gaps are to the best objective found")


def _run(method, problem, max_steps, tol, wave):
    from .backprop import solve_backprop
    from .bvp import solve_bvp_pmp
    from .ipopt import solve_ipopt
    from .lbfgs import solve_lbfgs
    from .sweep import solve_sweep
    from .wave import solve

    steps = {} if max_steps is None else {"max_iter": max_steps}
    if method == "wave":
        return solve(problem, tol=tol, **({} if max_steps is None else {"max_steps": max_steps}),
                     **wave)
    if method == "sweep":
        return solve_sweep(problem, tol=tol, **steps)
    if method == "lbfgs":
        return solve_lbfgs(problem, tol=tol, **steps)
    if method == "backprop":
        return solve_backprop(problem, tol=tol, **steps)
    if method == "ipopt":
        return solve_ipopt(problem, tol=tol, **steps)
    return solve_bvp_pmp(problem, tol=max(tol, BVP_TOL_FLOOR), reference=None)


def _info(method, result) -> dict:
    cfg, info = result.config, result.info
    if method == "wave":
        return {"port": cfg["port"], "backend": cfg["backend"]}
    if method == "sweep":
        return {"update": cfg["update"], "omega_final": cfg["omega_final"],
                "rejected": info.get("rejected")}
    if method == "lbfgs":
        return {"evaluations": info.get("evaluations")}
    if method == "backprop":
        return {"eta": cfg["eta"]}
    if method == "ipopt":
        return {"ipopt_status": info["ipopt_status"], "transcription": info["transcription"],
                "variables": info["variables"]}
    return {"continuous_cost": info["continuous_cost"], "mesh_nodes": info["mesh_nodes"],
            "max_rms_residual": info["max_rms_residual"]}


def _finite(v):
    v = float(v)
    return v if math.isfinite(v) else None


def compare_methods(problem, methods=DEFAULT_METHODS, *, max_steps: int | None = None,
                    tol: float = 1e-10, wave: dict | None = None, progress=None) -> dict:
    """Run ``methods`` on ``problem`` and compare them (module docstring).

    Parameters
    ----------
    problem : LayeredProblem
    methods : sequence of names of :data:`METHODS`, or a comma list (default
        :data:`DEFAULT_METHODS`)
    max_steps : int, optional
        Budget of every iterative method (τ-steps for ``wave``; sweeps, iterations); default
        each method's own (``ipopt``: IPOPT's max_iter). ``bvp`` ignores it (solve_bvp's
        Newton iterations are few).
    tol : float
        Stopping tolerance: max-abs PMP residuals (wave) or max|∇J| (sweep, lbfgs, backprop);
        ``bvp`` uses max(tol, :data:`BVP_TOL_FLOOR`) on its relative collocation residual;
        ``ipopt`` its NLP error, dual infeasibility and constraint violation.
    wave : dict, optional
        Keyword arguments of :func:`solvers.wave.solve` (formulation, scheme, courant, eta,
        port, backend, ...).
    progress : callable, optional
        ``progress(method)`` before each method runs.

    Returns
    -------
    dict
        ``methods`` (the rows, keys :data:`ROW_KEYS`, in the order asked), ``best`` (method
        and objective of the lowest objective among the methods that ran), ``reference``
        (``name`` and ``objective`` of the exact discrete solution, or None) with
        ``reference_reason`` when there is none, ``tol``, ``max_steps``, ``all_converged``.
    """
    methods = check_methods(methods)
    if max_steps is not None:
        max_steps = check_count("max_steps", max_steps)
    tol = check_positive("tol", tol)
    wave = dict(wave or {})
    ref_name, ref = exact_reference(problem)
    ref_reason = None
    if ref_name is None:
        ref_reason, ref = ref, None
    rows, thetas = [], {}
    for method in methods:
        row = dict.fromkeys(ROW_KEYS)
        row.update(method=method, iteration_unit=ITERATION_UNITS[method])
        reason = applicability(method, problem)
        if reason is not None:
            row.update(status="skipped", reason=reason)
            rows.append(row)
            continue
        if progress is not None:
            progress(method)
        t0 = time.perf_counter()
        result = _run(method, problem, max_steps, tol, wave)
        wall = time.perf_counter() - t0 - result.compile_time
        with np.errstate(all="ignore"):
            # with control bounds the projected gradient (zero at the constrained optimum)
            grad = problem.project_residual(result.theta,
                                            forward_backward(problem, result.theta)[2])
        thetas[method] = result.theta
        row.update(status=result.status.value, objective=_finite(result.objective),
                   iterations=int(result.steps), wall_s=wall,
                   compile_s=float(result.compile_time),
                   grad_norm=_finite(np.abs(grad).max()),
                   residual_norm=_finite(max(result.residuals.values())),
                   residuals={k: _finite(v) for k, v in result.residuals.items()},
                   message=result.message, info=_info(method, result))
        rows.append(row)
    ran = [r for r in rows if r["objective"] is not None]
    best = min(ran, key=lambda r: r["objective"]) if ran else None
    for r in ran:
        r["objective_gap"] = r["objective"] - best["objective"]
        r["theta_gap"] = float(np.abs(thetas[r["method"]] - thetas[best["method"]]).max())
        if ref is not None:
            r["reference_gap"] = r["objective"] - float(ref.objective)
    doc = {"methods": rows,
           "best": None if best is None else {"method": best["method"],
                                              "objective": best["objective"]},
           "reference": None if ref is None else {"name": ref_name,
                                                  "objective": float(ref.objective)},
           "tol": float(tol), "max_steps": max_steps,
           "all_converged": all(r["status"] == "converged" for r in rows
                                if r["status"] != "skipped")}
    if ref is None:
        doc["reference_reason"] = ref_reason
    return doc


__all__ = ["compare_methods", "check_methods", "applicability", "exact_reference", "METHODS",
           "DEFAULT_METHODS", "ITERATION_UNITS", "ROW_KEYS"]
