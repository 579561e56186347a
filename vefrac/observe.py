"""The observed crack pattern: a picture of cracks turned into the field `vefrac invert` fits.

How a picture is read (keys under ``invert.observation``):

1. ``read_grey`` (PNG, JPEG, TIFF; grey or colour; 8 or 16 bit), upright (EXIF orientation
   applied, as every photo viewer does), then ``crop`` = [left, top, right, bottom] pixels of the
   upright picture, right and bottom excluded (Pillow's box). Without a crop, a photo much finer
   than needed (pixels below s/4, half the grid spacing and, for ``method: ridge``, a sixth of
   ``crack_width``) is reduced on reading by an integer factor.
2. The cropped picture spans the physical box ``size`` = [w, h] (default: the domain's bounding
   box) centred on the centre of the domain's bounding box. As everywhere in vefrac
   (contracts.md) the top row of pixels lies along the largest y and the left column along the
   smallest x; a picture of W × H pixels has pixels of w/W × h/H (not necessarily square).
3. The material seen in the picture: inside the domain, and inside ``mask`` (an image framing
   the same view, light = material, grey ≥ 0.5) when given. Only those pixels are thresholded.
4. The picture is smoothed over s/4 (a Gaussian): detail finer than the model's crack width is
   noise to it. Threshold: ``threshold`` or Otsu's over the material pixels. ``cracks``: 'dark' (grey ≤
   threshold), 'light' (grey > threshold) or 'auto', the side with fewer pixels.
   ``illumination``: 'flatten' divides the picture by its background (a Gaussian over 8 crack
   widths) first, so shade and sun read alike; 'auto' (default) flattens for ``method: ridge`` only.
   ``method: ridge`` (photographs of real layers, vefrac/ridges.py) replaces the threshold: Sato's
   line filter at ``crack_width`` (default 3 s; the polarity as above), opened by a quarter-width
   disk to drop finer texture, then hysteresis: pixels with strength above ``hysteresis`` [low,
   high] high, and above low when connected to those (default: Otsu's threshold of the strength,
   and half of it).
5. After thinning, free spurs shorter than ``prune_length`` are removed and free ends are joined to
   the crack (or the material's edge) ahead of them within ``close_gaps``, so cells close (both
   default to 3 crack widths for ``method: ridge`` and 0 for ``threshold``).
   Connected crack pieces (8-neighbours) whose skeleton is shorter than ``min_crack_length``
   (default 4 s) are dropped: dust, texture, JPEG noise; holes inside cracks smaller than
   (2 s)² are filled (they would thin into loops).
6. The crack pixels are thinned to centre lines at the picture's resolution (Lee's thinning,
   as `analysis.crack_skeleton`), and the distance d from every grid point to those centre
   lines is measured in physical units (pixel centres and the midpoints of their links, so
   anisotropic pixels are handled exactly). φ = exp(−d/s), the AT2 optimal profile, is the
   field the inversion fits. `Observed.skeleton` is `analysis.crack_skeleton` of that φ: the
   same operator as for the model's cracks, so the two compare fairly.

Bad input raises `InputError` naming the file or key and what is allowed; doubtful but
usable input gives warning strings in `Observed.warnings`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from . import config, ridges
from .analysis import crack_skeleton, length_of_skeleton
from .errors import InputError
from .geometry import Domain, Grid
from .imageio import picture_size, read_grey

_KEY = "invert.observation"
# Beyond this many s, exp(-d/s) < 1e-17: φ is stored as exactly 0 there.
_FAR = 40.0
# The picture's and the physical box's aspect ratios may differ by this factor before a warning,
# and by _ASPECT_ERROR before the picture is refused.
_ASPECT_WARNING, _ASPECT_ERROR = 1.05, 2.0
# 'auto' polarity is a guess when the minority side holds more than this fraction of pixels.
_SHAKY_MINORITY = 0.35
# Grey levels closer than this across the material: a uniform picture, nothing to read.
_UNIFORM = 1e-3
# Otsu's two classes closer than this in mean grey level: a faint picture, worth a warning.
_LOW_CONTRAST = 0.1
# The mask, and the picture's footprint, must cover at least this fraction of the domain.
_MIN_COVER = 0.01
_CHUNK = 1 << 18  # points per call of domain.inside (polygons make (N, V) temporaries)


@dataclass(frozen=True, eq=False)
class Observed:
    """A crack picture read onto the model grid. Every array is (ny, nx), row 0 at the smallest y.

    phi: AT2 profile exp(−d/s), d = physical distance to the observed crack centre lines;
        0 outside `material` (and where d > 40 s).
    skeleton: bool, the observed centre lines thinned to one pixel on the grid (inside material).
    material: bool, where the picture informs: inside the domain, the mask and the picture's
        footprint.
    grey: the picture's grey levels in [0, 1] resampled on the grid (smoothed first when the
        grid is coarser than the pixels); 0 outside the picture's footprint.
    cracks: 'dark' or 'light', the polarity used. threshold: the grey level used.
    pixel_size: (px, py) physical size of one picture pixel.
    warnings: doubts about the picture, each naming the key to look at.
    width: at each grid point, the width of the observed crack band at the nearest centre-line
        pixel (`ridges.local_width` of the pixels on the crack side of the grey-level threshold),
        NaN beyond 40 s of any; what tells primary from secondary cracks (`pattern.crack_classes`).
    """

    phi: np.ndarray
    skeleton: np.ndarray
    material: np.ndarray
    grey: np.ndarray
    cracks: str
    threshold: float
    pixel_size: tuple[float, float]
    warnings: tuple[str, ...]
    width: np.ndarray | None = None  # physical width of the nearest observed crack band (NaN: none near)


@dataclass(frozen=True)
class _Frame:
    """Where an image (row 0 = SMALLEST y here, i.e. flipped from the file) lies in the plane:
    pixel (j, i) is the box [x0 + i·px, x0 + (i+1)·px] × [y0 + j·py, y0 + (j+1)·py]."""

    origin: tuple[float, float]
    pixel: tuple[float, float]
    shape: tuple[int, int]

    def centres(self) -> np.ndarray:
        """(H·W, 2) physical pixel centres, x fastest."""
        h, w = self.shape
        x = self.origin[0] + (np.arange(w) + 0.5) * self.pixel[0]
        y = self.origin[1] + (np.arange(h) + 0.5) * self.pixel[1]
        xx, yy = np.meshgrid(x, y)
        return np.column_stack([xx.ravel(), yy.ravel()])

    def covers(self, points: np.ndarray) -> np.ndarray:
        """points: (N, 2). Returns (N,) bool, True inside the image's box (edges included)."""
        h, w = self.shape
        (x0, y0), (px, py) = self.origin, self.pixel
        tol = 1e-9 * max(w * px, h * py)
        return ((points[:, 0] >= x0 - tol) & (points[:, 0] <= x0 + w * px + tol)
                & (points[:, 1] >= y0 - tol) & (points[:, 1] <= y0 + h * py + tol))

    def sample(self, image: np.ndarray, points: np.ndarray, *, order: int = 1) -> np.ndarray:
        """image: (H, W), row 0 at the smallest y. points: (N, 2). Returns (N,) values
        (bilinear for order=1, nearest edge value beyond the outer pixel centres)."""
        u = (points[:, 0] - self.origin[0]) / self.pixel[0] - 0.5
        v = (points[:, 1] - self.origin[1]) / self.pixel[1] - 0.5
        return ndimage.map_coordinates(image, [v, u], order=order, mode="nearest")


