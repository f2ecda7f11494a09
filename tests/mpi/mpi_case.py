"""Worker of the MPI tests: ``mpiexec -n P python -m tests.mpi.mpi_case SPEC.json OUT.npz``.

SPEC holds ``problem`` (a name of :data:`problems.PROBLEMS` or ``"random_lqr"``), ``params``,
``solve`` (keyword arguments of :func:`solvers.wave.solve`) and ``parallel`` (those of
:func:`solvers.parallel.solve_parallel`). Rank 0 writes the result's arrays to OUT; with
``"kill_at"`` the worker runs with ``out=`` and rank 0 kills the whole job (SIGKILL of every
rank) once the run file holds a state at or past that τ-step.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def build(spec):
    import problems
    name, params = spec["problem"], spec.get("params", {})
    if name == "random_lqr":
        return problems.random_lqr(**params)
    return problems.get_problem(name, **params)


def main(argv):
    spec = json.loads(open(argv[0]).read())
    from solvers.parallel import solve_parallel, world
    comm = world()
    problem = build(spec)
    result = solve_parallel(problem, comm, **spec.get("parallel", {}), **spec.get("solve", {}))
    if comm.rank == 0:
        h = {f"history_{k}": v for k, v in result.history.items()}
        np.savez(argv[1], x=result.x, lam=result.lam, theta=result.theta,
                 steps=result.steps, status=result.status.value,
                 residuals=json.dumps(result.residuals), objective=result.objective,
                 ledger_max=result.ledger_max_rel_error, parallel=json.dumps(
                     {k: v for k, v in result.config["parallel"].items()}),
                 diverged_at=-1 if result.diverged_at is None else result.diverged_at, **h)


if __name__ == "__main__":
    main(sys.argv[1:])
