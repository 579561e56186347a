"""Linear solves of the FEM backend: sparse direct, or Krylov with a multigrid preconditioner.

Both sub-problems of the staggered scheme are symmetric positive definite:
- the u-step's Newton systems (elasticity with the degraded split's tangent, plus the substrate's
  mass term η): `amg` solves them by conjugate gradients preconditioned by one V-cycle of
  smoothed-aggregation algebraic multigrid (pyamg) built with the layer's three rigid-body modes
  as near-null space. The tangent changes little from one Newton or staggered iteration to the
  next, so the hierarchy is kept: only the finest level's matrix and smoother are replaced
  (pyamg's change_solve_matrix), and the whole setup is redone at each load step and when CG
  needs more than `REBUILD_RATIO` times the iterations it needed right after the last setup;
- the φ-step's free-node systems (AT2: ∫ (2W+ + G/s) NᵀN + G s ∇Nᵀ∇N): with h ∝ s their mass
  term keeps the condition number bounded independently of domain/s (about 1 + 8 s²/h² times
  the spread of G), so CG preconditioned by the diagonal converges in a few tens of iterations
  at any size; a hierarchy would cost more to build than it saves.

Tolerances are tight enough that the staggered iterations see the same answers as with the
direct solver: CG stops at a relative residual of `rtol` or at the absolute residual a caller
asks for, whichever is reached first. The Newton loop asks for a tenth of its own stopping
residual, in its own norm (the largest nodal entry; a Euclidean test of the same number would be
√n times stricter, so the iterations per solve would grow with the layer's area). Each solve
starts from the previous solution scaled to minimise the energy norm of the error along it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyamg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from pyamg.relaxation.smoothing import change_smoothers

KINDS = ("direct", "amg")
REBUILD_RATIO = 1.3  # measured at domain/s = 50, η = 100: 9 % less CPU than 2.0 (34 setups instead of 19)
SMOOTHER = ("gauss_seidel", {"sweep": "symmetric"})  # symmetric: the V-cycle is an SPD preconditioner
MAX_ITERATIONS = 2000
REGION_ITERATIONS = 500  # a region's diagonally preconditioned CG past this many: factor it instead


class NotConverged(RuntimeError):
    """Conjugate gradients reached its iteration cap."""


def factor(matrix: sp.spmatrix) -> spla.SuperLU:
    """Sparse LU of a symmetric positive definite matrix (a minimum-degree ordering of A + Aᵀ:
    about half the fill and time of SuperLU's default on these grids)."""
    return spla.splu(matrix.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                     options={"SymmetricMode": True})


def rigid_body_modes(points: np.ndarray) -> np.ndarray:
    """(2n, 3) near-null space of 2D elasticity, dofs ordered (node, component): two
    translations and the rotation (−y, x). points: (n, 2) node coordinates."""
    n = points.shape[0]
    modes = np.zeros((2 * n, 3))
    modes[0::2, 0] = 1.0
    modes[1::2, 1] = 1.0
    centred = points - points.mean(0)
    modes[0::2, 2], modes[1::2, 2] = -centred[:, 1], centred[:, 0]
    return modes


@dataclass
class Counts:
    """What the solves cost: calls, Krylov iterations, multigrid setups (a RegionSolver: the
    factorisations it fell back to)."""

    solves: int = 0
    iterations: int = 0
    setups: int = 0
    history: list = field(default_factory=list, repr=False)


def conjugate_gradients(A, b: np.ndarray, x0: np.ndarray | None, *, M, rtol: float, atol: float,
                        norm=np.linalg.norm, max_iterations: int = MAX_ITERATIONS) -> tuple[np.ndarray, int]:
    """Preconditioned CG to norm(b − Ax) ≤ max(rtol norm(b), atol). Returns (x, iterations); raises if
    it does not converge.

    `norm`: the Euclidean norm, or the largest entry (`max_norm`), as the Newton loop measures
    its own residual: a Euclidean test of the same number is √n times stricter on a grid of n
    unknowns, so the cost per unknown of a solve would grow with the layer's area.
    x0: a start such as the previous solution, scaled by the factor that minimises the energy
    norm of the error along it (zero when it points the wrong way): never a worse start than zero.
    """
    x, r = np.zeros_like(b), b.copy()
    if x0 is not None:
        Ax0 = A @ x0
        curvature = float(x0 @ Ax0)
        alpha = float(x0 @ b) / curvature if curvature > 0 else 0.0
        if alpha > 0:  # the start's residual from its product, not a second one
            x, r = alpha * x0, b - alpha * Ax0
    goal = max(rtol * norm(b), atol)
    iterations = 0
    z = M @ r
    p = z.copy()
    rz = float(r @ z)
    while norm(r) > goal:
        if iterations == max_iterations:
            raise NotConverged(f"conjugate gradients did not converge in {max_iterations} iterations "
                               f"(residual {norm(r):.3g} of {norm(b):.3g})")
        Ap = A @ p
        step = rz / float(p @ Ap)
        x += step * p
        r -= step * Ap
        z = M @ r
        rz, rz_old = float(r @ z), rz
        p = z + (rz / rz_old) * p
        iterations += 1
    return x, iterations


def max_norm(v: np.ndarray) -> float:
    return float(np.abs(v).max()) if v.size else 0.0


class DisplacementSolver:
    """Solves the u-step's Newton systems K δ = r. `solve(K, r, atol=...)`."""

    def __init__(self, kind: str, *, points: np.ndarray, rtol: float = 1e-10):
        if kind not in KINDS:
            raise ValueError(f"unknown linear solver {kind!r}; one of {KINDS}")
        self.kind, self.points, self.rtol = kind, points, rtol
        self.counts = Counts()
        self._hierarchy = None
        self._fresh_iterations = None  # CG iterations right after the last setup
        self._last: np.ndarray | None = None

    def new_step(self) -> None:
        """Forget the hierarchy and the last solution: each load step starts from a fresh setup, so
        a step's answer depends on that step alone (a resumed run repeats an uninterrupted one bit
        for bit)."""
        self._hierarchy, self._fresh_iterations, self._last = None, None, None

    def solve(self, K: sp.csr_matrix, r: np.ndarray, *, atol: float = 0.0) -> np.ndarray:
        self.counts.solves += 1
        if self.kind == "direct":
            return factor(K).solve(r)
        K = sp.csr_matrix(K)
        if self._hierarchy is None:
            self._setup(K)
        else:
            self._hierarchy.levels[0].A = K  # the coarse levels stay those of the last setup
            change_smoothers(self._hierarchy, SMOOTHER, SMOOTHER)  # (pyamg's change_solve_matrix would
            # rebuild them with forward sweeps: a non-symmetric preconditioner, which CG cannot use)
        x0 = self._last if self._last is not None and self._last.shape == r.shape else None
        x, its = conjugate_gradients(K, r, x0, M=self._hierarchy.aspreconditioner(), rtol=self.rtol, atol=atol,
                                     norm=max_norm)
        if self._fresh_iterations is None:
            self._fresh_iterations = its
        elif its > REBUILD_RATIO * max(self._fresh_iterations, 5):  # the operator moved: next time, a new setup
            self._hierarchy = None
        self.counts.iterations += its
        self.counts.history.append(its)
        self._last = x
        return x

    def _setup(self, K) -> None:
        """Smoothed aggregation on the 2×2 node blocks (so a node's two components aggregate
        together), then every level in CSR with symmetric Gauss–Seidel: pyamg's block smoother
        and BSR products cost about 20× more here than their scalar versions. The prolongator is
        smoothed with local (Gershgorin) Jacobi weights: pyamg's default estimates a spectral
        radius from a random vector of numpy's global stream, which made runs differ in the last
        bits from one process to another."""
        self.counts.setups += 1
        ml = pyamg.smoothed_aggregation_solver(sp.bsr_matrix(K, blocksize=(2, 2)), B=rigid_body_modes(self.points),
                                               smooth=("jacobi", {"omega": 4 / 3, "weighting": "local"}),
                                               improve_candidates=None, presmoother=SMOOTHER,
                                               postsmoother=SMOOTHER, max_coarse=500, coarse_solver="splu")
        for level in ml.levels:
            level.A = level.A.tocsr()
            if hasattr(level, "P"):
                level.P, level.R = level.P.tocsr(), level.R.tocsr()
        change_smoothers(ml, SMOOTHER, SMOOTHER)
        self._hierarchy = ml
        self._fresh_iterations = None


class DamageSolver:
    """Solves the φ-step's free-node systems A_FF x = rhs. `solve(A_FF, rhs, x0)`."""

    def __init__(self, kind: str, *, rtol: float = 1e-10):
        if kind not in KINDS:
            raise ValueError(f"unknown linear solver {kind!r}; one of {KINDS}")
        self.kind, self.rtol = kind, rtol
        self.counts = Counts()

    def solve(self, A: sp.csr_matrix, rhs: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
        self.counts.solves += 1
        if self.kind == "direct":
            return factor(A).solve(rhs)
        jacobi = sp.diags(1.0 / A.diagonal())
        x, its = conjugate_gradients(A, rhs, x0, M=jacobi, rtol=self.rtol, atol=0.0)
        self.counts.iterations += its
        self.counts.history.append(its)
        return x


class RegionSolver:
    """Solves a local staggered iteration's Newton system on a region's displacements (vefrac/fem_local.py):
    `direct` factors it; `amg`, CG preconditioned by the diagonal, from zero, to the absolute
    residual asked for (largest entry). The region changes from one iteration to the next, so
    nothing is kept; its blobs are a few elastic lengths across, where the diagonal suffices."""

    def __init__(self, kind: str, *, rtol: float = 1e-10):
        if kind not in KINDS:
            raise ValueError(f"unknown linear solver {kind!r}; one of {KINDS}")
        self.kind, self.rtol = kind, rtol
        self.counts = Counts()

    def solve(self, K: sp.csr_matrix, r: np.ndarray, *, atol: float = 0.0) -> np.ndarray:
        self.counts.solves += 1
        if self.kind == "direct":
            return factor(K).solve(r)
        try:
            x, its = conjugate_gradients(K, r, None, M=sp.diags(1.0 / K.diagonal()), rtol=self.rtol, atol=atol,
                                         norm=max_norm, max_iterations=REGION_ITERATIONS)
        except NotConverged:  # a region too wide for the diagonal
            self.counts.setups += 1
            self.counts.iterations += REGION_ITERATIONS
            return factor(K).solve(r)
        self.counts.iterations += its
        self.counts.history.append(its)
        return x
