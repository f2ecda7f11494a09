"""Figure 4 — convergence: the residual against τ-steps for each parameter port of the wave
solver, and the gradient norm against iterations for the locked references, on one LQR.

Wave runs (consistent form, upwind, ν = 1): max(‖r_x‖∞, ‖r_λ‖∞, ‖r_θ‖∞) per τ-step. Locked
references (L-BFGS, forward–backward sweep, backprop gradient descent): ‖∇J‖∞ per iteration.
One τ-step and one locked iteration are different units of work (a τ-step touches every layer
once, a locked iteration does a whole forward and backward pass), so both are drawn against
their own count. Numbers behind it: per method the status, the steps/iterations and the final
residual.

Run: ``python figures/fig_convergence.py [--out DIR] [--full]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

if __package__ in (None, ""):                # run as a script: make the package importable
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from figures import save, script  # noqa: E402
from wavecontrol.plotting import agg_figure  # noqa: E402
from figures._port_runs import runs  # noqa: E402

NAME = "convergence"


def wave_residual(result):
    h = result.history
    return h["step"] + 1, np.maximum.reduce([h["res_x"], h["res_lambda"], h["res_theta"]])


def main(out_dir=".", quick: bool = True) -> dict:
    ports, refs = runs(quick)
    fig = agg_figure((9, 4.8))
    ax = fig.subplots()
    numbers = {}
    # curves that coincide (gd and momentum at their defaults, sweep and backprop on LQR) are
    # told apart by width and dashes
    for i, (name, r) in enumerate(ports.items()):
        s, res = wave_residual(r)
        ax.loglog(s, res, lw=3.0 if i == 0 else 1.2, color=f"C{i}",
                  label=f"wave, port {name} ({r.status.value}, {r.steps})")
        numbers[f"wave/{name}"] = {"status": r.status.value, "steps": int(r.steps),
                                   "final": float(max(r.residuals.values()))}
    for i, (label, r) in enumerate(refs.items()):
        h = r.history
        ax.loglog(np.asarray(h["step"]) + 1, h["grad_norm"], ls=("--", "-", ":")[i],
                  lw=(1.2, 3.0, 1.5)[i], color=f"C{4 + i}",
                  label=f"{label} ({r.status.value}, {r.steps} it.)")
        numbers[label] = {"status": r.status.value, "steps": int(r.steps),
                          "final": float(h["grad_norm"][-1])}
    ax.axhline(1e-8, color="0.5", ls=":", lw=1)
    ax.set_xlabel("τ-steps (wave) or iterations (locked) + 1")
    ax.set_ylabel("max-abs PMP residual (wave) / ‖∇J‖∞ (locked)")
    ax.legend(fontsize=7)
    ax.set_title("Convergence on LQR: parameter ports vs locked references", fontsize=10)
    return save(fig, out_dir, NAME, numbers)


if __name__ == "__main__":
    script(main, __doc__)
