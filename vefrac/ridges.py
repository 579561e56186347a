"""Crack centre lines from photographs of real layers: ridge filtering, hysteresis, spur pruning, gap closing.

A photo of drying mud is not a drawing: the light falls off across the frame, the clods have grain
and shadows, and cracks come in two generations, wide primary ones and narrow secondary ones. A
global threshold of grey levels picks up shadows and grain and gives centre lines with hairy spurs.
Here, in pixel units of the picture (row 0 anywhere; nothing is physical):

1. `flatten`: grey / its large-scale background (a Gaussian over several crack widths, normalised
   over the material), so that a crack in the shade is as dark, relatively, as one in the sun.
2. `ridge_strength`: Sato's tubeness (Hessian eigenvalues over scales around the crack width,
   scikit-image), opened by a disk of a quarter width: the white top-hat of the response, the
   texture finer than a crack, is taken away.
3. `hysteresis`: pixels above `high`, and the pixels above `low` connected to them.
4. `prune_spurs`: skeleton branches that end in nothing and are shorter than a length are removed
   (thinning a band with a ragged edge grows such whiskers).
5. `close_gaps`: a free end is joined by a straight segment to the nearest crack ahead of it within a
   distance, so cells close where a crack is briefly faint or hidden under a flake.

Pure numpy / scipy / scikit-image: nothing else from vefrac.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from scipy import ndimage

_OFFSETS = [(dj, di) for dj in (-1, 0, 1) for di in (-1, 0, 1) if (dj, di) != (0, 0)]
# A gap is closed only towards a crack ahead of the free end: within this angle of its direction.
_AHEAD_DEGREES = 60.0
# How many pixels back from a free end its direction is read.
_DIRECTION_PIXELS = 6


def flatten(grey: np.ndarray, *, scale: float, weight: np.ndarray | None = None) -> np.ndarray:
    """grey: (H, W) in [0, 1]. scale: Gaussian σ of the background in pixels. weight: (H, W) bool,
    where the background is measured (None: everywhere). Returns (H, W) grey divided by the
    background and rescaled by its median, so an evenly lit picture is nearly unchanged."""
    w = np.ones(grey.shape, np.float32) if weight is None else weight.astype(np.float32)
    background = (ndimage.gaussian_filter(grey * w, scale, mode="nearest")
                  / np.maximum(ndimage.gaussian_filter(w, scale, mode="nearest"), 1e-6))
    background = np.maximum(background, 1e-3)
    level = float(np.median(background[w > 0])) if (w > 0).any() else 1.0
    return np.clip(grey / background * level, 0.0, 1.0).astype(grey.dtype, copy=False)


def ridge_strength(grey: np.ndarray, *, width: float, dark: bool = True) -> np.ndarray:
    """Sato tubeness of lines about `width` pixels wide, cleaned of finer texture.

    grey: (H, W). width: crack width in pixels (≥ 1). dark: dark cracks on a light layer.
    Returns (H, W) float32 ≥ 0, in grey-level units (the depth of a line of that width).
    """
    from skimage.filters import sato
    from skimage.morphology import disk, opening

    # a bar of width w answers most at σ ≈ w / (2√3); scales from half to twice that
    best = max(0.5, width / (2.0 * math.sqrt(3.0)))
    sigmas = [max(0.5, best / 2.0), best, 2.0 * best]
    strength = sato(np.asarray(grey, np.float32), sigmas=sigmas, black_ridges=dark, mode="reflect")
    radius = int(round(width / 4.0))
    if radius >= 1:  # the white top-hat of the response is texture finer than a crack
        strength = opening(strength, disk(radius))
    return np.asarray(strength, np.float32)


def hysteresis(strength: np.ndarray, *, low: float, high: float, where: np.ndarray) -> np.ndarray:
    """Bool (H, W): pixels of `where` above `high`, and those above `low` 8-connected to them."""
    from skimage.filters import apply_hysteresis_threshold

    values = np.where(where, strength, 0.0)
    return np.asarray(apply_hysteresis_threshold(values, low, high), dtype=bool) & where


def _links(skel: np.ndarray) -> list[tuple[tuple[int, int], np.ndarray]]:
    """(offset, bool (H, W)) for each of the 8 neighbours: linked skeleton pixel pairs. A diagonal
    pair is not linked where an axial neighbour already joins them (no triangles)."""
    h, w = skel.shape
    pad = np.pad(skel, 1)

    def at(dj, di):
        return pad[1 + dj : 1 + dj + h, 1 + di : 1 + di + w]

    out = []
    for dj, di in _OFFSETS:
        link = skel & at(dj, di)
        if dj and di:
            link = link & ~at(dj, 0) & ~at(0, di)
        out.append(((dj, di), link))
    return out


def degree(skel: np.ndarray) -> np.ndarray:
    """(H, W) int: the number of linked neighbours of each skeleton pixel (0 off the skeleton)."""
    return sum(link.astype(np.int32) for _, link in _links(skel))


def _neighbours(skel: np.ndarray, j: int, i: int):
    h, w = skel.shape
    for dj, di in _OFFSETS:
        jn, i_n = j + dj, i + di
        if 0 <= jn < h and 0 <= i_n < w and skel[jn, i_n]:
            if dj and di and (skel[j + dj, i] or skel[j, i + di]):
                continue
            yield jn, i_n


def _branch_from(skel: np.ndarray, deg: np.ndarray, start, max_steps: int):
    """Walk from a free end along pixels of degree 2. Returns (pixels walked, ends_at_junction)."""
    path, prev, here = [start], None, start
    for _ in range(max_steps):
        nxt = [p for p in _neighbours(skel, *here) if p != prev and p not in path[-3:]]
        if len(nxt) != 1:
            return path, False
        prev, here = here, nxt[0]
        if deg[here] >= 3:
            return path, True
        path.append(here)
    return path, False


def prune_spurs(skel: np.ndarray, *, max_length: float, passes: int = 2) -> np.ndarray:
    """Remove branches that end in nothing, are attached to a junction and are shorter than
    max_length pixels (counted along the branch). Branches that are whole pieces are kept.
    skel: (H, W) bool, one pixel wide. Returns a new (H, W) bool skeleton."""
    skel = np.array(skel, dtype=bool)
    steps = int(math.ceil(max_length))
    if steps < 1:
        return skel
    for _ in range(passes):
        deg = degree(skel)
        removed = False
        for j, i in zip(*np.nonzero(skel & (deg == 1))):
            if not skel[j, i]:
                continue
            path, at_junction = _branch_from(skel, deg, (int(j), int(i)), steps)
            if at_junction and len(path) < max_length:
                for p in path:
                    skel[p] = False
                removed = True
        if not removed:
            break
    return skel


def _reached(skel: np.ndarray, start, limit: int, box) -> set:
    """Skeleton pixels within `limit` steps of start along the skeleton, inside box (j0, j1, i0, i1)."""
    j0, j1, i0, i1 = box
    seen, queue = {start}, deque([(start, 0)])
    while queue:
        (j, i), d = queue.popleft()
        if d == limit:
            continue
        for p in _neighbours(skel, j, i):
            if p not in seen and j0 <= p[0] < j1 and i0 <= p[1] < i1:
                seen.add(p)
                queue.append((p, d + 1))
    return seen


def close_gaps(skel: np.ndarray, *, max_gap: float, where: np.ndarray | None = None) -> np.ndarray:
    """Join each free end to the nearest target ahead of it (within 60° of the end's direction)
    at most max_gap pixels away: a skeleton pixel that is not its own branch (not reached along
    the skeleton within 2·max_gap steps), or the edge of `where` (bool (H, W), the material; the
    picture's border is an edge too), so that cracks running out of the frame meet it. The
    joining segment must lie in `where`. Returns a new (H, W) bool skeleton."""
    from skimage.draw import line

    skel = np.array(skel, dtype=bool)
    if max_gap < 1:
        return skel
    where = np.ones(skel.shape, bool) if where is None else np.asarray(where, bool)
    # one pixel of "outside" all round: the picture's border is the material's edge
    inside = np.pad(where, 1)
    original = np.pad(skel, 1)
    out = original.copy()
    target = original | ~inside
    h, w = original.shape
    deg = degree(original)
    r = int(math.ceil(max_gap))
    ahead = math.cos(math.radians(_AHEAD_DEGREES))
    for j, i in zip(*np.nonzero(original & (deg == 1))):
        j, i = int(j), int(i)
        path, _ = _branch_from(original, deg, (j, i), _DIRECTION_PIXELS)
        back = np.subtract((j, i), path[-1], dtype=float)
        if not back.any():
            continue
        direction = back / np.hypot(*back)
        box = (max(0, j - r), min(h, j + r + 1), max(0, i - r), min(w, i + r + 1))
        own = _reached(original, (j, i), 2 * r, box)
        jj, ii = np.nonzero(target[box[0]:box[1], box[2]:box[3]])
        jj, ii = jj + box[0], ii + box[2]
        offset = np.column_stack([jj - j, ii - i]).astype(float)
        dist = np.hypot(offset[:, 0], offset[:, 1])
        ok = (dist <= max_gap) & (dist > 0) & ((offset @ direction) >= ahead * dist)
        ok &= np.fromiter(((a, b) not in own for a, b in zip(jj, ii)), dtype=bool, count=len(jj))
        if not ok.any():
            continue
        k = int(np.argmin(np.where(ok, dist, np.inf)))
        rr, cc = line(j, i, int(jj[k]), int(ii[k]))
        rr, cc = rr[inside[rr, cc]], cc[inside[rr, cc]]  # up to the edge, not beyond
        if not _on_segment_inside(rr, cc):
            continue
        out[rr, cc] = True
    return out[1:-1, 1:-1]


def _on_segment_inside(rr: np.ndarray, cc: np.ndarray) -> bool:
    """True when the pixels kept form an unbroken run (the segment never left the material and came back)."""
    if len(rr) < 2:
        return len(rr) == 1
    return bool(np.all(np.maximum(np.abs(np.diff(rr)), np.abs(np.diff(cc))) <= 1))


def drop_short_pieces(skel: np.ndarray, *, min_length: float, length_of) -> np.ndarray:
    """Keep the 8-connected pieces of a skeleton whose length (length_of(piece) -> float) is at
    least min_length. skel: (H, W) bool. Returns (H, W) bool."""
    if min_length <= 0:
        return skel
    labels, n = ndimage.label(skel, structure=np.ones((3, 3), bool))
    keep = np.zeros(n + 1, dtype=bool)
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        keep[k] = length_of(labels[box] == k) >= min_length
    return skel & keep[labels]


def fill_small_holes(mask: np.ndarray, *, max_pixels: int) -> np.ndarray:
    """Fill holes of at most max_pixels in a bool (H, W) mask (scikit-image renamed the argument in 0.26)."""
    from skimage.morphology import remove_small_holes

    try:
        return remove_small_holes(mask, max_size=max_pixels)
    except TypeError:
        return remove_small_holes(mask, area_threshold=max_pixels + 1)


def smooth_over(grey: np.ndarray, where: np.ndarray, sigma) -> np.ndarray:
    """grey smoothed by a Gaussian normalised over `where` (the background outside a dish must
    not bleed in); unchanged outside `where`."""
    weight = where.astype(grey.dtype)
    return np.where(where, ndimage.gaussian_filter(grey * weight, sigma, mode="nearest")
                    / np.maximum(ndimage.gaussian_filter(weight, sigma, mode="nearest"), 1e-12), grey)


def local_width(mask: np.ndarray, centre_lines: np.ndarray, *, pixel, reach: float, smooth: float = 2.0) -> np.ndarray:
    """Width of the crack band along its centre lines: area over length, locally.

    mask, centre_lines: (H, W) bool, the crack pixels and their one-pixel centre lines. pixel:
    (px, py) physical pixel size. Each pixel of `mask` within `reach` (physical) of a centre line
    counts its area to the nearest centre-line pixel; each centre-line pixel has a length (half
    its links to its neighbours). Both are summed with a Gaussian of `smooth` pixels, and their
    ratio is the width: a straight band of w pixels reads w pixels wide, to a fraction of a
    pixel, along any direction; a stretch of centre line outside `mask` (a faint crack, a
    gap joined) reads narrower. Returns (H, W) float: physical widths on the centre lines, NaN
    elsewhere."""
    px, py = pixel
    if not centre_lines.any():
        return np.full(centre_lines.shape, np.nan)
    d, (jj, ii) = ndimage.distance_transform_edt(~centre_lines, sampling=(py, px), return_indices=True)
    near = mask & (d <= reach)
    area = np.bincount(np.ravel_multi_index((jj[near], ii[near]), mask.shape), minlength=mask.size)
    area = area.reshape(mask.shape) * (px * py)
    length = np.zeros(mask.shape)
    for (dj, di), link in _links(centre_lines):
        length += 0.5 * math.hypot(dj * py, di * px) * link
    length = np.where(centre_lines & (length == 0), math.sqrt(px * py), length)  # a lone pixel
    width = ndimage.gaussian_filter(area, smooth) / np.maximum(ndimage.gaussian_filter(length, smooth), 1e-300)
    return np.where(centre_lines, width, np.nan)


def nearest_values(values: np.ndarray, *, origin, pixel, points: np.ndarray, far: float) -> np.ndarray:
    """values: (H, W) on pixel centres (pixel (j, i) at origin + ((i + ½)·px, (j + ½)·py)), NaN
    where there is none. points: (N, 2) physical. Returns (N,): the value at the nearest pixel
    with a value, NaN where none lies within `far`."""
    from scipy.spatial import cKDTree

    jj, ii = np.nonzero(np.isfinite(values))
    if jj.size == 0:
        return np.full(len(points), np.nan)
    xy = np.asarray(origin, float) + np.column_stack([ii + 0.5, jj + 0.5]) * np.asarray(pixel, float)
    d, k = cKDTree(xy).query(points, distance_upper_bound=far)
    return np.where(np.isfinite(d), values[jj, ii][np.minimum(k, jj.size - 1)], np.nan)
