"""The run loop: from a validated scenario to a solver's snapshots, a summary and a checkpoint.

`Run` is written once for every backend and time treatment: the solver (solvers.build_solver)
says which times to visit and minimises at each; the outputs (outputs.Recorder in memory,
outputs.FolderOutputs for a folder) keep and write what the snapshots show.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from . import __version__, config, drying, pattern
from .budget import export_resolution, export_resolution_note
from .cycles import HealedToughness, cycle_statistics, healing_grid
from .errors import InputError
from .outputs import CHECKPOINT, FolderOutputs, Recorder, snapshot_from_fields, summarise
from .problem import build_problem  # noqa: F401  (older imports: vefrac.runner.build_problem)
from .solvers import Solver, build_solver


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def prepare_output(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Check the output folder before any work: refuse to clobber, fail early if unwritable."""
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise InputError(f"--resume: no checkpoint {str(out / CHECKPOINT)!r} to continue from")
        return
    if out.exists() and any((out / f).exists() for f in (CHECKPOINT, "fields.pvd", "summary.json")) and not overwrite:
        raise InputError(f"output folder {str(out)!r} already holds a run; use --resume to continue it, "
                         f"--overwrite to start afresh, or --out for another folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {str(out)!r} exists and is not a folder")


@dataclass
class RunState:
    """Where the loop is: the index of the next time to visit and the records of the steps done."""

    step: int = 0
    history: list = field(default_factory=list)
    cycles: list = field(default_factory=list)  # wet–dry cycles: each one's statistics at its rewetting


