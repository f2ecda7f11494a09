"""Figures drawn from a :class:`~wavecontrol.result.WaveResult` or a stored run
(:func:`wavecontrol.storage.open_run`; :func:`run_figure`) with matplotlib, no pyplot state.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, so they work on a
machine without a display and never touch the global pyplot state.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import SymmetricalLogLocator

from .ledger import ledger_terms


def agg_figure(figsize) -> Figure:
    """A constrained-layout figure of ``figsize`` (inches) on its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


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
    fig = agg_figure((8, 9))
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    ax1.plot(step, h["V"], color="k")
    ax1.set_yscale("log")
    ax1.set_ylabel("wave energy V")
    dV = h["V_next"] - h["V"]
    ax2.plot(step, dV, color="k", lw=2.5, label="ΔV")
    terms = ledger_terms(result.config)
    for name in terms:
        if np.any(h[name] != 0):
            ax2.plot(step, h[name], lw=1, label=name.replace("_", " "))
    ax2.plot(step, h["rhs"], ls="--", color="0.4", lw=1, label="Thm 2.6 RHS × Δτ")
    scale = max(float(np.abs(dV).max()), 1e-300)
    thresh = scale * 1e-6
    ax2.set_yscale("symlog", linthresh=thresh)
    ax2.yaxis.set_major_locator(SymmetricalLogLocator(base=100.0, linthresh=thresh))
    ax2.set_ylabel("energy change per τ-step")
    ax2.legend(fontsize=7, ncol=3, loc="upper right")
    total = sum(h[name] for name in terms)
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


#: marker of each empirical outcome in the stability figures (None: the setting was not run)
_OUTCOME_STYLE = {"converged": dict(marker="o", fillstyle="full"),
                  "bounded": dict(marker="o", fillstyle="none"),
                  "diverged": dict(marker="x", fillstyle="full"),
                  "interrupted": dict(marker="^", fillstyle="none")}


def _group_label(r) -> str:
    label = f"{r['formulation']} {r['scheme']}"
    if r.get("eta_spec") not in (None, "auto"):
        label += f", η {r['eta_spec']}"
    if r.get("alpha_spec") not in (None, "nu"):
        label += f", α {r['alpha_spec']}"
    return label


