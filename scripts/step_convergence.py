"""How far one PINN load step gets towards its minimiser, and what moves it.

    python scripts/step_convergence.py [--scenario scenarios/square-mud.yaml] [--step 9]
        [--budgets 100 400] [--variants default lr_x2 constant_lr bias_-3 points_x4]
        [--json step-convergence.json]

Runs the scenario's load steps 1 .. step−1 at its defaults (in memory), keeps the solver's
state, and then minimises step `step` again from that same state with each variant and each
Adam budget. After each it evaluates the energy of the step's fields (the current φ, not the
committed one) by the trapezoid rule on the export grid, with the crack-length functional and
the area where φ > 0.5. The lowest energy any variant reaches is the estimate of the step's
minimum; the gap of the default budget to it says how short each step stops, and which
variant closes it fastest says why.

Variants change only what happens inside the probed step:
  default       the scenario's settings
  lr_x2         twice the learning rate
  constant_lr   no cosine decay (final_lr_fraction = 1)
  bias_-3       the φ-net's output restarts from σ(−3) instead of σ(−6) (solver.phi_bias)
  points_x4     four times the sampled points
  out_lr_x5     the φ-net's output layer at 5× the learning rate (solver.phi_output_lr_scale)
  out_lr_x20    ... at 20×
  out_lr_x5_constant  out_lr_x5 without the cosine decay
  final_lr_0.5  the cosine decays to half the rate instead of a tenth
  lbfgs_20      the Adam budget, then 20 L-BFGS iterations (strong Wolfe line search) on one
                fixed draw of points (solver.lbfgs_iterations); its cost is in the seconds column
  lbfgs_50      ... 50 L-BFGS iterations
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vefrac import api  # noqa: E402
from vefrac.runner import Run  # noqa: E402
from vefrac.problem import build_problem  # noqa: E402
from vefrac.solve import evaluate, sampled_points, trapezoid_weights  # noqa: E402

VARIANTS = {
    "default": {},
    "lr_x2": {"solver.learning_rate": "x2"},
    "constant_lr": {"solver.final_lr_fraction": 1.0},
    "bias_-3": {"solver.phi_bias": -3.0},
    "points_x4": {"solver.points": "x4"},
    "out_lr_x5": {"solver.phi_output_lr_scale": 5.0},
    "out_lr_x20": {"solver.phi_output_lr_scale": 20.0},
    "out_lr_x5_constant": {"solver.phi_output_lr_scale": 5.0, "solver.final_lr_fraction": 1.0},
    "final_lr_0.5": {"solver.final_lr_fraction": 0.5},
    "lbfgs_20": {"solver.lbfgs_iterations": 20},
    "lbfgs_50": {"solver.lbfgs_iterations": 50},
}


def overrides_for(scn, variant: str, budget: int) -> dict:
    out = {"solver.iterations": budget, "solver.first_step_iterations": budget}
    for key, value in VARIANTS[variant].items():
        if value == "x2":
            value = 2 * scn.solver.learning_rate
        elif value == "x4":
            value = 4 * sampled_points(scn.solver, build_problem(scn))
        out[key] = value
    return out


def step_energy(run: Run, t: float) -> dict:
    """Energy terms (normalised like the loss), crack length and φ > 0.5 area of the step's φ."""
    problem, grid = run.problem, run.grid
    f = evaluate(problem, run.model, grid.points(), t, device=run.device, dtype=run.dtype)
    w = trapezoid_weights(grid) * f["inside"]
    terms = {k: float((w * f[k]).sum() / problem.energy_scale) for k in ("elastic", "surface", "substrate")}
    return {**terms, "energy": sum(terms.values()), "crack_length": float((w * f["crack_density"]).sum()),
            "area_phi_gt_half": float((w * (f["phi"] > 0.5)).sum()), "phi_max": float(f["phi"].max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "square-mud.yaml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--step", type=int, default=9, help="the load step to probe (1-based, as in the log)")
    ap.add_argument("--budgets", type=int, nargs="+", default=[100, 400])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--json", default="step-convergence.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    scn = api.load_scenario(args.scenario, args.overrides)
    device = torch.device("cpu")
    started = time.perf_counter()
    run = Run(scn, None, device=device, log=lambda line: None)
    times = run.solver.times()
    for k in range(1, args.step):
        run.solver.advance(float(times[k]), checkpoint=lambda: None)
        run.solver.commit(float(times[k]))
    t = float(times[args.step])
    prefix = time.perf_counter() - started
    saved = copy.deepcopy(run.solver.state_dict())
    print(f"steps 1..{args.step - 1} in {prefix:.0f} s; probing step {args.step} at t = {t:.4g}", flush=True)
    rows = []
    for variant in args.variants:
        for budget in args.budgets:
            probe_scn = api.load_scenario(scn, overrides_for(scn, variant, budget))
            probe = Run(probe_scn, None, device=device, log=lambda line: None)
            probe.solver.load_state_dict(copy.deepcopy(saved))
            began = time.perf_counter()
            probe.solver.advance(t, checkpoint=lambda: None)
            row = {"variant": variant, "budget": budget, "seconds": time.perf_counter() - began,
                   **step_energy(probe, t)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    best = min(r["energy"] for r in rows)
    for r in rows:
        r["gap_to_best"] = r["energy"] - best
    Path(args.json).write_text(json.dumps({"scenario": scn.name, "step": args.step, "t": t,
                                           "prefix_seconds": prefix, "rows": rows}, indent=1))
    print(f"{'variant':<12} {'budget':>6} {'energy':>10} {'gap':>9} {'length':>7} {'φ>.5 area':>9} {'s':>6}")
    for r in rows:
        print(f"{r['variant']:<12} {r['budget']:>6} {r['energy']:>10.5f} {r['gap_to_best']:>9.5f} "
              f"{r['crack_length']:>7.3f} {r['area_phi_gt_half']:>9.4f} {r['seconds']:>6.0f}")


if __name__ == "__main__":
    main()
