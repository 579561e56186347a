"""From a validated scenario to an output folder: build, train, snapshot, checkpoint, summarise."""

from __future__ import annotations

import contextlib
import fcntl
import io
import math
import platform
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from . import __version__, analysis, config, export, fem
from .energy import Physics
from .errors import InputError
from .fields import build_toughness
from .geometry import Grid, build_domain
from .solve import (PRECISION_TOLERANCE, TERMS, FieldModel, Problem, State, Trainer, committed_state, evaluate,
                    measure_crack_length, refresh_cache, space_time_iterations, step_times, trapezoid_weights)

CHECKPOINT = "checkpoint.pt"
OUTPUT_FILES = ("fields_*.vti", "fields.pvd", "history.csv", "summary.json", CHECKPOINT, "*.png", ".*.tmp")
HISTORY_COLUMNS = ["t", "eps_s", "elastic", "surface", "substrate", "total", "crack_length",
                   "skeleton_length", "fragments", "median_phi"]


def build_problem(scn: config.Scenario, *, toughness: torch.nn.Module | None = None) -> Problem:
    """The scenario's problem; `toughness` replaces the scenario's G(x) (the inverse mode's guess)."""
    domain = build_domain(scn.domain)
    fr, mat = scn.fracture, scn.material
    physics = Physics(lam=mat.lame_lambda, mu=mat.lame_mu, eta=mat.substrate_stiffness, split=mat.split,
                      fracture=fr.enabled, s=fr.length_scale, k_res=fr.residual_stiffness, model=fr.model)
    if toughness is None:
        toughness = build_toughness(fr.toughness, domain, seed=scn.seed)
    return Problem(physics=physics, domain=domain, toughness=toughness,
                   rate=scn.shrinkage.rate, t_end=scn.shrinkage.t_end)


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


