"""Junctions of a crack skeleton: where centre lines meet, the angles between their arms and
their kind (T, Y, X).

Grid convention as in analysis: a skeleton is a bool (ny, nx) array, row j at y = y0 + j·hy;
``spacing`` is (hx, hy), ``origin`` (x0, y0). Pure numpy/scipy: nothing else from vefrac.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

# Skeletons of crossing bands often fork into two branch points about a band width apart; they
# merge into one junction when closer than this fraction of arm_length: 2 ln 2 / 10, one band
# width (2 s ln 2 at φ = 0.5) for the usual arm_length of 10 s. Measured on two photos of mud,
# the T and Y counts stay within 9 % (15 % for Y on one) from 0.75 to 1.5 band widths and X
# stays at 3-6 % of the junctions; the former default, 5 s, merged neighbouring T and Y junctions
# into false X's (33 and 60 instead of 5 and 8). See docs/photos.md, "Junctions".
DEFAULT_MERGE_FRACTION = 0.2 * math.log(2.0)
# An arm that ends before reaching this fraction of arm_length is a skeleton spur.
_SPUR_FRACTION = 0.5
_NEIGHBOURS = [(dj, di) for dj in (-1, 0, 1) for di in (-1, 0, 1) if (dj, di) != (0, 0)]


@dataclass(frozen=True)
class Junctions:
    """Branch points of the crack skeleton.

    points: (k, 2) physical (x, y). angles: k arrays, the angles in degrees between angularly
    adjacent arms, sorted (T ≈ [90, 90, 180], Y ≈ [120, 120, 120], X ≈ [90, 90, 90, 90]); each
    sums to 360. kinds: k strings, 'T' or 'Y' for three arms ('T' when the largest angle is
    within 30° of 180°), 'X' for four or more.
    """

    points: np.ndarray
    angles: list[np.ndarray]
    kinds: list[str]

    @property
    def count(self) -> int:
        return len(self.kinds)

    def all_angles(self) -> np.ndarray:
        """(m,) every angle of every junction, in degrees (for a histogram)."""
        return np.concatenate(self.angles) if self.angles else np.zeros(0)


def _arm_directions(skel, centre_ij, r_core, arm_length, hx, hy) -> list[np.ndarray]:
    """Physical direction vectors of the arms leaving a junction (spurs dropped).

    Arms are the skeleton pieces leaving a disk of radius r_core around the junction; they are
    followed along the skeleton (multi-source Dijkstra, each pixel owned by the nearest arm) up
    to a distance arm_length from the centre; an arm's direction is the line fitted through its
    outer half, pointing away from the junction.
    """
    cj, ci = centre_ij
    ny, nx = skel.shape
    reach_j = int(math.ceil((arm_length + r_core) / hy)) + 2
    reach_i = int(math.ceil((arm_length + r_core) / hx)) + 2
    j0, j1 = max(0, int(cj) - reach_j), min(ny, int(cj) + reach_j + 2)
    i0, i1 = max(0, int(ci) - reach_i), min(nx, int(ci) + reach_i + 2)
    win = skel[j0:j1, i0:i1]
    jj, ii = np.mgrid[j0:j1, i0:i1]
    dist = np.hypot((ii - ci) * hx, (jj - cj) * hy)
    core = win & (dist <= r_core)
    outer = win & ~core
    seeds = outer & ndimage.binary_dilation(core, structure=np.ones((3, 3), bool))
    seed_labels, n_arms = ndimage.label(seeds, structure=np.ones((3, 3), bool))
    if n_arms < 3:
        return []
    best = np.full(win.shape, np.inf)
    owner = np.zeros(win.shape, dtype=np.int64)
    heap = []
    for j, i in zip(*np.nonzero(seeds)):
        best[j, i] = dist[j, i]
        owner[j, i] = seed_labels[j, i]
        heap.append((dist[j, i], j, i))
    heapq.heapify(heap)
    steps = [(dj, di, math.hypot(dj * hy, di * hx)) for dj, di in _NEIGHBOURS]
    while heap:
        d, j, i = heapq.heappop(heap)
        if d > best[j, i]:
            continue
        for dj, di, w in steps:
            jn, i_n = j + dj, i + di
            if not (0 <= jn < win.shape[0] and 0 <= i_n < win.shape[1]) or not outer[jn, i_n]:
                continue
            nd = d + w
            if nd <= arm_length and nd < best[jn, i_n]:
                best[jn, i_n] = nd
                owner[jn, i_n] = owner[j, i]
                heapq.heappush(heap, (nd, jn, i_n))
    directions = []
    for arm in range(1, n_arms + 1):
        mine = owner == arm
        reach = best[mine].max()
        if reach < _SPUR_FRACTION * arm_length:
            continue
        # Fit the outer half of the arm: the skeleton bends within about a band width of
        # the junction, and the junction's centre itself is uncertain by a pixel or two.
        outer_half = mine & (best >= 0.5 * reach)
        xy = np.column_stack([(ii[outer_half] - ci) * hx, (jj[outer_half] - cj) * hy])
        mean = xy.mean(axis=0)
        if len(xy) >= 2:
            direction = np.linalg.svd(xy - mean, full_matrices=False)[2][0]
            direction = direction if direction @ mean >= 0 else -direction
        else:
            direction = mean
        directions.append(direction)
    return directions


def skeleton_junctions(skel, *, spacing, origin=(0.0, 0.0), arm_length, merge_distance=None) -> Junctions:
    """`junctions` of a given one-pixel skeleton, bool (ny, nx) (see there for the arguments)."""
    if merge_distance is None:
        merge_distance = DEFAULT_MERGE_FRACTION * arm_length
    hx, hy = spacing
    neighbours = ndimage.convolve(skel.astype(np.int32), np.ones((3, 3), np.int32), mode="constant")
    jj, ii = np.nonzero(skel & (neighbours - 1 >= 3))
    empty = Junctions(points=np.zeros((0, 2)), angles=[], kinds=[])
    if jj.size == 0:
        return empty
    # Candidates include staircase corners of a plain line; the arm count below rejects them.
    xy = np.column_stack([ii * hx, jj * hy])
    pairs = cKDTree(xy).query_pairs(merge_distance, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(xy),) * 2)
    n_clusters, cluster = connected_components(graph, directed=False)
    points, angles, kinds = [], [], []
    for c in range(n_clusters):
        members = xy[cluster == c]
        centre = members.mean(axis=0)
        r_core = np.hypot(*(members - centre).T).max() + 1.5 * max(hx, hy)
        arms = _arm_directions(skel, (centre[1] / hy, centre[0] / hx), r_core, arm_length, hx, hy)
        if len(arms) < 3:
            continue
        theta = np.sort([math.atan2(v[1], v[0]) for v in arms])
        gaps = np.degrees(np.diff(np.append(theta, theta[0] + 2 * math.pi)))
        gaps = np.sort(gaps)
        if len(arms) >= 4:
            kind = "X"
        else:
            kind = "T" if abs(gaps[-1] - 180.0) <= 30.0 else "Y"
        points.append(centre + np.asarray(origin, dtype=float))
        angles.append(gaps)
        kinds.append(kind)
    if not kinds:
        return empty
    return Junctions(points=np.array(points), angles=angles, kinds=kinds)
