"""Primary and secondary cracks, told apart by their width.

A drying layer cracks in generations: the first (primary) cracks open widest, the later
(secondary) ones that split the cells between them stay narrow. Here the centre lines are cut
at their branch points into segments (junction to junction, or to a free end or the frame), each
segment gets the median of the local crack width along it (`observe.Observed.width`: the
distance transform of the crack pixels, `ridges.local_width`), and the segments at least
`split_width` wide are primary, the others secondary.

split_width is given (a physical width), or found ('auto'): Otsu's threshold of the segments'
log widths weighted by their length, kept only when the widths really fall into two groups:
Otsu's between-class variance is at least SEPARATION_SHARE of the total (a single Gaussian
gives 2/π ≈ 0.64, two separate peaks near 1) and the wider group's mean width is at least
SEPARATION_RATIO times the narrower's. Otherwise every crack is primary and split_width is None.
A run's φ band is as wide for every crack (≈ 1.4 s); its cracks are not classified (no width).

Pure numpy/scipy/scikit-image; of vefrac only analysis (lengths) and ridges (branch points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import analysis, ridges

SEPARATION_SHARE = 0.7
SEPARATION_RATIO = 1.5
PRIMARY, SECONDARY = 1, 2
_BINS = 64
_EIGHT = np.ones((3, 3), bool)


@dataclass(frozen=True)
class CrackClasses:
    """classes: (ny, nx) int8, PRIMARY or SECONDARY on the centre lines, 0 elsewhere.
    split_width: the width that separates them (None: one class). statistics: plain JSON."""

    classes: np.ndarray
    split_width: float | None
    statistics: dict


def segments(skel: np.ndarray) -> tuple[np.ndarray, int]:
    """Centre lines cut at their branch points: (labels (ny, nx) int, count). The pixels within
    one pixel of a branch point (degree ≥ 3) belong to no segment (label 0)."""
    core = ndimage.binary_dilation(skel & (ridges.degree(skel) >= 3), structure=_EIGHT) & skel
    labels, n = ndimage.label(skel & ~core, structure=_EIGHT)
    return labels, int(n)


def weighted_otsu(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Otsu's split of values (n,) weighted by weights (n,), exactly (every cut between two
    distinct sorted values is tried). Returns (low: (n,) bool, the lower class; the between-class
    share of the weighted variance, in [0, 1])."""
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cw, cm = np.cumsum(w), np.cumsum(w * v)
    total_w, total_m = cw[-1], cm[-1]
    cut = np.nonzero(np.diff(v) > 0)[0]  # low class = order[:k + 1]
    variance = np.average((v - total_m / total_w) ** 2, weights=w)
    if cut.size == 0 or variance <= 0:
        return np.ones(values.shape, bool), 0.0
    w0 = cw[cut]
    w1 = total_w - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = np.nan_to_num((cm[cut] * w1 - (total_m - cm[cut]) * w0) ** 2 / (w0 * w1 * total_w**2))
    k = cut[int(np.argmax(between))]
    low = np.zeros(values.shape, bool)
    low[order[: k + 1]] = True
    return low, float(between.max() / variance)


def _summary(widths: np.ndarray, lengths: np.ndarray) -> dict:
    total = float(lengths.sum())
    return {"segments": int(widths.size), "length": total,
            "mean_width": float(np.average(widths, weights=lengths)) if total > 0 else None}


def crack_classes(skel: np.ndarray, width: np.ndarray, *, spacing, primary_width="auto") -> CrackClasses:
    """Classify the centre lines `skel` (bool (ny, nx)) by the local crack `width` ((ny, nx)
    physical, NaN where unknown). primary_width: a physical width (segments at least that wide
    are primary) or 'auto' (see the module docstring)."""
    labels, n = segments(skel)
    seg_width = np.full(n, np.nan)
    seg_length = np.zeros(n)
    for k, box in enumerate(ndimage.find_objects(labels)):
        piece = labels[box] == k + 1
        values = width[box][piece]
        values = values[np.isfinite(values)]
        if values.size:
            seg_width[k] = float(np.median(values))
        seg_length[k] = analysis.length_of_skeleton(piece, spacing)
    known = np.isfinite(seg_width)
    positive = known & (seg_width > 0)
    share, ratio = 0.0, None
    if primary_width == "auto":
        split = None
        if np.count_nonzero(positive) >= 2 and np.ptp(seg_width[positive]) > 0:
            low, share = weighted_otsu(np.log(seg_width[positive]), np.maximum(seg_length[positive], 1e-12))
            wide = np.zeros(n, bool)
            wide[np.nonzero(positive)[0][~low]] = True
            narrow = known & ~wide
            if wide.any() and narrow.any():
                ratio = float(np.average(seg_width[wide], weights=seg_length[wide] + 1e-30)
                              / max(np.average(seg_width[narrow], weights=seg_length[narrow] + 1e-30), 1e-30))
            if share >= SEPARATION_SHARE and ratio is not None and ratio >= SEPARATION_RATIO:
                # the middle of the gap between the two classes (geometric: widths spread by factors)
                split = math.sqrt(max(seg_width[narrow].max(), 1e-30) * seg_width[wide].min())
    else:
        split = float(primary_width)
    primary = known & (seg_width >= split) if split is not None else known
    secondary = known & ~primary
    seg_class = np.zeros(n + 1, np.int8)
    seg_class[1:][primary] = PRIMARY
    seg_class[1:][secondary] = SECONDARY
    # the branch points take the class of the nearest segment pixel
    if n:
        _, (jj, ii) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
        classes = np.where(skel, seg_class[labels[jj, ii]], 0).astype(np.int8)
    else:
        classes = np.zeros(skel.shape, np.int8)
    p_len = analysis.length_of_skeleton(classes == PRIMARY, spacing)
    s_len = analysis.length_of_skeleton(classes == SECONDARY, spacing)
    stats = {
        "split": "auto" if primary_width == "auto" else "given",
        "split_width": split,
        "separation": share,
        "width_ratio": ratio,
        "primary": _summary(seg_width[primary], seg_length[primary]) | {"length": p_len},
        "secondary": _summary(seg_width[secondary], seg_length[secondary]) | {"length": s_len},
        "primary_length_fraction": p_len / (p_len + s_len) if p_len + s_len > 0 else None,
        "segment_widths": [float(w) for w in seg_width[known]],
        "segment_lengths": [float(v) for v in seg_length[known]],
    }
    return CrackClasses(classes=classes, split_width=split, statistics=stats)
