"""Side-by-side comparison of two finished runs (a PINN run against its FEM reference, say)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import export
from .errors import InputError

STATISTICS = ("crack_length", "skeleton_length", "fragments", "mean_fragment_area", "cracked_fraction",
              "median_phi", "junctions", "t_junction_fraction")


@dataclass(frozen=True)
class RunResult:
    """What a finished run left: its summary and its final φ on the export grid."""

    folder: Path
    summary: dict
    phi: np.ndarray  # (ny, nx)
    mask: np.ndarray  # (ny, nx) bool
    extent: tuple[float, float, float, float]

    @property
    def label(self) -> str:
        backend = "fem" if self.summary.get("backend") == "fem" else "pinn"
        return f"{self.summary.get('name', self.folder.name)} ({backend}, {self.folder.name})"


def load_run(folder: str | Path) -> RunResult:
    """Read a run folder; InputError naming the folder or file when it is not a finished run."""
    import pyvista as pv

    folder = Path(folder)
    summary_path, pvd = folder / "summary.json", folder / "fields.pvd"
    if not folder.is_dir():
        raise InputError(f"run folder {str(folder)!r} does not exist")
    if not summary_path.is_file() or not pvd.is_file():
        raise InputError(f"run folder {str(folder)!r} holds no finished run (summary.json and fields.pvd "
                         f"are written at the end of `vefrac run`)")
    try:
        summary = json.loads(summary_path.read_text())
        last = max(ET.parse(pvd).getroot().iter("DataSet"), key=lambda d: float(d.get("timestep")))
        mesh = pv.read(folder / last.get("file"))
    except (OSError, ValueError, ET.ParseError) as exc:
        raise InputError(f"run folder {str(folder)!r}: cannot read its outputs: {exc}") from None
    nx, ny, _ = mesh.dimensions
    x0, x1, y0, y1, _, _ = mesh.bounds
    phi = np.asarray(mesh.point_data["phi"]).reshape(ny, nx)
    mask = np.asarray(mesh.point_data["mask"]).reshape(ny, nx).astype(bool)
    return RunResult(folder, summary, phi, mask, (x0, x1, y0, y1))


def comparison_rows(a: RunResult, b: RunResult) -> list[tuple[str, float | None, float | None, float | None]]:
    """(statistic, value in A, value in B, relative difference (B − A)/|A|) for each statistic."""
    rows = []

    def add(name, va, vb):
        rel = (vb - va) / abs(va) if va not in (None, 0) and vb is not None else None
        rows.append((name, va, vb, rel))

    for key in STATISTICS:
        add(key, a.summary["final"].get(key), b.summary["final"].get(key))
    add("first_crack_t", a.summary.get("first_crack_t"), b.summary.get("first_crack_t"))
    add("wall_time_s", a.summary.get("wall_time_s"), b.summary.get("wall_time_s"))
    return rows


def format_table(a: RunResult, b: RunResult) -> str:
    def fmt(v):
        if v is None:
            return "—"
        return f"{v:d}" if isinstance(v, int) else f"{v:.4g}"

    lines = [f"A: {a.label}", f"B: {b.label}", "",
             f"{'statistic':22} {'A':>12} {'B':>12} {'(B−A)/A':>9}"]
    for name, va, vb, rel in comparison_rows(a, b):
        r = "—" if rel is None or not math.isfinite(rel) else f"{100 * rel:+.1f}%"
        lines.append(f"{name:22} {fmt(va):>12} {fmt(vb):>12} {r:>9}")
    return "\n".join(lines)


def compare(run_a: str | Path, run_b: str | Path, *, picture: str | Path) -> str:
    """The comparison table as text; writes the side-by-side picture of the final crack patterns."""
    a, b = load_run(run_a), load_run(run_b)
    export.plot_side_by_side(picture, [(a.label, a.phi, a.mask, a.extent), (b.label, b.phi, b.mask, b.extent)])
    return format_table(a, b)