def read_observation(path, spec: config.Observation, *, domain: Domain, grid: Grid, s: float) -> Observed:
    """Read a picture of cracks onto `grid` (see the module docstring for the steps).

    path: the crack picture. spec: the scenario's invert.observation. s: phase-field length.
    Returns an `Observed` whose arrays have grid.shape. Raises InputError on bad input.
    """
    warnings: list[str] = []
    width = 3.0 * s if spec.crack_width is None else spec.crack_width
    full = read_grey(path, shrink=_shrink(path, spec, domain=domain, grid=grid, s=s, width=width))
    grey = _crop(full, spec.crop, path)[::-1]  # row 0 = smallest y from here on
    frame = _frame(grey.shape, spec.size, domain, path, warnings)
    px, py = frame.pixel
    if max(px, py) > s:
        warnings.append(f"image {str(path)!r}: a pixel spans {px:.3g} × {py:.3g}, coarser than the "
                        f"phase-field length s = {s:.3g}: the cracks are located only to within a pixel")

    points = grid.points()
    in_domain = _inside(domain, points)
    on_grid = in_domain & frame.covers(points)
    covered = on_grid.sum() / max(1, in_domain.sum())
    if covered < _MIN_COVER:
        raise InputError(f"image {str(path)!r} covers {100 * covered:.2g}% of the domain: check "
                         f"{_KEY}.size (the physical [w, h] the picture spans) and {_KEY}.crop")
    centres = frame.centres()
    on_image = _inside(domain, centres).reshape(grey.shape)
    if spec.mask is not None:
        mask_frame, mask = _mask_frame(spec.mask, full_shape=full.shape, crop=spec.crop, frame=frame)
        in_mask = mask_frame.sample(mask, points) >= 0.5
        share = (on_grid & in_mask).sum() / max(1, on_grid.sum())
        if share < _MIN_COVER:
            raise InputError(f"{_KEY}.mask {spec.mask!r} marks {100 * share:.2g}% of the domain as "
                             f"material: light pixels (grey ≥ 0.5) are the material, in the same "
                             f"framing as the crack picture")
        on_grid &= in_mask
        on_image &= (mask_frame.sample(mask, centres) >= 0.5).reshape(grey.shape)
    if not on_image.any():
        raise InputError(f"image {str(path)!r}: no pixel of the picture lies on the material; check "
                         f"{_KEY}.size, {_KEY}.crop and {_KEY}.mask")
    del centres  # (H·W, 2) floats: the largest temporary for a big photo

    # detail finer than s is noise to a model of width s: smooth it away before thresholding,
    # so that noisy crack edges do not sprout spurs and holes (which thin into loops)
    # (normalised over the material: the background outside a dish must not bleed in)
    width_px = width / math.sqrt(px * py)
    raw = grey  # what observation.png shows; grey is what is thresholded
    if spec.illumination == "flatten" or (spec.illumination == "auto" and spec.method == "ridge"):
        grey = ridges.flatten(grey, scale=8.0 * width_px, weight=on_image)
    flat = grey
    grey = ridges.smooth_over(flat, on_image, [0.25 * s / py, 0.25 * s / px])
    threshold, cracks = _threshold(grey[on_image], spec, path, warnings)
    band = on_image & ((grey <= threshold) if cracks == "dark" else (grey > threshold))  # for widths
    if spec.method == "ridge":
        # outside the material (a dish's rim, the table) must not read as a line: fill it in
        filled = np.where(on_image, flat, np.median(flat[on_image]))
        strength = ridges.ridge_strength(filled, width=width_px, dark=cracks == "dark")
        if spec.hysteresis is None:
            from skimage.filters import threshold_otsu

            high = float(threshold_otsu(strength[on_image]))
            low = 0.5 * high
        else:
            low, high = spec.hysteresis
        crack_pixels = ridges.hysteresis(strength, low=low, high=high, where=on_image)
        threshold = high
    else:
        crack_pixels = band
    crack_pixels = ridges.fill_small_holes(crack_pixels, max_pixels=int((2 * s) ** 2 / (px * py)))
    if not crack_pixels.any():
        what = f"{_KEY}.hysteresis" if spec.method == "ridge" else f"{_KEY}.threshold"
        raise InputError(f"image {str(path)!r}: no {cracks} crack pixels at threshold {threshold:.3g}; "
                         f"check {what} and {_KEY}.cracks")
    min_length = 4.0 * s if spec.min_crack_length is None else spec.min_crack_length
    ridge = spec.method == "ridge"
    prune = spec.prune_length if spec.prune_length is not None else (3.0 * width if ridge else 0.0)
    gaps = spec.close_gaps if spec.close_gaps is not None else (3.0 * width if ridge else 0.0)
    centre_lines = _centre_lines(crack_pixels, pixel=frame.pixel, min_length=min_length,
                                 prune=prune / math.sqrt(px * py), gaps=gaps / math.sqrt(px * py),
                                 where=on_image)
    if not centre_lines.any():
        raise InputError(f"image {str(path)!r}: no crack is longer than {_KEY}.min_crack_length = "
                         f"{min_length:.3g} (default 4 s); check {_KEY}.min_crack_length, "
                         f"{_KEY}.threshold and {_KEY}.cracks")

    material = on_grid.reshape(grid.shape)
    d = _distance(_polyline_points(centre_lines, frame), points, far=_far(grid, frame, s))
    d = d.reshape(grid.shape)
    widths = ridges.local_width(band, centre_lines, pixel=frame.pixel, reach=2.0 * width)
    band_width = ridges.nearest_values(widths, origin=frame.origin, pixel=frame.pixel, points=points,
                                       far=_far(grid, frame, s)).reshape(grid.shape)
    phi = np.where(material & np.isfinite(d), np.exp(-d / s), 0.0)
    # the same operator as for the model's cracks, so the two skeletons compare fairly
    skeleton = crack_skeleton(phi, mask=material)
    # the picture as taken (not flattened) is what a user recognises in observation.png
    shown = grey if flat is raw else ridges.smooth_over(raw, on_image, [0.25 * s / py, 0.25 * s / px])
    grey_on_grid = np.where(frame.covers(points), _smoothed(shown, frame, grid, points), 0.0)
    return Observed(phi=phi, skeleton=skeleton, material=material,
                    grey=np.clip(grey_on_grid, 0.0, 1.0).reshape(grid.shape), cracks=cracks,
                    threshold=float(threshold), pixel_size=(float(px), float(py)),
                    warnings=tuple(warnings), width=np.where(material, band_width, np.nan))