def stability_figure(records, path=None, map_records=None, title=None,
                     linthresh: float = 1e-6, xscale: str = "linear") -> Figure:
    """Stability vs Courant number: ρ − 1 of the τ-step and the runs' outcome against ν.

    ``records`` are the dicts of :func:`wavecontrol.stability.stability_sweep` (any mix of
    formulations, schemes, η and α). Panel 1: one curve per (formulation, scheme, η, α) of
    ρ − 1 against ν (symmetric-log axis, linear within ±``linthresh``; above 0 the τ-step is
    unstable), with a marker per run: ● converged, ○ bounded (budget spent), × diverged, and a
    red square around every setting whose run contradicts the prediction. Panel 2, drawn when
    ``map_records`` is given or ``records`` hold several η per ν: the (ν, η) map of the same
    quantities (η in units of the automatic gain when every η was given as a multiple of it).
    ``xscale`` is the ν axis of panel 1 (``"log"`` when ranges differ a lot). Writes a PNG to
    ``path`` when given; returns the figure.
    """
    records = list(records)
    if not records:
        raise ValueError("no stability records to plot")
    if map_records is None:
        etas_per_nu = {}
        for r in records:
            etas_per_nu.setdefault((r["formulation"], r["scheme"], r["courant"]), set()).add(
                r["eta"])
        if any(len(v) > 1 for v in etas_per_nu.values()):
            map_records = records
    fig = agg_figure((8, 9 if map_records else 5))
    axes = fig.subplots(2, 1) if map_records else [fig.subplots(1, 1)]
    ax = axes[0]
    groups = {}
    for r in records:
        groups.setdefault(_group_label(r), []).append(r)
    for i, (label, rows) in enumerate(groups.items()):
        rows = sorted(rows, key=lambda r: r["courant"])
        nu = np.array([r["courant"] for r in rows])
        y = np.array([r["spectral_radius"] - 1.0 for r in rows])
        color = f"C{i % 10}"
        ax.plot(nu, y, color=color, lw=1.2, label=label)
        for r, xv, yv in zip(rows, nu, y):
            if r.get("outcome") in _OUTCOME_STYLE:
                ax.plot([xv], [yv], ls="none", color=color, ms=5, **_OUTCOME_STYLE[r["outcome"]])
            if r.get("agree") is False:
                ax.plot([xv], [yv], ls="none", marker="s", ms=11, fillstyle="none", color="red")
    ax.axhline(0.0, color="0.3", lw=0.8, ls=":")
    ax.set_yscale("symlog", linthresh=linthresh)
    ax.set_xscale(xscale)
    ax.set_xlabel("Courant number ν")
    ax.set_ylabel("ρ(τ-step) − 1")
    handles, labels = ax.get_legend_handles_labels()
    for name, style in _OUTCOME_STYLE.items():
        if any(r.get("outcome") == name for r in records):
            handles.append(ax.plot([], [], ls="none", color="k", **style)[0])
            labels.append(f"run {name}")
    if any(r.get("agree") is False for r in records):
        handles.append(ax.plot([], [], ls="none", marker="s", fillstyle="none", color="red")[0])
        labels.append("run disagrees with ρ")
    ax.legend(handles, labels, fontsize=7, ncol=2, loc="upper left")
    ax.set_title("spectral radius of the τ-step and the runs' outcome", fontsize=9)
    if map_records:
        _stability_map(fig, axes[1], list(map_records), linthresh)
    fig.suptitle(title or "Stability vs Courant number", fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def _stability_map(fig, ax, records, linthresh):
    from matplotlib.colors import SymLogNorm

    relative = all(r.get("eta_auto_factor") is not None for r in records)
    nu = np.array([r["courant"] for r in records])
    eta = np.array([r["eta_auto_factor"] if relative else r["eta"] for r in records])
    y = np.array([r["spectral_radius"] - 1.0 for r in records])
    top = max(float(np.abs(y).max()), 10 * linthresh)
    sc = ax.scatter(nu, eta, c=y, marker="s", s=90, cmap="coolwarm",
                    norm=SymLogNorm(linthresh=linthresh, vmin=-top, vmax=top))
    fig.colorbar(sc, ax=ax, label="ρ(τ-step) − 1")
    for r, xv, yv in zip(records, nu, eta):
        if r.get("outcome") in _OUTCOME_STYLE:
            ax.plot([xv], [yv], ls="none", color="k", ms=4, **_OUTCOME_STYLE[r["outcome"]])
        if r.get("agree") is False:
            ax.plot([xv], [yv], ls="none", marker="s", ms=12, fillstyle="none", color="red")
    if not relative and np.all(eta > 0):
        ax.set_yscale("log")
    ax.set_xlabel("Courant number ν")
    ax.set_ylabel("η / η_auto" if relative else "port gain η")
    forms = sorted({f"{r['formulation']} {r['scheme']}" for r in records})
    ax.set_title(f"(ν, η) map of the resistive port gain: {', '.join(forms)}", fontsize=9)


# ----------------------------------------------------------------------------------------------
# figures from a stored run (:func:`wavecontrol.storage.open_run`)
# ----------------------------------------------------------------------------------------------
#: the figures :func:`run_figure` draws (``wavecontrol plot --kind``)
RUN_FIGURES = ("energy", "worldsheet", "residuals", "reflection")


def run_figure(run, kind: str, path=None) -> Figure:
    """Figure ``kind`` (one of :data:`RUN_FIGURES`) of a stored run; a PNG at ``path``."""
    if kind not in RUN_FIGURES:
        raise ValueError(f"unknown figure kind {kind!r}; valid: {', '.join(RUN_FIGURES)}")
    if kind == "energy":
        from types import SimpleNamespace

        if len(run.history.get("step", ())) == 0:
            raise ValueError(f"{run.path}: the run has no history rows to plot")
        view = SimpleNamespace(history=run.history, config=run.config, steps=run.steps,
                               status=SimpleNamespace(value=run.status))
        return energy_balance_figure(view, path)
    return {"worldsheet": worldsheet_figure, "residuals": residuals_figure,
            "reflection": reflection_figure}[kind](run, path)


def _run_title(run, what: str) -> str:
    cfg = run.config
    return (f"{what} — {cfg.get('problem', {}).get('name', '')}: {cfg.get('formulation')} "
            f"{cfg.get('scheme')}, ν = {cfg.get('courant'):g}, {run.status} after {run.steps} "
            "τ-steps")


def _edges(c):
    """Cell edges around sorted centres ``c`` (for pcolormesh; one centre gets a unit cell)."""
    c = np.asarray(c, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])


def _positive(a):
    """``a`` with values ≤ 0 (or non-finite) as NaN: gaps on a log axis, not spikes."""
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a) & (a > 0), a, np.nan)


def _log_norm(*arrays, decades=12):
    from matplotlib.colors import LogNorm

    top = max(float(np.nanmax(a)) for a in arrays)
    top = top if np.isfinite(top) and top > 0 else 1.0
    return LogNorm(vmin=top * 10.0 ** -decades, vmax=top)


