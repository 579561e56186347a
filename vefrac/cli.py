"""The command line: the only place that reads argv and prints for humans.

    vefrac run SCENARIO.yaml [--out DIR] [--set KEY.PATH=VALUE ...] [--device auto|cpu|cuda] [--resume]
    vefrac check SCENARIO.yaml [--set ...]
    vefrac compare RUN_A RUN_B [--picture FILE.png]

Exit codes: 0 success; 2 bad input (one message naming the key or file); 1 a failure while running.
"""

from __future__ import annotations

import argparse
import contextlib
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
    check = sub.add_parser("check", help="validate a scenario and print it fully resolved")
    scenario_args(check)
    cmp = sub.add_parser("compare", help="compare two finished runs: statistics side by side and a picture")
    cmp.add_argument("run_a", help="output folder of the first run (the reference, say)")
    cmp.add_argument("run_b", help="output folder of the second run")
    cmp.add_argument("--picture", default="compare.png", help="side-by-side PNG to write (default: compare.png)")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed its usage message
        return int(exc.code or 0)
    try:
        if args.command == "compare":
            from .compare import compare

            print(compare(args.run_a, args.run_b, picture=args.picture))
            print(f"picture: {args.picture}")
            return 0
        from .config import dump_scenario, load_scenario

        scn = load_scenario(args.scenario, args.overrides)
        if args.command == "check":
            print(dump_scenario(scn), end="")
            return 0
        return _run(args, scn)
    except InputError as exc:
        print(f"vefrac: error: {exc}", file=sys.stderr)
        return 2


def _run(args, scn) -> int:
    import torch
    from tqdm import tqdm

    from .runner import Run, default_out, output_lock, pick_device, prepare_output
    from .solve import planned_iterations

    device = pick_device(args.device)
    out = Path(args.out) if args.out else default_out(scn)
    prepare_output(out, resume=args.resume, overwrite=args.overwrite)
    if scn.solver.threads > 0:
        torch.set_num_threads(scn.solver.threads)
    rank, device = _join_torchrun(device)
    interactive = sys.stderr.isatty() and not args.quiet and rank == 0
    total = planned_iterations(scn) if scn.solver.backend == "pinn" else None  # fem: unknown in advance
    bar = tqdm(total=total, disable=not interactive, unit="it", dynamic_ncols=True, desc=scn.name)

    def progress(count: int, terms: dict) -> None:
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
        run = Run(scn, out, device=device, resume=args.resume, progress=progress, log=log)
        with output_lock(out) if rank == 0 else contextlib.nullcontext():
            summary = run.execute()
    except InputError:
        bar.close()
        raise
    except KeyboardInterrupt:
        bar.close()
        print(f"vefrac: interrupted; continue with: vefrac run {args.scenario} --out {out} --resume",
              file=sys.stderr)
        return 130
    except Exception as exc:  # a failure while running: the reason, the traceback only on request
        bar.close()
        if os.environ.get("VEFRAC_DEBUG"):
            traceback.print_exc()
        print(f"vefrac: run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    bar.close()
    if rank:
        return 0
    final = summary["final"]
    print(f"{scn.name}: {final['fragments']} fragments, crack length {final['skeleton_length']:.3g} "
          f"(skeleton), {summary['wall_time_s']:.0f} s on {summary['device']}\n"
          f"open {out / 'fields.pvd'} in ParaView; picture: {out / 'cracks.png'}")
    return 0


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