def read_like_picture(phi: np.ndarray, *, material: np.ndarray, spacing, s: float) -> np.ndarray:
    """A model's φ (ny, nx) read the way a picture is: its cracks' centre lines (the same skeleton
    as the overlap score's), widened again to the AT2 profile exp(−d/s) on the material. A crack at
    the picture's place then reads as the picture does, however wide the model's band is."""
    skeleton = crack_skeleton(phi, mask=material)
    if not skeleton.any():
        return np.zeros_like(phi, dtype=float)
    d = ndimage.distance_transform_edt(~skeleton, sampling=(spacing[1], spacing[0]))
    return np.where(material, np.exp(-d / s), 0.0)


# ------------------------------------------------------------------------------ framing


def _crop(grey: np.ndarray, crop, path) -> np.ndarray:
    """grey: (H, W) as in the file. crop: [left, top, right, bottom] or None."""
    if crop is None:
        return grey
    h, w = grey.shape
    left, top, right, bottom = crop
    if right > w or bottom > h:
        raise InputError(f"{_KEY}.crop {list(crop)} lies outside the picture {str(path)!r} of "
                         f"{w} × {h} pixels: [left, top, right, bottom] needs right ≤ {w} and "
                         f"bottom ≤ {h}")
    if right - left < 2 or bottom - top < 2:
        raise InputError(f"{_KEY}.crop {list(crop)} leaves less than 2 × 2 pixels of {str(path)!r}")
    return grey[top:bottom, left:right]