class Run:
    """One simulation writing into one folder. `execute()` trains and writes every output."""

    def __init__(self, scn: config.Scenario, out: Path, *, device: torch.device, resume: bool = False,
                 progress: Callable[[int, dict], None] | None = None, log: Callable[[str], None] = print,
                 toughness: torch.nn.Module | None = None, pictures: bool = True):
        self.fem = scn.solver.backend == "fem"
        if self.fem:  # scipy's sparse solvers: the CPU, in float64
            if device.type != "cpu":
                log(f"the fem backend runs on the CPU (scipy sparse solvers), not on {device}")
            device = torch.device("cpu")
        self.scn, self.out, self.device, self.log = scn, Path(out), device, log
        self.dtype = torch.float32 if scn.solver.dtype == "float32" and not self.fem else torch.float64
        self.problem = build_problem(scn, toughness=toughness)
        self.pictures = pictures
        self.problem.toughness.to(device)
        self.solver = scn.solver
        self.hash = config.scenario_hash(scn)
        self.counter = [0]
        # under torchrun each rank samples its own stream; only rank 0 writes
        self.rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        self.generator = torch.Generator(device=device).manual_seed(scn.seed + 1 + 1_000_003 * self.rank)
        if self.fem:  # the finite-element reference: a Q1 solution instead of networks
            h = fem.element_size(scn.fem, self.problem.domain, s=self.problem.physics.s,
                                 fracture=self.problem.physics.fracture)
            self.model = fem.FemModel(fem.build_mesh(self.problem.domain, h=h), fracture=self.problem.physics.fracture)
            self.trainer = fem.Staggered(self.problem, scn.fem, self.model, counter=self.counter, progress=progress,
                                         log=log)
        else:
            init = torch.Generator().manual_seed(scn.seed)  # same networks on every device
            self.model = FieldModel(self.problem, scn.network, init, space_time=scn.solver.time == "space_time",
                                    phi_bias=scn.solver.phi_bias).to(device, self.dtype)
            self.trainer = Trainer(self.problem, scn.solver, generator=self.generator, dtype=self.dtype,
                                   model=self.model, progress=progress, log=log)
        self.grid = self.problem.domain.grid(scn.output.resolution)
        # adaptive load steps measure the crack length on a grid of two points per s
        self.check_grid = self.problem.domain.grid(max(16, math.ceil(2 * self.problem.domain.length /
                                                                     self.problem.physics.s)))
        self.snapshot_times = np.linspace(0.0, scn.shrinkage.t_end, scn.output.snapshots)
        self.state = State()
        self.rows: list[dict] = []
        self.pvd: list[tuple[float, str]] = []
        self.frames: list[tuple[float, np.ndarray, np.ndarray]] = []
        self.wall_before = 0.0
        self.resumed = resume
        if resume:
            self._load_checkpoint()

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint(self, state: State | None = None) -> None:
        if self.rank:
            return
        state = state or self.state
        payload = {
            "hash": self.hash, "version": __version__, "model": self.model.state_dict(),
            "cache_grid": asdict(self.model.cache_grid) if self.model.cache_grid else None,
            "generator": self.generator.get_state(), "state": state.__dict__, "rows": self.rows,
            "pvd": self.pvd, "frames": self.frames, "wall": self.wall_before + time.perf_counter() - self.t0,
            "counter": self.counter[0],
        }
        save_checkpoint(self.out / CHECKPOINT, payload)

    def _load_checkpoint(self) -> None:
        path = self.out / CHECKPOINT
        payload = load_checkpoint(path, device=self.device)
        if payload.get("hash") != self.hash:
            raise InputError(f"--resume: checkpoint {str(path)!r} belongs to a different scenario "
                             f"(fingerprint {payload.get('hash')} vs {self.hash}); resume with the "
                             f"scenario and --set options it was started with")
        if payload["cache_grid"]:
            g = payload["cache_grid"]
            self.model.cache_grid = Grid(tuple(g["origin"]), tuple(g["spacing"]), tuple(g["shape"]))
        weights = dict(payload["model"])
        cache = weights.pop("cache", None)  # its shape is set by the run, not by the model
        self.model.load_state_dict(weights)
        self.model.cache = cache
        self.generator.set_state(payload["generator"].cpu())
        if self.rank:  # the checkpoint holds rank 0's stream: other ranks start fresh ones
            self.generator.manual_seed(self.scn.seed + 1 + 1_000_003 * self.rank + payload["counter"])
        self.state = State(**payload["state"])
        self.rows, self.pvd, self.frames = payload["rows"], payload["pvd"], payload["frames"]
        self.wall_before, self.counter[0] = payload["wall"], payload["counter"]
        self.log(f"resuming from {path} at step {self.state.step}, iteration {self.state.iteration}")

    # ------------------------------------------------------------------ snapshots

    def _snapshot(self, index: int, t: float) -> None:
        if self.rank:
            return
        f = evaluate(self.problem, self.model, self.grid.points(), t, device=self.device, dtype=self.dtype)
        ny, nx = self.grid.shape
        inside = f["inside"]
        w = trapezoid_weights(self.grid) * inside
        energies = {k: float((w * f[k]).sum()) for k in TERMS}
        phi = np.where(inside, f["phi"], 0.0).reshape(ny, nx)
        mask = inside.reshape(ny, nx)
        grad_phi = np.where(inside[:, None], f["grad_phi"], 0.0).reshape(ny, nx, 2)
        stats = analysis.crack_statistics(phi, mask=mask, spacing=self.grid.spacing, s=self.problem.physics.s,
                                          grad_phi=grad_phi)
        stats["crack_length"] = float((w * f["crack_density"]).sum())  # the model's own functional, G = 1
        u3 = np.zeros((ny * nx, 3))
        u3[:, :2] = np.where(inside[:, None], f["u"], 0.0)
        arrays = {"phi": phi, "u": u3.reshape(ny, nx, 3), "G": f["G"].reshape(ny, nx), "mask": mask.astype(np.uint8)}
        for k in TERMS:
            arrays[f"{k}_energy_density"] = np.where(inside, f[k], 0.0).reshape(ny, nx)
        arrays["crack_length_density"] = np.where(inside, f["crack_density"], 0.0).reshape(ny, nx)
        name = f"fields_{index:04d}.vti"
        export.write_vti(self.out / name, origin=self.grid.origin, spacing=self.grid.spacing, point_data=arrays)
        self.pvd = [e for e in self.pvd if e[1] != name] + [(t, name)]
        export.write_pvd(self.out / "fields.pvd", self.pvd)
        row = {"t": t, "eps_s": self.problem.rate * t, **energies, "total": sum(energies.values()),
               "crack_length": stats["crack_length"], "skeleton_length": stats["skeleton_length"],
               "fragments": stats["fragments"], "median_phi": stats["median_phi"]}
        self.rows = [r for r in self.rows if r["t"] != t] + [row]
        export.write_csv(self.out / "history.csv", self.rows, HISTORY_COLUMNS)
        self.frames.append((t, phi.astype(np.float32), mask))
        self.last_stats, self.last_arrays = stats, arrays

    # ------------------------------------------------------------------ the run

    def execute(self) -> dict:
        self.t0 = time.perf_counter()
        if self.rank == 0:
            self._prepare_folder()
        try:
            if not self.fem:
                self._choose_precision()
            if self.fem:
                self._fem()
            elif self.solver.time == "space_time":
                self._space_time()
            else:
                self._load_stepping()
        except KeyboardInterrupt:  # Ctrl-C inside training: keep what the last check saw
            if self.trainer.rewind(self.state):
                self._checkpoint()
            raise
        return self._finish()

    def _choose_precision(self) -> None:
        """solver.precision: checked against float32 once, at the start (a resumed run keeps the
        decision, so it repeats the uninterrupted one)."""
        if self.state.precision is None:
            times = step_times(self.problem.t_end, self.solver.load_steps, len(self.snapshot_times))
            t = self.problem.t_end if self.solver.time == "space_time" else float(times[1])
            self.state.precision = self.trainer.check_precision(t_value=t, seed=self.scn.seed)
            p = self.state.precision
            if p["requested"] != "float32":
                verdict = "used" if p["used"] == p["requested"] else "refused, float32 used instead"
                self.log(f"solver.precision {p['requested']}: gradient {p['gradient_error']:.2g} off float32's "
                         f"(tolerance {PRECISION_TOLERANCE:g}): {verdict}")
        self.trainer.precision = self.state.precision["used"]

    def _load_stepping(self) -> None:
        s = self.solver
        times = step_times(self.problem.t_end, s.load_steps, len(self.snapshot_times))
        snap_index = {int(np.argmin(np.abs(times - ts))): i for i, ts in enumerate(self.snapshot_times)}
        if self.state.step == 1 and self.state.iteration == 0 and 0 in snap_index:
            self._snapshot(snap_index[0], 0.0)
        adaptive = s.step_tolerance is not None and self.model.phi_net is not None
        for k in range(self.state.step, len(times)):
            t = float(times[k])
            if self.state.iteration == 0 and self.state.block == 0 and self.model.phi_net is not None:
                self.model.phi_net.reset_output(s.phi_bias)
            started = time.perf_counter()
            while True:  # one block of Adam iterations, then (adaptive) more while the cracks still move
                remaining = s.max_step_iterations - self.state.step_iterations
                n_iter = (s.first_step_iterations if k == 1 else s.iterations) if self.state.block == 0 \
                    else min(s.iterations, remaining)
                self.trainer.adam(t_value=t, n_iter=n_iter, state=self.state, checkpoint=self._checkpoint,
                                  counter=self.counter)
                self.trainer.lbfgs(t_value=t, n_iter=s.lbfgs_iterations)
                self.state.step_iterations += n_iter
                if not adaptive:
                    break
                change, settled = self._measure_block(t)
                if settled or self.state.step_iterations >= s.max_step_iterations:
                    break
            self.state.history.append({"step": k, "t": t, "iterations": self.state.step_iterations,
                                       **({"blocks": self.state.block, "crack_length_change": change,
                                           "settled": settled} if adaptive else {}),
                                       "seconds": time.perf_counter() - started,
                                       **{f"loss_{key}": v for key, v in self.trainer.last_terms.items()}})
            self.state.block, self.state.step_iterations, self.state.crack_length = 0, 0, None
            # commit the step (the cache, an upper envelope of its φ at the export grid), then
            # export what was committed: φ never decreases at any point from snapshot to snapshot
            refresh_cache(self.problem, self.model, t, points_per_length=s.cache_points_per_length,
                          device=self.device, dtype=self.dtype, check=self.grid)
            if k in snap_index:
                with committed_state(self.model):
                    self._snapshot(snap_index[k], t)
            self.state.step, self.state.iteration = k + 1, 0
            self._checkpoint()
            self.log(f"step {k}/{len(times) - 1}  t={t:.4g}  " +
                     (f"iterations={self.state.history[-1]['iterations']}  " if adaptive else "") +
                     "  ".join(f"{key}={v:.4g}" for key, v in self.trainer.last_terms.items()))

    def _measure_block(self, t: float) -> tuple[float | None, bool]:
        """Adaptive load steps: the crack length after the block just done, its change since the
        previous block of the step (None after the first) and whether that change is within
        step_tolerance × the domain's length (the step has settled)."""
        length = measure_crack_length(self.problem, self.model, self.check_grid, t, device=self.device,
                                      dtype=self.dtype)
        before, self.state.crack_length = self.state.crack_length, length
        self.state.block += 1
        self.state.iteration = 0
        if before is None:
            return None, False
        change = abs(length - before)
        return change, change <= self.solver.step_tolerance * self.problem.domain.length

    def _fem(self) -> None:
        """Load stepping with the finite-element reference: one staggered solve per step."""
        times = step_times(self.problem.t_end, self.solver.load_steps, len(self.snapshot_times))
        snap_index = {int(np.argmin(np.abs(times - ts))): i for i, ts in enumerate(self.snapshot_times)}
        if self.state.step == 1 and 0 in snap_index:
            self._snapshot(snap_index[0], 0.0)
        for k in range(self.state.step, len(times)):
            r = self.trainer.solve_step(float(times[k]))
            if k in snap_index:
                self._snapshot(snap_index[k], r.t)
            self.state.history.append({"step": k, "t": r.t, "iterations": r.iterations, "converged": r.converged,
                                       "residual": r.residual, "seconds": r.seconds, "energy": r.energies[-1],
                                       "newton_iterations": r.newton_iterations, "qp_fallbacks": r.qp_fallbacks})
            self.state.step, self.state.iteration = k + 1, 0
            self._checkpoint()
            self.log(f"step {k}/{len(times) - 1}  t={r.t:.4g}  staggered iterations={r.iterations}  "
                     f"max|dphi|={r.residual:.2g}  energy={r.energies[-1]:.6g}"
                     + ("" if r.converged else f"  NOT CONVERGED (fem.max_iterations={self.scn.fem.max_iterations}, "
                                               f"fem.tolerance={self.scn.fem.tolerance})"))

    def _space_time(self) -> None:
        s = self.solver
        if self.state.step == 1:
            total = space_time_iterations(s)
            self.trainer.adam(t_value=None, n_iter=total, state=self.state, checkpoint=self._checkpoint,
                              counter=self.counter)
            self.trainer.lbfgs(t_value=None, n_iter=s.lbfgs_iterations)
            self.state.history.append({"step": 1, "iterations": total,
                                       **{f"loss_{k}": v for k, v in self.trainer.last_terms.items()}})
            self.state.step, self.state.iteration = 2, 0
            self._checkpoint()
        for i, t in enumerate(self.snapshot_times):
            self._snapshot(i, float(t))

    def _prepare_folder(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        ny, nx = self.grid.shape
        per_snapshot = ny * nx * 8 * 12  # φ, u (3), G, mask, energy densities, in float64
        check_writable(self.out, needed_bytes=2 * per_snapshot * (len(self.snapshot_times) + 2) + 50_000_000)
        # a fresh run (prepare_output allowed it): no file of an older run stays; a resumed one:
        # only the half-written temporary files of the run that was killed (we hold the lock)
        for pattern in (".*.tmp",) if self.resumed else OUTPUT_FILES:
            for old in self.out.glob(pattern):
                old.unlink()
        export.atomic_write_text(self.out / "config.yaml", config.dump_scenario(self.scn))

    def _finish(self) -> dict:
        if self.rank:
            return {}
        wall = self.wall_before + time.perf_counter() - self.t0
        stats = self.last_stats
        phi, mask, s = self.last_arrays["phi"], self.last_arrays["mask"].astype(bool), self.problem.physics.s
        cells = analysis.fragments(phi, mask=mask, spacing=self.grid.spacing, min_area=(4 * s) ** 2)
        angles = analysis.junctions(phi, mask=mask, spacing=self.grid.spacing, arm_length=10 * s).all_angles()
        if self.pictures:
            self._pictures(cells.areas, angles)
        cracked = [r["t"] for r in self.rows if r["skeleton_length"] > 0]
        summary = {
            "name": self.scn.name, "vefrac_version": __version__, "torch_version": torch.__version__,
            "numpy_version": np.__version__, "python": platform.python_version(),
            "device": str(self.device) + (f" ({torch.cuda.get_device_name(self.device)})" if self.device.type == "cuda" else ""),
            "threads": torch.get_num_threads(), "processes": dist.get_world_size() if self.rank == 0 and
            dist.is_available() and dist.is_initialized() else 1, "wall_time_s": wall, "iterations": self.counter[0],
            "backend": self.solver.backend, "time_treatment": self.solver.time, "scenario_hash": self.hash,
            "elastic_length": self.problem.physics.elastic_length,
            "final": {"t": self.problem.t_end, **stats}, "first_crack_t": cracked[0] if cracked else None,
            "fragment_areas": sorted(cells.areas.tolist()), "junction_angles": sorted(np.asarray(angles).tolist()),
            "blowups": self.state.blowups, **({"precision": self.state.precision} if self.state.precision else {}),
            "steps": self.state.history,
        }
        export.write_json(self.out / "summary.json", summary)
        self._checkpoint()
        return summary


    def _pictures(self, areas: np.ndarray, angles: np.ndarray) -> None:
        extent = self.grid.extent
        export.plot_crack_series(self.out / "cracks.png", self.frames, extent=extent, title=self.scn.name)
        export.plot_crack_over_field(self.out / "cracks_over_G.png", phi=self.last_arrays["phi"],
                                     mask=self.last_arrays["mask"].astype(bool), field=self.last_arrays["G"],
                                     extent=extent, field_label="G (toughness)")
        export.plot_history(self.out / "energy.png", self.rows)
        area = self.problem.domain.area
        export.plot_crack_density(self.out / "crack_density.png", [r["t"] for r in self.rows],
                                  [r["skeleton_length"] / area for r in self.rows])
        export.plot_histogram(self.out / "fragment_areas.png", areas, xlabel="fragment area")
        export.plot_histogram(self.out / "junction_angles.png", angles, xlabel="angle between crack arms (°)",
                              bins=36, marks=(90, 120))


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save, written atomically: a kill leaves the previous checkpoint whole."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    export.atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, *, device) -> dict:
    """A checkpoint's payload; InputError (exit code 2) for a truncated or foreign file."""
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:
        raise InputError(f"--resume: checkpoint {str(path)!r} cannot be read: {exc}") from None


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


def check_writable(out: Path, *, needed_bytes: int) -> None:
    """Fail before training when the folder cannot take the run's files."""
    probe = out / ".write-test"
    try:
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as exc:
        raise InputError(f"output folder {str(out)!r} cannot be written: {exc.strerror or exc}") from None
    free = shutil.disk_usage(out).free
    if free < needed_bytes:
        raise InputError(f"output folder {str(out)!r} has {free / 1e6:.0f} MB free; this run needs "
                         f"about {needed_bytes / 1e6:.0f} MB (fewer output.snapshots or a lower "
                         f"output.resolution need less)")


def default_out(scn: config.Scenario) -> Path:
    return Path("outputs") / scn.name
