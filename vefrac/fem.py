"""The classical reference backend: Q1 finite elements and alternate minimisation of the same energy.

A PINN run can be checked against this solver: it minimises the discrete version of

    E(u, φ) = ∫ g(φ) W+(εe) + W−(εe) + surface(φ, ∇φ; G, s) + η/2 |u|² dx,   εe = sym ∇u + εs I

with energy.py's densities (mirrored in numpy by `split_densities`; tests pin the two together,
and the stress and tangent to autograd of energy.split_energy), the same split, and the same G(x)
realisation for the same seed (problem.toughness at the Gauss points).

Discretisation. A structured grid of bilinear (Q1) quadrilaterals over the domain's bounding
box, spacing h = s / fem.points_per_length (fracture off: the longest side / fem.elements_per_length).
An element is active when its centre is inside the domain; the nodes of active elements carry u
and φ. Nothing is imposed on the boundary (traction-free; the substrate term makes the u-problem
positive definite). Periodic directions identify the nodes of the two opposite edges. Every
integral is a 2×2 Gauss rule per element: the discrete energy is E_h = Σ_q w_q e(x_q).

Load stepping. At each time, alternate minimisation (staggered scheme):
- u-step: minimise E_h over u, φ fixed. `none`: quadratic (one linear solve). `amor` and
  `spectral`: ψ(ε) = g W+ + W− is convex and C¹ but only piecewise smooth in ε (the sign of tr ε,
  of the principal strains). A semi-smooth Newton iteration uses the exact stress and, at each
  Gauss point, the tangent of the branch the strain is on (for `spectral`, the spectral-function
  Hessian with the divided difference (ψ'(e1) − ψ'(e2))/(e1 − e2) for the rotation part), with an
  Armijo backtracking on E_h, until the nodal residual is below 1e-10 of the force the shrinkage
  stress puts on an edge node. For `amor` (piecewise quadratic) one step from the right sign
  pattern is exact, so it usually takes one or two. The split is never replaced by an isotropic
  degradation.
- φ-step: minimise E_h over φ, u fixed, subject to φ_prev ≤ φ ≤ 1 (φ_prev: the state at the end
  of the previous load step; AT1's φ ≥ 0 follows from φ_prev ≥ 0). For AT2 and AT1 this is a
  convex quadratic programme with box constraints, solved exactly by a primal–dual active-set
  method (linear solves on the free nodes); irreversibility is the bound itself, not a
  history field. L-BFGS-B takes over in the rare case the active sets cycle.
- iterate until the φ-step changes φ by less than fem.tolerance (max over nodes), at most
  fem.max_iterations φ-steps; the converged state is then that φ-step's answer and its u-step.
  A step that reaches the cap is reported (StepResult.converged False). Acceleration:
  over-relaxation φ ← P(φ + ω(φ̃ − φ)) of the φ-step's answer φ̃ (P: projection on the bounds),
  kept only when it does not raise the φ-step's objective, so E_h never increases from one
  iteration to the next. ω = 1.8 cut the iterations of square-mud by half; Anderson acceleration
  did not help (see `Staggered._accelerate`).

Linear solves (fem.linear_solver, vefrac/linsolve.py): `direct` factors every Newton and
active-set system (SuperLU); `amg` solves the Newton systems by CG with a smoothed-aggregation
multigrid V-cycle kept across iterations, and the active-set systems by Jacobi-preconditioned CG,
to tolerances that leave the staggered iterations unchanged.

Mesh dependence: like any phase-field discretisation the crack energy per unit length exceeds G
by O(h/s), so h ≤ s/2 is the default; tests/test_fem.py has an h-refinement study.

`FemModel` holds the nodal solution (buffers, so checkpoints carry it) and answers
`fields(x, t)` with the Q1 interpolation, like solve.FieldModel.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.ndimage
import scipy.optimize
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch import nn

from . import config, linsolve
from .errors import InputError
from .geometry import Domain

# 2×2 Gauss rule on the unit square, node order (0,0), (1,0), (1,1), (0,1)
_GP = 0.5 + np.array([-0.5, 0.5]) / math.sqrt(3.0)
_XI = np.array([[a, b] for b in _GP for a in _GP])  # (4, 2)
_CORNERS = np.array([[0, 0], [1, 0], [1, 1], [0, 1]])


def _shape(xi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    corner_nodes = (ej[:, None] + _CORNERS[:, 1]) * (nx + 1) + ei[:, None] + _CORNERS[:, 0]  # (E, 4)
    used, dof_of_used = np.unique(key[corner_nodes], return_inverse=True)
    elements = dof_of_used.reshape(-1, 4)
    node_dof = np.full(key.size, -1)
    on = np.isin(key, used)
    node_dof[on] = np.searchsorted(used, key[on])
    n, _ = _shape(_XI)
    corners = np.stack([xmin + (ei[:, None] + _CORNERS[:, 0]) * hx, ymin + (ej[:, None] + _CORNERS[:, 1]) * hy], -1)
    points = np.einsum("qa,ead->eqd", n, corners)
    return QuadMesh(origin=(xmin, ymin), spacing=(hx, hy), shape=(ny, nx), active=active, node_dof=node_dof,
                    elements=elements, n_dofs=len(used), points=points)


class _Pattern:
    """The CSR sparsity of an element-by-element matrix, so assembly is one bincount."""

    def __init__(self, edofs: np.ndarray, n: int):
        k = edofs.shape[1]
        rows = np.repeat(edofs, k, axis=1).ravel()
        cols = np.tile(edofs, (1, k)).ravel()
        keys, self.slot = np.unique(rows.astype(np.int64) * n + cols, return_inverse=True)
        self.indices = (keys % n).astype(np.int32)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(keys // n, minlength=n))]).astype(np.int32)
        self.n = n

    def assemble(self, element_matrices: np.ndarray) -> sp.csr_matrix:
        """(E, k, k) element matrices -> the (n, n) global matrix."""
        data = np.bincount(self.slot, weights=element_matrices.ravel(), minlength=self.indices.size)
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(self.n, self.n))


# ----------------------------------------------------------------------------- material response


def stress_tangent(exx: np.ndarray, eyy: np.ndarray, gam: np.ndarray, g: np.ndarray | float, *,
                   lam: float, mu: float, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Derivatives of ψ = g W+ + W− in the engineering strain (εxx, εyy, γ = 2εxy).

    Arrays of any shape S. Returns the stress (S + (3,)) = (σxx, σyy, σxy) and the tangent
    (S + (3, 3)): the Hessian where ψ is smooth, the derivative of the branch the strain is on
    at the kinks (an element of the generalised Jacobian, what a semi-smooth Newton step needs).
    """
    g = np.broadcast_to(g, exx.shape)
    tr = exx + eyy
    ones, vol = np.array([1.0, 1.0, 0.0]), np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    if split == "none":
        c = np.array([[lam + 2 * mu, lam, 0.0], [lam, lam + 2 * mu, 0.0], [0.0, 0.0, mu]])
        tangent = g[..., None, None] * c
        return np.einsum("...ij,...j->...i", tangent, np.stack([exx, eyy, gam], -1)), tangent
    c_tr = np.where(tr > 0, g, 1.0)  # which side of the volumetric kink
    if split == "amor":
        dev = np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        kc, gm = (lam + mu) * c_tr, g * mu
        stress = (kc * tr)[..., None] * ones + gm[..., None] * np.stack([exx - eyy, eyy - exx, gam], -1)
        return stress, kc[..., None, None] * vol + gm[..., None, None] * dev
    if split == "spectral":
        d, exy = 0.5 * (exx - eyy), 0.5 * gam
        radius = np.sqrt(d * d + exy * exy)
        safe = np.where(radius > 0, radius, 1.0)
        cos2, sin2 = np.where(radius > 0, d / safe, 1.0), np.where(radius > 0, exy / safe, 0.0)
        c2, s2, cs = 0.5 * (1 + cos2), 0.5 * (1 - cos2), 0.5 * sin2
        v1, v2 = np.stack([c2, s2, cs], -1), np.stack([s2, c2, -cs], -1)  # ∂e1/∂ε, ∂e2/∂ε
        v12 = np.stack([-cs, cs, 0.5 * (c2 - s2)], -1)  # n1·H n2 as a function of (hxx, hyy, hγ)
        e1, e2 = 0.5 * tr + radius, 0.5 * tr - radius
        k1, k2 = np.where(e1 > 0, g, 1.0), np.where(e2 > 0, g, 1.0)  # f(e) = k e², f' = 2ke, f'' = 2k
        f1, f2 = 2 * k1 * e1, 2 * k2 * e2
        gap = e1 - e2
        divided = np.where(gap > 1e-12 * (np.abs(e1) + np.abs(e2) + 1e-300), (f1 - f2) / np.where(gap > 0, gap, 1.0),
                           2 * k1)
        stress = (lam * c_tr * tr)[..., None] * ones + mu * (f1[..., None] * v1 + f2[..., None] * v2)
        outer = lambda a, b: a[..., :, None] * b[..., None, :]  # noqa: E731
        tangent = ((lam * c_tr)[..., None, None] * vol
                   + mu * ((2 * k1)[..., None, None] * outer(v1, v1) + (2 * k2)[..., None, None] * outer(v2, v2)
                           + (2 * divided)[..., None, None] * outer(v12, v12)))
        return stress, tangent
    raise ValueError(f"unknown split {split!r}")