def _frame(shape, size, domain: Domain, path, warnings: list[str]) -> _Frame:
    """Place a (H, W) picture on the box `size` (default: the domain's) at the domain's centre."""
    h_px, w_px = shape
    w, h = domain.size if size is None else (float(size[0]), float(size[1]))
    stretch = (w_px / h_px) / (w / h)
    factor = max(stretch, 1.0 / stretch)
    what = f"{_KEY}.size {[w, h]}" if size is not None else f"the domain's box {w:.4g} × {h:.4g}"
    if factor > _ASPECT_ERROR:
        raise InputError(f"image {str(path)!r} ({w_px} × {h_px} pixels) and {what} differ in aspect "
                         f"ratio by a factor {factor:.3g} (at most {_ASPECT_ERROR:g}): set {_KEY}.size "
                         f"to the physical [w, h] the picture spans, or {_KEY}.crop to the part "
                         f"that shows the domain")
    if factor > _ASPECT_WARNING:
        warnings.append(f"image {str(path)!r} ({w_px} × {h_px} pixels) is stretched by a factor "
                        f"{factor:.3g} to fit {what}; set {_KEY}.size or {_KEY}.crop if that is not meant")
    cx, cy = domain.center
    return _Frame(origin=(cx - w / 2, cy - h / 2), pixel=(w / w_px, h / h_px), shape=(h_px, w_px))


