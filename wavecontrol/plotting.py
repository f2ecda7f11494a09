"""Figures drawn from a :class:`~wavecontrol.result.WaveResult` (matplotlib, no pyplot state).

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, so they work on a
machine without a display and never touch the global pyplot state.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import SymmetricalLogLocator

from .ledger import LEDGER_TERMS


def energy_balance_figure(result, path=None, title=None) -> Figure:
    """Energy balance of a run (Theorem 2.6): V(τ), ΔV against its ledger, and the closure.

    Panel 1: V against τ-steps. Panel 2: per sampled step, ΔV = V_next − V, each ledger term,
    and the continuous right-hand side (19)–(20) times Δτ. Panel 3: the relative closure error
    |ΔV − Σ terms| / max(V, 1). Writes a PNG to ``path`` when given; returns the figure.
    """
    h = result.history
    if len(h.get("step", [])) == 0:
        raise ValueError("the result has no history to plot (record_every too large?)")
    step = h["step"] + 1  # log axis: τ-step n is drawn at n + 1
    fig = Figure(figsize=(8, 9), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    ax1.plot(step, h["V"], color="k")
    ax1.set_yscale("log")
    ax1.set_ylabel("wave energy V")
    dV = h["V_next"] - h["V"]
    ax2.plot(step, dV, color="k", lw=2.5, label="ΔV")
    for name in LEDGER_TERMS:
        if np.any(h[name] != 0):
            ax2.plot(step, h[name], lw=1, label=name.replace("_", " "))
    ax2.plot(step, h["rhs"], ls="--", color="0.4", lw=1, label="Thm 2.6 RHS × Δτ")
    scale = max(float(np.abs(dV).max()), 1e-300)
    thresh = scale * 1e-6
    ax2.set_yscale("symlog", linthresh=thresh)
    ax2.yaxis.set_major_locator(SymmetricalLogLocator(base=100.0, linthresh=thresh))
    ax2.set_ylabel("energy change per τ-step")
    ax2.legend(fontsize=7, ncol=3, loc="upper right")
    total = sum(h[name] for name in LEDGER_TERMS)
    err = np.abs(dV - total) / np.maximum(h["V"], 1.0)
    ax3.semilogy(step, np.maximum(err, 1e-18), color="C3")
    ax3.axhline(1e-10, color="0.5", ls=":", label="bound 1e-10")
    ax3.set_ylabel("|ΔV − Σ terms| / max(V, 1)")
    ax3.set_xlabel("τ-step + 1")
    ax3.set_xscale("log")
    ax3.legend(fontsize=7)
    cfg = result.config
    fig.suptitle(title or (f"{cfg.get('problem', {}).get('name', '')}: {cfg.get('formulation')} "
                           f"{cfg.get('scheme')}, ν = {cfg.get('courant'):g} — "
                           f"{result.status.value} after {result.steps} τ-steps"), fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
