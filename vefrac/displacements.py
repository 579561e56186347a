"""Observed displacements for `vefrac invert`: an in-plane displacement field u_obs(x) (from image
correlation, say) as optional data beside the crack pictures (keys under ``invert.displacement``).

Formats (``file``), each read onto the inversion's evaluation grid:

- ``.npz`` with arrays ``ux``, ``uy`` (ny, nx), row 0 at the SMALLEST y (vefrac's grids; a picture's
  top row is its largest y, so flip an image-ordered array with ``[::-1]``), values at points; and
  optionally ``origin`` (x0, y0) and ``spacing`` (hx, hy): point (j, i) at (x0 + i·hx, y0 + j·hy), in
  the scenario's length units. Without them the points span the domain's bounding box, corners
  included (the export grid's convention).
- ``.vti`` (VTK image data, nz = 1) with a point array ``u`` of 2 or 3 components (a vefrac snapshot,
  fields_NNNN.vti, is one); framing from the file's origin and spacing.
- an image, PNG (8 or 16 bit) or TIFF (8, 16 bit or floating point), of 2 to 4 channels: channel 0
  (R) is ux, channel 1 (G) uy, a third (B) is ignored and a fourth (alpha) marks valid pixels
  (alpha ≥ half). u = ``offset`` + ``scale``·level, level = value/255 (8 bit), value/65535 (16 bit) or
  the value itself (floating point). Pixels are cells, row 0 the top; the image spans ``size``
  (default: the domain's bounding box) centred on the domain, as the crack pictures do.

NaN values (npz, vti) mark points without data. A grid point has data when every lattice point its
bilinear interpolation uses has; the data must cover at least 10 % of the imaged material (less is
refused, under half is a warning). ``time`` must be one of the pictures' times (default: the last):
the displacement joins that frame's assimilated state.

The misfit added to that frame's assimilation is

    w_u · Ḡ/(2s) · ∫ m(x) |u − u_obs|² / U² dx,    U = |εs(t)|·ℓe,  ℓe = sqrt((λ + 2μ)/η),

m the points with data on the imaged material, Ḡ the prior mean toughness, w_u = ``weight``: U is
the displacement of a layer relaxing over ℓe at the shrinkage εs(t) (half a crack's opening), so
w_u = 1 weighs a misfit of one U like the crack-surface energy density of a fully broken point.
It does not depend on G, so the gap's gradient keeps its form c_assimilated − c_free: the
displacement acts through where, and how far, the assimilated state opens its cracks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from .errors import InputError
from .fields import bilinear
from .geometry import Domain, Grid
from .solve import ExtraTerm, trapezoid_weights

_KEY = "invert.displacement"
HISTORY_COLUMNS = ["displacement_misfit", "assimilated_displacement_misfit"]  # rms |u − u_obs|, inversion.csv
_MIN_COVER, _WARN_COVER = 0.1, 0.5  # of the imaged material with data: refused below, a warning below
_ON_TIME = 1e-6  # relative to the last picture's time: this close is that picture's time


@dataclass(frozen=True)
class _Lattice:
    """Where the values of a (ny, nx) array lie: at points (x0 + i·hx, y0 + j·hy) (cells False), or
    (an image) in cells [x0 + i·hx, x0 + (i+1)·hx] × ... sampled at their centres (cells True)."""

    origin: tuple[float, float]
    spacing: tuple[float, float]
    shape: tuple[int, int]
    cells: bool = False

    def index(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shift = 0.5 if self.cells else 0.0
        return ((points[:, 1] - self.origin[1]) / self.spacing[1] - shift,
                (points[:, 0] - self.origin[0]) / self.spacing[0] - shift)

    def covers(self, points: np.ndarray) -> np.ndarray:
        ny, nx = self.shape
        n = (nx, ny) if self.cells else (nx - 1, ny - 1)
        ok = np.ones(len(points), bool)
        for axis in (0, 1):
            lo, hi = self.origin[axis], self.origin[axis] + n[axis] * self.spacing[axis]
            tol = 1e-9 * abs(hi - lo)
            ok &= (points[:, axis] >= lo - tol) & (points[:, axis] <= hi + tol)
        return ok


@dataclass(frozen=True, eq=False)
class ObservedDisplacement:
    """u_obs on the inversion's grid. u: (ny, nx, 2), 0 where there is no data; valid: (ny, nx)
    bool, points with data on the imaged material; frame: the index of the picture whose time it
    is; scale: U; weight: w_u (invert.displacement.weight); factor: w_u·Ḡ/(2s)."""

    path: Path
    u: np.ndarray
    valid: np.ndarray
    time: float
    frame: int
    scale: float
    weight: float
    factor: float
    warnings: tuple[str, ...] = ()

    def term(self, grid: Grid, *, device, dtype) -> ExtraTerm:
        """The misfit weight·m|u − u_obs|²/U² as an extra energy density for the Trainer. u_obs is
        extended beyond its data by the nearest value, so the interpolation does not pull to 0."""
        _, (jj, ii) = ndimage.distance_transform_edt(~self.valid, return_indices=True)
        filled = self.u[jj, ii]
        channels = np.concatenate([filled, self.valid[..., None].astype(float)], -1)
        observed = torch.as_tensor(channels, device=device, dtype=dtype)
        factor = self.factor / self.scale**2

        def density(x: torch.Tensor, dens: dict) -> torch.Tensor:
            obs = bilinear(observed, x, origin=grid.origin, spacing=grid.spacing)
            return factor * obs[:, 2] * ((dens["u"] - obs[:, :2]) ** 2).sum(-1)

        return density

    def misfit(self, u: np.ndarray, grid: Grid) -> float:
        """The misfit term's value for u (ny, nx, 2 or 3) on the grid (trapezoid rule)."""
        w = trapezoid_weights(grid).reshape(grid.shape) * self.valid
        return float((w * ((u[..., :2] - self.u) ** 2).sum(-1)).sum()) * self.factor / self.scale**2

    def row(self, free: list, assims: list, grid: Grid) -> dict:
        """inversion.csv's columns: the rms misfit of the free and the assimilated u at its frame."""
        return {"displacement_misfit": self.rms(free[self.frame][0]["u"], grid),
                "assimilated_displacement_misfit": self.rms(assims[self.frame]["u"], grid)}

    def rms(self, u: np.ndarray | None = None, grid: Grid | None = None) -> float:
        """The root mean square of |u − u_obs| over the points with data (u None: of |u_obs|)."""
        diff = self.u if u is None else u[..., :2] - self.u
        w = np.ones(self.valid.shape) if grid is None else trapezoid_weights(grid).reshape(grid.shape)
        w = w * self.valid
        return float(math.sqrt((w * (diff**2).sum(-1)).sum() / w.sum()))