def split_densities(exx: np.ndarray, eyy: np.ndarray, gam: np.ndarray, *, lam: float, mu: float,
                    split: str) -> tuple[np.ndarray, np.ndarray]:
    """(W+, W−) of energy.split_energy, in numpy (tests pin the two together), γ = 2εxy.

    numpy, not torch: the inner loop is many small element-wise operations, where torch's thread
    pool can cost more than the arithmetic (1000× on a loaded 2-core machine).
    """
    tr = exx + eyy
    if split == "amor":
        pos, neg = np.maximum(tr, 0.0), np.minimum(tr, 0.0)
        dev2 = 0.5 * (exx - eyy) ** 2 + 0.5 * gam**2
        return 0.5 * (lam + mu) * pos**2 + mu * dev2, 0.5 * (lam + mu) * neg**2
    if split == "spectral":
        radius = np.sqrt(0.25 * (exx - eyy) ** 2 + 0.25 * gam**2)
        e1, e2 = 0.5 * tr + radius, 0.5 * tr - radius
        w_pos = 0.5 * lam * np.maximum(tr, 0.0) ** 2 + mu * (np.maximum(e1, 0.0) ** 2 + np.maximum(e2, 0.0) ** 2)
        w_neg = 0.5 * lam * np.minimum(tr, 0.0) ** 2 + mu * (np.minimum(e1, 0.0) ** 2 + np.minimum(e2, 0.0) ** 2)
        return w_pos, w_neg
    if split == "none":
        return 0.5 * lam * tr**2 + mu * (exx**2 + eyy**2 + 0.5 * gam**2), np.zeros_like(tr)
    raise ValueError(f"unknown split {split!r}")


