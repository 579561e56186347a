"""Accuracy per second: the PINN's crack-statistics error against the FEM reference, as a
function of wall time, for sampling and feature variants.

    python scripts/accuracy_per_second.py [--out outputs/accuracy-per-second] [--reference DIR]
                                          [--budgets 0.5 1 2] [--variants baseline importance multiscale both]
                                          [--jobs 2] [--threads 1] [--set KEY=VALUE ...]

A curve per variant: `square-mud` (or the scenario given with --scenario) run with its Adam
budget (`solver.iterations` and `solver.first_step_iterations`) multiplied by each factor in
--budgets; the x axis is the run's training seconds (`summary.json → wall_time_s`), the y axis
the relative error against the reference of

- the crack length measured on the skeleton of φ > 0.5 (the accuracy aim: 15 %),
- the crack length from the AT2 functional,
- the mean fragment area (the accuracy aim: 25 %).

The variants (each is a list of `--set` options on top of the scenario and --set):

- baseline: the scenario as it is (stratified points, one Fourier scale);
- importance: `solver.sampling=importance` (half the points drawn near the previous step's
  cracks, weights that keep the energy estimate unbiased);
- multiscale: `network.fourier_scales=[σ/2, 2σ]` with σ the default single scale (0.1·L/s);
- both: the two together;
- adaptive (not in the default set): adaptive load steps, `solver.step_tolerance=0.05` with
  blocks of half the step budget and at most 4 step budgets a step (`solver.iterations=50·b`,
  `solver.max_step_iterations=400·b` for square-mud at budget b).

The reference is a FEM run of the same scenario (`solver.backend=fem`, its defaults, h = s/2);
give an existing run's folder with --reference, or the script runs it into OUT/fem (once: an
existing OUT/fem/summary.json is reused).

The runs are one sweep (vefrac.sweep, as `vefrac sweep` runs them): OUT/<variant>-x<budget>/
and OUT/fem/, --jobs at a time (each with --threads threads; jobs share the machine, so compare
within one invocation), OUT/sweep.csv their statistics. A run whose summary.json exists is not
run again and an interrupted one continues from its checkpoint, so an interrupted study resumes
where it stopped, and runs finished by earlier invocations into the same OUT join the table (so
a few variants can have more budgets). Writes OUT/accuracy_per_second.json and
OUT/accuracy_per_second.png, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vefrac import sweep  # noqa: E402
from vefrac.config import load_scenario  # noqa: E402
from vefrac.problem import Problem, build_problem  # noqa: E402
from vefrac.pinn_model import fourier_scale  # noqa: E402

STATISTICS = ("skeleton_length", "crack_length", "mean_fragment_area")
AIMS = {"skeleton_length": 0.15, "crack_length": 0.15, "mean_fragment_area": 0.25}
LABELS = {"skeleton_length": "crack length (skeleton)", "crack_length": "crack length (AT2 functional)",
          "mean_fragment_area": "mean fragment area"}
ADAPTIVE_TOLERANCE = 0.05  # adaptive: crack length change per block, in domain lengths
VARIANTS = ("baseline", "importance", "multiscale", "both", "adaptive")
DEFAULT_VARIANTS = VARIANTS[:4]


def default_scale(scenario: Path, overrides: list[str]) -> float:
    """The single Fourier scale the scenario's networks use (units of 1/L)."""
    scn = load_scenario(scenario, overrides)
    problem: Problem = build_problem(scn)
    return fourier_scale(scn.network, problem)


