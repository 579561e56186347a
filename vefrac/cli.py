"""The command line: the only place that reads argv and prints for humans.

    vefrac run SCENARIO.yaml [--out DIR] [--set KEY.PATH=VALUE ...] [--device auto|cpu|cuda] [--resume]
    vefrac invert SCENARIO.yaml --image CRACKS.png [--out DIR] [--set ...] [--device ...] [--resume]
    vefrac invert SCENARIO.yaml --image A.png --image B.png ... --times TA TB ... | --images DIR  (a time-lapse)
    vefrac invert SCENARIO.yaml --image CRACKS.png --displacement U.npz [--displacement-time T]  (+ displacements)
    vefrac check SCENARIO.yaml [--set ...]
    vefrac compare RUN_A RUN_B [--picture FILE.png]
    vefrac sweep SCENARIO.yaml --grid KEY.PATH=V1,V2,... [--grid ...] [--set ...] [--out DIR] [--jobs N] [--resume]
    vefrac analyze PICTURE_OR_RUN [--size W H] [--out DIR] [--scenario YAML] [--primary-width W|auto]

Exit codes: 0 success; 2 bad input (one message naming the key or file); 1 a failure while running.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from pathlib import Path

from . import __version__
from .errors import InputError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vefrac", description="Shrinkage cracks in thin layers: phase-field "
                                "fracture solved with variational-energy PINNs.")
    p.add_argument("--version", action="version", version=f"vefrac {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def scenario_args(sp):
        sp.add_argument("scenario", help="scenario file (YAML)")
        sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a scenario key, e.g. --set material.lame_mu=2 (repeatable)")

    run = sub.add_parser("run", help="run a scenario and write its outputs")
    scenario_args(run)
    run.add_argument("--out", help="output folder (default: outputs/<name>)")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    run.add_argument("--resume", action="store_true", help="continue from the output folder's checkpoint")
    run.add_argument("--overwrite", action="store_true", help="start afresh in a folder that holds a run")
    run.add_argument("--quiet", action="store_true", help="no progress bar or step log")
    inv = sub.add_parser("invert", help="infer the toughness G(x) from a picture of the cracks")
    scenario_args(inv)
    inv.add_argument("--image", action="append", help="picture of the cracks (PNG, JPEG or TIFF); repeat it, "
                     "with --times, for a time-lapse")
    inv.add_argument("--times", nargs="+", type=float, metavar="T",
                     help="a time-lapse: the time of each --image, in the same order (shrinkage.t units)")
    inv.add_argument("--images", metavar="DIR", help="a time-lapse: a folder of frames with times.txt "
                     "(one line 'FILE TIME' per frame)")
    inv.add_argument("--displacement", metavar="FILE", help="observed displacements (.npz, .vti or a "
                     "two-channel PNG/TIFF): sets invert.displacement.file (docs/inverse.md)")
    inv.add_argument("--displacement-time", type=float, metavar="T",
                     help="when they were measured, one of the pictures' times: sets invert.displacement.time")
    inv.add_argument("--out", help="output folder (default: outputs/<name>-invert)")
    inv.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    inv.add_argument("--resume", action="store_true", help="continue from the output folder's inversion checkpoint")
    inv.add_argument("--overwrite", action="store_true", help="start afresh in a folder that holds a result")
    inv.add_argument("--quiet", action="store_true", help="no progress bar or log")
    inv.add_argument("--observe-only", action="store_true",
                     help="only read the picture: write observation.png (what was read) and stop")
    check = sub.add_parser("check", help="validate a scenario and print it fully resolved")
    scenario_args(check)
    cmp = sub.add_parser("compare", help="compare two finished runs: statistics side by side and a picture")
    cmp.add_argument("run_a", help="output folder of the first run (the reference, say)")
    cmp.add_argument("run_b", help="output folder of the second run")
    cmp.add_argument("--picture", default="compare.png", help="side-by-side PNG to write (default: compare.png)")
    sw = sub.add_parser("sweep", help="run every combination of a grid of scenario keys, one folder each, "
                        "and tabulate their statistics in sweep.csv")
    sw.add_argument("scenario", nargs="?", help="scenario file (YAML); optional with --file")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY.PATH=V1,V2,...",
                    help="a key and its values, e.g. --grid material.lame_mu=1,2 (repeatable: all combinations)")
    sw.add_argument("--file", help="sweep file: scenario, grid {KEY: [values]}, set, out (see docs/sweeps.md)")
    sw.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="override a key in every run (repeatable)")
    sw.add_argument("--out", help="sweep folder: one subfolder per run and sweep.csv (default: outputs/<name>-sweep)")
    sw.add_argument("--jobs", type=int, default=1, help="runs at a time on this machine; each gets cores/jobs threads")
    sw.add_argument("--resume", action="store_true",
                    help="continue interrupted runs (finished ones are always skipped)")
    sw.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    sw.add_argument("--executor", choices=["local", "slurm"], default="local",
                    help="local: subprocesses here; slurm: one job array through submitit (vefrac[cluster])")
    sw.add_argument("--partition", help="slurm: partition")
    sw.add_argument("--account", help="slurm: account")
    sw.add_argument("--time", type=int, default=60, metavar="MINUTES", help="slurm: time limit per run (default 60)")
    sw.add_argument("--cpus", type=int, default=4, help="slurm: cores per run (default 4)")
    sw.add_argument("--gpus", type=int, default=0, help="slurm: GPUs per run (default 0)")
    sw.add_argument("--parallel", type=int, default=64, help="slurm: runs of the array at a time (default 64)")
    sw.add_argument("--no-wait", action="store_true", help="slurm: submit and return; run the sweep again "
                    "later to skip what finished and tabulate it")
    ana = sub.add_parser("analyze", help="statistics of a crack pattern, of a picture or a finished run alike")
    ana.add_argument("source", help="picture of cracks (PNG, JPEG, TIFF) or a finished run's output folder")
    ana.add_argument("--size", nargs=2, type=float, metavar=("W", "H"),
                     help="physical width and height the picture spans (default: pixels)")
    ana.add_argument("--out", help="output folder (default: outputs/<name>-analysis)")
    ana.add_argument("--scenario", help="read the picture with this scenario's domain, fracture.length_scale, "
                     "output.resolution and invert.observation keys")
    ana.add_argument("--primary-width", default="auto", metavar="W|auto",
                     help="a picture's cracks at least W wide (its length units) are primary, the others "
                     "secondary; auto (default): split by Otsu's threshold of the widths when they form two groups")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed its usage message
        return int(exc.code or 0)
    try:
        if args.command == "analyze":
            return _analyze(args)
        if args.command == "compare":
            from .compare import compare

            print(compare(args.run_a, args.run_b, picture=args.picture))
            print(f"picture: {args.picture}")
            return 0
        if args.command == "sweep":
            return _sweep(args)
        from .config import dump_scenario, load_scenario

        scn = load_scenario(args.scenario, args.overrides + _displacement_sets(args))
        if args.command == "check":
            from .thickness import derived_lines

            print(dump_scenario(scn), end="")
            print("\n".join("# " + line for line in derived_lines(scn)))
            return 0
        if args.command == "invert":
            return _invert(args, scn)
        return _run(args, scn)
    except InputError as exc:
        print(f"vefrac: error: {exc}", file=sys.stderr)
        return 2


def _analyze(args) -> int:
    from .pattern_sources import analyse, load_source, primary_width_option, report, write_analysis
    from .config import load_scenario

    primary_width = primary_width_option(args.primary_width)
    scn = load_scenario(args.scenario) if args.scenario else None
    source = load_source(args.source, size=args.size, scenario=scn)  # reads everything before writing
    pat = analyse(source, primary_width=primary_width)
    name = Path(args.source).stem if Path(args.source).is_file() else Path(args.source).resolve().name
    out = Path(args.out) if args.out else Path("outputs") / f"{name}-analysis"
    for warning in source.info.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    written = write_analysis(out, source, pat)
    print(report(source, pat))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _run(args, scn) -> int:
    from .runner import Run, default_out, pick_device, prepare_output
    from .solve import planned_iterations

    device = pick_device(args.device)
    out = Path(args.out) if args.out else default_out(scn)
    prepare_output(out, resume=args.resume, overwrite=args.overwrite)
    total = planned_iterations(scn)

    def job(progress, log, device):
        return Run(scn, out, device=device, resume=args.resume, progress=progress, log=log)

    summary = _execute(args, scn, job, device=device, out=out, total=lambda job: total, verb="run")
    if not isinstance(summary, dict):
        return summary
    final = summary["final"]
    print(f"{scn.name}: {final['fragments']} fragments, crack length {final['skeleton_length']:.3g} "
          f"(skeleton), {summary['wall_time_s']:.0f} s on {summary['device']}\n"
          f"open {out / 'fields.pvd'} in ParaView; picture: {out / 'cracks.png'}")
    return 0


def _sweep(args) -> int:
    from .sweep import parse_grid, plan_sweep, read_sweep_file, run_local

    scenario, grid, overrides, out = args.scenario, parse_grid(args.grid), list(args.overrides), args.out
    if args.file:
        spec = read_sweep_file(args.file)
        scenario = scenario or spec["scenario"]
        for key, values in spec["grid"].items():
            if key in grid:
                raise InputError(f"--grid {key}: also in the sweep file {args.file!r}; give it in one place")
            grid[key] = values
        overrides, out = spec["overrides"] + overrides, out or spec["out"]
    if not scenario:
        raise InputError("sweep: no scenario; give SCENARIO.yaml or a sweep file with scenario: FILE")
    if args.jobs < 1:
        raise InputError(f"--jobs {args.jobs}: must be at least 1")
    plan = plan_sweep(scenario, grid, overrides=overrides, out=out)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.executor == "slurm":
            from .cluster import make_executor, run_on_submitit

            executor = make_executor(plan.out / ".submitit", partition=args.partition, time_min=args.time,
                                     cpus=args.cpus, gpus=args.gpus, array_parallelism=args.parallel,
                                     account=args.account)
            statuses = run_on_submitit(plan, executor, cpus=args.cpus, resume=args.resume, device=args.device,
                                       wait=not args.no_wait, log=log)
        else:
            statuses = run_local(plan, jobs=args.jobs, resume=args.resume, device=args.device, log=log)
    except KeyboardInterrupt:
        print("vefrac: sweep interrupted; continue with the same command and --resume", file=sys.stderr)
        return 130
    kinds = [s.split(" (")[0] for s in statuses]
    print(f"{len(plan.runs)} runs: " + ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds))
          + f"; table: {plan.table}")
    return 1 if "failed" in kinds else 0


def _invert(args, scn) -> int:
    from .inverse import Inversion, prepare_output
    from .runner import pick_device
    from .timelapse import frames_from_options

    frames = frames_from_options(args.image, args.times, args.images)
    device = pick_device(args.device)
    out = Path(args.out) if args.out else Path("outputs") / f"{scn.name}-invert"
    if args.observe_only:
        return _observe_only(args, scn, out, device, frames)
    prepare_output(out, resume=args.resume, overwrite=args.overwrite)

    def job(progress, log, device):
        return Inversion(scn, frames if len(frames) > 1 or frames[0].time is not None else frames[0].path, out,
                         device=device, resume=args.resume, progress=progress, log=log)

    if args.images:
        extra = f" --images {args.images}"
    else:
        extra = "".join(f" --image {p}" for p in args.image) + \
            (" --times " + " ".join(f"{t:g}" for t in args.times) if args.times else "")
    extra += (f" --displacement {args.displacement}" if args.displacement else "") + \
        (f" --displacement-time {args.displacement_time:g}" if args.displacement_time is not None else "")
    summary = _execute(args, scn, job, device=device, out=out, total=lambda job: job.planned_iterations(),
                       verb="invert", extra=extra)
    if not isinstance(summary, dict):
        return summary
    inv = summary["inversion"]
    for f in inv.get("frames", []):
        print(f"t = {f['time']:.4g}: crack length observed {f['observed_crack_length']:.3g}, model "
              f"{f['model_crack_length']:.3g}; overlap {f['overlap']:.2f}")
    print(f"{scn.name}: inferred G (mean {inv['mean_G']:.3g}, std of log G {inv['std_log_G']:.3f}); the forward "
          f"run with it overlaps the observed cracks with IoU {inv['overlap']:.2f} "
          f"(tolerance {inv['overlap_tolerance']:.3g}); {inv['wall_time_s']:.0f} s\n"
          f"pictures: {out / 'G_inferred.png'}, {out / 'observed_vs_model.png'}; open {out / 'inferred.vti'} "
          f"or {out / 'fields.pvd'} in ParaView")
    return 0


def _displacement_sets(args) -> list[str]:
    """--displacement FILE (relative to here) and --displacement-time T as the keys they set."""
    if args.command != "invert":
        return []
    sets = []
    if args.displacement is not None:  # a JSON string is a quoted YAML scalar: any path stays text
        sets.append(f"invert.displacement.file={json.dumps(str(Path(args.displacement).absolute()))}")
    if args.displacement_time is not None:
        sets.append(f"invert.displacement.time={args.displacement_time!r}")
    return sets


def _observe_only(args, scn, out: Path, device, frames) -> int:
    from .analysis import length_of_skeleton
    from .pattern_sources import analyse, observed_source, write_analysis, write_observation_vti
    from .inverse import Inversion

    image = frames if len(frames) > 1 or frames[0].time is not None else frames[0].path
    work = Inversion(scn, image, out, device=device, log=lambda line: print(line, file=sys.stderr))
    out.mkdir(parents=True, exist_ok=True)
    work.plot_observation()
    ob = work.observed
    source = observed_source(ob, grid=work.grid, s=work.s, path=str(work.image),
                             method=scn.invert.observation.method)
    write_observation_vti(out / "observation.vti", ob, work.grid)
    write_analysis(out, source, analyse(source), vti=False)
    length = length_of_skeleton(ob.skeleton, work.grid.spacing)
    how = (f"ridge strength above {ob.threshold:.3g}" if scn.invert.observation.method == "ridge"
           else f"grey level {'below' if ob.cracks == 'dark' else 'above'} {ob.threshold:.3g}")
    for frame, other in zip(frames[:-1], work.observations[:-1]):  # a time-lapse: the earlier frames
        print(f"{frame.path} (t = {frame.time:g}): observed crack length "
              f"{length_of_skeleton(other.skeleton, work.grid.spacing):.3g}")
    print(f"{work.image}: {ob.cracks} cracks, {how}, observed crack length "
          f"{length:.3g} on {ob.material.mean():.0%} of the grid (pixel {ob.pixel_size[0]:.3g} × "
          f"{ob.pixel_size[1]:.3g}, s = {work.s:.3g})\npicture: {out / 'observation.png'}; open "
          f"{out / 'observation.vti'} in ParaView; statistics: {out / 'analysis.json'}")
    return 0


def _execute(args, scn, job, *, device, out, total, verb, extra=""):
    """Build and execute a job (a Run or an Inversion) with a progress bar, the output folder's
    lock and the exit codes. Returns the job's summary, or an exit code when it did not finish."""
    import torch

    threads = torch.get_num_threads()  # main() may be called in-process: give the caller's back
    if scn.solver.threads > 0:
        torch.set_num_threads(scn.solver.threads)
    try:
        return _execute_with_progress(args, scn, job, device=device, out=out, total=total, verb=verb, extra=extra)
    finally:
        torch.set_num_threads(threads)


