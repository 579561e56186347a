"""What a run leaves: snapshots, history, summary and pictures, in memory or in a folder.

The run loop (runner.Run) hands every snapshot to its outputs; two kinds exist:
- `Recorder`: in memory only (`Run(scn, out=None)`): every snapshot's arrays, the history rows;
- `FolderOutputs`: the same, written as it goes into the output folder (fields_NNNN.vti and
  fields.pvd, history.csv, config.yaml, then summary.json and the pictures), each file atomically,
  and the checkpoint (only the last snapshot's arrays stay in memory).
"""

from __future__ import annotations

import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from . import __version__, analysis, config, export, plots
from .checkpoint import load_checkpoint, save_checkpoint
from .errors import InputError
from .geometry import Grid
from .solve import TERMS, trapezoid_weights

CHECKPOINT = "checkpoint.pt"
OUTPUT_FILES = ("fields_*.vti", "fields.pvd", "history.csv", "summary.json", CHECKPOINT, "*.png", ".*.tmp")
SNAPSHOT_BYTES_PER_POINT = 8 * 12  # φ, u (3), G, mask, energy densities, in float64
HISTORY_COLUMNS = ["t", "eps_s", "elastic", "surface", "substrate", "total", "crack_length",
                   "skeleton_length", "fragments", "band_width", "median_phi"]


@dataclass
class Snapshot:
    """One snapshot at time t: arrays on the export grid ('phi' (ny, nx), 'u' (ny, nx, 3), 'G',
    'mask' uint8, '<term>_energy_density', 'crack_length_density'), its history row and its
    crack statistics."""

    t: float
    arrays: dict[str, np.ndarray]
    row: dict
    stats: dict


def snapshot_from_fields(f: dict[str, np.ndarray], *, grid: Grid, t: float, s: float, eps_s: float) -> Snapshot:
    """A solver's fields on grid.points() (Solver.fields) -> arrays, energies and crack statistics."""
    ny, nx = grid.shape
    inside = f["inside"]
    w = trapezoid_weights(grid) * inside
    energies = {k: float((w * f[k]).sum()) for k in TERMS}
    phi = np.where(inside, f["phi"], 0.0).reshape(ny, nx)
    mask = inside.reshape(ny, nx)
    grad_phi = np.where(inside[:, None], f["grad_phi"], 0.0).reshape(ny, nx, 2)
    stats = analysis.crack_statistics(phi, mask=mask, spacing=grid.spacing, s=s, grad_phi=grad_phi)
    stats["crack_length"] = float((w * f["crack_density"]).sum())  # the model's own functional, G = 1
    u3 = np.zeros((ny * nx, 3))
    u3[:, :2] = np.where(inside[:, None], f["u"], 0.0)
    arrays = {"phi": phi, "u": u3.reshape(ny, nx, 3), "G": f["G"].reshape(ny, nx), "mask": mask.astype(np.uint8)}
    for k in TERMS:
        arrays[f"{k}_energy_density"] = np.where(inside, f[k], 0.0).reshape(ny, nx)
    arrays["crack_length_density"] = np.where(inside, f["crack_density"], 0.0).reshape(ny, nx)
    row = {"t": t, "eps_s": eps_s, **energies, "total": sum(energies.values()),
           "crack_length": stats["crack_length"], "skeleton_length": stats["skeleton_length"],
           "fragments": stats["fragments"], "band_width": stats["band_width"], "median_phi": stats["median_phi"]}
    return Snapshot(t=t, arrays=arrays, row=row, stats=stats)


class Recorder:
    """In-memory outputs: `rows` (history rows, history.csv's columns), `snapshots` (every one, or
    with keep_all=False only the last) and their numbers in `indices`, `frames` (t, φ, mask) for
    the crack-series picture."""

    def __init__(self, *, keep_all: bool = True):
        self.keep_all = keep_all
        self.rows: list[dict] = []
        self.snapshots: list[Snapshot] = []
        self.indices: list[int] = []
        self.frames: list[tuple[float, np.ndarray, np.ndarray]] = []

    @property
    def last(self) -> Snapshot:
        return self.snapshots[-1]

    def prepare(self) -> None:
        """Before the run's first step (a folder: check and clean it)."""

    def add(self, index: int, snap: Snapshot) -> None:
        """Snapshot number `index` (of output.snapshots)."""
        self.rows = [r for r in self.rows if r["t"] != snap.t] + [snap.row]
        self.frames.append((snap.t, snap.arrays["phi"].astype(np.float32), snap.arrays["mask"].astype(bool)))
        self.snapshots = (self.snapshots if self.keep_all else []) + [snap]
        self.indices = (self.indices if self.keep_all else []) + [index]

    def finish(self, summary: dict, *, areas: np.ndarray, angles: np.ndarray) -> None:
        """After the last snapshot, with the summary and the final pattern's statistics."""

    def save_checkpoint(self, payload: dict) -> None:
        """In memory: nothing survives the process, so nothing to save."""

    def state_dict(self) -> dict:
        return {"rows": self.rows, "frames": [[t, torch.from_numpy(phi), torch.from_numpy(mask)]
                                              for t, phi, mask in self.frames]}

    def load_state_dict(self, state: dict) -> None:
        self.rows = [dict(r) for r in state["rows"]]
        self.frames = [(t, np.asarray(phi), np.asarray(mask)) for t, phi, mask in state["frames"]]


