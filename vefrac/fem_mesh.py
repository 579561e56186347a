"""The Q1 discretisation of the finite-element reference: the structured mesh over the domain's
bounding box, its shape functions and Gauss rule, the sparsity of its matrices, and the nodal
solution (`FemModel`) with solve.FieldModel's `fields(x, t)` interface.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage
import scipy.sparse as sp
import torch
from torch import nn

from . import config
from .errors import InputError
from .geometry import Domain

# 2×2 Gauss rule on the unit square, node order (0,0), (1,0), (1,1), (0,1)
GAUSS_1D = 0.5 + np.array([-0.5, 0.5]) / math.sqrt(3.0)
GAUSS_POINTS = np.array([[a, b] for b in GAUSS_1D for a in GAUSS_1D])  # (4, 2)
CORNERS = np.array([[0, 0], [1, 0], [1, 1], [0, 1]])


def q1_shape(xi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q1 shape functions on the unit square at local points (Q, 2): N (Q, 4), dN/dξ (Q, 4, 2)."""
    x, y = xi[:, 0:1], xi[:, 1:2]
    n = np.hstack([(1 - x) * (1 - y), x * (1 - y), x * y, (1 - x) * y])
    dx = np.hstack([-(1 - y), 1 - y, y, -y])
    dy = np.hstack([-(1 - x), -x, x, 1 - x])
    return n, np.stack([dx, dy], -1)


# ----------------------------------------------------------------------------- mesh


@dataclass(frozen=True)
class QuadMesh:
    """Q1 elements on a (ny, nx)-element grid; the active ones carry the unknowns.

    node_dof: ((ny+1)*(nx+1),) dof of each grid node, −1 off the active part (periodic edges share).
    elements: (E, 4) dofs of the active elements' corners. points: (E, 4, 2) their Gauss points.
    """

    origin: tuple[float, float]
    spacing: tuple[float, float]
    shape: tuple[int, int]
    active: np.ndarray  # (ny, nx) bool
    node_dof: np.ndarray
    elements: np.ndarray
    n_dofs: int
    points: np.ndarray = field(repr=False)

    @property
    def weight(self) -> float:
        """Gauss weight (the same at every point: a uniform grid)."""
        return self.spacing[0] * self.spacing[1] / 4

    def nodal(self, values: np.ndarray) -> np.ndarray:
        """Dof values (n_dofs, ...) -> grid-node values ((ny+1)*(nx+1), ...), 0 off the active part."""
        out = np.zeros((self.node_dof.size, *values.shape[1:]))
        on = self.node_dof >= 0
        out[on] = values[self.node_dof[on]]
        return out

    def dofs(self, nodal: np.ndarray) -> np.ndarray:
        """Grid-node values -> dof values (the inverse of `nodal` on the active part)."""
        out = np.zeros((self.n_dofs, *nodal.shape[1:]))
        on = np.flatnonzero(self.node_dof >= 0)
        out[self.node_dof[on]] = nodal[on]
        return out


def element_size(fem: config.Fem, domain: Domain, *, s: float, fracture: bool) -> float:
    """h = s / points_per_length with fracture, else the longest side / elements_per_length."""
    return s / fem.points_per_length if fracture else domain.length / fem.elements_per_length


def build_mesh(domain: Domain, *, h: float) -> QuadMesh:
    """The structured Q1 mesh of spacing ≈ h (≤ h) over the domain's bounding box."""
    xmin, ymin, xmax, ymax = domain.bounds
    nx = max(1, math.ceil((xmax - xmin) / h - 1e-9))
    ny = max(1, math.ceil((ymax - ymin) / h - 1e-9))
    if nx * ny > 50_000_000:
        raise InputError(f"fem: {nx} x {ny} elements is too many; lower fem.points_per_length")
    hx, hy = (xmax - xmin) / nx, (ymax - ymin) / ny
    jj, ii = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    centres = np.stack([xmin + (ii.ravel() + 0.5) * hx, ymin + (jj.ravel() + 0.5) * hy], 1)
    active = domain.inside(torch.as_tensor(centres)).numpy().reshape(ny, nx)
    if not active.any():
        raise InputError(f"fem: no element centre lies inside the domain at h = {h:.3g}; "
                         f"raise fem.points_per_length (or fem.elements_per_length)")
    # grid node (j, i) -> a key; periodic edges map onto the opposite edge's key
    nj, ni = np.meshgrid(np.arange(ny + 1), np.arange(nx + 1), indexing="ij")
    if domain.periodic[0]:
        ni = np.where(ni == nx, 0, ni)
    if domain.periodic[1]:
        nj = np.where(nj == ny, 0, nj)
    key = (nj * (nx + 1) + ni).ravel()
    ej, ei = np.nonzero(active)
    corner_nodes = (ej[:, None] + CORNERS[:, 1]) * (nx + 1) + ei[:, None] + CORNERS[:, 0]  # (E, 4)
    used, dof_of_used = np.unique(key[corner_nodes], return_inverse=True)
    elements = dof_of_used.reshape(-1, 4)
    node_dof = np.full(key.size, -1)
    on = np.isin(key, used)
    node_dof[on] = np.searchsorted(used, key[on])
    n, _ = q1_shape(GAUSS_POINTS)
    corners = np.stack([xmin + (ei[:, None] + CORNERS[:, 0]) * hx, ymin + (ej[:, None] + CORNERS[:, 1]) * hy], -1)
    points = np.einsum("qa,ead->eqd", n, corners)
    return QuadMesh(origin=(xmin, ymin), spacing=(hx, hy), shape=(ny, nx), active=active, node_dof=node_dof,
                    elements=elements, n_dofs=len(used), points=points)


