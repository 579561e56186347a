"""Statistics of a crack pattern, the same for a photograph and for a simulation.

Input is a crack field φ on a regular grid (a run's φ, or the AT2 profile exp(−d/s) that
`vefrac.observe` builds from a photo) with the grid conventions of `vefrac.analysis`: (ny, nx)
arrays, row 0 at the smallest y, spacing (hx, hy), origin (x0, y0), mask = the material. From it:

- cracks: φ > threshold (0.5); their centre lines (`analysis.crack_skeleton`) and length L;
  crack length per unit area L/A and the mean crack spacing 2A/L (a network of squares of side a
  has L/A = 2/a, so 2A/L = a), and the mean intercepts: the material length along grid rows
  (columns) divided by the number of cracks a row (column) crosses (runs of crack longer than
  three band widths lie along a crack, not across it, and are left out);
- cells: 4-connected regions between cracks (`analysis.fragments`), their areas, and which touch
  the edge of the material (cut by the frame, so their areas are lower bounds);
- junctions: `analysis.skeleton_junctions`, T (one pair of arms near 180°), Y, X (≥ 4 arms), and
  the angles between adjacent arms; free ends (centre-line pixels with one neighbour, farther than
  2 s from the material's edge: cracks that end in a cell rather than leave the frame);
- orientation: at each centre-line pixel away from junctions, the direction of the centre line
  (second moments of the centre-line pixels within `arm_length`/2), its distribution over
  [0°, 180°) (0° along x) and the nematic order S = |⟨exp(2iθ)⟩| (0 isotropic, 1 all parallel)
  with its director.

No torch; nothing from vefrac but analysis and ridges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import analysis, pattern_widths, ridges

# Orientation histogram: bins of this many degrees over [0, 180).
_ORIENTATION_BIN = 10.0


@dataclass(frozen=True)
class Pattern:
    """A crack pattern's pieces (every array (ny, nx)) and its statistics (plain JSON numbers).

    skeleton: bool centre lines. cells: `analysis.Fragments` (labels 1..count). edge_cells: bool
    (count,), True for cells touching the material's edge. junctions: `analysis.Junctions`.
    orientation: degrees in [0, 180) on centre-line pixels away from junctions, NaN elsewhere.
    statistics: see `crack_pattern`. classes: int8, `pattern_widths.PRIMARY` / `SECONDARY` on the
    centre lines (None when the crack widths are not known, as for a run).
    """

    skeleton: np.ndarray
    cells: analysis.Fragments
    edge_cells: np.ndarray
    junctions: analysis.Junctions
    orientation: np.ndarray
    statistics: dict
    classes: np.ndarray | None = None


def orientation_field(skel: np.ndarray, *, spacing, radius: float, exclude=None) -> np.ndarray:
    """Direction of the centre lines at each skeleton pixel, degrees in [0, 180) (0 along +x,
    90 along +y), from the second moments of the skeleton pixels within `radius` (physical).
    exclude: (k, 2) physical points (relative to the grid origin) near which (within radius) the
    direction is left undefined: junctions mix several directions. Returns (ny, nx), NaN off it."""
    hx, hy = spacing
    rj, ri = max(1, int(radius / hy)), max(1, int(radius / hx))
    dy, dx = np.mgrid[-rj : rj + 1, -ri : ri + 1]
    dx, dy = dx * hx, dy * hy
    disk = (dx**2 + dy**2) <= radius**2
    img = skel.astype(np.float64)
    sxx = ndimage.correlate(img, np.where(disk, dx * dx, 0.0), mode="constant")
    syy = ndimage.correlate(img, np.where(disk, dy * dy, 0.0), mode="constant")
    sxy = ndimage.correlate(img, np.where(disk, dx * dy, 0.0), mode="constant")
    theta = np.degrees(0.5 * np.arctan2(2.0 * sxy, sxx - syy)) % 180.0
    out = np.where(skel & ((sxx + syy) > 0), theta, np.nan)
    if exclude is not None and len(exclude):
        near = np.zeros(skel.shape, bool)
        for x, y in np.asarray(exclude):
            j, i = int(round(y / hy)), int(round(x / hx))
            near[max(0, j - rj) : j + rj + 1, max(0, i - ri) : i + ri + 1] = True
        out[near] = np.nan
    return out


def nematic_order(theta_degrees: np.ndarray) -> tuple[float, float]:
    """(S, director): S = |⟨exp(2iθ)⟩| over the finite angles, in [0, 1]; director in [0, 180)
    degrees (0.0 and 0.0 when there is no angle)."""
    t = np.radians(np.asarray(theta_degrees, float))
    t = t[np.isfinite(t)]
    if t.size == 0:
        return 0.0, 0.0
    z = np.exp(2j * t).mean()
    return float(abs(z)), float(np.degrees(0.5 * np.angle(z)) % 180.0)


def _intercept(cracks: np.ndarray, mask: np.ndarray, *, axis: int, h: float, longest: float) -> float | None:
    """Mean intercept along rows (axis=1) or columns (axis=0): the material length walked divided
    by the number of crack bands crossed. A run of crack longer than `longest` runs along a crack
    rather than across it: neither a crossing nor walked length. None when nothing is crossed."""
    inside = np.moveaxis(cracks & mask, axis, -1)
    walked = np.moveaxis(mask, axis, -1).sum() * h
    padded = np.pad(inside, [(0, 0), (1, 1)]).astype(np.int8)
    edges = np.diff(padded, axis=-1)
    starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
    lengths = (ends[1] - starts[1]) * h  # both in row-major order: the k-th start pairs with the k-th end
    along = lengths > longest
    crossings = int(np.count_nonzero(~along))
    walked -= float(lengths[along].sum())
    return float(walked / crossings) if crossings else None


def _edge_cells(labels: np.ndarray, mask: np.ndarray, count: int) -> np.ndarray:
    """(count,) bool: cells with a pixel on the material's edge or the grid's border."""
    edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
    touching = np.unique(labels[edge & (labels > 0)])
    out = np.zeros(count + 1, bool)
    out[touching] = True
    return out[1:]


def _summary(values: np.ndarray) -> dict:
    v = np.asarray(values, float)
    if v.size == 0:
        return {"count": 0, "mean": 0.0, "median": 0.0, "cv": 0.0, "min": 0.0, "max": 0.0}
    mean = float(v.mean())
    return {"count": int(v.size), "mean": mean, "median": float(np.median(v)),
            "cv": float(v.std() / mean) if mean else 0.0, "min": float(v.min()), "max": float(v.max())}


def crack_pattern(phi, *, mask=None, spacing, origin=(0.0, 0.0), s, threshold=0.5, arm_length=None,
                  min_cell_area=None, width=None, primary_width="auto") -> Pattern:
    """The pattern of φ (ny, nx): its pieces and statistics (see the module docstring).

    s: the phase-field length (crack band width ~1.4 s at φ = 0.5). arm_length: how far along each
    arm a junction's directions are read (default 10 s, as `analysis.crack_statistics`).
    min_cell_area: smaller cells are specks (default (4 s)²). width: (ny, nx) physical width of
    the crack seen at each point (a picture's `observe.Observed.width`; None: not known, no
    classes). primary_width: 'auto' or the physical width from which cracks are primary
    (`pattern_widths.crack_classes`); statistics['crack_classes'] is None without a width.
    """
    phi = np.asarray(phi, float)
    mask = np.ones(phi.shape, bool) if mask is None else np.asarray(mask, bool)
    hx, hy = spacing
    arm_length = 10.0 * s if arm_length is None else arm_length
    min_cell_area = (4.0 * s) ** 2 if min_cell_area is None else min_cell_area
    cracks = analysis.crack_mask(phi, mask=mask, threshold=threshold)
    skel = analysis.crack_skeleton(phi, mask=mask, threshold=threshold)
    cells = analysis.fragments(phi, mask=mask, spacing=spacing, threshold=threshold, min_area=min_cell_area)
    edge = _edge_cells(cells.labels, mask, cells.count)
    junc = analysis.skeleton_junctions(skel, spacing=spacing, origin=(0.0, 0.0), arm_length=arm_length)
    theta = orientation_field(skel, spacing=spacing, radius=0.5 * arm_length, exclude=junc.points)
    shifted = analysis.Junctions(points=junc.points + np.asarray(origin, float) if junc.count else junc.points,
                                 angles=junc.angles, kinds=junc.kinds)

    area = float(np.count_nonzero(mask) * hx * hy)
    length = analysis.length_of_skeleton(skel, spacing)
    order, director = nematic_order(theta[np.isfinite(theta)])
    bins = np.arange(0.0, 180.0 + _ORIENTATION_BIN / 2, _ORIENTATION_BIN)
    hist, _ = np.histogram(theta[np.isfinite(theta)], bins=bins)
    # a band crossed at 20° from its direction is ~3 widths long along the line: longer runs lie along it
    band = 2.0 * s * math.log(1.0 / threshold) if 0 < threshold < 1 else 2.0 * s
    intercept_x = _intercept(cracks, mask, axis=1, h=hx, longest=3.0 * band + 2 * hx)
    intercept_y = _intercept(cracks, mask, axis=0, h=hy, longest=3.0 * band + 2 * hy)
    kinds = {k: junc.kinds.count(k) for k in ("T", "Y", "X")}
    classes = None if width is None else pattern_widths.crack_classes(skel, np.asarray(width, float), spacing=spacing,
                                                                       primary_width=primary_width)
    # a crack leaving the frame ends there: only free ends inside (beyond 2 s of the edge) count
    inner = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=(hy, hx))[1:-1, 1:-1] > 2.0 * s
    free_ends = int(np.count_nonzero(skel & (ridges.degree(skel) == 1) & inner))
    stats = {
        "area": area,
        "crack_length": length,
        "crack_length_per_area": length / area if area else 0.0,
        "crack_spacing": 2.0 * area / length if length else None,
        "intercept_x": intercept_x,
        "intercept_y": intercept_y,
        "cracked_fraction": float(np.count_nonzero(cracks) / max(1, np.count_nonzero(mask))),
        "cells": cells.count,
        "interior_cells": int(np.count_nonzero(~edge)),
        "cell_area": _summary(cells.areas),
        "interior_cell_area": _summary(cells.areas[~edge]),
        "junctions": junc.count,
        "t_junctions": kinds["T"], "y_junctions": kinds["Y"], "x_junctions": kinds["X"],
        "t_junction_fraction": kinds["T"] / (kinds["T"] + kinds["Y"]) if kinds["T"] + kinds["Y"] else 0.0,
        "junction_angle": _summary(junc.all_angles()),
        "free_ends": free_ends,
        "nematic_order": order,
        "director_degrees": director,
        "orientation_histogram": {"bin_degrees": _ORIENTATION_BIN, "counts": hist.tolist()},
        "cell_areas": cells.areas.tolist(),
        "junction_angles": [a.tolist() for a in junc.angles],
        "junction_kinds": list(junc.kinds),
        "crack_classes": None if classes is None else classes.statistics,
        "s": float(s), "threshold": float(threshold), "arm_length": float(arm_length),
        "min_cell_area": float(min_cell_area),
    }
    return Pattern(skeleton=skel, cells=cells, edge_cells=edge, junctions=shifted, orientation=theta,
                   statistics=stats, classes=None if classes is None else classes.classes)


SCALARS = ("crack_length_per_area", "crack_spacing", "intercept_x", "intercept_y", "cells", "interior_cells",
           "junctions", "t_junction_fraction", "free_ends", "nematic_order", "cracked_fraction")


SUMMARY_KEYS = SCALARS + ("interior_cell_area_mean", "interior_cell_area_cv", "junction_angle_mean")


def summary_rows(stats: dict) -> list[tuple[str, float | int | None]]:
    """(name, value) of the headline statistics, for a table: SCALARS, then the mean and cv of the
    interior cells' areas and the mean junction angle."""
    rows = [(k, stats.get(k)) for k in SCALARS]
    rows += [("interior_cell_area_mean", stats["interior_cell_area"]["mean"]),
             ("interior_cell_area_cv", stats["interior_cell_area"]["cv"]),
             ("junction_angle_mean", stats["junction_angle"]["mean"])]
    return rows
