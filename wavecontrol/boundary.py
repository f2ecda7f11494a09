"""Boundary terminations in scattering form (Lemma 2.5).

At a boundary t_b ∈ {0, T} a condition prescribes either the flow f (the state x) or the effort
e (the costate λ). Written on the waves w± = (Θx ± Θ^{-T}λ)/√2 it fixes the wave that enters the
strip from the one that leaves it:

    flow prescribed:    w+ = −w- + √2 Θ f_b          (w+ + w- = √2 Θ x)
    effort prescribed:  w- =  w+ − √2 Θ^{-T} e_b     (w+ − w- = √2 Θ^{-T} λ)

At t = 0 the entering wave is w+, at t = T it is w-. The boundary power (c/2)(‖w+‖² − ‖w-‖²)
equals c x·λ (c f·e): the power the termination delivers. A termination whose prescribed value
depends on the state (the terminal effort e_b = ∇ℓ(x_N)) is ``explicit`` when it uses the old
x_N (Algorithm 1, line 26) and ``implicit`` when it uses the x_N reconstructed from the new waves,
which makes it passive for convex ℓ.

Arrays are ``(B, n)`` (one node of a batch of fields); ``theta`` and ``theta_inv`` are the
node's (n, n) metric factor and its inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SQRT2 = np.sqrt(2.0)
SIDES = ("start", "end")
KINDS = ("flow", "effort")
MODES = ("explicit", "implicit")


def flow_entering(w_leaving, theta, f_b):
    """Entering wave for a prescribed flow f_b: −w_leaving + √2 Θ f_b."""
    return -w_leaving + SQRT2 * f_b @ theta.T


def effort_entering(w_leaving, theta_inv, e_b, side: str):
    """Entering wave for a prescribed effort e_b.

    At t = T (``side="end"``) w- = w+ − √2 Θ^{-T} e_b; at t = 0 (``"start"``)
    w+ = w- + √2 Θ^{-T} e_b.
    """
    term = SQRT2 * e_b @ theta_inv
    return w_leaving - term if side == "end" else w_leaving + term


def effort_entering_implicit(w_plus, theta, theta_inv, grad, hvp, tol=1e-15, max_iter=50):
    """w-_N with e_b = ∇ℓ(x_N) and x_N = Θ^{-1}(w+ + w-)/√2 from the *new* waves, by Newton.

    With s = w+ + w-, G(s) = s − 2w+ + √2 Θ^{-T} ∇ℓ(Θ^{-1} s/√2) = 0; the Jacobian
    I + Θ^{-T} ∇²ℓ Θ^{-1} is built from Hessian–vector products ``hvp(x, v)``; for quadratic ℓ the
    first Newton step is exact. Raises RuntimeError when Newton does not converge.
    """
    n = theta.shape[0]
    s = 2.0 * w_plus
    for _ in range(max_iter):
        xN = (s @ theta_inv.T) / SQRT2
        G = s - 2.0 * w_plus + SQRT2 * grad(xN) @ theta_inv
        cols = [hvp(xN, np.broadcast_to(theta_inv[:, j] / SQRT2, xN.shape)) for j in range(n)]
        H = np.stack(cols, axis=2)                      # (B, n, n): ∇²ℓ Θ^{-1}/√2 per row
        new = s - np.linalg.solve(np.eye(n) + SQRT2 * theta_inv.T @ H, G[..., None])[..., 0]
        change = float(np.abs(new - s).max())
        s = new
        if change <= tol * max(1.0, float(np.abs(s).max())):
            return s - w_plus
    raise RuntimeError(f"implicit terminal termination: Newton did not converge in {max_iter} "
                       f"iterations (last change {change:.3g})")


def boundary_power(w_plus, w_minus):
    """½(‖w+‖² − ‖w-‖²) per batch row, which equals x·λ at the node (Lemma 2.5)."""
    return 0.5 * (np.sum(w_plus ** 2, axis=-1) - np.sum(w_minus ** 2, axis=-1))


@dataclass(frozen=True)
class Termination:
    """A boundary condition in scattering form.

    side : ``"start"`` (t = 0) or ``"end"`` (t = T)
    kind : ``"flow"`` (x prescribed) or ``"effort"`` (λ prescribed)
    mode : ``"explicit"`` or ``"implicit"`` (only matters for state-dependent efforts)
    """

    side: str
    kind: str
    mode: str = "implicit"

    def __post_init__(self):
        for name, value, valid in (("side", self.side, SIDES), ("kind", self.kind, KINDS),
                                   ("mode", self.mode, MODES)):
            if value not in valid:
                raise ValueError(f"unknown termination {name} {value!r}; valid: "
                                 f"{', '.join(valid)}")

    def entering(self, w_leaving, theta, theta_inv, value):
        """Entering wave given the leaving one and the prescribed flow or effort ``value``."""
        if self.kind == "flow":
            return flow_entering(w_leaving, theta, value)
        return effort_entering(w_leaving, theta_inv, value, self.side)
