"""Files out, numpy in: VTK image data and ParaView collections, CSV, JSON, PNG pictures.

Every file is written atomically (temporary file in the same folder, fsync, os.replace), so a
reader, or a run killed half-way, never sees a half-written file. Non-finite numbers are
refused with a ValueError naming the array, column or key: NaN never reaches an output file.

Grid convention: a field is a (ny, nx) array, row j at y = y0 + j·hy (row 0 is the smallest
y), column i at x = x0 + i·hx; vectors are (ny, nx, k). ``extent`` for pictures is
(xmin, xmax, ymin, ymax) as in matplotlib's imshow.

Imports nothing else from vefrac and touches no global state: matplotlib is imported inside
the plotting functions and used through Figure + FigureCanvasAgg (no pyplot).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

# ---------------------------------------------------------------------------- atomic writes


def _temporary_path(path: Path, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(name, 0o644)  # mkstemp makes 0600 files; outputs are ordinary readable files
    return Path(name)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(folder: Path) -> None:
    try:  # makes the rename itself durable; not possible on every platform
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _replace(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    _fsync_directory(path.parent)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write data to path atomically (same-folder temp file, fsync, os.replace). Returns path."""
    path = Path(path)
    tmp = _temporary_path(path, ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write UTF-8 text to path atomically. Returns path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# ------------------------------------------------------------------------------------ VTK


def _vtk_point_array(name: str, a, shape: tuple[int, int] | None) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim not in (2, 3) or (shape is not None and a.shape[:2] != shape):
        expected = "(ny, nx) or (ny, nx, k)" if shape is None else f"{shape} or {shape + ('k',)}"
        raise ValueError(f"point array {name!r} has shape {a.shape}, expected {expected}")
    if a.dtype == bool:
        a = a.astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        bad = np.count_nonzero(~np.isfinite(a))
        if bad:
            raise ValueError(f"point array {name!r} has {bad} non-finite values")
    elif not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"point array {name!r} has unsupported dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 2:  # planar vectors: ParaView glyphs want 3 components
        a = np.concatenate([a, np.zeros_like(a[..., :1])], axis=2)
    ny, nx = a.shape[:2]
    # C-order flattening of (ny, nx) runs x fastest, which is VTK's point order.
    return np.ascontiguousarray(a.reshape(ny * nx, -1) if a.ndim == 3 else a.reshape(-1))


def write_vti(path, *, origin, spacing, point_data: dict) -> Path:
    """One 2D snapshot as VTK XML image data (.vti), nz = 1 at z = 0.

    origin: (x0, y0); spacing: (hx, hy). point_data: name -> (ny, nx) scalar or (ny, nx, k)
    vector array (k = 2 is padded with a zero z component); bool is stored as uint8. All
    arrays share one (ny, nx). Raises ValueError on non-finite values, naming the array.
    """
    import pyvista as pv

    path = Path(path)
    if not point_data:
        raise ValueError("write_vti needs at least one point array")
    shape = None
    arrays = {}
    for name, a in point_data.items():
        arrays[name] = _vtk_point_array(name, a, shape)
        shape = np.shape(a)[:2]
    ny, nx = shape
    (x0, y0), (hx, hy) = origin, spacing
    grid = pv.ImageData(dimensions=(nx, ny, 1), spacing=(hx, hy, 1.0), origin=(x0, y0, 0.0))
    for name, a in arrays.items():
        grid.point_data[name] = a
    tmp = _temporary_path(path, ".tmp.vti")  # pyvista picks the writer from the extension
    try:
        grid.save(tmp)
        _fsync_file(tmp)
        _replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_pvd(path, entries) -> Path:
    """ParaView collection of snapshots: entries = [(t, file), ...], file relative to path's
    folder (absolute paths are made relative). Rewrite it after every snapshot.
    """
    path = Path(path)
    lines = [
        '<?xml version="1.0"?>',
        '<VTKFile type="Collection" version="0.1" byte_order="LittleEndian">',
        "  <Collection>",
    ]
    for t, file in entries:
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"write_pvd: non-finite timestep {t} for {file}")
        file = Path(file)
        if file.is_absolute():
            file = Path(os.path.relpath(file, path.parent.resolve()))
        lines.append(
            f'    <DataSet timestep="{t!r}" group="" part="0" file={quoteattr(file.as_posix())}/>'
        )
    lines += ["  </Collection>", "</VTKFile>", ""]
    return atomic_write_text(path, "\n".join(lines))


# ------------------------------------------------------------------------------ CSV, JSON


def _csv_cell(value, column: str, row: int) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"write_csv: non-finite value {value} in column {column!r}, row {row}")
        return repr(value)
    return str(value)


