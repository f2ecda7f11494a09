"""Figure 1 — the energy balance of Theorem 2.6, on LQR and on a network.

For each problem, one run of the consistent form (upwind, ν = 1, resistive port) records its
ledger at every τ-step. Top row: the wave energy V(τ). Bottom row: the change ΔV of each step
beside the sum of its exact ledger terms (boundary power at t = 0 and t = T, source power,
numerical dissipation, second-order source term, boundary resets) and beside the continuous
right-hand side (19)–(20) of Theorem 2.6 evaluated on the fields of the step, times Δτ.

The numbers behind the figure (returned by :func:`main`, checked in the tests): per problem the
largest relative ledger closure error max |ΔV − Σ terms| / max(V, 1), the number of steps, and
the relative gap between ΔV and the continuous right-hand side (which is O(Δτ): the ledger is
exact, the continuous balance is not).

Run: ``python figures/fig_energy.py [--out DIR] [--full]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import SymmetricalLogLocator

from wavecontrol.ledger import ledger_terms

if __package__ in (None, ""):                # run as a script: make the package importable
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from figures import save, script  # noqa: E402
from wavecontrol.plotting import agg_figure  # noqa: E402

NAME = "energy_balance"


def _runs(quick: bool):
    """(label, result) per problem: the default LQR and, when available, a neural ODE."""
    from problems import PROBLEMS, get_problem
    from solvers.wave import solve

    steps = 4000 if quick else 40000
    runs = [("LQR (double integrator, N = 20)",
             solve(get_problem("lqr"), scheme="upwind", courant=1.0, tol=1e-12,
                   max_steps=steps, record_every=1, port="gd"))]
    if "neural-ode" not in PROBLEMS:
        return runs
    net = get_problem("neural-ode", dataset="moons", n_samples=32, seed=0, N=8)
    runs.append(("neural ODE (two moons, 32 samples, N = 8)",
                 solve(net, scheme="upwind", courant=1.0, tol=1e-10, max_steps=steps // 10,
                       record_every=1, backend="numpy")))
    return runs


def numbers(result) -> dict:
    """The numbers behind one column of the figure."""
    h = result.history
    dV = h["V_next"] - h["V"]
    total = sum(h[name] for name in ledger_terms(result.config))
    scale = np.maximum(h["V"], 1.0)
    big = np.abs(dV) > 1e-3 * np.abs(dV).max()
    return {"steps": int(result.steps), "status": result.status.value,
            "ledger_max_rel_error": float(np.max(np.abs(dV - total) / scale)),
            "continuous_rhs_rel_gap": float(np.median(np.abs(dV[big] - h["rhs"][big])
                                                      / np.abs(dV[big]))),
            "V_first": float(h["V"][0]), "V_last": float(h["V_next"][-1])}


def figure(runs) -> Figure:
    fig = agg_figure((5.2 * len(runs), 7))
    axes = fig.subplots(2, len(runs), squeeze=False, sharex="col")
    for j, (label, r) in enumerate(runs):
        h = r.history
        tau = h["tau"]
        top, bot = axes[0, j], axes[1, j]
        top.semilogy(tau, h["V"], color="k")
        top.set_title(label, fontsize=10)
        top.set_ylabel("wave energy V")
        dV = h["V_next"] - h["V"]
        total = sum(h[name] for name in ledger_terms(r.config))
        bot.plot(tau, dV, color="k", lw=3, label="ΔV")
        bot.plot(tau, total, color="C1", lw=1.2, label="Σ ledger terms (exact)")
        bot.plot(tau, h["boundary_left"] + h["boundary_right"], color="C0", lw=0.8,
                 label="boundary power")
        bot.plot(tau, h["source"] + h["source2"], color="C2", lw=0.8, label="source power")
        bot.plot(tau, h["dissipation"], color="C3", lw=0.8, label="numerical dissipation")
        bot.plot(tau, h["rhs"], color="0.4", ls="--", lw=1, label="Thm 2.6 RHS × Δτ")
        thresh = max(float(np.abs(dV).max()), 1e-300) * 1e-6
        bot.set_yscale("symlog", linthresh=thresh)
        bot.yaxis.set_major_locator(SymmetricalLogLocator(base=100.0, linthresh=thresh))
        bot.set_xscale("symlog", linthresh=max(float(tau[1] - tau[0]), 1e-12) * 10)
        bot.set_xlabel("optimization time τ")
        bot.set_ylabel("energy change per τ-step")
        err = numbers(r)["ledger_max_rel_error"]
        bot.text(0.02, 0.02, f"max |ΔV − Σ| / max(V, 1) = {err:.1e}", transform=bot.transAxes,
                 fontsize=8)
        bot.legend(fontsize=7, loc="upper right")
    fig.suptitle("Energy balance on the worldsheet (Theorem 2.6): consistent form, upwind, ν = 1",
                 fontsize=11)
    return fig


def main(out_dir=".", quick: bool = True) -> dict:
    """Write ``energy_balance.png`` into ``out_dir``; return the path and the numbers."""
    runs = _runs(quick)
    return save(figure(runs), out_dir, NAME, {label: numbers(r) for label, r in runs})


if __name__ == "__main__":
    script(main, __doc__)
