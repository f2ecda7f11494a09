"""Parameter ports: how the parameters θ absorb the residual r_θ (eq. 60, §4.6, §4.8).

A port is an object with :meth:`Port.update` (θ ← θ − M r_θ) and :meth:`Port.power` (the power
it absorbs). This issue ships the resistive port (gradient descent, θ ← θ − η r_θ,
impedance Z = I/η); the registry :data:`PORTS` is where the curvature-matched, inductive and
adaptive ports are added. The driver accepts a port by name or as an object.
"""

from __future__ import annotations

import math

import numpy as np


class Port:
    """Base class of parameter ports."""

    name = "port"
    #: whether the compiled kernels implement this port (else the NumPy step is used)
    compiled = False

    def update(self, theta, r_theta):
        """Return the new parameters; ``theta`` and ``r_theta`` are (N, m)."""
        raise NotImplementedError

    def power(self, r_theta) -> float:
        """Power absorbed by the port in one step (≥ 0 for a passive port)."""
        raise NotImplementedError

    def config(self) -> dict:
        """JSON-serializable description."""
        return {"name": self.name}


class ResistivePort(Port):
    """Gradient descent: θ ← θ − η r_θ (eq. 60 with M = I/η, impedance Z = I/η).

    Parameters
    ----------
    eta : float ≥ 0
        The gain (step size per τ-step, units of θ per unit of r_θ). η = 0 freezes θ.
    """

    name = "gd"
    compiled = True

    def __init__(self, eta: float = 1.0):
        eta = float(eta)
        if not math.isfinite(eta) or eta < 0:
            raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")
        self.eta = eta

    def update(self, theta, r_theta):
        return theta - self.eta * r_theta

    def power(self, r_theta) -> float:
        return self.eta * float(np.sum(r_theta * r_theta))

    def config(self) -> dict:
        return {"name": self.name, "eta": self.eta}

    def __repr__(self) -> str:
        return f"ResistivePort(eta={self.eta:g})"


#: name → port class
PORTS = {"gd": ResistivePort}


def get_port(port, **params) -> Port:
    """A port from a name (with its parameters) or a :class:`Port` instance."""
    if isinstance(port, Port):
        if params:
            raise ValueError("port parameters may only be given with a port name")
        return port
    if port not in PORTS:
        raise ValueError(f"unknown port {port!r}; valid: {', '.join(PORTS)}")
    return PORTS[port](**params)