def write_csv(path, rows, columns) -> Path:
    """CSV with a header of columns, one line per row dict (missing keys -> empty cells).

    Floats are written with repr (round-trip exact); bools as 0/1. Non-finite floats raise.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for k, row in enumerate(rows):
        writer.writerow([_csv_cell(row.get(c), c, k) for c in columns])
    return atomic_write_text(path, buf.getvalue())


def _parse_cell(text: str):
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_csv(path) -> list[dict]:
    """Rows of a CSV written by write_csv: ints and floats parsed back, empty cells -> None."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _json_default(obj):
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _first_non_finite(obj, where: str = "") -> str | None:
    if isinstance(obj, (float, np.floating)) and not math.isfinite(float(obj)):
        return where or "<top level>"
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f" and not np.isfinite(obj).all():
        return where or "<top level>"
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for key, value in items:
        found = _first_non_finite(value, f"{where}[{key!r}]")
        if found:
            return found
    return None


def write_json(path, obj) -> Path:
    """JSON, indent 2, numpy scalars and arrays converted; refuses NaN/inf naming the key."""
    try:
        text = json.dumps(obj, indent=2, allow_nan=False, default=_json_default)
    except ValueError as err:
        where = _first_non_finite(obj)
        raise ValueError(f"write_json {path}: non-finite number at {where} ({err})") from None
    return atomic_write_text(path, text + "\n")


# ------------------------------------------------------------------------------- pictures


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig, path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return atomic_write_bytes(path, buf.getvalue())


def _no_data(path, title: str | None) -> Path:
    fig = _new_figure(4.0, 3.0)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=14, transform=ax.transAxes)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return _save_figure(fig, path)


def _greyed_outside(cmap_name: str):
    import matplotlib

    return matplotlib.colormaps[cmap_name].with_extremes(bad="0.8")


def _series_indices(n: int, n_panels: int = 6) -> list[int]:
    """Up to n_panels indices evenly spread over range(n), first and last included."""
    return sorted({int(round(k)) for k in np.linspace(0, n - 1, min(n, n_panels))})


def plot_crack_series(path, frames, *, extent, title=None) -> Path:
    """PNG of the crack pattern over time: up to 6 panels of φ (0 white, 1 black), evenly
    chosen among frames = [(t, phi (ny, nx), mask (ny, nx)), ...], always the last one.
    Outside the mask is grey; y grows upward.
    """
    frames = list(frames)
    if not frames:
        return _no_data(path, title)
    picks = [frames[k] for k in _series_indices(len(frames))]
    return _phi_panels(path, [(f"t = {float(t):.4g}", phi, mask, extent) for t, phi, mask in picks], title)


def plot_side_by_side(path, panels, *, title=None) -> Path:
    """PNG of crack patterns next to each other: panels = [(label, phi, mask, extent), ...]."""
    panels = list(panels)
    if not panels:
        return _no_data(path, title)
    return _phi_panels(path, panels, title, ncols=len(panels))


def _phi_panels(path, panels, title, *, ncols=3) -> Path:
    """φ maps (0 white, 1 black, grey outside the mask) in a grid of panels with one colour bar."""
    ncols = min(len(panels), ncols)
    nrows = math.ceil(len(panels) / ncols)
    fig = _new_figure(3.2 * ncols + 0.8, 3.2 * nrows + (0.4 if title else 0.0))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    cmap = _greyed_outside("gray_r")
    image = None
    for ax in axes.ravel()[len(panels) :]:
        ax.set_axis_off()
    for ax, (label, phi, mask, extent) in zip(axes.ravel(), panels):
        shown = np.ma.masked_array(np.asarray(phi, dtype=float), mask=~np.asarray(mask, dtype=bool))
        image = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0, origin="lower", extent=extent)
        ax.set_aspect("equal")
        ax.set_title(label, fontsize=9)
    fig.colorbar(image, ax=axes, label="φ", shrink=0.8)
    if title:
        fig.suptitle(title)
    return _save_figure(fig, path)


def plot_crack_over_field(path, *, phi, mask, field, extent, field_label) -> Path:
    """Final cracks (φ > 0.5, black) drawn over a field such as G(x); all (ny, nx)."""
    phi = np.asarray(phi, dtype=float)
    if phi.size == 0:
        return _no_data(path, field_label)
    mask = np.asarray(mask, dtype=bool)
    fig = _new_figure(6.0, 5.0)
    ax = fig.add_subplot()
    shown = np.ma.masked_array(np.asarray(field, dtype=float), mask=~mask)
    image = ax.imshow(shown, cmap=_greyed_outside("viridis"), origin="lower", extent=extent)
    fig.colorbar(image, ax=ax, label=field_label)
    cracks = np.zeros(phi.shape + (4,))
    cracks[..., 3] = np.where((phi > 0.5) & mask, 0.85, 0.0)  # black, opaque where cracked
    ax.imshow(cracks, origin="lower", extent=extent)
    ax.set_aspect("equal")
    ax.set_title(f"cracks (φ > 0.5) over {field_label}")
    return _save_figure(fig, path)