class SparsityPattern:
    """The CSR sparsity of an element-by-element matrix, so assembly is one bincount."""

    def __init__(self, edofs: np.ndarray, n: int):
        k = edofs.shape[1]
        rows = np.repeat(edofs, k, axis=1).ravel()
        cols = np.tile(edofs, (1, k)).ravel()
        keys, self.slot = np.unique(rows.astype(np.int64) * n + cols, return_inverse=True)
        self.indices = (keys % n).astype(np.int32)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(keys // n, minlength=n))]).astype(np.int32)
        self.n = n

    def assemble(self, element_matrices: np.ndarray, elements: np.ndarray | None = None) -> sp.csr_matrix:
        """(E, k, k) element matrices -> the (n, n) global matrix; with `elements` (indices), the
        matrices of those elements alone, (len(elements), k, k), summed into the same pattern."""
        slot = self.slot if elements is None else self.slot.reshape(-1, element_matrices[0].size)[elements].ravel()
        data = np.bincount(slot, weights=element_matrices.ravel(), minlength=self.indices.size)
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(self.n, self.n))


# ----------------------------------------------------------------------------- the nodal solution


class FemModel(nn.Module):
    """The nodal Q1 solution, with pinn_model.FieldModel's `fields` interface.

    Buffers (so checkpoints carry them): u ((ny+1)(nx+1), 2), phi and phi_prev ((ny+1)(nx+1),)
    on the grid's nodes, 0 off the active part. phi_prev is the lower bound of the current step.
    """

    def __init__(self, mesh: QuadMesh, *, fracture: bool):
        super().__init__()
        self.mesh, self.fracture = mesh, fracture
        n_nodes = mesh.node_dof.size
        self.register_buffer("u", torch.zeros(n_nodes, 2, dtype=torch.float64))
        self.register_buffer("phi", torch.zeros(n_nodes, dtype=torch.float64))
        self.register_buffer("phi_prev", torch.zeros(n_nodes, dtype=torch.float64))
        # each grid element -> the nearest active element (itself when active): where to evaluate
        _, (jn, inn) = scipy.ndimage.distance_transform_edt(~mesh.active, return_indices=True)
        nearest = torch.as_tensor((jn * mesh.shape[1] + inn).ravel())
        self.register_buffer("nearest", nearest, persistent=False)

    def fields(self, x: torch.Tensor, t: torch.Tensor):
        """x: (N, 2), t: (N,) ignored (the current state). Returns u (N, 2), ∇u (N, 2, 2) [∂u_i/∂x_j],
        φ (N,) and ∇φ (N, 2) (None without fracture), in x's dtype.

        Inside the active elements: the Q1 interpolation. Elsewhere: the fields at the nearest point
        of the nearest active element (finite, and φ stays in [0, 1]).
        """
        m = self.mesh
        ny, nx = m.shape
        xd = x.to(torch.float64)
        fi = (xd[:, 0] - m.origin[0]) / m.spacing[0]
        fj = (xd[:, 1] - m.origin[1]) / m.spacing[1]
        i, j = fi.floor().long().clamp(0, nx - 1), fj.floor().long().clamp(0, ny - 1)
        e = self.nearest[j * nx + i]
        i, j = e % nx, e // nx
        a, b = (fi - i).clamp(0, 1), (fj - j).clamp(0, 1)
        n00 = j * (nx + 1) + i
        corners = torch.stack([n00, n00 + 1, n00 + nx + 2, n00 + nx + 1], 1)  # (N, 4)
        shape = torch.stack([(1 - a) * (1 - b), a * (1 - b), a * b, (1 - a) * b], 1)
        dx = torch.stack([-(1 - b), 1 - b, b, -b], 1) / m.spacing[0]
        dy = torch.stack([-(1 - a), -a, a, 1 - a], 1) / m.spacing[1]
        un = self.u[corners]  # (N, 4, 2)
        u = (shape[..., None] * un).sum(1)
        grad_u = torch.stack([(dx[..., None] * un).sum(1), (dy[..., None] * un).sum(1)], -1)
        if not self.fracture:
            return u.to(x.dtype), grad_u.to(x.dtype), None, None
        pn = self.phi[corners]
        phi = (shape * pn).sum(1)
        grad_phi = torch.stack([(dx * pn).sum(1), (dy * pn).sum(1)], -1)
        return u.to(x.dtype), grad_u.to(x.dtype), phi.to(x.dtype), grad_phi.to(x.dtype)