def _execute_with_progress(args, scn, job, *, device, out, total, verb, extra):
    from tqdm import tqdm

    from .runner import output_lock

    rank, device = _join_torchrun(device)
    interactive = sys.stderr.isatty() and not args.quiet and rank == 0
    bar = tqdm(total=None, disable=not interactive, unit="it", dynamic_ncols=True, desc=scn.name)

    def progress(count: int, terms: dict) -> None:
        if bar.total is not None and count > bar.total:  # adaptive load steps: more than planned
            bar.total = count
        bar.update(count - bar.n)
        bar.set_postfix({k[:4]: f"{v:.3g}" for k, v in terms.items()}, refresh=False)

    def log(line: str) -> None:
        if rank:
            return
        if interactive:
            bar.write(line)
        elif not args.quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        work = job(progress, log, device)  # reads every input: a bad one fails before the folder exists
        bar.total = total(work)
        bar.refresh()
        with output_lock(out) if rank == 0 else contextlib.nullcontext():
            summary = work.execute()
    except InputError:
        bar.close()
        raise
    except KeyboardInterrupt:
        bar.close()
        print(f"vefrac: interrupted; continue with: vefrac {verb} {args.scenario}{extra} --out {out} --resume",
              file=sys.stderr)
        return 130
    except Exception as exc:  # a failure while running: the reason, the traceback only on request
        bar.close()
        if os.environ.get("VEFRAC_DEBUG"):
            traceback.print_exc()
        print(f"vefrac: {verb} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    bar.close()
    return summary if rank == 0 else 0


def _join_torchrun(device):
    """Under torchrun (WORLD_SIZE > 1): join the process group; returns (rank, this rank's device).

    NCCL on GPUs (one per local rank), gloo on CPUs; the usual torchrun rendezvous variables
    (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK) say where the others are.
    """
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), device