def variant_overrides(variant: str, *, scale: float) -> list[str]:
    """`--set` options of a variant on top of the scenario."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
    sets = []
    if variant in ("importance", "both"):
        sets.append("solver.sampling=importance")
    if variant in ("multiscale", "both"):
        sets.append(f"network.fourier_scales=[{scale / 2:g},{scale * 2:g}]")
    if variant == "adaptive":
        sets.append(f"solver.step_tolerance={ADAPTIVE_TOLERANCE:g}")
    return sets


def budget_overrides(budget: float, *, iterations: int, first_step_iterations: int, variant: str = "baseline"
                     ) -> list[str]:
    """The Adam budget × budget; adaptive: blocks of half a step's budget, at most 4 steps' worth."""
    if variant == "adaptive":
        return [f"solver.iterations={max(1, round(iterations * budget / 2))}",
                f"solver.first_step_iterations={max(1, round(first_step_iterations * budget))}",
                f"solver.max_step_iterations={max(1, round(4 * iterations * budget))}"]
    return [f"solver.iterations={max(1, round(iterations * budget))}",
            f"solver.first_step_iterations={max(1, round(first_step_iterations * budget))}"]


def relative_errors(run: dict, reference: dict) -> dict[str, float]:
    """Signed relative differences (run − reference)/reference of the statistics' final values
    (None where the reference's value is 0: no cracks to compare with)."""
    return {k: (run["final"][k] - reference["final"][k]) / reference["final"][k] if reference["final"][k] else None
            for k in STATISTICS}


def run_cases(scenario: Path, out: Path, cases: list[sweep.Case], *, jobs: int, threads: int) -> list[dict]:
    """The cases as one sweep into out (finished runs skipped, interrupted ones resumed); their
    summaries, in order. RuntimeError naming the run if one fails."""
    plan = sweep.plan_cases(scenario, cases, out=out)
    statuses = sweep.run_local(plan, jobs=jobs, resume=True, threads=threads, log=lambda line: None)
    for run, status in zip(plan.runs, statuses):
        if status not in ("done", "skipped"):
            log = run.folder / "vefrac.log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{run.folder}: vefrac run {status}:\n{tail}")
    return [json.loads((run.folder / "summary.json").read_text()) for run in plan.runs]


