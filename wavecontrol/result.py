"""What a run returns: one result type for the wave driver and every reference solver.

Modelled on ``scipy.integrate.solve_ivp``'s result: a status with a message and a ``success``
flag, never a return type that depends on an option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class Status(str, Enum):
    """Why a run stopped."""

    CONVERGED = "converged"      #: every residual norm fell below the tolerance
    MAX_STEPS = "max_steps"      #: the step budget ran out first
    DIVERGED = "diverged"        #: a field became non-finite or exceeded the divergence bound
    INTERRUPTED = "interrupted"  #: a callback or Ctrl-C asked to stop


@dataclass
class WaveResult:
    """Outcome of a solve.

    Attributes
    ----------
    status : Status
    message : str
    steps : int
        τ-steps (or iterations) taken.
    x, lam : arrays (B, N + 1, n)
        Final states and costates (for ``diverged``: the last fields inside the divergence
        bound, those of τ-step ``steps = diverged_at - 1``).
    theta : array (N, m)
        Final parameters.
    residuals : dict
        Max-abs norms of r_x, r_λ, r_θ at the final fields (keys ``x``, ``lambda``, ``theta``).
    objective : float
        J(θ) of the final parameters (forward pass, eq. 48).
    history : dict of arrays
        Sampled every ``record_every`` steps: ``step``, ``tau``, ``V`` and the ledger terms,
        the residual norms, the objective.
    diverged_at : int or None
        The τ-step whose fields would have left the divergence bound (``steps + 1``).
    wall_time, compile_time : float
        Seconds spent stepping and seconds spent compiling kernels (first call), apart.
    info : dict
        Method-specific results beyond the common ones (e.g. the ``solve_bvp`` reference's
        continuous cost and its gap to the discrete optimum); empty for the wave driver.
    """

    status: Status
    message: str
    steps: int
    x: np.ndarray
    lam: np.ndarray
    theta: np.ndarray
    residuals: dict
    objective: float
    history: dict = field(default_factory=dict)
    diverged_at: int | None = None
    wall_time: float = 0.0
    compile_time: float = 0.0
    config: dict = field(default_factory=dict)
    ledger_max_rel_error: float = float("nan")
    V_initial: float = float("nan")
    V_final: float = float("nan")
    info: dict = field(default_factory=dict)

    @property
    def success(self) -> bool:
        """True when the run converged."""
        return self.status == Status.CONVERGED

    def __repr__(self) -> str:
        r = self.residuals
        return (f"WaveResult(status={self.status.value!r}, steps={self.steps}, "
                f"objective={self.objective:.10g}, residuals=(x {r.get('x', np.nan):.2e}, "
                f"lambda {r.get('lambda', np.nan):.2e}, theta {r.get('theta', np.nan):.2e}), "
                f"message={self.message!r})")
