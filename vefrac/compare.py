"""Side-by-side comparison of two crack patterns: finished runs (a PINN run against its FEM reference,
say) or a run and a photograph of the layer it models (or two photographs).

A photograph beside a run is read with the run's own scenario (its config.yaml: domain, s,
output.resolution, invert.observation), so it lands on the run's grid; then both sides' statistics
are computed from φ by the same code (`analysis.crack_statistics` and `pattern.crack_pattern`).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import plots
from .errors import InputError

STATISTICS = ("crack_length", "skeleton_length", "fragments", "mean_fragment_area", "cracked_fraction",
              "band_width", "median_phi", "junctions", "t_junction_fraction")


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
        if self.summary.get("backend") == "picture":
            return f"{self.folder.name} (picture)"
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


def _scenario_of(run: RunResult):
    from .config import load_scenario

    path = run.folder / "config.yaml"
    if not path.is_file():
        raise InputError(f"run folder {str(run.folder)!r} has no config.yaml: a picture can only be set "
                         f"beside a run whose scenario is known")
    return load_scenario(path)


def _from_phi(result: RunResult, *, s: float, picture: bool) -> RunResult:
    """The same result with its statistics recomputed from φ (the picture's and the run's alike)."""
    from . import analysis, pattern

    ny, nx = result.phi.shape
    x0, x1, y0, y1 = result.extent
    spacing = ((x1 - x0) / (nx - 1), (y1 - y0) / (ny - 1))
    final = analysis.crack_statistics(result.phi, mask=result.mask, spacing=spacing, s=s)
    pat = pattern.crack_pattern(result.phi, mask=result.mask, spacing=spacing, origin=(x0, y0), s=s)
    final.update(dict(pattern.summary_rows(pat.statistics)))
    summary = dict(result.summary, final=final)
    if picture:
        summary["backend"] = "picture"
    return RunResult(result.folder, summary, result.phi, result.mask, result.extent)


def load_picture(path: str | Path, *, like: RunResult | None = None) -> RunResult:
    """A picture as a RunResult: read with the scenario of the run `like` (onto its grid), or with
    `vefrac analyze`'s defaults (pixels) when there is none."""
    from .pattern_sources import picture_source

    scn = _scenario_of(like) if like is not None else None
    source = picture_source(path, scenario=scn)
    if like is not None and source.phi.shape != like.phi.shape:
        raise InputError(f"picture {str(path)!r} was read onto a {source.phi.shape} grid, the run "
                         f"{str(like.folder)!r} has {like.phi.shape}: check its config.yaml")
    result = RunResult(Path(path), {"name": Path(path).stem, "backend": "picture",
                                    "warnings": source.info["warnings"]}, source.phi, source.mask,
                       source.grid.extent)
    return _from_phi(result, s=source.s, picture=True)


def _load_pair(path_a, path_b) -> tuple[RunResult, RunResult]:
    from .pattern_sources import is_picture

    pic_a, pic_b = is_picture(path_a), is_picture(path_b)
    a = None if pic_a else load_run(path_a)
    b = None if pic_b else load_run(path_b)
    if not (pic_a or pic_b):
        return a, b
    if pic_a:
        a = load_picture(path_a, like=b)
    if pic_b:
        b = load_picture(path_b, like=a if not pic_a else None)
    if not pic_a:
        a = _from_phi(a, s=_scenario_of(a).fracture.length_scale, picture=False)
    if not pic_b:
        b = _from_phi(b, s=_scenario_of(b).fracture.length_scale, picture=False)
    return a, b


def comparison_rows(a: RunResult, b: RunResult) -> list[tuple[str, float | None, float | None, float | None]]:
    """(statistic, value in A, value in B, relative difference (B − A)/|A|) for each statistic."""
    rows = []

    def add(name, va, vb):
        rel = (vb - va) / abs(va) if va not in (None, 0) and vb is not None else None
        rows.append((name, va, vb, rel))

    keys = list(STATISTICS)
    if "picture" in (a.summary.get("backend"), b.summary.get("backend")):
        from .pattern import SUMMARY_KEYS

        keys += [k for k in SUMMARY_KEYS if k not in keys]
    for key in keys:
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
    """The comparison table as text; writes the side-by-side picture of the final crack patterns.
    Either side may be a picture (a file) instead of a run folder."""
    a, b = _load_pair(run_a, run_b)
    plots.plot_side_by_side(picture, [(a.label, a.phi, a.mask, a.extent), (b.label, b.phi, b.mask, b.extent)])
    warnings = [f"warning: {w}" for r in (a, b) for w in r.summary.get("warnings", [])]
    return "\n".join([*warnings, format_table(a, b)])