class Run:
    """One simulation. `execute()` runs it and returns the summary.

    out: the output folder, or None to keep everything in memory (no folder, no files, no
    checkpoint, no pictures). Afterwards `outputs.rows` holds the history rows and
    `outputs.snapshots` the snapshots (`.t`, `.arrays` on the export grid `grid`; a folder run
    keeps only the last one in memory).
    """

    def __init__(self, scn: config.Scenario, out: Path | None, *, device: torch.device, resume: bool = False,
                 progress: Callable[[int, dict], None] | None = None, log: Callable[[str], None] = print,
                 toughness: torch.nn.Module | None = None, pictures: bool = True):
        if out is None and resume:
            raise InputError("--resume needs the output folder of the run to continue")
        self.scn, self.log = scn, log
        self.out = None if out is None else Path(out)
        # under torchrun each rank samples its own stream; only rank 0 writes
        self.rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        self.problem = build_problem(scn, toughness=toughness)
        self.solver: Solver = build_solver(scn, self.problem, device=device, rank=self.rank, progress=progress,
                                           log=log)
        self.device = self.solver.device
        self.hash = config.scenario_hash(scn)
        self.grid = self.problem.domain.grid(export_resolution(scn, self.problem.domain.length))
        self.snapshot_times = np.linspace(0.0, scn.shrinkage.t_end, scn.output.snapshots)
        self.outputs = Recorder() if self.out is None else \
            FolderOutputs(self.out, scn, grid=self.grid, area=self.problem.domain.area, resumed=resume,
                          pictures=pictures)
        self.state = RunState()
        self.rewet_times = drying.rewet_times(scn.shrinkage)
        if self.rewet_times and scn.solver.backend == "pinn" and scn.solver.time == "space_time":
            raise InputError("shrinkage.healing: wet–dry cycles need solver.time: load_stepping (a rewetting "
                             "restarts φ from 0, which a space-time φ, non-decreasing in t, cannot)")
        self.wall_before = 0.0
        self.wall_final: float | None = None  # set when the run has finished
        self.resumed = resume
        if resume:
            self._load_checkpoint()

    # the solver's pieces, for scripts and tests that drive them directly
    model = property(lambda self: self.solver.model)
    trainer = property(lambda self: self.solver.trainer)
    dtype = property(lambda self: self.solver.dtype)
    rows = property(lambda self: self.outputs.rows)

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint(self) -> None:
        if self.rank or self.out is None:
            return
        self.outputs.save_checkpoint({
            "hash": self.hash, "version": __version__,
            "run": {"step": self.state.step, "history": self.state.history, "cycles": self.state.cycles,
                    "wall": self._wall()},
            **({"healing": self.problem.toughness.factor} if self._healed else {}),
            "solver": self.solver.state_dict(), "outputs": self.outputs.state_dict()})

    def _load_checkpoint(self) -> None:
        path = self.out / CHECKPOINT
        payload = self.outputs.load_checkpoint(device=self.device)
        if payload.get("hash") != self.hash:
            raise InputError(f"--resume: checkpoint {str(path)!r} belongs to a different scenario "
                             f"(fingerprint {payload.get('hash')} vs {self.hash}); resume with the "
                             f"scenario and --set options it was started with")
        try:
            if self._healed:  # before the solver's state: the FEM evaluates G at its Gauss points then
                self.problem.toughness.load_factor(payload["healing"])
            self.solver.load_state_dict(payload["solver"])
            self.outputs.load_state_dict(payload["outputs"])
            run = payload["run"]
            self.state = RunState(step=run["step"], history=list(run["history"]), cycles=list(run["cycles"]))
            self.wall_before = run["wall"]
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise InputError(f"--resume: checkpoint {str(path)!r} is not one this vefrac ({__version__}) "
                             f"wrote ({type(exc).__name__}: {exc}); start afresh with --overwrite") from None
        self.log(f"resuming from {path} at step {self.state.step}, {self.solver.iterations} iterations done")

    def _wall(self) -> float:
        """Seconds of this run so far (all its sessions), or its total once it has finished."""
        return self.wall_final if self.wall_final is not None else self.wall_before + time.perf_counter() - self.t0

    @property
    def _healed(self) -> bool:
        return isinstance(self.problem.toughness, HealedToughness)

    # ------------------------------------------------------------------ the run

    def execute(self) -> dict:
        self.t0 = time.perf_counter()
        if self.rank == 0:
            self.outputs.prepare()
        times = self.solver.times()
        snap_index = {int(np.argmin(np.abs(times - ts))): i for i, ts in enumerate(self.snapshot_times)}
        # a rewetting happens at the load step nearest its time (choose load_steps to hit it)
        rewets = {int(np.argmin(np.abs(times - tr))) for tr in self.rewet_times}
        note = export_resolution_note(self.scn, self.problem.domain.length)
        if note and self.state.step == 0:
            self.log(f"warning: {note}")
        missed = [tr for tr in self.rewet_times if np.abs(times - tr).min() > 1e-9 * self.problem.t_end]
        if missed:
            self.log(f"shrinkage.healing: {len(missed)} rewetting time(s) fall between load steps (first "
                     f"{missed[0]:.4g}); each happens at the nearest step")
        try:
            if self.state.step == 0:  # t = 0, the unloaded state: nothing to minimise
                if 0 in snap_index:
                    self._snapshot(snap_index[0], 0.0)
                self.state.step = 1
            for k in range(self.state.step, len(times)):
                t = float(times[k])
                record = self.solver.advance(t, checkpoint=self._checkpoint)
                if record is not None:
                    self.state.history.append({"step": k, **record})
                self.solver.commit(t)  # the step becomes irreversible; snapshots show what was committed
                if k in snap_index:
                    self._snapshot(snap_index[k], t)
                if k in rewets:
                    self._rewet(t, last=k == len(times) - 1)
                self.state.step = k + 1
                self._checkpoint()
                if record is not None:
                    self.log(f"step {k}/{len(times) - 1}  t={t:.4g}  " + self.solver.describe(record))
        except KeyboardInterrupt:  # Ctrl-C inside a step: keep what the last check saw
            if self.solver.rewind():
                self._checkpoint()
            raise
        return self._finish()

    def _snapshot(self, index: int, t: float) -> None:
        if self.rank:
            return
        fields = self.solver.fields(self.grid.points(), t)
        self.outputs.add(index, snapshot_from_fields(fields, grid=self.grid, t=t, s=self.problem.physics.s,
                                                     eps_s=self.problem.history(t)))

    def _rewet(self, t: float, *, last: bool) -> None:
        """The end of a wet–dry cycle (vefrac/cycles.py): record the cycle's pattern, then (unless
        the run ends here) heal G with its φ and restart φ from 0."""
        s = self.problem.physics.s
        if self.rank == 0:
            f = self.solver.fields(self.grid.points(), t)
            ny, nx = self.grid.shape
            mask = f["inside"].reshape(ny, nx)
            phi = np.where(f["inside"], f["phi"], 0.0).reshape(ny, nx)
            stats = pattern.crack_pattern(phi, mask=mask, spacing=self.grid.spacing, s=s).statistics
            self.state.cycles.append({"cycle": len(self.state.cycles) + 1, "t": t, **cycle_statistics(stats),
                                      "phi": torch.from_numpy(phi.astype(np.float32))})
            self.log(f"cycle {len(self.state.cycles)} ends at t={t:.4g}: {stats['cells']} cells, "
                     f"T fraction {stats['t_junction_fraction']:.2f}, mean junction angle "
                     f"{stats['junction_angle']['mean']:.1f}°")
        if last or not self._healed:
            return
        heal = healing_grid(self.problem.domain, s=s)
        phi = self.solver.fields(heal.points(), t)["phi"]
        self.problem.toughness.heal(phi, fraction=self.scn.shrinkage.healing.fraction)
        self.solver.rewet()

    def write_to(self, out: Path) -> dict:
        """Write a finished in-memory run into the folder `out` as `Run(scn, out)` would have left
        it (every snapshot, history, summary, pictures, checkpoint), without running it again; the
        run then belongs to that folder. Returns the summary. (The inversion keeps its best iterate's
        forward run this way instead of repeating it.)"""
        if self.out is not None or self.wall_final is None:
            raise RuntimeError("Run.write_to: only a finished run without an output folder can be written")
        recorded = self.outputs
        self.out = Path(out)
        self.outputs = FolderOutputs(self.out, self.scn, grid=self.grid, area=self.problem.domain.area,
                                     resumed=False)
        self.outputs.prepare()
        for index, snap in zip(recorded.indices, recorded.snapshots, strict=True):
            self.outputs.add(index, snap)
        return self._finish()

    def _finish(self) -> dict:
        if self.rank:
            return {}
        if self.wall_final is None:
            self.wall_final = self.wall_before + time.perf_counter() - self.t0
        summary, areas, angles = summarise(
            self.scn, self.outputs.last, self.outputs.rows, grid=self.grid, s=self.problem.physics.s,
            device=self.device, rank=self.rank, wall=self.wall_final,
            iterations=self.solver.iterations, scenario_hash=self.hash,
            elastic_length=self.problem.physics.elastic_length, report=self.solver.report(),
            steps=self.state.history)
        if self.state.cycles:
            summary["cycles"] = [{k: v for k, v in c.items() if k != "phi"} for c in self.state.cycles]
            if self.out is not None:
                np.savez_compressed(self.out / "cycles.npz", t=np.array([c["t"] for c in self.state.cycles]),
                                    phi=np.stack([c["phi"].numpy() for c in self.state.cycles]),
                                    mask=self.problem.domain.inside(torch.as_tensor(self.grid.points()))
                                    .numpy().reshape(self.grid.shape))
        self.outputs.finish(summary, areas=areas, angles=angles)
        self._checkpoint()
        return summary


@contextlib.contextmanager
def output_lock(out: Path):
    """Hold an exclusive lock on the output folder for the length of a run.

    A second run into the same folder (a double click, a re-submitted job) is refused while the
    first one lives; the lock is the kernel's (flock), so a killed run never leaves it stale.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / ".lock", "a+")
    except OSError as exc:
        raise InputError(f"output folder {str(out)!r} cannot be written: {exc.strerror or exc}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise InputError(f"output folder {str(out)!r} is in use by another vefrac run; wait for it to "
                         f"finish or choose another folder with --out") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def default_out(scn: config.Scenario) -> Path:
    return Path("outputs") / scn.name
