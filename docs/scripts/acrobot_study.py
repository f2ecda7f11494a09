"""A control problem from outside the library: the acrobot swing-up, written as a user would
write it, and what the matched port's settings do on it (docs/findings.md, "The acrobot
swing-up: where the matched port is fragile").

The acrobot (Spong 1995) is two links in a vertical plane with a motor at the elbow only.
Both links are uniform rods of mass 1 kg and length 1 m (centre of mass at 0.5 m, inertia
1/3 kg m² about the joint), g = 9.81 m/s². State x = (q1, q2, q1', q2'): the shoulder angle
from hanging down, the elbow angle relative to the first link, and their rates; u is the elbow
torque, |u| ≤ 10 N m. From rest hanging down, in T = 4 s, N = 60 RK4 layers, minimize
∫ 0.1 u² dt + 500 |x(T) − (π, 0, 0, 0)|². The dynamics are the manipulator equations
M(q) q'' + C(q, q') q' + G(q) = (0, u) solved for q'' (Spong's model; the form of Tedrake's
*Underactuated Robotics*, chapter 3).

Printed: L-BFGS and IPOPT from zero controls; the wave solver (compiled, tol 1e-10, zero
fields) with the Gauss–Newton port, the Newton port with the cart-pole's settings (ramp 10 N
from 1 %), the characteristic scheme at ν = 1.5, and a grid of Courant numbers × ramps; then
IPOPT started from the controls of each converged wave run, to tell whether the wave found a
local optimum of the same discrete problem and how far its objective is from IPOPT's there.

    python docs/scripts/acrobot_study.py               # about 2.5 minutes
    python docs/scripts/acrobot_study.py --reordered   # the dynamics written in another order
"""
import sympy as sp

import wavecontrol.ports  # noqa: F401  (registers the ports before wavecontrol.matched)
from problems.expressions import from_expressions
from solvers.lbfgs import solve_lbfgs
from solvers.wave import solve
from wavecontrol.matched import MatchedPort


def acrobot(N=60, T=4.0, u_max=10.0, reordered=False):
    """The acrobot swing-up (module docstring). ``reordered``: the same dynamics with the
    Coriolis and gravity terms gathered first and subtracted after, as another user might
    write them (equal in exact arithmetic; the generated code differs in round-off)."""
    q1, q2, w1, w2, u = sp.symbols("q1 q2 w1 w2 u")
    m1 = m2 = 1.0
    l1, lc1, lc2, g = 1.0, 0.5, 0.5, 9.81
    I1 = I2 = 1.0 / 3.0                  # uniform rods about their joints
    M11 = I1 + I2 + m2 * l1 ** 2 + 2 * m2 * l1 * lc2 * sp.cos(q2)
    M12 = I2 + m2 * l1 * lc2 * sp.cos(q2)
    M22 = I2
    h = m2 * l1 * lc2 * sp.sin(q2)
    det = M11 * M22 - M12 ** 2
    if reordered:
        c1, c2 = -2 * h * w1 * w2 - h * w2 ** 2, h * w1 ** 2
        g1 = (m1 * lc1 + m2 * l1) * g * sp.sin(q1) + m2 * lc2 * g * sp.sin(q1 + q2)
        g2 = m2 * lc2 * g * sp.sin(q1 + q2)
        r1, r2 = -c1 - g1, u - c2 - g2
        f = [w1, w2, (M22 * r1 - M12 * r2) / det, (-M12 * r1 + M11 * r2) / det]
    else:
        # the right-hand sides: generalized force minus Coriolis and gravity terms
        r1 = 2 * h * w1 * w2 + h * w2 ** 2 - ((m1 * lc1 + m2 * l1) * g * sp.sin(q1)
                                             + m2 * lc2 * g * sp.sin(q1 + q2))
        r2 = u - h * w1 ** 2 - m2 * lc2 * g * sp.sin(q1 + q2)
        f = [w1, w2, (M22 * r1 - M12 * r2) / det, (M11 * r2 - M12 * r1) / det]
    L = 0.1 * u ** 2
    Phi = 500 * ((q1 - sp.pi) ** 2 + q2 ** 2 + w1 ** 2 + w2 ** 2)
    return from_expressions(f, L, Phi, [0.0, 0.0, 0.0, 0.0], T, N, x=(q1, q2, w1, w2), u=(u,),
                            lo=-u_max, hi=u_max, integrator="rk4", name="acrobot")


def runs(N):
    """(label, port, scheme, ν) of the wave runs."""
    out = [("gauss-newton", MatchedPort(), "upwind", 1.0),
           ("newton, cart-pole settings", MatchedPort(hessian="newton", ramp_steps=10 * N,
                                                      ramp_from=1e-2), "upwind", 1.0),
           ("same, characteristic", MatchedPort(hessian="newton", ramp_steps=10 * N,
                                                ramp_from=1e-2), "characteristic", 1.5)]
    for nu in (1.0, 0.8, 0.5):
        for K, c0 in ((50 * N, 1e-4), (100 * N, 1e-4), (100 * N, 1e-3), (200 * N, 1e-4)):
            out.append((f"newton, ramp {K} from {c0:g}",
                        MatchedPort(hessian="newton", ramp_steps=K, ramp_from=c0), "upwind", nu))
    return out


def main(argv=None):
    import argparse

    import numpy as np

    from solvers.ipopt import solve_ipopt

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reordered", action="store_true",
                    help="the same dynamics written in another order (acrobot's reordered)")
    args = ap.parse_args(argv)
    p = acrobot(reordered=args.reordered)
    lb = solve_lbfgs(p, tol=1e-10)
    ip = solve_ipopt(p, tol=1e-10)
    print(f"L-BFGS from zero: {lb.status.value}, J = {lb.objective:.10g} after {lb.steps} "
          f"iterations")
    print(f"IPOPT from zero:  {ip.status.value}, J = {ip.objective:.10g} after {ip.steps} "
          f"iterations ({ip.wall_time:.2f} s)")
    print(f"{'wave run':36s} {'scheme':>14s} {'nu':>4s} | {'status':9s} {'tau-steps':>9s} "
          f"{'J':>14s} {'wall s':>7s} | IPOPT from the wave's theta: J, gap, max|dtheta|")
    converged = 0
    for label, port, scheme, nu in runs(p.N):
        r = solve(p, port=port, scheme=scheme, courant=nu, tol=1e-10, max_steps=60_000)
        at = r.steps if r.diverged_at is None else r.diverged_at
        tail = ""
        if r.success:
            converged += 1
            warm = solve_ipopt(p, tol=1e-10, theta0=r.theta)
            tail = (f"{warm.objective:.10g}, "
                    f"{abs(r.objective - warm.objective) / abs(warm.objective):.1e}, "
                    f"{np.abs(r.theta - warm.theta).max():.1e}")
        print(f"{label:36s} {scheme:>14s} {nu:4g} | {r.status.value:9s} {at:9d} "
              f"{r.objective:14.10g} {r.wall_time:7.2f} | {tail}", flush=True)
    print(f"{converged} of {len(runs(p.N))} wave runs converged")


if __name__ == "__main__":
    main()
