"""`vefrac analyze`: the statistics of a crack pattern, for a photograph and for a finished run alike.

A source is a crack field φ on a grid with its material mask and phase-field length s:

- a run folder: the last snapshot of fields.pvd ('phi', 'mask'), s from its config.yaml;
- a picture: read by `vefrac.observe` (with a scenario's domain, s, output.resolution and
  invert.observation keys, or without one: a rectangle of `size` — pixels when not given —,
  s = 1/256 of its longest side, 512 grid points along it, the ridge reading of photographs).

Both go through `pattern.crack_pattern`, so the numbers compare. Outputs (`write_analysis`):
analysis.json, analysis.vti (phi, skeleton, cells, material, orientation; grey for a picture),
cells.png (cells coloured, junctions marked) and statistics.png (histograms).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config, export, pattern, pattern_widths
from .budget import export_resolution
from .errors import InputError
from .geometry import Grid

# Without a scenario a picture is read with s = its longest side / _S_DIVISIONS ...
_S_DIVISIONS = 256
# ... on a grid of _RESOLUTION points along that side (spacing ≈ s/2).
_RESOLUTION = 512
_KINDS = {"T": ("^", "tab:red"), "Y": ("o", "tab:blue"), "X": ("s", "tab:green")}


@dataclass(frozen=True)
class Source:
    """A crack field to analyse. phi, mask (bool), grey (picture only, else None): (ny, nx)."""

    phi: np.ndarray
    mask: np.ndarray
    grid: Grid
    s: float
    info: dict  # what it is: kind ('picture' | 'run'), path, length unit, reading parameters
    grey: np.ndarray | None = None
    observed: object = field(default=None, repr=False)  # the `observe.Observed` of a picture


def is_picture(path: str | Path) -> bool:
    """A file (not a folder): taken as a picture."""
    return Path(path).is_file()


def run_source(folder: str | Path) -> Source:
    """The last snapshot of a finished run folder; InputError when it is not one."""
    import yaml

    from .compare import load_run

    run = load_run(folder)
    ny, nx = run.phi.shape
    x0, x1, y0, y1 = run.extent
    grid = Grid(origin=(x0, y0), spacing=((x1 - x0) / (nx - 1), (y1 - y0) / (ny - 1)), shape=(ny, nx))
    s = config.Fracture().length_scale
    try:
        resolved = yaml.safe_load((Path(folder) / "config.yaml").read_text())
        s = float(resolved["fracture"]["length_scale"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        pass  # an older folder without a readable config.yaml: the default s
    info = {"kind": "run", "path": str(folder), "length_unit": "scenario", "name": run.summary.get("name"),
            "backend": run.summary.get("backend", "pinn")}
    return Source(phi=run.phi, mask=run.mask, grid=grid, s=s, info=info)


def picture_source(path: str | Path, *, size=None, scenario: config.Scenario | None = None) -> Source:
    """A picture read onto a grid (see the module docstring). size: physical [w, h] it spans
    (with a scenario: its invert.observation.size). InputError on a bad picture or key."""
    from .geometry import build_domain
    from .imageio import picture_size
    from .observe import read_observation

    if size is not None and (len(size) != 2 or min(size) <= 0):
        raise InputError(f"--size {list(size)}: give the picture's physical width and height, both > 0")
    if scenario is None:
        w, h = picture_size(path) if size is None else (float(size[0]), float(size[1]))
        domain = build_domain(config.Rectangle(shape="rectangle", size=[float(w), float(h)]))
        s, resolution = max(w, h) / _S_DIVISIONS, _RESOLUTION
        spec = config.Observation(method="ridge")
        unit = "px" if size is None else "size"
    else:
        domain = build_domain(scenario.domain)
        s, resolution = scenario.fracture.length_scale, export_resolution(scenario, domain.length)
        spec = scenario.invert.observation
        if size is not None:
            spec = spec.model_copy(update={"size": [float(size[0]), float(size[1])]})
        unit = "scenario"
    grid = domain.grid(resolution)
    ob = read_observation(path, spec, domain=domain, grid=grid, s=s)
    return observed_source(ob, grid=grid, s=s, path=path, unit=unit, method=spec.method)


def observed_source(ob, *, grid: Grid, s: float, path, unit: str = "scenario", method: str = "threshold") -> Source:
    """A Source from an `observe.Observed` read onto grid (what `vefrac invert --observe-only` read)."""
    info = {"kind": "picture", "path": str(path), "length_unit": unit, "method": method, "cracks": ob.cracks,
            "threshold": ob.threshold, "pixel_size": list(ob.pixel_size), "warnings": list(ob.warnings)}
    return Source(phi=ob.phi, mask=ob.material, grid=grid, s=s, info=info, grey=ob.grey, observed=ob)


def write_observation_vti(path, ob, grid: Grid) -> Path:
    """The observed field as `vefrac invert` fits it: phi_observed, observed_skeleton, material, grey."""
    return export.write_vti(path, origin=grid.origin, spacing=grid.spacing,
                            point_data={"phi_observed": ob.phi, "observed_skeleton": ob.skeleton,
                                        "material": ob.material, "grey": ob.grey})


def load_source(path: str | Path, *, size=None, scenario: config.Scenario | None = None) -> Source:
    """A picture (a file) or a finished run (a folder)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{str(path)!r} does not exist: give a picture (PNG, JPEG, TIFF) or a run folder")
    if is_picture(path):
        return picture_source(path, size=size, scenario=scenario)
    if size is not None:
        raise InputError(f"--size applies to pictures; the run folder {str(path)!r} has its own units")
    return run_source(path)