def plot(rows: list[dict], reference: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    fig, axes = plt.subplots(1, len(STATISTICS) + 1, figsize=(5 * (len(STATISTICS) + 1), 4), constrained_layout=True)
    ax = axes[-1]  # what a user sees first: how many cells
    for variant in variants:
        mine = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["wall_s"])
        ax.plot([r["wall_s"] for r in mine], [r["fragments"] for r in mine], "o-", label=variant)
    ax.axhline(reference["final"]["fragments"], color="k", lw=1, label="FEM")
    ax.axvline(reference["wall_time_s"], color="k", ls=":", lw=1)
    ax.set_xlabel("training wall time [s]")
    ax.set_ylabel("fragments")
    ax.set_title("fragment count")
    for ax, stat in zip(axes, STATISTICS):
        ax.axhspan(0, AIMS[stat] * 100, color="0.9", zorder=0, label=f"aim ({AIMS[stat]:.0%})")
        for variant in variants:
            mine = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["wall_s"])
            mine = [r for r in mine if r["errors"][stat] is not None]
            ax.plot([r["wall_s"] for r in mine], [abs(r["errors"][stat]) * 100 for r in mine], "o-", label=variant)
            for r in mine:
                ax.annotate(f"×{r['budget']:g}", (r["wall_s"], abs(r["errors"][stat]) * 100), fontsize=7,
                            textcoords="offset points", xytext=(3, 3))
        ax.axvline(reference["wall_time_s"], color="k", ls=":", lw=1, label="FEM wall time")
        ax.set_xlabel("training wall time [s]")
        ax.set_ylabel("|error| against FEM [%]")
        ax.set_title(LABELS[stat])
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{reference['name']}: accuracy per second (FEM: {reference['final']['fragments']} fragments, "
                 f"{reference['wall_time_s']:.0f} s)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "square-mud.yaml")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "accuracy-per-second")
    ap.add_argument("--reference", type=Path, help="a finished FEM run of the same scenario (its folder)")
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time")
    ap.add_argument("--threads", type=int, default=1, help="threads per run")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="scenario override for every run, the reference included (repeatable)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    common = args.overrides + [f"solver.threads={args.threads}"]
    scn = load_scenario(args.scenario, args.overrides)
    scale = default_scale(args.scenario, args.overrides)
    plan = [(v, b) for b in sorted(args.budgets) for v in args.variants]
    # runs finished by earlier invocations into the same folder join the study (they are not re-run)
    plan += sorted({(d.name.rsplit("-x", 1)[0], float(d.name.rsplit("-x", 1)[1])) for d in args.out.glob("*-x*")
                    if (d / "summary.json").exists() and d.name.rsplit("-x", 1)[0] in VARIANTS} - set(plan))

    def sets_of(variant: str, budget: float) -> list[str]:
        return common + variant_overrides(variant, scale=scale) + budget_overrides(
            budget, iterations=scn.solver.iterations, first_step_iterations=scn.solver.first_step_iterations,
            variant=variant)

    cases = [sweep.Case(values={"variant": v, "budget": f"{b:g}"}, overrides=tuple(sets_of(v, b)),
                        folder=f"{v}-x{b:g}") for v, b in plan]
    if not args.reference:  # the reference runs alongside the first PINN runs, under the same conditions
        cases.insert(0, sweep.Case(values={"variant": "fem", "budget": ""},
                                   overrides=tuple(common + ["solver.backend=fem"]), folder="fem"))
    summaries = run_cases(args.scenario, args.out, cases, jobs=max(1, args.jobs), threads=args.threads)
    if args.reference:
        reference = json.loads((args.reference / "summary.json").read_text())
    else:
        reference, summaries = summaries[0], summaries[1:]
    rows = []
    for (variant, budget), summary in zip(plan, summaries):
        print(f"{variant:11} ×{budget:<4g} {summary['wall_time_s']:7.0f} s  {summary['final']['fragments']:3d} "
              f"fragments", flush=True)
        rows.append({"variant": variant, "budget": budget, "sets": sets_of(variant, budget),
                     "wall_s": summary["wall_time_s"], "iterations": summary["iterations"],
                     "fragments": summary["final"]["fragments"], **{k: summary["final"][k] for k in STATISTICS},
                     "summary": summary})
    if reference.get("backend") != "fem":
        sys.exit(f"{args.reference}: not a FEM run (backend {reference.get('backend')!r})")
    print(f"\n{'variant':11} {'budget':>6} {'wall s':>7} {'fragments':>9} " + " ".join(f"{k:>20}" for k in STATISTICS))
    for row in rows:
        row["errors"] = relative_errors(row.pop("summary"), reference)
        print(f"{row['variant']:11} {row['budget']:6g} {row['wall_s']:7.0f} {row['fragments']:9d} "
              + " ".join(f"{e:+20.1%}" if e is not None else f"{'n/a':>20}" for e in row["errors"].values()))
    result = {
        "machine": f"{platform.machine()}, {args.jobs} run(s) at a time × {args.threads} thread(s)",
        "scenario": str(args.scenario.relative_to(ROOT) if args.scenario.is_relative_to(ROOT) else args.scenario),
        "overrides": args.overrides, "fourier_scale": scale,
        "reference": {"wall_s": reference["wall_time_s"], "fragments": reference["final"]["fragments"],
                      **{k: reference["final"][k] for k in STATISTICS}},
        "runs": rows,
    }
    (args.out / "accuracy_per_second.json").write_text(json.dumps(result, indent=2))
    plot(rows, reference, args.out / "accuracy_per_second.png")
    print(f"\nreference (FEM): {reference['wall_time_s']:.0f} s, {reference['final']['fragments']} fragments  "
          + "  ".join(f"{k} {reference['final'][k]:.4g}" for k in STATISTICS))
    print(f"wrote {args.out / 'accuracy_per_second.json'} and {args.out / 'accuracy_per_second.png'}")
    return result


if __name__ == "__main__":
    main()