def _mask_frame(path, *, full_shape, crop, frame: _Frame) -> tuple[_Frame, np.ndarray]:
    """The mask image and where it lies: over the whole (uncropped) picture, or over the cropped
    one when it has exactly the cropped picture's pixel size. Returns (frame, (H, W) grey)."""
    mask = read_grey(path)[::-1]
    (x0, y0), (px, py) = frame.origin, frame.pixel
    if crop is not None and mask.shape == frame.shape and mask.shape != tuple(full_shape):
        return frame, mask
    h0, w0 = full_shape
    left, top, right, bottom = crop if crop is not None else (0, 0, w0, h0)
    origin = (x0 - left * px, y0 - (h0 - bottom) * py)  # the uncropped picture's lower-left corner
    pixel = (w0 * px / mask.shape[1], h0 * py / mask.shape[0])
    return _Frame(origin=origin, pixel=pixel, shape=mask.shape), mask


def _inside(domain: Domain, points: np.ndarray) -> np.ndarray:
    """points: (N, 2) numpy. Returns (N,) bool, domain.inside evaluated in chunks."""
    import torch

    out = np.empty(len(points), dtype=bool)
    for k in range(0, len(points), _CHUNK):
        x = torch.as_tensor(points[k : k + _CHUNK], dtype=torch.float64)
        out[k : k + _CHUNK] = domain.inside(x).numpy()
    return out


# ------------------------------------------------------------------------------ cracks


def _threshold(values: np.ndarray, spec: config.Observation, path, warnings: list[str]) -> tuple[float, str]:
    """values: (N,) grey levels of the material pixels. Returns (threshold, 'dark' | 'light')."""
    from skimage.filters import threshold_otsu

    lo, hi = float(values.min()), float(values.max())
    if hi - lo < _UNIFORM:
        raise InputError(f"image {str(path)!r} is uniform (grey {lo:.3g}) over the material: "
                         f"no cracks to read; check the file and {_KEY}.crop / {_KEY}.mask")
    threshold = threshold_otsu(values) if spec.threshold is None else float(spec.threshold)
    dark = values <= threshold
    dark_share = float(dark.mean())
    if spec.threshold is None and dark.any() and (~dark).any():
        contrast = float(values[~dark].mean() - values[dark].mean())
        if contrast < _LOW_CONTRAST:
            warnings.append(f"image {str(path)!r}: faint picture, cracks and intact layer differ by "
                            f"{contrast:.2g} in grey level; check {_KEY}.threshold")
    if spec.cracks != "auto":
        share = dark_share if spec.cracks == "dark" else 1.0 - dark_share
        if share > 0.5:
            warnings.append(f"image {str(path)!r}: {100 * share:.0f}% of the material reads as "
                            f"{spec.cracks} cracks; check {_KEY}.cracks and {_KEY}.threshold")
        return float(threshold), spec.cracks
    cracks = "dark" if dark_share <= 0.5 else "light"
    minority = min(dark_share, 1.0 - dark_share)
    if minority > _SHAKY_MINORITY:
        warnings.append(f"image {str(path)!r}: {_KEY}.cracks = auto took the {cracks} side "
                        f"({100 * minority:.0f}% of the pixels) as cracks, a shaky guess; "
                        f"set {_KEY}.cracks to dark or light")
    return float(threshold), cracks