# ----------------------------------------------------------------------------- for the inversion


def for_inversion(scn, problem, grid: Grid, material: np.ndarray, times: np.ndarray, *, g_mean: float,
                  log=print) -> ObservedDisplacement | None:
    """The scenario's invert.displacement read and checked for the inversion (None: none given);
    its warnings go to log."""
    spec = scn.invert.displacement
    if spec is None:
        return None
    frame = frame_of(spec.time, times)
    t = float(times[frame])
    u, valid, warnings = read_displacement(Path(spec.file), spec, domain=problem.domain, grid=grid,
                                           material=material)
    for warning in warnings:
        log(f"warning: {warning}")
    eps = abs(problem.history(t)) or problem.eps_ref
    scale = eps * problem.physics.elastic_length
    return ObservedDisplacement(path=Path(spec.file), u=u, valid=valid, time=t, frame=frame, scale=scale,
                                weight=spec.weight, factor=spec.weight * g_mean / (2 * problem.physics.s),
                                warnings=warnings)


def frame_of(t: float | None, times: np.ndarray) -> int:
    """The index of the picture taken at t (None: the last); InputError when no picture was."""
    if t is None:
        return len(times) - 1
    off = np.abs(np.asarray(times) - t)
    k = int(off.argmin())
    if off[k] > _ON_TIME * float(times[-1]):
        shown = ", ".join(f"{x:g}" for x in times)
        raise InputError(f"{_KEY}.time = {t:g} is not the time of a picture; allowed: {shown} (the "
                         f"displacement joins the assimilated state of the picture taken then)")
    return k


def report(obs: ObservedDisplacement, *, grid: Grid, history: list[dict], final_u: np.ndarray) -> dict:
    """summary.json's inversion.displacement: the data and how far the runs are from it."""
    first = history[0] if history else {}
    return {"file": str(obs.path), "time": obs.time, "frame": obs.frame, "weight": obs.weight,
            "scale_U": obs.scale, "valid_fraction": float(obs.valid.mean()), "rms_observed": obs.rms(grid=grid),
            "rms_misfit_free_first": first.get("displacement_misfit"),
            "rms_misfit_assimilated_last": history[-1]["assimilated_displacement_misfit"] if history else None,
            "rms_misfit_final": obs.rms(final_u, grid), "warnings": list(obs.warnings)}


