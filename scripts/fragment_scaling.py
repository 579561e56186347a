"""Physics check: the mean fragment size grows in proportion to the elastic length ℓe.

    python scripts/fragment_scaling.py [--out outputs/fragment-scaling] [--etas 50 100 200] [--seeds 2 1 1]
                                       [--load-steps 10] [--iterations 80] [--first-step-iterations 200]
                                       [--threads 1] [--reuse] [--picture FILE.png]

Every dimensionless group of the problem is kept fixed except ℓe/L (the domain stays the unit
square). Starting from `scenarios/square-mud.yaml` (η = 100, ℓe = sqrt(3/100) ≈ 0.173), a case
with substrate stiffness η has ℓe = sqrt((λ+2μ)/η), and with f = ℓe/ℓe(square-mud):

- the phase-field width s, the mean toughness G and the toughness correlation length are
  multiplied by f (G ∝ ℓe keeps the Griffith number G/((λ+2μ) εs² ℓe) fixed; G/s, hence the
  AT2 strength, is unchanged; ℓe/s stays 8.7);
- the integration points per iteration by 1/f² (the same points per s²), the export grid
  resolution by 1/f (the same pixels per s; fragments count from (4s)² up);
- cv, the shrinkage history, the networks (their Fourier scale follows L/s by default) and the
  iteration budget are the same for every case.

The sharp-crack theory of a layer on an elastic foundation then predicts fragments ∝ ℓe
exactly in an infinite layer, so the exponent of sqrt(mean fragment area) against ℓe is 1.
What this measures is whether the solver (a finite domain, networks, sampling) reproduces it.

Defaults: η = 50, 100, 200 (ℓe = 0.245, 0.173, 0.122; L/s = 35, 50, 71, points 4096, 8192,
16384), so the finest case is square-mud's resolution doubled and costs 4× the coarsest. The
budget is 10 load steps of 80 Adam iterations after a first step of 200 (1000 iterations, 45 %
of square-mud's), one thread. The coarsest case has the fewest cells (5 to 8 per run) and is
the cheapest, so it runs twice (seeds 0 and 1: another G(x), initialisation and sampling) and
the cells of a case's runs are pooled; the other cases run seed 0.

The exponent is fitted by least squares in log-log, with two standard errors: from the fit's
residuals (n − 2 degrees of freedom) and propagated from each case's standard error of its
mean fragment area (the scatter of its cells). A cross-check that does not count cells: the
cell size d that tiles the square with the measured crack (skeleton) length,
d = 2·area / (skeleton length + perimeter/2), fitted the same way.

Each run is `python -m vefrac run` in a subprocess into OUT/eta-<η>/seed-<k>/; the script prints
a table, writes OUT/fragment_scaling.json and a picture (OUT/fragment_scaling.png): the final
crack pattern of each case and sqrt(mean area) against ℓe in log-log with the fit and slope 1.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "scenarios" / "square-mud.yaml"
# square-mud's values (the reference every case is scaled from)
ETA_REF, S_REF, G_REF, CORRELATION_REF, POINTS_REF, RESOLUTION_REF = 100.0, 0.02, 1.0e-3, 0.05, 8192, 200
LAME_LAMBDA, LAME_MU = 1.0, 1.0
DOMAIN_AREA, DOMAIN_PERIMETER = 1.0, 4.0  # the unit square of every case


def elastic_length(eta: float) -> float:
    """ℓe = sqrt((λ + 2μ)/η) of square-mud's material."""
    return math.sqrt((LAME_LAMBDA + 2 * LAME_MU) / eta)


def case_overrides(eta: float, *, load_steps: int, iterations: int, first_step_iterations: int,
                   threads: int, seed: int = 0, scale_toughness: bool = True) -> list[str]:
    """`--set` options of the case with substrate stiffness eta: every length ∝ ℓe (see the module).

    scale_toughness=False keeps G at square-mud's value: the control whose Griffith number
    changes like 1/ℓe (sharp-crack theory: fragment size ∝ ℓe^(2/3) then).
    """
    f = elastic_length(eta) / elastic_length(ETA_REF)
    sets = {
        "name": f"fragment-scaling-eta-{eta:g}",
        "seed": seed,
        "material.substrate_stiffness": eta,
        "fracture.length_scale": S_REF * f,
        "fracture.toughness.mean": G_REF * (f if scale_toughness else 1.0),
        "fracture.toughness.correlation_length": CORRELATION_REF * f,
        "solver.points": int(round(POINTS_REF / f**2)),
        "output.resolution": int(round(RESOLUTION_REF / f)),
        # snapshots add load steps: one per load step, so the budget is the load steps'
        "output.snapshots": load_steps + 1,
        "solver.load_steps": load_steps,
        "solver.iterations": iterations,
        "solver.first_step_iterations": first_step_iterations,
        "solver.threads": threads,
    }
    return [f"{k}={v:.10g}" if isinstance(v, float) else f"{k}={v}" for k, v in sets.items()]


