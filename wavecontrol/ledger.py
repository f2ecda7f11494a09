"""The energy ledger of a τ-step (Theorem 2.6, discrete and exact).

With V = ½ Σ_k Δt (‖u_k‖² + ‖v_k‖²), where (u, v) are the formulation's right- and
left-moving characteristic variables — (w+, w-) in the paper form, (a, b) = (Θx, Θ^{-T}λ) in
the consistent form — every step's change splits exactly into

``boundary_left``, ``boundary_right``
    the transport's flux terms at t = 0 and t = T (ν‖u_0‖² − ν‖v_0‖² and ν‖v_N‖² − ν‖u_N‖² for
    upwind, times Δt/2);
``dissipation``
    the transport's numerical dissipation (−ν(1−ν) Σ ‖u_k − u_{k−1}‖² for upwind, times Δt/2);
``source``
    the source power: −2α Σ w̄·E (paper form) or 2 Σ ū·s where s is the increment the layer maps
    add beyond the homogeneous transport (consistent form), times Δt/2;
``source2``
    the second-order term of the explicit source step, α² ‖E‖² (or ‖s‖²), times Δt/2;
``reset_left``, ``reset_right``
    the change made by the boundary terminations (x_0 = x_in, λ_N = ∇ℓ(x_N)).

These sum to ΔV to round-off. Besides them each step records ``rhs``, the continuous right-hand
side (19)–(20) times Δτ evaluated on the fields at the start of the step, and ``port_power``,
the energy the parameter port absorbs in the step, e·f = −r_θ·(θ' − θ) (η ‖r_θ‖² for the
resistive port; see :mod:`wavecontrol.ports`), which is not part of ΔV because V holds no
parameter energy: the port acts on V only through the next step's sources.
"""

LEDGER_TERMS = ("boundary_left", "boundary_right", "dissipation", "source", "source2",
                "reset_left", "reset_right")

#: ports whose ``port_power`` is a term of ΔV (they change the fields x, λ themselves)
PORTS_IN_V = ("matched",)


def ledger_terms(config: dict | None = None) -> tuple:
    """The terms that sum to ΔV in a run of configuration ``config`` (a result's ``config``):
    :data:`LEDGER_TERMS`, plus ``port_power`` for the ports of :data:`PORTS_IN_V`."""
    port = (config or {}).get("port") or {}
    name = port.get("name") if isinstance(port, dict) else getattr(port, "name", port)
    return LEDGER_TERMS + (("port_power",) if name in PORTS_IN_V else ())
