"""PINN against the FEM reference on the agreement cases of the scale issue, side by side.

    python scripts/agreement.py [--etas 100 400] [--variants fem decay constant] [--seeds 0 1 2]
                                [--jobs 2] [--out outputs/agreement] [--json FILE] [--set KEY=VALUE ...]

The cases: square-mud's layer (unit square, s = 0.02, λ = μ = 1) with a log-normal toughness of
cv 0.2 (mean 1e-3, correlation length 0.05), substrate stiffness η as given, shrinkage to
t = 0.12 in 24 load steps (Δt = 0.005, square-mud's), square-mud's PINN budget otherwise. Variants:
- fem: the FEM backend at its defaults (h = s/2, AMG-preconditioned solves);
- decay: the PINN with the former step settings (Adam's rate decaying to 0.1×, φ output layer at
  the global rate) and square-mud's former budget (8192 points, 100 iterations a step, 300 the first);
- constant: the same budget with the constant rate and the φ output layer at 5× (the load-stepping
  defaults since 2026-12-02);
- constant-half-points: the same with 4096 points;
- constant-sigma-x2: constant with the Fourier scale doubled (σ = 10 /L = 0.2 L/s, the default 0.1 L/s);
- half-points-x2 / quarter-points-x4: constant with 1/2 (1/4) of the points and 2× (4×) the Adam
  iterations in every load step: the same points·iterations, so about the same cost (the step's
  time is proportional to the points on the CPU); half-points-x2 is square-mud's budget since
  2026-12-02;
- default: square-mud's settings as they are;
- unscaled / scaled: the default with each load step started from the previous u as it is
  (solver.predictor: none, the default until 2026-12-07) or times the load's growth (scaled);
- scaled-fewer: scaled with 140 Adam iterations a step instead of 200 (the first step's 600 kept).
`--seeds`: every PINN variant once per network seed (scenario `seed`: features, initial weights,
sampling) over the same toughness field (`fracture.toughness.seed: 0`), so the spread of a
statistic over the seeds is the PINN's own; the FEM runs once. The table then adds, per variant,
the mean and the range over the seeds. Each run is its own process with one thread; `--jobs` run at a time. Prints and writes (JSON) per
run: wall time, fragments, skeleton and AT2 crack length, first crack, mean band width (area of
φ > 0.5 per unit skeleton length, on the export grid) and median φ, then each PINN variant's
errors against the FEM of the same case. Runs already finished in --out are read, not rerun.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONSTANT = ["solver.final_lr_fraction=1.0", "solver.phi_output_lr_scale=5.0"]
FORMER_BUDGET = ["solver.points=8192", "solver.iterations=100", "solver.first_step_iterations=300"]
VARIANTS = {
    "fem": ["solver.backend=fem"],
    "decay": ["solver.final_lr_fraction=0.1", "solver.phi_output_lr_scale=1.0", *FORMER_BUDGET],
    "constant": CONSTANT + FORMER_BUDGET,
    "constant-half-points": CONSTANT + ["solver.points=4096", "solver.iterations=100", "solver.first_step_iterations=300"],
    "constant-sigma-x2": CONSTANT + FORMER_BUDGET + ["network.fourier_scale=10.0"],
    "half-points-x2": CONSTANT + ["solver.points=4096", "solver.iterations=200", "solver.first_step_iterations=600"],
    "quarter-points-x4": CONSTANT + ["solver.points=2048", "solver.iterations=400", "solver.first_step_iterations=1200"],
    "default": [],
    "unscaled": ["solver.predictor=none"],
    "scaled": ["solver.predictor=scaled"],
    "scaled-fewer": ["solver.predictor=scaled", "solver.iterations=140", "solver.first_step_iterations=600"],
}


def case_overrides(eta: float) -> list[str]:
    return ["fracture.toughness={kind: lognormal, mean: 1.0e-3, cv: 0.2, correlation_length: 0.05, seed: 0}",
            f"material.substrate_stiffness={eta}", "shrinkage.t_end=0.12", "solver.load_steps=24",
            "output.snapshots=25", "solver.threads=1"]


def band_statistics(run: Path, skeleton_length: float) -> dict:
    """Mean band width (area of φ > 0.5 per unit skeleton length) and median φ of the last snapshot."""
    import pyvista as pv

    grid = pv.read(sorted(run.glob("fields_*.vti"))[-1])
    phi = np.asarray(grid.point_data["phi"])
    mask = np.asarray(grid.point_data["mask"]).astype(bool)
    cell_area = grid.spacing[0] * grid.spacing[1]
    area = float((phi[mask] > 0.5).sum() * cell_area)
    return {"band_width": area / skeleton_length if skeleton_length > 0 else None,
            "median_phi": float(np.median(phi[mask]))}


def one_run(out: Path, eta: float, variant: str, seed: int, extra: list[str]) -> dict:
    folder = out / (f"eta{eta:g}-{variant}" + (f"-seed{seed}" if seed else ""))
    if seed:
        extra = [*extra, f"seed={seed}"]
    if not (folder / "summary.json").is_file():
        cmd = [sys.executable, "-m", "vefrac", "run", str(ROOT / "scenarios" / "square-mud.yaml"), "--out",
               str(folder), "--overwrite", "--quiet"]
        for o in case_overrides(eta) + VARIANTS[variant] + extra:
            cmd += ["--set", o]
        subprocess.run(cmd, check=True, cwd=ROOT)
    summary = json.loads((folder / "summary.json").read_text())
    final = summary["final"]
    return {"eta": eta, "variant": variant, "seed": seed, "wall_s": summary["wall_time_s"], "fragments": final["fragments"],
            "skeleton_length": final["skeleton_length"], "crack_length": final["crack_length"],
            "first_crack_t": summary["first_crack_t"], **band_statistics(folder, final["skeleton_length"])}


def table(rows: list[dict]) -> str:
    head = "| η | variant (seed) | wall s | fragments | skeleton | AT2 length | first crack t | band width | median φ |"
    lines = [head, "|" + " --- |" * 9]
    ref = {r["eta"]: r for r in rows if r["variant"] == "fem"}

    def rel(r, key):
        f = ref.get(r["eta"])
        if r["variant"] == "fem" or f is None or not f[key]:
            return f"{r[key]:.4g}" if r[key] is not None else "–"
        return f"{r[key]:.4g} ({100 * (r[key] / f[key] - 1):+.0f} %)"

    for r in rows:
        name = r["variant"] + (f" ({r['seed']})" if r["variant"] != "fem" else "")
        lines.append(f"| {r['eta']:g} | {name} | {r['wall_s']:.0f} | {r['fragments']} | "
                     f"{rel(r, 'skeleton_length')} | {rel(r, 'crack_length')} | {r['first_crack_t']} | "
                     f"{rel(r, 'band_width')} | {r['median_phi']:.2f} |")
    return "\n".join(lines + seed_spread(rows))


def seed_spread(rows: list[dict]) -> list[str]:
    """Per η and PINN variant run at two or more seeds: mean [min, max] of each statistic over the
    seeds, and the mean's error against the FEM."""
    keys = ["fragments", "skeleton_length", "crack_length", "first_crack_t", "band_width"]
    ref = {r["eta"]: r for r in rows if r["variant"] == "fem"}
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["variant"] != "fem":
            groups.setdefault((r["eta"], r["variant"]), []).append(r)
    lines = []
    for (eta, variant), runs in groups.items():
        if len(runs) < 2:
            continue
        if not lines:
            lines = ["", "| η | variant | seeds | " + " | ".join(keys) + " |", "|" + " --- |" * (3 + len(keys))]
        cells = []
        for k in keys:
            v = np.array([r[k] for r in runs if r[k] is not None], dtype=float)
            if not len(v):
                cells.append("–")
                continue
            f = ref.get(eta, {}).get(k)
            err = f" ({100 * (v.mean() / f - 1):+.0f} %)" if f else ""
            cells.append(f"{v.mean():.4g}{err} [{v.min():.4g}, {v.max():.4g}]")
        lines.append(f"| {eta:g} | {variant} | {len(runs)} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--etas", type=float, nargs="+", default=[100.0, 400.0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "outputs" / "agreement"))
    ap.add_argument("--json")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    specs = [(eta, v, seed) for eta in a.etas for v in a.variants for seed in (a.seeds if v != "fem" else [0])]
    with ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(lambda spec: one_run(out, *spec, a.overrides), specs))
    print(table(rows))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
