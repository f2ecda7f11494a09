"""Stability vs Courant number on the default LQR: prediction (ρ of the τ-step) vs experiment.

For both formulations and all three schemes this script sweeps the Courant number ν on
``problems.lqr()`` (N = 20) with the resistive port at η = auto, and, for the paper form, the
source gain α = ν (Algorithm 1's default) and α = 0.1ν. Every setting gets

* the prediction: the τ-step's exact affine operator G (``wavecontrol.stability``), its spectral
  radius ρ and the verdict stable (ρ < 1 − 1e-9), unstable (ρ > 1 + 1e-9) or marginal;
* the experiment: ``solvers.wave.solve(..., allow_unstable=True)`` from zero fields with the
  divergence bound lowered to 1e6 · max(V0, 1), tol 1e-10, and a step budget scaled to the
  predicted rate (``step_budget``: 1.5 log(tol/r0)/log ρ + 4N/ν when stable, log(√1e6·1e8)/log ρ
  + 4N/ν when unstable, at most 1e6 τ-steps);
* agreement: stable ⇒ the run converged or stayed bounded, unstable ⇒ it diverged.

Then, for every group whose verdict changes along the grid, the Courant number where ρ crosses
1 is found by bisection (to 1e-6) and one run is made just inside (edge − 1e-3) and just outside
(edge + 1e-3). Last, a port-gain sweep (consistent upwind, ν × η/η_auto) measures where the
port destabilizes the step.

Usage::

    python docs/scripts/stability_sweep.py            # ~10 min on the 2-core machine
    python docs/scripts/stability_sweep.py --quick    # coarse grids, a smoke test (~1 min)
    python docs/scripts/stability_sweep.py --full     # also every setting's line
    python docs/scripts/stability_sweep.py --json out.json   # all records as JSON

OpenBLAS is limited to one thread (set before NumPy loads): on this shared 2-core machine its
threads make the small dense operations (104 × 104) 15× slower.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402


from problems import lqr  # noqa: E402
from solvers.wave import auto_eta, solve  # noqa: E402
from wavecontrol import stability as st  # noqa: E402
from wavecontrol.schemes import STABLE_RANGE  # noqa: E402

#: (formulation, scheme, ν grid, α specs) swept on the default LQR
GROUPS = [
    ("consistent", "upwind", "0.05:1.5:30", None),
    ("consistent", "lax-wendroff", "0.05:2.5:50", None),
    ("consistent", "characteristic", "0.5:20:40", None),
    ("paper", "upwind", "0.05:1.5:30", "nu,0.1*nu"),
    ("paper", "lax-wendroff", "0.05:1.5:30", "nu,0.1*nu"),
    ("paper", "characteristic", "0.5:20:40", "nu,0.1*nu"),
]
QUICK = {"0.05:1.5:30": "0.1:1.5:8", "0.05:2.5:50": "0.1:2.5:9", "0.5:20:40": "0.5:20:6"}
PORT_COURANTS, PORT_ETAS = "0.25:1:4", "0.5*auto:4*auto:8"
EDGE_DELTA = 1e-3


def fmt_intervals(iv):
    return ", ".join(f"[{a:g}, {b:g}]" for a, b in iv) or "none"


def summarize(records, edges, problem_N):
    """One line per (formulation, scheme, α): grid, ranges, edge, agreement, rate check."""
    rows = []
    for g in st.stable_ranges(records):
        sel = [r for r in records if (r["formulation"], r["scheme"], r["eta_spec"],
                                      r["alpha_spec"]) == (g["formulation"], g["scheme"],
                                                           g["eta_spec"], g["alpha_spec"])]
        nus = sorted(r["courant"] for r in sel)
        conv = [r["steps"] / r["predicted_convergence_steps"] for r in sel
                if r["outcome"] == "converged" and r["predicted_convergence_steps"]]
        stable = [r for r in sel if r["verdict"] == "stable"]
        key = (g["formulation"], g["scheme"], g["alpha_spec"])
        rows.append({
            "form": g["formulation"], "scheme": g["scheme"],
            "alpha": g["alpha_spec"] or "-",
            "grid": f"{nus[0]:g}..{nus[-1]:g} ({len(nus)})",
            "predicted": fmt_intervals(g["predicted"]),
            "measured": fmt_intervals(g["measured"]),
            "edge": "-" if key not in edges else f"{edges[key]:.6f}",
            "vn": f"{min(STABLE_RANGE[sel[0]['transport']][1], problem_N):g}",
            "agree": f"{sum(r['agree'] is True for r in sel)}/{len(sel)}",
            "disagree": sum(r["agree"] is False for r in sel),
            "marginal": sum(r["verdict"] == "marginal" for r in sel),
            "rho_stable": ("-" if not stable else
                           f"{min(r['spectral_radius'] for r in stable):.6f}.."
                           f"{max(r['spectral_radius'] for r in stable):.6f}"),
            "growth": ("-" if not stable else
                       f"{max(r['transient_growth'] for r in stable):.3g}"),
            "conv": "-" if not conv else f"{min(conv):.3f}..{max(conv):.3f}",
        })
    cols = [("form", "formulation"), ("scheme", "scheme"), ("alpha", "alpha"),
            ("grid", "nu grid (K)"), ("predicted", "predicted stable nu"),
            ("measured", "measured stable nu"), ("edge", "rho = 1 at nu"),
            ("vn", "transport vN edge"),
            ("agree", "agree"), ("disagree", "disagree"), ("marginal", "marginal"),
            ("rho_stable", "rho where stable"), ("growth", "max|G^n| stable"),
            ("conv", "steps / predicted")]
    widths = {k: max(len(h), *(len(str(r[k])) for r in rows)) for k, h in cols}
    lines = ["  ".join(f"{h:<{widths[k]}}" for k, h in cols)]
    for r in rows:
        lines.append("  ".join(f"{str(r[k]):<{widths[k]}}" for k, _ in cols))
    return "\n".join(lines)


def edge_runs(problem, form, scheme, alpha_spec, records, args):
    """Bisection for ρ = 1 between the last stable and first unstable grid ν, and a run on
    each side of it. Returns (edge, [records just inside and just outside]) or None."""
    rows = sorted(records, key=lambda r: r["courant"])
    for a, b in zip(rows, rows[1:]):
        if a["verdict"] == "stable" and b["verdict"] == "unstable":
            settings = dict(formulation=form, scheme=scheme)
            if alpha_spec == "0.1*nu":
                edge = _edge_scaled_alpha(problem, a["courant"], b["courant"], settings)
            else:
                edge = st.stability_edge(problem, a["courant"], b["courant"], xtol=1e-6,
                                         auto_eta=auto_eta, **settings)
            near = st.stability_sweep(
                problem, solve=solve, auto_eta=auto_eta, formulation=form, scheme=scheme,
                courants=[round(edge - EDGE_DELTA, 6), round(edge + EDGE_DELTA, 6)],
                alphas=None if alpha_spec in (None, "nu") else alpha_spec,
                max_steps=args.max_steps)
            return edge, near.records
    return None


def _edge_scaled_alpha(problem, lo, hi, settings, xtol=1e-6):
    """Bisection with α = 0.1ν and η = auto (α changes with ν, so stability_edge cannot be
    used as is)."""
    def verdict(nu):
        sm = st.StepMap.from_settings(problem, courant=nu, eta=auto_eta(problem, nu),
                                      alpha=0.1 * nu, **settings)
        return st.classify(st.spectral_radius(st.affine_operator(sm).G))

    while hi - lo > xtol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if verdict(mid) == "stable" else (lo, mid)
    return hi


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="coarse grids (smoke test)")
    parser.add_argument("--full", action="store_true", help="print every setting's line")
    parser.add_argument("--json", metavar="FILE", help="write all records as JSON")
    parser.add_argument("--max-steps", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    problem = lqr()
    print("default LQR: N = 20, T = 2, Q = I, R = 0.1, Qf = 5I, x0 = [1, 0]; eta = auto; "
          "tol 1e-10; divergence bound 1e6 x max(V0, 1); marginal |rho - 1| <= 1e-9")
    all_records, edges, near_records = [], {}, []
    for form, scheme, grid, alphas in GROUPS:
        grid = QUICK.get(grid, grid) if args.quick else grid
        t = time.perf_counter()
        res = st.stability_sweep(problem, solve=solve, auto_eta=auto_eta, formulation=form,
                                 scheme=scheme, courants=grid, alphas=alphas,
                                 max_steps=args.max_steps)
        all_records += res.records
        print(f"\n== {form} {scheme}: {len(res.records)} settings, "
              f"{time.perf_counter() - t:.0f} s")
        if args.full:
            print(st.format_table(res))
        for r in res.disagreements:
            print(f"  DISAGREE nu {r['courant']:g} alpha {r['alpha']}: {r['note']}")
        for alpha_spec in sorted({r["alpha_spec"] or "" for r in res.records}):
            sel = [r for r in res.records if (r["alpha_spec"] or "") == alpha_spec]
            found = edge_runs(problem, form, scheme, alpha_spec or None, sel, args)
            if found is None:
                continue
            edge, near = found
            edges[(form, scheme, alpha_spec or None)] = edge
            near_records += near
            for r in near:
                print(f"  near the edge {edge:.6f}: nu {r['courant']:g}, rho "
                      f"{r['spectral_radius']:.9f} ({r['verdict']}), run {r['status']} after "
                      f"{r['steps']} steps -> {'agree' if r['agree'] else 'DISAGREE'}")

    print("\n== port gain: consistent upwind, nu x eta/eta_auto")
    t = time.perf_counter()
    port = st.stability_sweep(problem, solve=solve, auto_eta=auto_eta,
                              courants="0.25:1:2" if args.quick else PORT_COURANTS,
                              etas="1*auto:4*auto:3" if args.quick else PORT_ETAS,
                              max_steps=args.max_steps)
    print(f"{len(port.records)} settings, {time.perf_counter() - t:.0f} s")
    factors = sorted({r["eta_auto_factor"] for r in port.records})
    print("eta/eta_auto " + " ".join(f"{f:>13g}" for f in factors))
    for nu in sorted({r["courant"] for r in port.records}):
        cells = []
        for f in factors:
            (r,) = [r for r in port.records if r["courant"] == nu and r["eta_auto_factor"] == f]
            mark = {"converged": "conv", "bounded": "bnd", "diverged": "div"}[r["outcome"]]
            cells.append(f"{r['spectral_radius'] - 1:+.1e}/{mark}{'' if r['agree'] else '!'}")
        print(f"nu {nu:<9g} " + " ".join(f"{c:>13}" for c in cells))
    print("(cell: rho - 1 / run outcome: conv = converged, bnd = bounded (budget spent), "
          "div = diverged; '!' marks a disagreement)")

    print("\n== summary (eta = auto)")
    print(summarize(all_records, edges, problem.N))
    everything = all_records + near_records + port.records
    n_dis = sum(r["agree"] is False for r in everything)
    n_mar = sum(r["verdict"] == "marginal" for r in everything)
    print(f"\nall {len(everything)} runs (sweeps, edge runs, port sweep): "
          f"{sum(r['agree'] is True for r in everything)} agree, {n_dis} disagree, "
          f"{n_mar} marginal; {time.perf_counter() - t0:.0f} s")
    for r in everything:
        if r["agree"] is False:
            print(f"  DISAGREE {r['formulation']} {r['scheme']} nu {r['courant']:g} eta "
                  f"{r['eta']:.4g} alpha {r['alpha']}: {r['note']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"records": all_records, "edge_runs": near_records,
                       "port": port.records,
                       "edges": [{"formulation": k[0], "scheme": k[1], "alpha_spec": k[2],
                                  "courant": v} for k, v in edges.items()]}, fh)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
