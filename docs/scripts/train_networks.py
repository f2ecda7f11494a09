"""Train the network problems with the wave solver (consistent form, resistive port).

Run from the repository root::

    python docs/scripts/train_networks.py                   # neural ODE on moons, MLP on spirals
    python docs/scripts/train_networks.py --stream 32 --every 20   # mini-batches of 32 samples,
                                                           # a new one every 20 τ-steps

Each run is ``solvers.wave.solve(problem, formulation="consistent", scheme="upwind",
courant=ν, eta=η)`` from zero fields; a callback every ``--check`` τ-steps measures the
training accuracy on the whole data set (``problem.accuracy``) and stops the run (status
``interrupted``) once it reaches ``--target``. With ``--stream B`` the problem holds mini-batches
of B samples and the callback also draws a new one (``problem.resample``) every ``--every``
τ-steps: the streaming use the paper's Discussion proposes. Beside each run, plain gradient
descent with the exact backprop gradient and the same η is timed for reference, and the
τ-steps are compared with the light-cone bound: a change of θ reaches the loss and its
gradient returns to layer 0 no sooner than 2N/ν τ-steps later, so a locked scheme that waits
for each exact gradient would need 2N/ν τ-steps per gradient-descent step.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from problems import mlp, neural_ode
from solvers.wave import auto_eta, solve


def make(name, n_samples, batch):
    if name == "neural-ode":
        return neural_ode(dataset="moons", n_samples=n_samples, N=10, T=2.0, augment=2,
                          loss="mse", batch=batch)
    return mlp(widths=(2, 32, 16, 16, 3), dataset="spirals", n_samples=n_samples,
               loss="cross-entropy", batch=batch)


def train_wave(p, courant, eta, target, check, every, max_steps, seed=0):
    rng = np.random.default_rng(seed)
    trace = []

    def callback(step, info):
        if every and step % every == 0:
            p.resample(rng)
        if step % check == 0:
            acc = p.accuracy(info["theta"])
            trace.append((step, acc))
            return acc >= target
        return False

    gcd = np.gcd(check, every) if every else check
    res = solve(p, formulation="consistent", scheme="upwind", courant=courant, eta=eta,
                max_steps=max_steps, tol=0.0, callback=callback, callback_every=int(gcd),
                record_every=max_steps)
    return res, trace


def train_backprop(p, eta, target, check, max_steps):
    th = p.theta0.copy()
    t0 = time.perf_counter()
    for it in range(max_steps):
        if it % check == 0 and p.accuracy(th) >= target:
            return it, time.perf_counter() - t0
        th -= eta * p.gradient(th)
    return None, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", nargs="+", default=["neural-ode", "mlp"])
    ap.add_argument("--n-samples", type=int, default=128)
    ap.add_argument("--courant", type=float, default=1.0)
    ap.add_argument("--eta", default="auto", help="port gain, a number, 'auto' or 'xK' "
                    "(K times auto)")
    ap.add_argument("--target", type=float, default=0.97)
    ap.add_argument("--check", type=int, default=50)
    ap.add_argument("--stream", type=int, default=None, help="mini-batch size")
    ap.add_argument("--every", type=int, default=0, help="τ-steps per mini-batch")
    ap.add_argument("--max-steps", type=int, default=100_000)
    args = ap.parse_args()
    for name in args.problems:
        p = make(name, args.n_samples, args.stream)
        base = auto_eta(p, args.courant)
        eta = (base if args.eta == "auto" else base * float(args.eta[1:])
               if args.eta.startswith("x") else float(args.eta))
        res, trace = train_wave(p, args.courant, eta, args.target, args.check, args.every,
                                args.max_steps)
        acc = p.accuracy(res.theta)
        print(f"{name}: widths {p.layout.widths.tolist()}, {p.X_pool.shape[0]} samples, "
              f"batch {p.batch}, nu {args.courant:g}, eta {eta:.4g} (auto {base:.4g})")
        cone = 2 * p.N / args.courant
        print(f"  wave (consistent, upwind, resistive port, {res.config['backend']}): "
              f"{res.status.value} after {res.steps} tau-steps, {res.wall_time:.2f} s, "
              f"training accuracy {acc:.4f}, objective {res.objective:.4g}")
        print(f"  light cone: a gradient round trip (x_0 -> loss -> lambda_0) takes 2N/nu = "
              f"{cone:g} tau-steps; the run used {res.steps / cone:.1f} round trips")
        shown = trace[:: max(1, len(trace) // 8)] + trace[-1:]
        print("  accuracy at tau-steps: " + ", ".join(f"{s}: {a:.3f}" for s, a in shown))
        if not args.stream:
            q = make(name, args.n_samples, None)
            it, wall = train_backprop(q, eta, args.target, args.check, args.max_steps)
            print(f"  backprop gradient descent, same eta: "
                  f"{'not reached' if it is None else f'{it} steps'}, {wall:.2f} s")
            if it is not None:
                print(f"  locked, one round trip per gradient: {it} x {cone:g} = "
                      f"{it * cone:g} tau-steps, {it * cone / max(res.steps, 1):.1f}x the "
                      f"wave's; wave tau-steps per GD step: {res.steps / max(it, 1):.2f}")


if __name__ == "__main__":
    main()