def primary_width_option(value) -> float | str:
    """'auto' or a positive physical width, from a command-line string; InputError otherwise."""
    if value is None or str(value).strip().lower() == "auto":
        return "auto"
    try:
        width = float(value)
    except ValueError:
        width = math.nan
    if not (math.isfinite(width) and width > 0):
        raise InputError(f"--primary-width {value!r}: give 'auto' or the crack width (> 0, in the picture's "
                         f"length units: --size units, scenario units or pixels) from which cracks are primary")
    return width


def analyse(source: Source, *, primary_width="auto") -> pattern.Pattern:
    """The pattern statistics of a source; a picture's cracks are also classed by width
    (primary_width: 'auto' or a physical width, see `pattern_widths`)."""
    width = None if source.observed is None else source.observed.width
    return pattern.crack_pattern(source.phi, mask=source.mask, spacing=source.grid.spacing,
                                 origin=source.grid.origin, s=source.s, width=width, primary_width=primary_width)


def write_analysis(out: str | Path, source: Source, pat: pattern.Pattern, *, prefix: str = "analysis",
                   vti: bool = True) -> list[Path]:
    """Write {prefix}.json (and {prefix}.vti, cells.png, statistics.png) into out. Returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    grid = source.grid
    document = {"source": source.info, "grid": {"origin": list(grid.origin), "spacing": list(grid.spacing),
                                                "shape": list(grid.shape)}, "statistics": pat.statistics}
    written = [export.write_json(out / f"{prefix}.json", document)]
    if vti:
        arrays = {"phi": source.phi, "skeleton": pat.skeleton, "cells": pat.cells.labels.astype(np.int32),
                  "material": source.mask, "orientation": np.nan_to_num(pat.orientation, nan=-1.0)}
        if source.grey is not None:
            arrays["grey"] = source.grey
        if pat.classes is not None:
            arrays["crack_class"] = pat.classes
            arrays["crack_width"] = np.nan_to_num(np.where(pat.skeleton, source.observed.width, np.nan), nan=-1.0)
        written.append(export.write_vti(out / f"{prefix}.vti", origin=grid.origin, spacing=grid.spacing,
                                        point_data=arrays))
    written.append(plot_cells(out / "cells.png", source, pat))
    written.append(plot_statistics(out / "statistics.png", pat))
    return written


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return export.atomic_write_bytes(path, buf.getvalue())


def plot_cells(path, source: Source, pat: pattern.Pattern) -> Path:
    """Cells in random colours (those cut by the frame paler), centre lines black, junctions
    marked by kind (T red triangle, Y blue circle, X green square)."""
    labels = pat.cells.labels
    rng = np.random.default_rng(0)  # colours only
    colours = np.vstack([[1.0, 1.0, 1.0], 0.35 + 0.6 * rng.random((pat.cells.count, 3))])
    pale = np.concatenate([[False], pat.edge_cells])
    colours[pale] = 0.55 * colours[pale] + 0.45
    rgb = colours[labels]
    rgb[~source.mask] = 0.8
    if pat.classes is None:
        rgb[pat.skeleton] = 0.0
    else:  # primary cracks drawn thick and black, secondary ones thin and grey
        from scipy import ndimage

        thick = np.ones((3, 3), bool)
        rgb[ndimage.binary_dilation(pat.classes == pattern_widths.SECONDARY, structure=thick)] = 0.55
        rgb[ndimage.binary_dilation(pat.classes == pattern_widths.PRIMARY, structure=thick)] = 0.0
    ny, nx = labels.shape
    fig = _figure(6.5, 0.8 + 5.5 * min(2.0, max(0.5, ny / max(nx, 1))))
    ax = fig.add_subplot()
    ax.imshow(rgb, origin="lower", extent=source.grid.extent, interpolation="nearest")
    junc = pat.junctions
    for kind, (marker, colour) in _KINDS.items():
        at = [p for p, k in zip(junc.points, junc.kinds) if k == kind]
        if at:
            at = np.asarray(at)
            ax.scatter(at[:, 0], at[:, 1], marker=marker, s=22, facecolors="none", edgecolors=colour,
                       linewidths=1.2, label=f"{kind} ({len(at)})")
    if junc.count:
        ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    st = pat.statistics
    title = f"{st['cells']} cells ({st['interior_cells']} inside the frame), {st['junctions']} junctions"
    classes = st.get("crack_classes")
    if classes is not None:
        split = classes["split_width"]
        title += ("\nall cracks one width class" if split is None else
                  f"\nprimary (thick black, ≥ {split:.3g} wide): {classes['primary']['segments']} segments, "
                  f"secondary (grey): {classes['secondary']['segments']}")
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal")
    return _save(fig, Path(path))


def plot_statistics(path, pat: pattern.Pattern) -> Path:
    """Histograms: interior cell areas, junction angles (90°, 120°, 180° marked), crack orientations."""
    st = pat.statistics
    fig = _figure(13.0, 3.8)
    axes = fig.subplots(1, 3)
    areas = pat.cells.areas[~pat.edge_cells]
    axes[0].hist(areas, bins=max(5, min(40, areas.size // 3 or 5)), color="0.4")
    axes[0].set_xlabel(f"cell area (cells inside the frame, n = {areas.size})")
    angles = pat.junctions.all_angles()
    axes[1].hist(angles, bins=np.arange(0, 361, 10), color="0.4")
    for k, a in enumerate((90, 120, 180)):
        axes[1].axvline(a, color=f"C{k + 1}", linestyle="--", label=f"{a}°")
    axes[1].set_xlim(0, 270)
    axes[1].legend(fontsize=8)
    axes[1].set_xlabel(f"angle between junction arms (°), T fraction {st['t_junction_fraction']:.2f}")
    counts = st["orientation_histogram"]["counts"]
    width = st["orientation_histogram"]["bin_degrees"]
    axes[2].bar(np.arange(len(counts)) * width + width / 2, counts, width=0.9 * width, color="0.4")
    axes[2].set_xlabel(f"crack orientation (°, 0 = along x); nematic order {st['nematic_order']:.2f}")
    for ax in axes:
        ax.set_ylabel("count")
    return _save(fig, Path(path))


def report(source: Source, pat: pattern.Pattern) -> str:
    """The headline statistics as text lines."""
    unit = {"px": "px", "size": "(size units)", "scenario": "(scenario units)"}[source.info["length_unit"]]
    lines = [f"{source.info['kind']} {source.info['path']}: lengths in {unit}"]
    rows = pattern.summary_rows(pat.statistics)
    classes = pat.statistics.get("crack_classes")
    if classes is not None:
        rows += [("split_width", classes["split_width"]),
                 ("primary_segments", classes["primary"]["segments"]), ("primary_length", classes["primary"]["length"]),
                 ("secondary_segments", classes["secondary"]["segments"]),
                 ("secondary_length", classes["secondary"]["length"])]
    for name, value in rows:
        text = "—" if value is None else (f"{value:d}" if isinstance(value, int) else f"{value:.4g}")
        lines.append(f"  {name:26} {text}")
    return "\n".join(lines)