def run_displacement(run, t: float) -> np.ndarray:
    """u (ny, nx, 3) of a run at time t: from its snapshots in memory, else its fields_NNNN.vti."""
    for snap in run.outputs.snapshots[::-1]:
        if abs(snap.t - t) <= _ON_TIME * max(abs(t), 1e-300):
            return snap.arrays["u"]
    for when, name in getattr(run.outputs, "pvd", []):
        if abs(when - t) <= _ON_TIME * max(abs(t), 1e-300):
            values, _ = _read_vti(run.outputs.out / name)
            return values
    raise KeyError(f"no snapshot at t = {t}")


# ----------------------------------------------------------------------------- reading


def read_displacement(path: Path, spec, *, domain: Domain, grid: Grid, material: np.ndarray):
    """u_obs on grid: ((ny, nx, 2) values, 0 without data; (ny, nx) bool valid; warnings)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{_KEY}.file {str(path)!r} does not exist")
    if suffix == ".npz":
        values, lattice = _read_npz(path, domain)
    elif suffix == ".vti":
        values, lattice = _read_vti(path)
    elif suffix in (".png", ".tif", ".tiff"):
        values, lattice = _read_image(path, spec, domain)
    else:
        raise InputError(f"{_KEY}.file {str(path)!r}: allowed are .npz, .vti, .png, .tif and .tiff files")
    values = values[..., :2].astype(float)
    if min(lattice.shape) < 2:
        raise InputError(f"{_KEY}.file {str(path)!r}: the field is {lattice.shape[0]} × {lattice.shape[1]}; "
                         f"at least 2 × 2 points")
    has = np.isfinite(values).all(-1)
    points = grid.points()
    v, i = lattice.index(points)
    inside = lattice.covers(points) & (ndimage.map_coordinates(has.astype(float), [v, i], order=1,
                                                               mode="nearest") > 1 - 1e-9)
    u = np.stack([ndimage.map_coordinates(np.where(has, values[..., c], 0.0), [v, i], order=1, mode="nearest")
                  for c in (0, 1)], -1)
    valid = inside.reshape(grid.shape) & material
    share = valid.sum() / max(1, material.sum())
    where = ("its origin and spacing" if suffix in (".npz", ".vti") else f"{_KEY}.size")
    if share < _MIN_COVER:
        raise InputError(f"{_KEY}.file {str(path)!r} has data on {100 * share:.2g}% of the imaged material "
                         f"(at least {100 * _MIN_COVER:g}%): check {where} (the framing, in the "
                         f"scenario's length units) and its missing (NaN) points")
    warnings = []
    if share < _WARN_COVER:
        warnings.append(f"{_KEY}.file {str(path)!r} has data on only {100 * share:.0f}% of the imaged "
                        f"material; check {where}")
    return np.where(valid[..., None], u.reshape(*grid.shape, 2), 0.0), valid, tuple(warnings)


def _read_npz(path: Path, domain: Domain) -> tuple[np.ndarray, _Lattice]:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise InputError(f"{_KEY}.file {str(path)!r} is not an .npz file (a zip of arrays, as numpy.savez "
                         f"writes)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{_KEY}.file {str(path)!r} cannot be read as .npz: {exc}") from None
    missing = [k for k in ("ux", "uy") if k not in arrays]
    if missing:
        raise InputError(f"{_KEY}.file {str(path)!r} has no array {' or '.join(missing)}; it needs ux and uy "
                         f"(ny, nx), optional origin (2,) and spacing (2,) (has: {', '.join(sorted(arrays))})")
    ux, uy = arrays["ux"], arrays["uy"]
    if ux.ndim != 2 or ux.shape != uy.shape or not all(np.issubdtype(a.dtype, np.number) for a in (ux, uy)):
        raise InputError(f"{_KEY}.file {str(path)!r}: ux and uy must be numeric arrays of one shape (ny, nx) "
                         f"(got {ux.shape} and {uy.shape})")
    ny, nx = ux.shape
    framing = []
    for key in ("origin", "spacing"):
        a = arrays.get(key)
        if a is not None and (a.shape != (2,) or not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all()
                              or (key == "spacing" and np.any(a <= 0))):
            raise InputError(f"{_KEY}.file {str(path)!r}: {key} must be 2 finite numbers"
                             f"{' > 0' if key == 'spacing' else ''} (got {a.tolist()})")
        framing.append(a)
    origin, spacing = framing
    if (origin is None) != (spacing is None):
        raise InputError(f"{_KEY}.file {str(path)!r}: give origin and spacing together, or neither (the "
                         f"field then spans the domain's bounding box)")
    if origin is None:  # over the domain's box, its corners included
        w, h = domain.size
        origin, spacing = domain.bounds[:2], (w / max(nx - 1, 1), h / max(ny - 1, 1))
    lattice = _Lattice(tuple(map(float, origin)), tuple(map(float, spacing)), (ny, nx))
    return np.stack([ux, uy], -1).astype(float), lattice


def _read_vti(path: Path) -> tuple[np.ndarray, _Lattice]:
    import pyvista as pv

    try:
        data = pv.read(str(path))
    except Exception as exc:  # VTK and pyvista raise many kinds
        raise InputError(f"{_KEY}.file {str(path)!r} cannot be read as VTK image data (.vti): {exc}") from None
    if not isinstance(data, pv.ImageData) or data.dimensions[2] != 1:
        raise InputError(f"{_KEY}.file {str(path)!r}: expected 2D VTK image data (nz = 1)")
    if "u" not in data.point_data.keys():
        raise InputError(f"{_KEY}.file {str(path)!r} has no point array 'u' (has: "
                         f"{', '.join(data.point_data.keys()) or 'none'})")
    nx, ny, _ = data.dimensions
    u = np.asarray(data.point_data["u"], dtype=float)
    if u.ndim != 2 or u.shape[1] not in (2, 3):
        raise InputError(f"{_KEY}.file {str(path)!r}: point array 'u' must have 2 or 3 components "
                         f"(got {1 if u.ndim == 1 else u.shape[1]})")
    lattice = _Lattice(tuple(map(float, data.origin[:2])), tuple(map(float, data.spacing[:2])), (ny, nx))
    return u.reshape(ny, nx, -1), lattice


def _read_image(path: Path, spec, domain: Domain) -> tuple[np.ndarray, _Lattice]:
    """An image's channels 0, 1 as u (alpha < half: NaN), row 0 = smallest y, and its framing."""
    if spec.scale is None:
        raise InputError(f"{_KEY}.file {str(path)!r} is an image: set {_KEY}.scale (and {_KEY}.offset), "
                         f"u = offset + scale·level with level in [0, 1]")
    levels = _image_levels(path)
    if levels.ndim != 3 or not 2 <= levels.shape[2] <= 4:
        channels = 1 if levels.ndim == 2 else levels.shape[2]
        raise InputError(f"{_KEY}.file {str(path)!r} has {channels} channel(s); a displacement image needs "
                         f"2 to 4: R = ux, G = uy (B ignored, alpha = valid pixels)")
    u = spec.offset + spec.scale * levels[..., :2]
    if levels.shape[2] == 4:
        u = np.where(levels[..., 3:] >= 0.5, u, np.nan)
    u = u[::-1]  # row 0 = smallest y from here on
    h_px, w_px = u.shape[:2]
    w, h = domain.size if spec.size is None else spec.size
    cx, cy = domain.center
    return u, _Lattice((cx - w / 2, cy - h / 2), (w / w_px, h / h_px), (h_px, w_px), cells=True)