def _shrink(path, spec: config.Observation, *, domain: Domain, grid: Grid, s: float, width: float) -> int:
    """The integer factor by which a big photo can be reduced on reading and still resolve
    s/4, half the grid spacing and (ridge) a sixth of the crack width. 1 with a crop."""
    if spec.crop is not None:
        return 1
    w_px, h_px = picture_size(path)
    w, h = domain.size if spec.size is None else spec.size
    finest = min(0.25 * s, 0.5 * min(grid.spacing), width / 6.0 if spec.method == "ridge" else math.inf)
    return max(1, int(finest / max(w / w_px, h / h_px)))


def _centre_lines(crack_pixels: np.ndarray, *, pixel, min_length: float, prune: float = 0.0,
                  gaps: float = 0.0, where=None) -> np.ndarray:
    """crack_pixels: (H, W) bool. Returns (H, W) bool: the centre lines (Lee's thinning), spurs
    shorter than `prune` pixels removed and free ends within `gaps` pixels joined (inside
    `where`), of the 8-connected crack pieces whose centre line is at least min_length long
    (physical)."""
    from skimage.morphology import skeletonize

    skeleton = np.asarray(skeletonize(crack_pixels, method="lee"), dtype=bool)
    if prune > 0 or gaps > 0:
        skeleton = ridges.close_gaps(ridges.prune_spurs(skeleton, max_length=prune), max_gap=gaps, where=where)
        return ridges.drop_short_pieces(skeleton, min_length=min_length,
                                        length_of=lambda piece: length_of_skeleton(piece, pixel))
    if min_length <= 0:
        return skeleton
    labels, n = ndimage.label(crack_pixels, structure=np.ones((3, 3), bool))
    keep = np.zeros(n + 1, dtype=bool)
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        piece = skeleton[box] & (labels[box] == k)
        keep[k] = piece.any() and length_of_skeleton(piece, pixel) >= min_length
    return skeleton & keep[labels]


def _polyline_points(centre_lines: np.ndarray, frame: _Frame) -> np.ndarray:
    """(M, 2) physical points along the centre lines: the pixel centres and the midpoints of
    the links between 8-neighbours, so a diagonal line has no gaps wider than half a pixel."""
    jj, ii = np.nonzero(centre_lines)
    pieces = [np.column_stack([ii + 0.5, jj + 0.5])]
    pad = np.pad(centre_lines, 1)
    h, w = centre_lines.shape
    for dj, di in ((0, 1), (1, 0), (1, 1), (1, -1)):
        linked = centre_lines & pad[1 + dj : 1 + dj + h, 1 + di : 1 + di + w]
        lj, li = np.nonzero(linked)
        pieces.append(np.column_stack([li + 0.5 + di / 2, lj + 0.5 + dj / 2]))
    ij = np.concatenate(pieces)
    return np.asarray(frame.origin) + ij * np.asarray(frame.pixel)


def _far(grid: Grid, frame: _Frame, s: float) -> float:
    return max(_FAR * s, 4.0 * max(*grid.spacing, *frame.pixel))


def _distance(lines: np.ndarray, points: np.ndarray, *, far: float) -> np.ndarray:
    """(N,) distance from each point to the nearest of `lines` (M, 2); inf beyond `far`."""
    d, _ = cKDTree(lines).query(points, distance_upper_bound=far)
    return d


def _smoothed(grey: np.ndarray, frame: _Frame, grid: Grid, points: np.ndarray) -> np.ndarray:
    """The picture sampled at the grid's points (N, 2), low-passed first where the grid is
    coarser than the pixels so that thin cracks do not alias away. Returns (N,)."""
    sigma = [max(0.0, (h / p - 1.0) / 2.0) for h, p in zip(grid.spacing[::-1], frame.pixel[::-1])]
    if any(sg > 0 for sg in sigma):
        grey = ndimage.gaussian_filter(grey, sigma=sigma, mode="nearest")
    return frame.sample(grey, points)