# ----------------------------------------------------------------------------- model


class FemModel(nn.Module):
    """The nodal Q1 solution, with solve.FieldModel's `fields` interface.

    Buffers (so checkpoints carry them): u ((ny+1)(nx+1), 2), phi and phi_prev ((ny+1)(nx+1),)
    on the grid's nodes, 0 off the active part. phi_prev is the lower bound of the current step.
    """

    def __init__(self, mesh: QuadMesh, *, fracture: bool):
        super().__init__()
        self.mesh, self.fracture = mesh, fracture
        self.cache_grid = None  # the runner's checkpoint looks for it (PINN's previous-φ grid)
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


# ----------------------------------------------------------------------------- solver


@dataclass
class StepResult:
    """One load step: staggered iterations (φ-steps), whether max|Δφ| fell below the tolerance,
    the last max|Δφ|, the total energy after each iteration (the first: before any φ-step)."""

    t: float
    iterations: int
    converged: bool
    residual: float
    energies: list[float]
    newton_iterations: int = 0
    qp_fallbacks: int = 0
    seconds: float = 0.0


class Staggered:
    """Alternate minimisation of the discrete energy on a FemModel, one load step at a time.

    progress(count, terms) is called after every staggered iteration with the running count in
    counter[0]. `rewind` puts the model back to the start of the interrupted step.
    """

    def __init__(self, problem, fem: config.Fem, model: FemModel, *, counter: list[int],
                 progress: Callable[[int, dict], None] | None = None, log: Callable[[str], None] = lambda s: None):
        self.problem, self.fem, self.model, self.counter = problem, fem, model, counter
        self.progress = progress or (lambda count, terms: None)
        self.log = log
        ph, m = problem.physics, model.mesh
        self.ph, self.mesh = ph, m
        n, dxi = _shape(_XI)
        self.N = n  # (4 q, 4 a)
        self.dN = dxi / np.array(m.spacing)  # (4 q, 4 a, 2)
        self.D = self.dN.transpose(0, 2, 1).reshape(8, 4)  # rows (q, direction)
        self.w = m.weight
        B = np.zeros((4, 3, 8))
        B[:, 0, 0::2], B[:, 1, 1::2] = self.dN[..., 0], self.dN[..., 1]
        B[:, 2, 0::2], B[:, 2, 1::2] = self.dN[..., 1], self.dN[..., 0]
        self.B = B
        # Ke = Σ_q w B_qᵀ C_q B_q as one matmul: (E, 4·3·3) @ (4·3·3, 8·8)
        self.BB = self.w * np.einsum("qia,qjb->qijab", B, B).reshape(36, 64)
        self.NN = self.w * np.einsum("qa,qb->qab", n, n).reshape(4, 16)
        self.DD = self.w * np.einsum("qad,qbd->qab", self.dN, self.dN).reshape(4, 16)
        mass = self.w * np.einsum("qa,qb->ab", n, n)
        self.substrate = ph.eta * np.kron(mass, np.eye(2))  # (8, 8), dofs ordered (node, component)
        self.udofs = np.stack([2 * m.elements, 2 * m.elements + 1], -1).reshape(-1, 8)
        self.u_pattern = _Pattern(self.udofs, 2 * m.n_dofs)
        if ph.fracture:
            self.phi_pattern = _Pattern(m.elements, m.n_dofs)
            pts = torch.as_tensor(m.points.reshape(-1, 2), dtype=torch.float64)
            dev = next(iter(problem.toughness.buffers()), pts).device
            with torch.no_grad():
                G = problem.toughness(pts.to(dev)).double().cpu().numpy()
            self.G = G.reshape(-1, 4)
        self._start: tuple | None = None
        # fem.linear_solver: sparse direct, or Krylov with multigrid (vefrac/linsolve.py)
        kind = fem.linear_solver
        self.u_solver = linsolve.DisplacementSolver(kind, points=dof_points(m))
        self.phi_solver = linsolve.DamageSolver(kind)

    # -------------------------------------------------------------- fields at Gauss points

    def _at_points(self, U: np.ndarray, Phi: np.ndarray | None):
        """Nodal dofs -> u (E, 4, 2), ∇u (E, 4, 2, 2), φ (E, 4), ∇φ (E, 4, 2)."""
        ue = U.reshape(-1, 2)[self.mesh.elements]  # (E, 4, 2)
        u = self.N @ ue
        grad_u = (self.D @ ue).reshape(-1, 4, 2, 2).transpose(0, 1, 3, 2)  # [e, q, i, j] = ∂u_i/∂x_j
        if Phi is None:
            return u, grad_u, None, None
        pe = Phi[self.mesh.elements]
        return u, grad_u, pe @ self.N.T, (pe @ self.D.T).reshape(-1, 4, 2)

    def _strain(self, grad_u: np.ndarray, eps_s: float):
        return (grad_u[..., 0, 0] + eps_s, grad_u[..., 1, 1] + eps_s, grad_u[..., 0, 1] + grad_u[..., 1, 0])

    def _g(self, phi):
        return 1.0 if phi is None else (1 - phi) ** 2 + self.ph.k_res

    def energy(self, U: np.ndarray, Phi: np.ndarray | None, eps_s: float) -> dict[str, float]:
        """The discrete energy: 'elastic', 'surface', 'substrate' (Gauss-rule sums)."""
        ph = self.ph
        u, grad_u, phi, grad_phi = self._at_points(U, Phi)
        w_pos, w_neg = split_densities(*self._strain(grad_u, eps_s), lam=ph.lam, mu=ph.mu, split=ph.split)
        out = {"elastic": self.w * float((self._g(phi) * w_pos + w_neg).sum()),
               "substrate": self.w * float(0.5 * ph.eta * (u**2).sum())}
        surface = 0.0
        if Phi is not None:  # energy.surface_density, in numpy
            g2 = (grad_phi**2).sum(-1)
            dens = (self.G / (2 * ph.s) * (phi**2 + ph.s**2 * g2) if ph.model == "at2"
                    else 3 * self.G / (8 * ph.s) * (phi + ph.s**2 * g2))
            surface = self.w * float(dens.sum())
        return out | {"surface": surface}

    # -------------------------------------------------------------- u-step

    def u_step(self, U: np.ndarray, Phi: np.ndarray | None, eps_s: float, *, max_newton: int = 50):
        """Minimise E_h over u for fixed φ: semi-smooth Newton with backtracking. Returns (U, iterations, ok)."""
        ph = self.ph
        phi = None if Phi is None else Phi[self.mesh.elements] @ self.N.T
        g = self._g(phi) * np.ones((self.udofs.shape[0], 4))
        # a residual of 1e-10 of the nodal force the shrinkage stress puts on a free edge
        scale = 2 * (ph.lam + ph.mu) * max(abs(eps_s), 1e-300) * max(self.mesh.spacing)
        for it in range(max_newton + 1):
            energy, residual, C = self._u_terms(U, g, eps_s, tangent=True)
            if np.abs(residual).max() <= 1e-10 * scale:
                return U, it, True
            if it == max_newton:
                break
            K = self.u_pattern.assemble(C.reshape(len(C), 36) @ self.BB + self.substrate.ravel())
            # the linear residual a tenth of the Newton loop's own stopping residual
            step = self.u_solver.solve(K, -residual, atol=1e-11 * scale)
            slope = np.dot(residual, step)
            alpha = 1.0
            while alpha > 1e-8:  # Armijo backtracking: ψ is convex, the full step nearly always passes
                trial = U + alpha * step
                if self._u_terms(trial, g, eps_s, tangent=False)[0] <= energy + 1e-4 * alpha * slope:
                    break
                alpha *= 0.5
            if alpha <= 1e-8:  # no decrease possible at round-off level: as converged as it gets
                return U, it, np.abs(residual).max() <= 1e-6 * scale
            U = trial
        return U, max_newton, False

    def _u_terms(self, U, g, eps_s, *, tangent: bool):
        """Energy (elastic + substrate), residual (n_u,), tangent per Gauss point (E, 4, 3, 3)."""
        ph = self.ph
        u, grad_u, _, _ = self._at_points(U, None)
        exx, eyy, gam = self._strain(grad_u, eps_s)
        w_pos, w_neg = split_densities(exx, eyy, gam, lam=ph.lam, mu=ph.mu, split=ph.split)
        energy = self.w * ((g * w_pos + w_neg).sum() + 0.5 * ph.eta * (u**2).sum())
        if not tangent:
            return energy, None, None
        stress, C = stress_tangent(exx, eyy, gam, g, lam=ph.lam, mu=ph.mu, split=ph.split)
        ue = U[self.udofs]
        re = stress.reshape(len(stress), 12) @ (self.w * self.B.reshape(12, 8)) + ue @ self.substrate
        residual = np.bincount(self.udofs.ravel(), weights=re.ravel(), minlength=U.size)
        return energy, residual, C

    # -------------------------------------------------------------- φ-step

    def phi_qp(self, U: np.ndarray, eps_s: float) -> tuple[sp.csr_matrix, np.ndarray]:
        """The φ-step as ½ φᵀAφ − bᵀφ (+ const) for fixed u.

        AT2: A = ∫ (2W+ + G/s) NᵀN + G s ∇Nᵀ∇N, b = ∫ 2W+ N.
        AT1: A = ∫ 2W+ NᵀN + (3Gs/4) ∇Nᵀ∇N,     b = ∫ (2W+ − 3G/(8s)) N.
        """
        ph = self.ph
        _, grad_u, _, _ = self._at_points(U, None)
        w_pos, _ = split_densities(*self._strain(grad_u, eps_s), lam=ph.lam, mu=ph.mu, split=ph.split)
        G, s = self.G, ph.s
        if ph.model == "at2":
            c_mass, c_grad, c_load = 2 * w_pos + G / s, G * s, 2 * w_pos
        else:
            c_mass, c_grad, c_load = 2 * w_pos, 0.75 * G * s, 2 * w_pos - 3 * G / (8 * s)
        ae = c_mass @ self.NN + c_grad @ self.DD
        be = self.w * c_load @ self.N
        b = np.bincount(self.mesh.elements.ravel(), weights=be.ravel(), minlength=self.mesh.n_dofs)
        return self.phi_pattern.assemble(ae), b

    # -------------------------------------------------------------- load step

    def solve_step(self, t: float) -> StepResult:
        """Advance to time t: φ_prev ← φ, then alternate minimisation until max|Δφ| < tolerance."""
        started = time.perf_counter()
        m, model, fem = self.mesh, self.model, self.fem
        eps_s = self.problem.rate * t
        self._start = (model.u.clone(), model.phi.clone(), model.phi_prev.clone(), self.counter[0])
        self.u_solver.new_step()
        U = m.dofs(model.u.cpu().numpy()).ravel()
        Phi = m.dofs(model.phi.cpu().numpy()) if model.fracture else None
        U, newton, ok = self.u_step(U, Phi, eps_s)
        energies = [sum(self.energy(U, Phi, eps_s).values())]
        result = StepResult(t=t, iterations=0, converged=ok, residual=0.0, energies=energies, newton_iterations=newton)
        if model.fracture:
            lb = Phi.copy()  # irreversibility: no smaller than at the end of the previous step
            result.converged = False
            for it in range(1, fem.max_iterations + 1):
                A, b = self.phi_qp(U, eps_s)
                target, qp_ok = box_qp(A, b, lb, np.ones_like(lb), Phi, solve=self.phi_solver.solve)
                result.qp_fallbacks += not qp_ok
                result.residual = float(np.abs(target - Phi).max())
                done = result.residual < fem.tolerance
                Phi = target if done else self._accelerate(A, b, Phi, target, lb)
                U, newton, ok = self.u_step(U, Phi, eps_s)
                result.newton_iterations += newton
                terms = self.energy(U, Phi, eps_s)
                energies.append(sum(terms.values()))
                result.iterations = it
                self.counter[0] += 1
                self.progress(self.counter[0], terms | {"dphi": result.residual})
                if done:
                    result.converged = ok
                    break
        else:
            lb = None
            self.counter[0] += 1
            result.iterations = 1
            self.progress(self.counter[0], self.energy(U, Phi, eps_s))
        self._store(U, Phi, lb)
        self._start = None
        result.seconds = time.perf_counter() - started
        return result

    def _accelerate(self, A, b, phi, target, lb):
        """Over-relaxation φ + ω (target − φ) of the φ-step's answer, projected on the bounds; kept
        only when the φ-step's objective at the current u does not rise above its value at φ (so the
        energy still decreases monotonically), else `target` itself.

        (Anderson acceleration was tried on square-mud: with this safeguard it was rejected 95% of
        the time, without it the energy rose and the steps stalled; the projected fixed-point map
        is not smooth enough while a crack advances.)
        """
        if self.fem.acceleration == "none":
            return target
        candidate = np.clip(phi + self.fem.relaxation * (target - phi), lb, 1.0)

        def q(x):
            return np.dot(0.5 * (A @ x) - b, x)  # np.dot: 1-D `@` is far slower here

        return candidate if q(candidate) <= q(phi) else target

    def _store(self, U, Phi, lb):
        m, model = self.mesh, self.model
        model.u.copy_(torch.from_numpy(m.nodal(U.reshape(-1, 2))))
        if Phi is not None:
            model.phi.copy_(torch.from_numpy(m.nodal(Phi)))
            model.phi_prev.copy_(torch.from_numpy(m.nodal(lb)))

    def rewind(self, state) -> bool:
        """After an interruption inside a step: the model and the counter as they were at its start."""
        if self._start is None:
            return False
        u, phi, phi_prev, count = self._start
        self.model.u.copy_(u)
        self.model.phi.copy_(phi)
        self.model.phi_prev.copy_(phi_prev)
        self.counter[0] = count
        self._start = None
        return True


