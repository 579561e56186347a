"""Benchmark: the FEM backend's linear solvers, sparse direct against CG + algebraic multigrid.

    python scripts/fem_solvers.py [--ratios 25 50] [--etas 400 100] [--solvers direct amg]
                                  [--inexact 0 0.01] [--steps 16] [--t-end 0.12] [--json FILE]

The case: a unit square, G log-normal (mean 1e-3, cv 0.2, correlation length 0.05), λ = μ = 1,
s = 1 / ratio, η as given, shrinkage to t_end in `--steps` load steps, the FEM's defaults
otherwise (h = s/2). `--inexact`: values of vefrac.fem.INEXACT (the mid-staggered u-steps'
tolerance, 0 = every u-step to the full tolerance) to run for each solver, the default's alone
if not given. For each (ratio, η) the solvers (and INEXACT values) run side by side, each in its own
process with one thread, started together, so they share the machine alike and the ratio of
their wall times is fair on a loaded machine (the CPU time of each process is printed too: on a
machine shared with other jobs it is the steadier figure). Prints per run: wall time, CPU time, staggered and Newton
iterations, linear solves and Krylov iterations, cells (fragments), skeleton and AT2 crack
length; then per solver the exponent of wall time in domain/s fitted over the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def overrides(ratio: float, eta: float, solver: str, *, steps: int, t_end: float) -> list[str]:
    s = 1.0 / ratio
    resolution = max(256, int(4 * ratio) + 1)  # four export points per s
    return ["domain.size=[1.0,1.0]", f"fracture.length_scale={s}",
            "fracture.toughness={kind: lognormal, mean: 1.0e-3, cv: 0.2, correlation_length: 0.05}",
            f"material.substrate_stiffness={eta}", f"shrinkage.t_end={t_end}", "output.snapshots=2",
            f"output.resolution={resolution}", f"solver.load_steps={steps}", "solver.backend=fem",
            "solver.threads=1", f"fem.linear_solver={solver}"]


def measure(spec: dict) -> dict:
    """One run in this process: its summary's figures and the linear solvers' counts."""
    import torch

    sys.path.insert(0, str(ROOT))
    from vefrac.config import load_scenario
    from vefrac.runner import Run

    torch.set_num_threads(1)
    from vefrac import fem

    if spec.get("inexact") is not None:
        fem.INEXACT = spec["inexact"]
    inexact = fem.INEXACT
    cpu = time.process_time()
    scn = load_scenario(ROOT / "scenarios" / "square-mud.yaml", spec["overrides"])
    with tempfile.TemporaryDirectory() as out:
        run = Run(scn, Path(out), device=torch.device("cpu"), log=lambda line: None, pictures=False)
        summary = run.execute()
    cpu = time.process_time() - cpu
    final = summary["final"]
    steps = summary["steps"]
    u, phi = run.trainer.u_solver.counts, run.trainer.phi_solver.counts
    return {**{k: spec[k] for k in ("ratio", "eta", "solver")}, "inexact": inexact, "wall_s": summary["wall_time_s"], "cpu_s": cpu,
            "cells": int(np.prod(run.model.mesh.shape)), "dofs": int(run.model.mesh.n_dofs),
            "staggered": sum(r["iterations"] for r in steps), "newton": sum(r["newton_iterations"] for r in steps),
            "converged": all(r["converged"] for r in steps), "fragments": final["fragments"],
            "skeleton_length": final["skeleton_length"], "crack_length": final["crack_length"],
            "first_crack_t": summary["first_crack_t"], "u_solves": u.solves, "u_krylov": u.iterations,
            "u_setups": u.setups, "phi_solves": phi.solves, "phi_krylov": phi.iterations}


def side_by_side(specs: list[dict]) -> list[dict]:
    """Run every spec in its own process, all started together; their results in order."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, __file__, "--one", json.dumps(spec)], env=env,
                              stdout=subprocess.PIPE, text=True) for spec in specs]
    results = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise RuntimeError(f"a run failed (exit {p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def fitted_exponent(ratios, walls) -> float:
    return float(np.polyfit(np.log(ratios), np.log(walls), 1)[0]) if len(ratios) > 1 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ratios", type=float, nargs="+", default=[25, 50])
    ap.add_argument("--etas", type=float, nargs="+", default=[400, 100])
    ap.add_argument("--solvers", nargs="+", default=["direct", "amg"])
    ap.add_argument("--inexact", type=float, nargs="+", default=[None],
                    help="values of vefrac.fem.INEXACT to run for each solver (default: the default's)")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--t-end", type=float, default=0.12)
    ap.add_argument("--json")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return
    rows = []
    head = (f"{'L/s':>5} {'eta':>5} {'solver':>7} {'inexact':>7} {'wall s':>8} {'cpu s':>8} {'cells':>8} {'stagg':>6} {'newton':>6} "
            f"{'u its':>7} {'phi its':>8} {'frag':>5} {'skeleton':>9} {'AT2':>7}")
    print("shared machine: each pair of runs side by side, one thread each\n" + head, flush=True)
    for ratio in args.ratios:
        for eta in args.etas:
            specs = [{"ratio": ratio, "eta": eta, "solver": solver, "inexact": inexact,
                      "overrides": overrides(ratio, eta, solver, steps=args.steps, t_end=args.t_end)}
                     for solver in args.solvers for inexact in args.inexact]
            for r in side_by_side(specs):
                rows.append(r)
                print(f"{r['ratio']:5.0f} {r['eta']:5.0f} {r['solver']:>7} {r['inexact']:7g} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} {r['cells']:8d} "
                      f"{r['staggered']:6d} {r['newton']:6d} {r['u_krylov']:7d} {r['phi_krylov']:8d} "
                      f"{r['fragments']:5d} {r['skeleton_length']:9.3f} {r['crack_length']:7.3f}", flush=True)
    for solver, inexact in sorted({(r["solver"], r["inexact"]) for r in rows}):
        for eta in args.etas:
            sel = [r for r in rows if (r["solver"], r["inexact"], r["eta"]) == (solver, inexact, eta)]
            k = fitted_exponent([r["ratio"] for r in sel], [r["wall_s"] for r in sel])
            kc = fitted_exponent([r["ratio"] for r in sel], [r["cpu_s"] for r in sel])
            ki = fitted_exponent([r["ratio"] for r in sel], [r["cpu_s"] / r["staggered"] for r in sel])
            print(f"{solver}, INEXACT {inexact:g}, eta {eta:g}: wall time ~ (domain/s)^{k:.2f}, CPU time ~ (domain/s)^{kc:.2f}, "
                  f"CPU time per staggered iteration ~ (domain/s)^{ki:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
