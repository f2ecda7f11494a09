"""Depth-parallel runs over MPI: weak and strong scaling, the halo's cost, threads, async mode.

Run from the repository root (it launches ``mpiexec`` itself; MPI from ``pip install -e
'.[mpi]'``)::

    python benchmarks/bench_mpi.py            # everything below
    python benchmarks/bench_mpi.py --quick    # fewer τ-steps

Parts (each a separate ``mpiexec -n P`` launch of this file with ``--worker``):

1. weak scaling: LQR (default double integrator, Δt kept, N + 1 = nodes_per_rank · P), the
   resistive port, consistent upwind ν = 1, checks every 2 000 τ-steps; wall and thread-CPU
   time per τ-step of ``solve_parallel`` for P = 1, 2 (and 4, oversubscribed), halo depth 1
   and 8, next to the serial ``solve`` of one block;
2. the halo alone: ping-pong between 2 ranks for messages of 8 B … 1 MB (latency α and
   inverse bandwidth β of t = α + β·bytes) and the halo of part 1 exchanged without compute;
3. strong scaling: one LQR with N = 40 000, P = 1, 2, 4;
4. threads within one rank (P = 1, N = 40 000): threads = 1, 2;
5. the asynchronous mode (``staleness`` d, ``async_mode="lag"``, checks every τ-step): τ-steps
   to tol 1e-10 for the matched port on LQR N = 24 and the pendulum swing-up, P = 3.

Timings on a shared machine: the best of the repeats, the load average printed beside. The
ranks run with :data:`MALLOC_ENV`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


#: glibc keeps large blocks in its heap instead of mapping fresh pages for every one: the
#: compiled kernels allocate their work arrays at each call, and a call per τ-step (halo depth
#: 1) otherwise spends half its time in page faults (measured: 3.4 ms → 1.6 ms per τ-step for
#: 20 000 nodes)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def _mpiexec():
    exe = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return exe if os.path.exists(exe) else "mpiexec"


def launch(P, task, **params):
    """Run ``task`` on P ranks; rank 0's JSON answer."""
    cmd = [_mpiexec(), "-n", str(P), sys.executable, os.path.abspath(__file__), "--worker",
           task, json.dumps(params)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900,
                          env={**os.environ, **MALLOC_ENV})
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# the workers (under mpiexec)
# --------------------------------------------------------------------------------------------
def _timed_run(comm, problem, steps, repeats, **kw):
    """Best wall and thread-CPU seconds per τ-step of solve_parallel over ``repeats`` runs."""
    from solvers.parallel import solve_parallel
    solve_parallel(problem, comm, max_steps=min(steps, 200), **kw)      # warm up
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        comm.Barrier()
        c0 = time.thread_time()
        r = solve_parallel(problem, comm, max_steps=steps, **kw)
        cpu = comm.allreduce(time.thread_time() - c0, op=_max())
        best_wall = min(best_wall, r.wall_time / steps)
        best_cpu = min(best_cpu, cpu / steps)
    return best_wall, best_cpu, r


def _max():
    from mpi4py import MPI
    return MPI.MAX


def work_scaling(comm, p):
    import problems
    N = p["nodes"] - 1
    problem = problems.lqr(N=N, T=0.1 * N)
    kw = {"eta": 1e-3, "tol": 0.0, "record_every": 2000, "halo_depth": p["depth"],
          "threads": p.get("threads", 1)}
    wall, cpu, r = _timed_run(comm, problem, p["steps"], p["repeats"], **kw)
    return {"wall_us": wall * 1e6, "cpu_us": cpu * 1e6,
            "halo_bytes_per_step": r.config["parallel"]["halo_bytes"] / p["steps"],
            "messages_per_step": r.config["parallel"]["halo_messages"] / p["steps"]}


def work_serial(comm, p):
    import problems
    from solvers.wave import solve
    N = p["nodes"] - 1
    problem = problems.lqr(N=N, T=0.1 * N)
    solve(problem, eta=1e-3, tol=0.0, max_steps=100)
    best = float("inf")
    for _ in range(p["repeats"]):
        r = solve(problem, eta=1e-3, tol=0.0, max_steps=p["steps"], record_every=2000)
        best = min(best, r.wall_time / p["steps"])
    return {"wall_us": best * 1e6}