def run_one(eta: float, seed: int, out: Path, *, load_steps: int, iterations: int, first_step_iterations: int,
            threads: int, scale_toughness: bool = True, reuse: bool = False) -> dict:
    """Run one case and seed into out (or read it back when reuse and out holds that run)."""
    sets = case_overrides(eta, load_steps=load_steps, iterations=iterations,
                          first_step_iterations=first_step_iterations, threads=threads, seed=seed,
                          scale_toughness=scale_toughness)
    record = out / "fragment_scaling_run.json"
    if reuse and record.is_file() and (out / "summary.json").is_file():
        previous = json.loads(record.read_text())
        if previous.get("sets") == sets:
            return _run_record(out, sets, previous["process_wall_s"])
    command = [sys.executable, "-m", "vefrac", "run", str(BASE), "--out", str(out), "--overwrite", "--quiet",
               "--device", "cpu"]
    for item in sets:
        command += ["--set", item]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    process_wall = time.perf_counter() - start
    record.write_text(json.dumps({"sets": sets, "process_wall_s": process_wall}, indent=2))
    return _run_record(out, sets, process_wall)


def _run_record(out: Path, sets: list[str], process_wall: float) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    final = summary["final"]
    return {"folder": str(out), "sets": sets, "fragments": int(final["fragments"]),
            "fragment_areas": summary["fragment_areas"], "skeleton_length": final["skeleton_length"],
            "median_phi": final["median_phi"], "first_crack_t": summary["first_crack_t"],
            "training_wall_s": summary["wall_time_s"], "process_wall_s": process_wall,
            "iterations": summary["iterations"], "threads": summary["threads"]}


def case_row(eta: float, runs: list[dict]) -> dict:
    """Pool the cells of one case's runs (seeds): mean area, its standard error, the cross-check."""
    sets = dict(x.split("=", 1) for x in runs[0]["sets"])
    ell = elastic_length(eta)
    areas = np.concatenate([np.asarray(r["fragment_areas"], float) for r in runs])
    mean_area = float(areas.mean()) if areas.size else 0.0
    # standard error of log sqrt(mean area) from the cells' scatter: ½ · SE(mean) / mean
    se_log = 0.5 * float(areas.std(ddof=1) / math.sqrt(areas.size) / mean_area) if areas.size > 1 else math.inf
    skeleton = float(np.mean([r["skeleton_length"] for r in runs]))
    return {
        "eta": eta, "elastic_length": ell, "s": float(sets["fracture.length_scale"]),
        "points": int(sets["solver.points"]), "seeds": len(runs),
        "fragments": int(areas.size), "fragments_per_run": [r["fragments"] for r in runs],
        "mean_fragment_area": mean_area, "fragment_size": math.sqrt(mean_area),
        "size_over_elastic_length": math.sqrt(mean_area) / ell, "se_log_size": se_log,
        # cross-check from crack length, not cell counts: cells of size d tile the square of
        # side L with 2L²/d − 2L of interior cracks (the free edges count as the rest)
        "skeleton_length": skeleton, "size_from_crack_length": 2 * DOMAIN_AREA / (skeleton + DOMAIN_PERIMETER / 2),
        "median_phi": float(np.mean([r["median_phi"] for r in runs])),
        "training_wall_s": sum(r["training_wall_s"] for r in runs),
        "process_wall_s": sum(r["process_wall_s"] for r in runs), "runs": runs,
    }