def plot_observation(path, *, grey, phi, material, extent, title=None) -> Path:
    """What was read from a crack picture: the picture in grey, the observed φ over it in red
    (opaque in proportion to φ, where φ > 0.05) and the non-material region washed out and
    hatched. grey, phi: (ny, nx) floats; material: (ny, nx) bool.
    """
    grey = np.asarray(grey, dtype=float)
    if grey.size == 0:
        return _no_data(path, title)
    phi = np.clip(np.nan_to_num(np.asarray(phi, dtype=float)), 0.0, 1.0)
    material = np.asarray(material, dtype=bool)
    ny, nx = grey.shape
    fig = _new_figure(6.0, 0.8 + 5.0 * min(2.0, max(0.5, ny / max(nx, 1))))
    ax = fig.add_subplot()
    ax.imshow(np.nan_to_num(grey), cmap="gray", vmin=0.0, vmax=1.0, origin="lower", extent=extent)
    red = np.zeros(phi.shape + (4,))
    red[..., 0] = 0.9
    red[..., 3] = np.where((phi > 0.05) & material, 0.85 * phi, 0.0)
    ax.imshow(red, origin="lower", extent=extent)
    if not material.all():
        wash = np.zeros(phi.shape + (4,))
        wash[..., :3] = 0.8
        wash[..., 3] = np.where(material, 0.0, 0.7)
        ax.imshow(wash, origin="lower", extent=extent)
        xs = np.linspace(extent[0], extent[1], nx)
        ys = np.linspace(extent[2], extent[3], ny)
        ax.contourf(xs, ys, (~material).astype(float), levels=[0.5, 1.5], colors="none",
                    hatches=["///"])
    ax.set_aspect("equal")
    ax.set_title(title or "observed cracks (red: φ) on the picture; hatched: not material")
    return _save_figure(fig, path)


def plot_history(path, rows) -> Path:
    """Energy terms (elastic, surface, substrate, total) against t from history rows."""
    rows = list(rows)
    keys = [k for k in ("elastic", "surface", "substrate", "total") if rows and k in rows[0]]
    if not rows or "t" not in rows[0] or not keys:
        return _no_data(path, "energies")
    fig = _new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    t = [float(r["t"]) for r in rows]
    for k in keys:
        ax.plot(t, [np.nan if r.get(k) is None else float(r[k]) for r in rows], label=k,
                linestyle="--" if k == "total" else "-")
    ax.set_xlabel("t")
    ax.set_ylabel("energy")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save_figure(fig, path)


def plot_crack_density(path, t, density) -> Path:
    """Crack length density against t, log-log over the positive points, with a dashed
    t^(2/3) guide through the last one (the 1D sharp-crack scaling).
    """
    t = np.asarray(t, dtype=float).ravel()
    density = np.asarray(density, dtype=float).ravel()
    keep = (t > 0) & (density > 0) & np.isfinite(t) & np.isfinite(density)
    if not keep.any():
        return _no_data(path, "crack density")
    t, density = t[keep], density[keep]
    fig = _new_figure(5.0, 4.0)
    ax = fig.add_subplot()
    ax.loglog(t, density, "o-", label="crack length / area")
    guide_t = np.geomspace(t.min(), t.max(), 50) if t.min() < t.max() else t
    ax.loglog(guide_t, density[-1] * (guide_t / t[-1]) ** (2.0 / 3.0), "k--", label="∝ t^(2/3)")
    ax.set_xlabel("t")
    ax.set_ylabel("crack length density")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    return _save_figure(fig, path)


def plot_histogram(path, values, *, xlabel, bins=30, marks=()) -> Path:
    """Histogram of values (non-finite ones dropped), with dashed vertical lines at marks,
    e.g. marks=(90, 120) for junction angles in degrees.
    """
    values = np.asarray(values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return _no_data(path, xlabel)
    fig = _new_figure(5.0, 4.0)
    ax = fig.add_subplot()
    ax.hist(values, bins=bins, color="0.4")
    for k, x in enumerate(marks):
        ax.axvline(x, color=f"C{k + 1}", linestyle="--", label=f"{x:g}")
    if len(marks):
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(f"n = {values.size}")
    return _save_figure(fig, path)


def plot_inversion_history(path, rows) -> Path:
    """The inversion's progress per outer iteration: crack overlap and misfit of the free forward
    run, and the energy gap between the assimilated and the free state (one line per seed)."""
    rows = list(rows)
    if not rows:
        return _no_data(path, "inversion")
    fig = _new_figure(11.0, 3.4)
    axes = fig.subplots(1, 3)
    panels = (("overlap", "crack overlap (IoU)"), ("misfit", "misfit ⟨(φ − φ_obs)²⟩"),
              ("energy_gap", "energy gap (assimilated − free)"))
    for ax, (key, label) in zip(axes, panels):
        for seed in sorted({r["seed"] for r in rows}):
            mine = [r for r in rows if r["seed"] == seed]
            ax.plot([r["iteration"] for r in mine], [r[key] for r in mine], marker="o", ms=3,
                    label=f"seed {seed + 1}")
        ax.set_xlabel("outer iteration")
        ax.set_title(label, fontsize=9)
    if len({r["seed"] for r in rows}) > 1:
        axes[0].legend(fontsize=8)
    return _save_figure(fig, path)
