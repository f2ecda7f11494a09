"""Figure 5 — the reflected wave ‖b‖² (eq. 70) of each parameter port against τ-steps.

The runs are those of figure 4 (LQR, consistent form, upwind, ν = 1). ‖b‖² is measured
against the landscape's curvature as the reference impedance (see wavecontrol/ports.py): a
port matched to it (Newton, Z = H) reflects nothing once the gradient it receives is exact;
the resistive port (Z = I/η) reflects the mismatch between I/η and H. The matched port
(Riccati impedance, docs/theory.md §11) reports the energy of its backward wave in the matched
metric, ½ Σ Δt s_kᵀ P_k⁺ s_k, which vanishes at the LQR optimum. Numbers behind it: per port
the reflection at the last step and its largest value.

Run: ``python figures/fig_reflection.py [--out DIR] [--full]``.
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

NAME = "reflection"


def main(out_dir=".", quick: bool = True) -> dict:
    ports, _ = runs(quick)
    fig = agg_figure((9, 4.8))
    ax = fig.subplots()
    numbers = {}
    for name, r in ports.items():
        h = r.history
        refl = np.asarray(h["reflection"], dtype=float)
        # ‖b‖² is exactly 0 until the gradient has reached the controls (~2N/ν τ-steps): those
        # points are left out of the log plot
        shown = np.where(refl > 0, refl, np.nan)
        label = f"port {name} ({r.status.value})"
        if name == "matched":
            label = f"port matched, ½ΣΔt sᵀP⁺s ({r.status.value})"
        ax.loglog(h["step"] + 1, shown, lw=3.0 if name == "gd" else 1.2, label=label)
        numbers[name] = {"last": float(refl[-1]), "max": float(np.nanmax(refl)),
                         "status": r.status.value}
    ax.set_xlabel("τ-step + 1")
    ax.set_ylabel("reflected energy ‖b‖² per τ-step")
    ax.legend(fontsize=8)
    ax.set_title("Reflection at the parameter ports (LQR, consistent form, upwind, ν = 1)",
                 fontsize=10)
    return save(fig, out_dir, NAME, numbers)


if __name__ == "__main__":
    script(main, __doc__)
