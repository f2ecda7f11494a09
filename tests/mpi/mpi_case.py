"""Worker of the MPI tests: ``mpiexec -n P python -m tests.mpi.mpi_case SPEC.json OUT``.

SPEC is a list of cases; case i's result goes to ``OUT_i.npz``. A case holds ``problem`` (a name of :data:`problems.PROBLEMS` or ``"random_lqr"``), ``params``,
``solve`` (keyword arguments of :func:`solvers.wave.solve`) and ``parallel`` (those of
:func:`solvers.parallel.solve_parallel`). Rank 0 writes the result's arrays.
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
    from solvers.parallel import world
    comm = world()
    for i, spec in enumerate(json.loads(open(argv[0]).read())):
        run_case(comm, spec, f"{argv[1]}_{i}.npz")


def run_case(comm, spec, path):
    from solvers.parallel import solve_parallel
    problem = build(spec)
    result = solve_parallel(problem, comm, **spec.get("parallel", {}), **spec.get("solve", {}))
    if comm.rank == 0:
        h = {f"history_{k}": v for k, v in result.history.items()}
        np.savez(path, x=result.x, lam=result.lam, theta=result.theta,
                 steps=result.steps, status=result.status.value,
                 residuals=json.dumps(result.residuals), objective=result.objective,
                 ledger_max=result.ledger_max_rel_error, parallel=json.dumps(
                     {k: v for k, v in result.config["parallel"].items()}),
                 diverged_at=-1 if result.diverged_at is None else result.diverged_at, **h)


if __name__ == "__main__":
    main(sys.argv[1:])
