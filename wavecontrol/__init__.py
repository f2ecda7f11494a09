"""wavecontrol: the optimal-control worldsheet of Pehle & Slotine.

Layers, from data to run: :mod:`~wavecontrol.grid` (worldsheet grid and packed field layout),
:mod:`~wavecontrol.metric` (metric factors Θ_k and wave variables), :mod:`~wavecontrol.problem`
(the layered control problem interface), :mod:`~wavecontrol.schemes` (transport schemes),
:mod:`~wavecontrol.formulations` (one τ-step of the ``paper`` and ``consistent`` forms, fused),
:mod:`~wavecontrol.ledger` (the energy ledger), :mod:`~wavecontrol.ports` and
:mod:`~wavecontrol.boundary` (parameter ports and boundary terminations), and
:mod:`~wavecontrol.result` (what a run returns).
"""

__version__ = "0.1.0"

from .grid import Layout, Worldsheet  # noqa: E402
from .metric import Metric  # noqa: E402
from .result import WaveResult  # noqa: E402

__all__ = ["Layout", "Worldsheet", "Metric", "WaveResult", "__version__"]