def fit_exponent(elastic_lengths, sizes, se_log_sizes=None) -> dict:
    """Least-squares line log(size) = a + p log(ℓe).

    Returns exponent p, intercept a, stderr (from the residuals, n − 2 degrees of freedom; nan
    for two points) and, when se_log_sizes (standard errors of each log size) is given,
    stderr_sampling (those errors propagated through the same least-squares weights).
    """
    x, y = np.log(np.asarray(elastic_lengths, float)), np.log(np.asarray(sizes, float))
    n = x.size
    if n < 2:
        raise ValueError("fitting an exponent needs at least two cases")
    xc = x - x.mean()
    sxx = float(xc @ xc)
    p = float(xc @ (y - y.mean()) / sxx)
    a = float(y.mean() - p * x.mean())
    residual = y - (a + p * x)
    fit = {"exponent": p, "intercept": a,
           "stderr": math.sqrt(float(residual @ residual) / (n - 2) / sxx) if n > 2 else math.nan}
    if se_log_sizes is not None:
        se = np.asarray(se_log_sizes, float)
        fit["stderr_sampling"] = float(math.sqrt(((xc / sxx) ** 2 * se**2).sum()))
    return fit


def fragment_scaling(out: Path, *, etas=(50.0, 100.0, 200.0), seeds=(2, 1, 1), load_steps: int = 10,
                     iterations: int = 80, first_step_iterations: int = 200, threads: int = 1,
                     scale_toughness: bool = True, reuse: bool = False, log=print) -> dict:
    """Run each η with seeds 0 .. seeds[i] − 1 into out/eta-<η>/seed-<k>/, pool each case's
    cells and fit the exponent. Returns the JSON-ready result."""
    out = Path(out)
    if len(seeds) != len(etas):
        raise ValueError(f"one seed count per η: got {len(seeds)} for {len(etas)} values of η")
    rows = []
    for eta, n_seeds in zip(etas, seeds):
        runs = []
        for seed in range(n_seeds):
            runs.append(run_one(float(eta), seed, out / f"eta-{eta:g}" / f"seed-{seed}", load_steps=load_steps,
                                iterations=iterations, first_step_iterations=first_step_iterations,
                                threads=threads, scale_toughness=scale_toughness, reuse=reuse))
            log(f"η = {eta:g}, seed {seed}: {runs[-1]['fragments']} fragments, "
                f"{runs[-1]['process_wall_s']:.0f} s")
        rows.append(case_row(float(eta), runs))
    ell = [r["elastic_length"] for r in rows]
    fit = fit_exponent(ell, [r["fragment_size"] for r in rows], [r["se_log_size"] for r in rows])
    cross_check = fit_exponent(ell, [r["size_from_crack_length"] for r in rows])
    machine = f"{platform.machine()}, {threads} thread(s), python {platform.python_version()}"
    budget = {"load_steps": load_steps, "iterations": iterations, "first_step_iterations": first_step_iterations,
              "threads": threads, "seeds": list(seeds), "scale_toughness": scale_toughness}
    return {"machine": machine, "budget": budget, "cases": rows, "fit": fit, "fit_crack_length": cross_check,
            "total_process_wall_s": sum(r["process_wall_s"] for r in rows)}


