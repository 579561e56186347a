"""Where a staggered iteration still has work to do: the nodes near those whose damage moved.

Once a load step's cracks have formed, most of its staggered iterations move φ at a few hundred
nodes, the tips of the cracks still running; the rest of the layer is settled. A crack tip's
stress field reaches about one elastic length ℓe = sqrt((λ + 2μ)/η) into a layer bonded to its
substrate, so the iterations that follow a φ-step can update φ and u on the nodes within
fem.local_radius · ℓe of the moved ones, with every other node held (`Staggered.solve_step`).

Measured on square-mud's FEM (docs/irreversibility-and-fem-solvers.md, local iterations): the
nodes within one ℓe of those that moved by more than fem.tolerance are on average 23 % of the
layer at domain/s = 50 and 15 % at 100, so the share of the layer an iteration touches falls as
the layer grows.

This module only finds the region; the local φ- and u-steps are the staggered scheme's own, on
the region's unknowns (vefrac/fem.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .fem_mesh import QuadMesh

MAX_SHARE = 0.5  # a region holding more of the layer's nodes than this: the iteration stays global


@dataclass
class Local:
    """The unknowns of a local iteration: dofs (n_dofs,) bool, the region's nodes; elements, the
    indices of the elements with a corner among them (all that a region node's equations see);
    udofs (2 n_dofs,) bool, the displacement dofs of the region's nodes."""

    dofs: np.ndarray
    elements: np.ndarray
    udofs: np.ndarray

    @property
    def share(self) -> float:
        return float(self.dofs.mean())


class Regions:
    """Finds the dofs within `radius` of a set of dofs on a QuadMesh (periodic axes wrap)."""

    def __init__(self, mesh: QuadMesh, *, radius: float, periodic: tuple[bool, bool] = (False, False)):
        self.mesh, self.radius = mesh, radius
        ny, nx = mesh.shape
        self.grid = (ny + 1, nx + 1)
        self.sampling = (mesh.spacing[1], mesh.spacing[0])  # (y, x) grid rows are y
        # the padding, in nodes, a distance of `radius` needs along each axis
        self.pad = tuple(math.ceil(radius / h) + 1 for h in self.sampling)
        self.periodic = (bool(periodic[1]), bool(periodic[0]))  # as (rows, columns)

    def around(self, moved: np.ndarray) -> Local | None:
        """The region within radius of the dofs where `moved` (n_dofs,) is True; None when nothing
        moved or the region would hold more than MAX_SHARE of the dofs."""
        m = self.mesh
        on = m.nodal(moved.astype(float)).reshape(self.grid) > 0.5
        if not on.any():
            return None
        near = self._within(on)
        dofs = m.dofs(near.reshape(-1).astype(float)) > 0.5
        if dofs.mean() > MAX_SHARE:
            return None
        return Local(dofs=dofs, elements=np.flatnonzero(dofs[m.elements].any(1)), udofs=np.repeat(dofs, 2))

    def _within(self, on: np.ndarray) -> np.ndarray:
        """Grid nodes within radius of a True node of `on` (a Euclidean distance transform, on the
        bounding box of the True nodes padded by the radius; a periodic axis: on the whole axis,
        wrapped)."""
        out = np.zeros_like(on)
        box, pads = [], []
        for axis in (0, 1):
            if self.periodic[axis]:
                box.append(slice(0, on.shape[axis] - 1))  # the last line repeats the first
                pads.append(self.pad[axis])
            else:
                hit = np.flatnonzero(on.any(1 - axis))
                box.append(slice(max(0, hit[0] - self.pad[axis]), min(on.shape[axis], hit[-1] + 1 + self.pad[axis])))
                pads.append(0)
        part = np.pad(on[tuple(box)], [(p, p) for p in pads], mode="wrap")
        dist = ndimage.distance_transform_edt(~part, sampling=self.sampling)
        near = (dist <= self.radius)[pads[0]:part.shape[0] - pads[0], pads[1]:part.shape[1] - pads[1]]
        out[tuple(box)] = near
        for axis in (0, 1):  # a periodic axis's last line is its first
            if self.periodic[axis]:
                last = [slice(None), slice(None)]
                first = [slice(None), slice(None)]
                last[axis], first[axis] = -1, 0
                out[tuple(last)] = out[tuple(first)]
        return out
