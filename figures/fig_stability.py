"""Stability vs Courant number: spectral radius and empirical outcome against ν, one curve per
scheme and formulation, and a (ν, η) map for the port gain.

Panel 1: ρ − 1 of the τ-step of the default LQR (``problems.lqr()``, η = auto) against ν for
the consistent and paper forms of upwind, lax-wendroff and characteristic (the paper form at
its default α = ν and at α = 0.1ν), with the outcome of a driver run at every point (● converged,
○ bounded, × diverged; a red square where it contradicts ρ). Panel 2: the same for the consistent
upwind step over ν × η/η_auto.

    python figures/fig_stability.py [OUT_DIR] [--full]

writes ``OUT_DIR/fig_stability.png`` (default: ``figures/``) and ``fig_stability.json`` with
the records behind it. The default (quick) grids take ~2 min on the 2-core machine; ``--full``
uses the grids of ``docs/scripts/stability_sweep.py`` (~10 min).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # small dense algebra: threads only cost

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from problems import lqr  # noqa: E402
from solvers.wave import auto_eta, solve  # noqa: E402
from wavecontrol.plotting import stability_figure  # noqa: E402
from wavecontrol.stability import stability_sweep  # noqa: E402

#: (formulation, scheme, quick grid, full grid, α specs)
CURVES = [
    ("consistent", "upwind", "0.25:1.5:6", "0.05:1.5:30", None),
    ("consistent", "lax-wendroff", "0.25:2.5:6", "0.05:2.5:50", None),
    ("consistent", "characteristic", "0.5:20:5", "0.5:20:40", None),
    ("paper", "upwind", "0.25:1.5:6", "0.05:1.5:30", "nu,0.1*nu"),
    ("paper", "lax-wendroff", "0.25:1.5:6", "0.05:1.5:30", "nu,0.1*nu"),
    ("paper", "characteristic", "0.5:20:5", "0.5:20:40", "nu,0.1*nu"),
]
#: the (ν, η) map: consistent upwind, quick and full grids
MAP = {True: ("0.25:1.25:3", "1*auto:4*auto:4"), False: ("0.1:1.2:12", "0.5*auto:4*auto:15")}


NAME = "fig_stability"


def main(out_dir="figures", quick: bool = True) -> dict:
    """Run the sweeps, write ``fig_stability.png`` and ``fig_stability.json``.

    Returns ``{"path", "numbers"}``: the numbers are the counts of settings, of settings whose
    run agrees with the sign of ρ − 1, of disagreements and of marginal ones, per panel.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    problem = lqr()
    cap = 200_000 if quick else 1_000_000
    tol = 1e-6 if quick else 1e-10
    records = []
    for form, scheme, q_grid, f_grid, alphas in CURVES:
        res = stability_sweep(problem, solve=solve, auto_eta=auto_eta, formulation=form,
                              scheme=scheme, courants=q_grid if quick else f_grid,
                              alphas=alphas, max_steps=cap, tol=tol)
        records += res.records
    nus, etas = MAP[quick]
    port = stability_sweep(problem, solve=solve, auto_eta=auto_eta, courants=nus, etas=etas,
                           max_steps=cap, tol=tol).records
    path = out / "fig_stability.png"
    stability_figure(records, path, map_records=port, xscale="log",
                     title="Stability vs Courant number (default LQR, η = auto; "
                           f"{'quick' if quick else 'full'} grids)")
    with open(out / "fig_stability.json", "w") as fh:
        json.dump({"curves": records, "map": port}, fh)

    def counts(recs):
        return {"settings": len(recs), "agree": sum(bool(r["agree"]) for r in recs),
                "disagree": sum(r["agree"] is False for r in recs),
                "marginal": sum(r["verdict"] == "marginal" for r in recs)}
    return {"path": str(path), "numbers": {"curves": counts(records), "map": counts(port)}}


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--full"]
    print(main(args[0] if args else "figures", quick="--full" not in sys.argv))