def _image_levels(path: Path) -> np.ndarray:
    """(H, W[, C]) levels, row 0 the top: value/255 or /65535, a floating-point TIFF as stored."""
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            raw = np.asarray(tifffile.imread(path))
        except Exception as exc:  # tifffile raises many kinds
            raise InputError(f"{_KEY}.file {str(path)!r} cannot be read as TIFF: {exc}") from None
        if raw.ndim == 3 and raw.shape[0] <= 4 < raw.shape[2]:  # planar: (C, H, W)
            raw = np.moveaxis(raw, 0, -1)
    else:
        try:  # Pillow checks the file (VTK's reader would crash on a broken one) ...
            with Image.open(path) as img:
                img.load()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise InputError(f"{_KEY}.file {str(path)!r} cannot be read as PNG: {exc}") from None
        with open(path, "rb") as f:
            head = f.read(26)  # the signature, then IHDR: length, type, width, height, bit depth, colour type
        colour = head.startswith(b"\x89PNG") and len(head) == 26 and head[24] == 16 and head[25] in (2, 4, 6)
        if colour:  # ... but reads 16-bit colour as 8 bit
            import pyvista as pv

            image = pv.read(str(path))
            nx, ny, _ = image.dimensions
            raw = np.asarray(image.point_data[image.point_data.keys()[0]]).reshape(ny, nx, -1)[::-1]
        else:
            with Image.open(path) as img:
                raw = np.asarray(img)
    if raw.dtype == np.uint8:
        return raw / 255.0
    if raw.dtype == np.uint16:
        return raw / 65535.0
    if np.issubdtype(raw.dtype, np.floating):
        return raw.astype(float)
    raise InputError(f"{_KEY}.file {str(path)!r}: {raw.dtype} pixels; allowed are 8 and 16 bit integers "
                     f"and floating point")