factor = linsolve.factor


def dof_points(mesh: QuadMesh) -> np.ndarray:
    """(n_dofs, 2) a grid node's coordinates for every dof (periodic edges: one of the two)."""
    ny, nx = mesh.shape
    jj, ii = np.meshgrid(np.arange(ny + 1), np.arange(nx + 1), indexing="ij")
    coords = np.stack([mesh.origin[0] + ii.ravel() * mesh.spacing[0], mesh.origin[1] + jj.ravel() * mesh.spacing[1]], 1)
    out = np.zeros((mesh.n_dofs, 2))
    on = mesh.node_dof >= 0
    out[mesh.node_dof[on]] = coords[on]
    return out


def box_qp(A: sp.csr_matrix, b: np.ndarray, lb: np.ndarray, ub: np.ndarray, x0: np.ndarray, *,
           max_iter: int = 30, solve=None) -> tuple[np.ndarray, bool]:
    """min ½ xᵀAx − bᵀx subject to lb ≤ x ≤ ub, A symmetric positive definite (n, n).

    Primal–dual active-set method (Hintermüller, Ito & Kunisch 2002): guess which bounds hold,
    solve for the free unknowns, update the guess from the multipliers; exact once the guess
    repeats. Falls back to L-BFGS-B (returning False) if the guesses cycle. Returns (x, ok).
    solve(A_FF, rhs, x0) -> x: the free unknowns' linear solve (default: sparse LU).
    """
    solve = solve or (lambda matrix, rhs, start: factor(matrix).solve(rhs))
    x = np.clip(x0, lb, ub)
    lam = A @ x - b  # the gradient: ≥ 0 where x = lb, ≤ 0 where x = ub, 0 where free
    c = A.diagonal()
    lower = upper = None
    for _ in range(max_iter):
        new_lower = lam + c * (lb - x) > 0
        new_upper = (c * (x - ub) - lam > 0) & ~new_lower
        if lower is not None and np.array_equal(new_lower, lower) and np.array_equal(new_upper, upper):
            return np.clip(x, lb, ub), True
        lower, upper = new_lower, new_upper
        fixed = lower | upper
        x = np.where(lower, lb, np.where(upper, ub, x))
        free = ~fixed
        if free.any():
            rows = A[free]
            rhs = b[free] - rows[:, fixed] @ x[fixed]
            x[free] = solve(rows[:, free], rhs, x[free])
        lam = A @ x - b
        lam[free] = 0.0
    start = np.clip(x, lb, ub)
    res = scipy.optimize.minimize(lambda y: (np.dot(0.5 * (A @ y) - b, y), A @ y - b), start, jac=True,
                                  method="L-BFGS-B", bounds=np.stack([lb, ub], 1),
                                  options={"maxiter": 10000, "ftol": 1e-15, "gtol": 1e-12})
    return np.clip(res.x, lb, ub), False