class FolderOutputs(Recorder):
    """The outputs of a run written into the folder `out` (see docs: contracts)."""

    def __init__(self, out: Path, scn: config.Scenario, *, grid: Grid, area: float, resumed: bool,
                 pictures: bool = True):
        super().__init__(keep_all=False)
        self.out, self.scn, self.grid, self.area = Path(out), scn, grid, area
        self.resumed, self.pictures = resumed, pictures
        self.pvd: list[tuple[float, str]] = []

    def prepare(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        ny, nx = self.grid.shape
        per_snapshot = ny * nx * SNAPSHOT_BYTES_PER_POINT
        check_writable(self.out, needed_bytes=2 * per_snapshot * (self.scn.output.snapshots + 2) + 50_000_000)
        # a fresh run (prepare_output allowed it): no file of an older run stays; a resumed one:
        # only the half-written temporary files of the run that was killed (we hold the lock)
        for pattern in (".*.tmp",) if self.resumed else OUTPUT_FILES:
            for old in self.out.glob(pattern):
                old.unlink()
        export.atomic_write_text(self.out / "config.yaml", config.dump_scenario(self.scn))

    def add(self, index: int, snap: Snapshot) -> None:
        super().add(index, snap)
        name = f"fields_{index:04d}.vti"
        export.write_vti(self.out / name, origin=self.grid.origin, spacing=self.grid.spacing, point_data=snap.arrays)
        self.pvd = [e for e in self.pvd if e[1] != name] + [(snap.t, name)]
        export.write_pvd(self.out / "fields.pvd", self.pvd)
        export.write_csv(self.out / "history.csv", self.rows, HISTORY_COLUMNS)

    def finish(self, summary: dict, *, areas: np.ndarray, angles: np.ndarray) -> None:
        if self.pictures:
            self._pictures(areas, angles)
        export.write_json(self.out / "summary.json", summary)

    def _pictures(self, areas: np.ndarray, angles: np.ndarray) -> None:
        extent, last = self.grid.extent, self.last.arrays
        plots.plot_crack_series(self.out / "cracks.png", self.frames, extent=extent, title=self.scn.name)
        plots.plot_crack_over_field(self.out / "cracks_over_G.png", phi=last["phi"], mask=last["mask"].astype(bool),
                                     field=last["G"], extent=extent, field_label="G (toughness)")
        plots.plot_history(self.out / "energy.png", self.rows)
        plots.plot_crack_density(self.out / "crack_density.png", [r["t"] for r in self.rows],
                                  [r["skeleton_length"] / self.area for r in self.rows])
        plots.plot_histogram(self.out / "fragment_areas.png", areas, xlabel="fragment area")
        plots.plot_histogram(self.out / "junction_angles.png", angles, xlabel="angle between crack arms (°)",
                              bins=36, marks=(90, 120))

    def save_checkpoint(self, payload: dict) -> None:
        save_checkpoint(self.out / CHECKPOINT, payload)

    def load_checkpoint(self, *, device) -> dict:
        return load_checkpoint(self.out / CHECKPOINT, device=device)

    def state_dict(self) -> dict:
        return super().state_dict() | {"pvd": self.pvd}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.pvd = [(t, name) for t, name in state["pvd"]]


def summarise(scn: config.Scenario, last: Snapshot, rows: list[dict], *, grid: Grid, s: float, device: torch.device,
              rank: int, wall: float, iterations: int, scenario_hash: str, elastic_length: float, report: dict,
              steps: list[dict]) -> tuple[dict, np.ndarray, np.ndarray]:
    """summary.json's content, the fragment areas and the junction angles of the last snapshot."""
    phi, mask = last.arrays["phi"], last.arrays["mask"].astype(bool)
    cells = analysis.fragments(phi, mask=mask, spacing=grid.spacing, min_area=(4 * s) ** 2)
    angles = analysis.junctions(phi, mask=mask, spacing=grid.spacing, arm_length=10 * s).all_angles()
    cracked = [r["t"] for r in rows if r["skeleton_length"] > 0]
    summary = {
        "name": scn.name, "vefrac_version": __version__, "torch_version": torch.__version__,
        "numpy_version": np.__version__, "python": platform.python_version(),
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "threads": torch.get_num_threads(), "processes": dist.get_world_size() if rank == 0 and
        dist.is_available() and dist.is_initialized() else 1, "wall_time_s": wall, "iterations": iterations,
        "backend": scn.solver.backend, "time_treatment": scn.solver.time, "scenario_hash": scenario_hash,
        "elastic_length": elastic_length,
        "final": {"t": scn.shrinkage.t_end, **last.stats}, "first_crack_t": cracked[0] if cracked else None,
        "fragment_areas": sorted(cells.areas.tolist()), "junction_angles": sorted(np.asarray(angles).tolist()),
        **report, "steps": steps,
    }
    return summary, cells.areas, angles


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