def work_pingpong(comm, p):
    """Half the round trip of a message of each size (best of ``reps``), in µs."""
    out = {}
    other = 1 - comm.rank
    for size in p["sizes"]:
        buf = np.zeros(max(1, size // 8))
        best = float("inf")
        for _ in range(p["reps"]):
            comm.Barrier()
            t0 = time.perf_counter()
            for _ in range(p["inner"]):
                if comm.rank == 0:
                    comm.Send(buf, dest=other)
                    comm.Recv(buf, source=other)
                else:
                    comm.Recv(buf, source=other)
                    comm.Send(buf, dest=other)
            best = min(best, (time.perf_counter() - t0) / p["inner"] / 2)
        out[str(buf.nbytes)] = best * 1e6
    return out


def work_halo(comm, p):
    """The halo exchange of part 1 without the kernel: Isend/Irecv of both sides, Waitall."""
    from mpi4py import MPI
    size = p["bytes"] // 8
    nbs = [r for r in (comm.rank - 1, comm.rank + 1) if 0 <= r < comm.size]
    send = {nb: np.zeros(size) for nb in nbs}
    recv = {nb: np.empty(size) for nb in nbs}
    best = float("inf")
    for _ in range(p["reps"]):
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(p["inner"]):
            reqs = [comm.Irecv(recv[nb], source=nb) for nb in nbs]
            reqs += [comm.Isend(send[nb], dest=nb) for nb in nbs]
            MPI.Request.Waitall(reqs)
        best = min(best, (time.perf_counter() - t0) / p["inner"])
    return {"us": comm.allreduce(best, op=_max()) * 1e6}


def work_async(comm, p):
    import problems
    from solvers.parallel import solve_parallel
    problem = (problems.lqr(N=24) if p["problem"] == "lqr"
               else problems.pendulum(task="swing-up"))
    rows = []
    for d in p["d"]:
        r = solve_parallel(problem, comm, port="matched", tol=1e-10, max_steps=p["max_steps"],
                           record_every=1, staleness=d, async_mode="lag")
        rows.append({"d": d, "status": r.status.value, "steps": r.steps,
                     "objective": r.objective})
    return rows


WORKERS = {"scaling": work_scaling, "serial": work_serial, "pingpong": work_pingpong,
           "halo": work_halo, "async": work_async}


def worker(task, params):
    from solvers.parallel import world
    comm = world()
    answer = WORKERS[task](comm, json.loads(params))
    if comm.rank == 0:
        print(json.dumps(answer))


# --------------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------------
def main(quick=False):
    from _common import load_average
    steps, reps = (2000, 2) if quick else (6000, 3)
    npr = 20_000
    print(f"load average {load_average()}, {os.cpu_count()} cores; LQR nodes per rank {npr}, "
          f"{steps} τ-steps, best of {reps}")
    print("\n1. weak scaling (time per τ-step, µs; CPU = max over ranks of thread CPU time)")
    print("| P | nodes | halo depth | wall µs | CPU µs | wall / P=1 | halo B/step | msgs/step |")
    print("|---|---|---|---|---|---|---|---|")
    weak = {}
    for depth in (1, 8):
        for P in (1, 2, 4):
            r = launch(P, "scaling", nodes=npr * P, depth=depth, steps=steps, repeats=reps)
            weak[depth, P] = r
            print(f"| {P}{' (oversubscribed)' if P > os.cpu_count() else ''} | {npr * P} | "
                  f"{depth} | {r['wall_us']:.1f} | {r['cpu_us']:.1f} | "
                  f"{r['wall_us'] / weak[depth, 1]['wall_us']:.2f} | "
                  f"{r['halo_bytes_per_step']:.0f} | {r['messages_per_step']:.1f} |")
    s = launch(1, "serial", nodes=npr, steps=steps, repeats=reps)
    print(f"serial solve of one block ({npr} nodes): {s['wall_us']:.1f} µs per τ-step")

    print("\n2. the halo: ping-pong (half round trip) between 2 ranks, and the exchange alone")
    sizes = [8, 64, 512, 4096, 32768, 262144, 1048576]
    pp = launch(2, "pingpong", sizes=sizes, reps=reps, inner=200 if quick else 1000)
    print("| bytes | µs |")
    print("|---|---|")
    for b, t in pp.items():
        print(f"| {b} | {t:.2f} |")
    x = np.array([float(b) for b in pp])
    y = np.array(list(pp.values()))
    beta, alpha = np.polyfit(x, y, 1)
    print(f"fit t = α + β·bytes: α = {alpha:.2f} µs, β = {beta * 1e3:.3f} µs/kB "
          f"({1e-3 / beta:.2f} GB/s)")
    halo_b = int(weak[1, 2]["halo_bytes_per_step"] / weak[1, 2]["messages_per_step"])
    for P in (2, 4):
        h = launch(P, "halo", bytes=halo_b, reps=reps, inner=500 if quick else 2000)
        print(f"halo exchange alone, P = {P}, {halo_b} B per message: {h['us']:.2f} µs")

    print("\n3. strong scaling: LQR N = 40 000 (time per τ-step, µs)")
    print("| P | halo depth | wall µs | CPU µs | speed-up |")
    print("|---|---|---|---|---|")
    for depth in (1, 8):
        base = None
        for P in (1, 2, 4):
            r = launch(P, "scaling", nodes=40_001, depth=depth, steps=steps, repeats=reps)
            base = base or r["wall_us"]
            print(f"| {P} | {depth} | {r['wall_us']:.1f} | {r['cpu_us']:.1f} | "
                  f"{base / r['wall_us']:.2f} |")

    print("\n4. threads within one rank (P = 1, N = 40 000, halo depth 8)")
    base = None
    for th in (1, 2):
        r = launch(1, "scaling", nodes=40_001, depth=8, steps=steps, repeats=reps, threads=th)
        base = base or r["wall_us"]
        print(f"threads {th}: {r['wall_us']:.1f} µs per τ-step (speed-up "
              f"{base / r['wall_us']:.2f})")

    print("\n5. asynchronous mode (lag d, checks every τ-step), P = 3, matched port, tol 1e-10")
    for prob, mx in (("lqr", 2000), ("swing-up", 20000)):
        for row in launch(3, "async", problem=prob, d=[0, 1, 2, 4, 8], max_steps=mx):
            print(f"{prob}: d = {row['d']}: {row['status']} after {row['steps']} τ-steps, "
                  f"J = {row['objective']:.10g}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
    else:
        ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        ap.add_argument("--quick", action="store_true")
        main(ap.parse_args().quick)