def table(result: dict) -> str:
    lines = [f"{'η':>6} {'ℓe':>7} {'s':>8} {'L/s':>5} {'points':>7} {'seeds':>5} {'fragments':>12} "
             f"{'mean area':>10} {'√area/ℓe':>9} {'d_len/ℓe':>8} {'train s':>8} {'wall s':>7}"]
    for r in result["cases"]:
        counts = "+".join(str(n) for n in r["fragments_per_run"])
        lines.append(f"{r['eta']:6g} {r['elastic_length']:7.4f} {r['s']:8.5f} {1 / r['s']:5.1f} {r['points']:7d} "
                     f"{r['seeds']:5d} {counts:>12} {r['mean_fragment_area']:10.4g} "
                     f"{r['size_over_elastic_length']:9.3f} {r['size_from_crack_length'] / r['elastic_length']:8.3f} "
                     f"{r['training_wall_s']:8.0f} {r['process_wall_s']:7.0f}")
    fit, cross = result["fit"], result["fit_crack_length"]
    lines.append(f"exponent of sqrt(mean fragment area) against ℓe: {fit['exponent']:.3f} "
                 f"± {fit['stderr']:.3f} (fit residuals) ± {fit['stderr_sampling']:.3f} (cell scatter); theory 1")
    lines.append(f"cross-check, cell size from crack length (d_len): exponent {cross['exponent']:.3f} "
                 f"± {cross['stderr']:.3f}")
    lines.append(f"total wall time {result['total_process_wall_s']:.0f} s ({result['machine']})")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> Path:
    """Final crack patterns of the cases, and sqrt(mean area) against ℓe in log-log."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sys.path.insert(0, str(ROOT))
    from vefrac.compare import load_run

    cases = result["cases"]
    fig = Figure(figsize=(3.0 * (len(cases) + 1.3), 3.4), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, len(cases) + 1, width_ratios=[1] * len(cases) + [1.3])
    for i, r in enumerate(cases):
        run = load_run(r["runs"][0]["folder"])  # the first seed's pattern
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(np.where(run.mask, run.phi, np.nan), origin="lower", extent=run.extent, cmap="gray_r",
                  vmin=0, vmax=1, interpolation="nearest")
        seeds = f" (seed 0 of {r['seeds']})" if r["seeds"] > 1 else ""
        ax.set_title(f"η = {r['eta']:g}, ℓe = {r['elastic_length']:.3f}, L/s = {1 / r['s']:.0f}\n"
                     f"{r['fragments_per_run'][0]} fragments{seeds}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(grid[0, -1])
    ell = np.array([r["elastic_length"] for r in cases])
    size = np.array([r["fragment_size"] for r in cases])
    err = np.array([r["se_log_size"] for r in cases]) * size
    fit = result["fit"]
    ax.errorbar(ell, size, yerr=err, fmt="o", color="C0", capsize=3, label="measured (± 1 s.e.)")
    line = np.geomspace(ell.min() / 1.1, ell.max() * 1.1, 20)
    ax.plot(line, np.exp(fit["intercept"]) * line ** fit["exponent"], "C0-",
            label=f"fit: slope {fit['exponent']:.2f}")
    guide = np.exp(np.mean(np.log(size / ell))) * line
    ax.plot(line, guide, "k--", lw=0.8, label="slope 1")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import NullFormatter, ScalarFormatter
    for axis in (ax.xaxis, ax.yaxis):  # a factor 2 spans no decade: plain numbers, no minor labels
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    ax.set_xticks(ell, [f"{e:.3f}" for e in ell])
    lo, hi = ax.get_ylim()
    ticks = [y for y in np.arange(0.05, 1.0, 0.05) if lo <= y <= hi]
    ax.set_yticks(ticks, [f"{y:.2f}" for y in ticks])
    ax.set_xlabel("ℓe")
    ax.set_ylabel("sqrt(mean fragment area)")
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "outputs" / "fragment-scaling"))
    ap.add_argument("--etas", type=float, nargs="+", default=[50.0, 100.0, 200.0])
    ap.add_argument("--load-steps", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=80)
    ap.add_argument("--first-step-iterations", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="runs (seeds 0, 1, ...) per η, pooled; default 2 for the coarsest η, 1 for the others")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fixed-toughness", action="store_true",
                    help="control: keep G at square-mud's value instead of scaling it with ℓe (theory: 2/3)")
    ap.add_argument("--reuse", action="store_true", help="read back cases already run with the same options")
    ap.add_argument("--picture", help="log-log picture (default: OUT/fragment_scaling.png)")
    args = ap.parse_args()
    if len(args.etas) < 2:
        ap.error("--etas: an exponent needs at least two cases")
    seeds = args.seeds or [2] + [1] * (len(args.etas) - 1)
    if len(seeds) != len(args.etas):
        ap.error(f"--seeds: one count per η ({len(args.etas)})")
    out = Path(args.out)
    result = fragment_scaling(out, etas=args.etas, seeds=seeds, load_steps=args.load_steps, iterations=args.iterations,
                              first_step_iterations=args.first_step_iterations, threads=args.threads,
                              scale_toughness=not args.fixed_toughness, reuse=args.reuse)
    print(table(result))
    out.mkdir(parents=True, exist_ok=True)
    (out / "fragment_scaling.json").write_text(json.dumps(result, indent=2))
    picture = plot(result, Path(args.picture) if args.picture else out / "fragment_scaling.png")
    print(f"wrote {out / 'fragment_scaling.json'} and {picture}")


if __name__ == "__main__":
    main()
