"""Files out, numpy in: VTK image data and ParaView collections, CSV, JSON (pictures: plots.py).

Every file is written atomically (temporary file in the same folder, fsync, os.replace), so a
reader, or a run killed half-way, never sees a half-written file. Non-finite numbers are
refused with a ValueError naming the array, column or key: NaN never reaches an output file.

Grid convention: a field is a (ny, nx) array, row j at y = y0 + j·hy (row 0 is the smallest
y), column i at x = x0 + i·hx; vectors are (ny, nx, k). ``extent`` for pictures is
(xmin, xmax, ymin, ymax) as in matplotlib's imshow.

Imports nothing else from vefrac and touches no global state.
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
