"""The matched port's Newton model and terminal ramp on the cart-pole swing-up, and the Newton
model on the classics (docs/theory.md §11.7, docs/findings.md "Matched port on the cart-pole
swing-up (study)").

Every run: solve(..., tol=1e-10) from zero fields, consistent form, upwind, ν = 1, compiled;
the reference is L-BFGS(-B) to max|∇J| ≤ 1e-11 from the same θ0. Printed per case: status and
τ-steps of the Gauss–Newton port, of the Newton port without a ramp, and of the problem's
settings (the cart-pole's: Newton, ramp 10N τ-steps from 1 %, newton_below 1e-2) with the
upwind scheme at ν = 1 and with the characteristic scheme at ν = 1.5, each with its objective
gap |J − J_L-BFGS| / |J_L-BFGS|.

    python docs/scripts/matched_newton_study.py            # all cases (about 4 minutes)
    python docs/scripts/matched_newton_study.py --quick    # the default cart-pole only
"""
import argparse

import wavecontrol.ports  # noqa: F401  (registers the ports before wavecontrol.matched)
from problems import cartpole, pendulum, unicycle, vanderpol
from solvers.lbfgs import solve_lbfgs
from solvers.wave import solve
from wavecontrol.matched import MatchedPort


def cases(quick):
    out = [("cartpole (defaults: N=40 rk4 wf=1000 |u|<=20)", lambda: cartpole())]
    if quick:
        return out
    for N in (20, 40, 80):
        for integ in ("rk4", "midpoint", "euler"):
            for wf, um in ((1000.0, 20.0), (1000.0, None), (100.0, 20.0), (10.0, 20.0)):
                if (N, integ, wf, um) == (40, "rk4", 1000.0, 20.0):
                    continue
                tag = f"cartpole N={N} {integ} wf={wf:g} " + ("|u|<=20" if um else "free")
                out.append((tag, lambda N=N, i=integ, w=wf, u=um:
                            cartpole(N=N, integrator=i, wf=w, u_max=u)))
    out += [("pendulum swing-up", lambda: pendulum("swing-up")),
            ("vanderpol |u|<=1", lambda: vanderpol()),
            ("unicycle", lambda: unicycle())]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--max-steps", type=int, default=20_000)
    args = ap.parse_args(argv)
    print(f"{'case':48s} {'J (L-BFGS)':>14s} | gauss-newton | newton, no ramp | "
          "problem's settings | problem's settings, characteristic nu=1.5")
    solved = {"settings": 0, "characteristic": 0}
    total = 0
    for name, make in cases(args.quick):
        p = make()
        ref = solve_lbfgs(p, tol=1e-11).objective
        cells = []
        runs = [("gn", MatchedPort(), "upwind", 1.0),
                ("newton", MatchedPort(hessian="newton"), "upwind", 1.0),
                ("settings", MatchedPort(**p.matched_settings), "upwind", 1.0),
                ("characteristic", MatchedPort(**p.matched_settings), "characteristic", 1.5)]
        total += 1
        for label, port, scheme, nu in runs:
            r = solve(p, port=port, scheme=scheme, courant=nu, tol=1e-10,
                      max_steps=args.max_steps)
            gap = abs(r.objective - ref) / abs(ref)
            at = r.steps if r.diverged_at is None else r.diverged_at
            cells.append(f"{r.status.value} {at} ({gap:.0e}, {r.wall_time:.2f} s)")
            if label in solved:
                solved[label] += r.success and gap <= 1e-8
        print(f"{name:48s} {ref:14.10g} | " + " | ".join(cells), flush=True)
    print(f"problem's settings: {solved['settings']} of {total} cases converged with gap <= "
          f"1e-8 (upwind, nu = 1); {solved['characteristic']} of {total} (characteristic, "
          "nu = 1.5)")


if __name__ == "__main__":
    main()