def worldsheet_figure(run, path=None, title=None) -> Figure:
    """Wave energy per node over the worldsheet: ‖w+_k‖² and ‖w−_k‖² (eq. 38, summed over the
    batch) against depth t_k and τ, from the run's snapshots (log colour scale, 12 decades).
    The numbers are :func:`wavecontrol.storage.worldsheet_energy`."""
    from .storage import worldsheet_energy

    tau, t, Ep, Em = worldsheet_energy(run)
    fig = agg_figure((9, 5))
    axes = fig.subplots(1, 2, sharey=True)
    norm = _log_norm(Ep, Em)
    floor = norm.vmin
    for ax, E, name in ((axes[0], Ep, "‖w+_k‖²  (right-moving)"),
                        (axes[1], Em, "‖w−_k‖²  (left-moving)")):
        mesh = ax.pcolormesh(_edges(t), _edges(tau), np.maximum(E, floor), norm=norm,
                             cmap="viridis")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("depth t = k Δt")
    axes[0].set_ylabel("optimization time τ")
    fig.colorbar(mesh, ax=axes, label="energy density per node")
    fig.suptitle(title or _run_title(run, "worldsheet"), fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def residuals_figure(run, path=None, title=None) -> Figure:
    """Max-abs PMP residuals r_x, r_λ, r_θ (eqs. 53–56, 59) and |J(θ) − J(θ_last)| against
    τ-steps, from the run's history."""
    h = run.history
    if len(h.get("step", ())) == 0:
        raise ValueError(f"{run.path}: the run has no history rows to plot")
    step = np.asarray(h["step"]) + 1
    fig = agg_figure((8, 6))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for key, label in (("res_x", "r_x"), ("res_lambda", "r_λ"), ("res_theta", "r_θ")):
        ax1.loglog(step, _positive(h[key]), lw=1.2, label=label)
    tol = run.config.get("tol")
    if tol:
        ax1.axhline(tol, color="0.4", ls=":", label=f"tol {tol:g}")
    ax1.set_ylabel("max-abs residual")
    ax1.legend(fontsize=8)
    J = np.asarray(h["objective"])
    J_last = run.final["objective"] if run.final else J[-1]
    ax2.loglog(step, _positive(np.abs(J - J_last)), color="k", lw=1.2)
    ax2.set_ylabel("|J(θ) − J(θ_last)|")
    ax2.set_xlabel("τ-step + 1")
    fig.suptitle(title or _run_title(run, "residuals"), fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def reflection_figure(run, path=None, title=None) -> Figure:
    """The parameter port's reflection ‖b‖² (eq. 70 against the landscape curvature, see
    :mod:`wavecontrol.ports`) against τ-steps: the history's ``reflection`` column (recorded by
    the NumPy backend) and the snapshots' sum over layers, beside the power the port absorbs;
    below, ‖b_k‖² per layer over τ from the snapshots (log colour scale, 24 decades)."""
    h, s = run.history, run.snapshots
    hist_refl = _positive(h["reflection"]) if "reflection" in h else np.zeros(0)
    R = np.asarray(s["reflection"]) if s.get("reflection") is not None else np.zeros((0, 0))
    has_hist = bool(np.isfinite(hist_refl).any())
    has_snap = R.size > 0 and bool(np.isfinite(R).any())
    if not (has_hist or has_snap):
        raise ValueError(f"{run.path}: the run has no reflection record (no snapshots, and the "
                         "compiled backend records no reflection column: run with --backend "
                         "numpy or keep snapshots)")
    fig = agg_figure((8, 7 if has_snap else 4))
    axes = fig.subplots(2, 1) if has_snap else [fig.subplots(1, 1)]
    ax1 = axes[0]
    if has_hist:
        ax1.semilogy(h["step"], hist_refl, color="C3", lw=1, label="reflected ‖b‖² (history)")
    if has_snap:
        ax1.semilogy(s["step"], _positive(R.sum(axis=1)), "o", ms=3, color="C3",
                     label="reflected Σ_k ‖b_k‖² (snapshots)")
    if len(h.get("port_power", ())):
        ax1.semilogy(h["step"], _positive(np.abs(h["port_power"])), color="C0", lw=1,
                     label="absorbed |e·f| (port power)")
    ax1.set_xlabel("τ-step")
    ax1.set_ylabel("energy per τ-step")
    ax1.legend(fontsize=8)
    if has_snap:
        ax2 = axes[1]
        norm = _log_norm(R, decades=24)
        mesh = ax2.pcolormesh(_edges(np.arange(R.shape[1])), _edges(s["tau"]),
                              np.maximum(R, norm.vmin), norm=norm, cmap="magma")
        fig.colorbar(mesh, ax=ax2, label="‖b_k‖²")
        ax2.set_xlabel("layer k")
        ax2.set_ylabel("optimization time τ")
    fig.suptitle(title or _run_title(run, "port reflection"), fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
