"""Run every benchmark in one process and print the results and the goals side by side.

``python benchmarks/run_all.py [--quick] [--json results.json]``

Sections: the fused τ-step vs its NumPy twin and the pieces of the compiled step
(bench_step), the two-field upwind transport vs a STREAM triad (bench_transport), the MLP
τ-step vs PyTorch, its NumPy twin and BLAS alone (bench_network, ``--torch-python``), and the
compile time of the first solve with an empty and a warm numba cache (bench_compile). ``--quick`` uses fewer steps and repeats (noisier numbers).
The numbers depend on the machine and on its load; see docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import bench_compile
import bench_network
import bench_step
import bench_transport
from _common import load_average, machine_info, print_table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--json", metavar="FILE", help="also write all results as JSON")
    parser.add_argument("--torch-python", default=os.environ.get("WAVECONTROL_TORCH_PYTHON"),
                        help="a Python with torch==2.13.0 for the network benchmark's PyTorch "
                        "column (default: $WAVECONTROL_TORCH_PYTHON)")
    parser.add_argument("--skip-compile", action="store_true",
                        help="leave out the cold-cache compile benchmark (it takes ~30 s)")
    a = parser.parse_args(argv)
    reps = 3 if a.quick else 7

    step = bench_step.run(steps=200 if a.quick else 500, numpy_steps=20 if a.quick else 60,
                          repeats=reps)
    pieces = bench_step.profile(repeats=reps)
    print()
    transport = bench_transport.run(steps=2 if a.quick else 4, repeats=reps)
    print()
    network = bench_network.run(steps=10 if a.quick else 40, repeats=3 if a.quick else 5,
                                numpy_steps=2 if a.quick else 3, torch_python=a.torch_python)
    print()
    compile_ = None if a.skip_compile else bench_compile.run()
    if compile_ is not None:
        print()

    worst = min(step, key=lambda r: r["ratio"])
    best = max(step, key=lambda r: r["ratio"])
    rows = [("fused tau-step vs NumPy twin (random LQR n=4, N=1000)", ">= 10x",
             f"{worst['ratio']:.1f}x ({worst['formulation']}/{worst['scheme']}) .. "
             f"{best['ratio']:.1f}x ({best['formulation']}/{best['scheme']})",
             "yes" if worst["ratio"] >= bench_step.GOAL else "NO"),
            ("upwind transport / triad bandwidth (1e7 values)", ">= 60%",
             f"{transport['ratio_to_triad']:.0%}",
             "yes" if transport["ratio_to_triad"] >= bench_transport.GOAL else "NO")]
    net = [r for r in network if r["ratio_torch"] == r["ratio_torch"]]    # not NaN
    if net:
        worst_net = max(net, key=lambda r: r["ratio_torch"])
        rows.append(("MLP tau-step / PyTorch fwd+bwd+SGD (depth 8, 32; f32, f64; 1, 2 thr)",
                     f"<= {bench_network.GOAL}x",
                     f"{min(r['ratio_torch'] for r in net):.2f}x .. "
                     f"{worst_net['ratio_torch']:.2f}x (worst: depth {worst_net['depth']}, "
                     f"{worst_net['dtype']}, {worst_net['threads']} thr)",
                     "yes" if worst_net["ratio_torch"] <= bench_network.GOAL else "NO"))
    else:
        rows.append(("MLP tau-step / PyTorch", f"<= {bench_network.GOAL}x",
                     "not run (no --torch-python)", "-"))
    rows.append(("MLP tau-step vs NumPy twin", "reported",
                 f"{min(r['numpy_over_ours'] for r in network):.1f}x .. "
                 f"{max(r['numpy_over_ours'] for r in network):.1f}x", "-"))
    if compile_ is not None:
        rows.append(("first solve: compile (empty cache) / load (warm cache)", "reported",
                     f"{compile_['cold']['compile_time']:.1f} s / "
                     f"{compile_['warm']['compile_time']:.2f} s", "-"))
    print(f"== summary (load average now {load_average()}) ==")
    print_table(("benchmark", "goal", "measured", "met"), rows)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"machine": machine_info(), "step": step, "step_pieces": pieces,
                       "transport": transport, "network": network,
                       "compile": compile_}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
