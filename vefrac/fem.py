"""The classical reference backend: Q1 finite elements and alternate minimisation of the same energy.

A PINN run can be checked against this solver: it minimises the discrete version of

    E(u, φ) = ∫ g(φ) W+(εe) + W−(εe) + surface(φ, ∇φ; G, s) + η/2 |u|² dx,   εe = sym ∇u + εs(x, t)

with energy.py's densities (mirrored in numpy by `split_densities`; tests pin the two together,
and the stress and tangent to autograd of energy.split_energy), the same split, and the same G(x)
realisation for the same seed (problem.toughness at the Gauss points). A layer of varying
thickness (problem.stiffness, c = h/h_ref) multiplies ψ = g W+ + W−, its stress and tangent and
the φ-step's driving force by c at every Gauss point (G carries c already).

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
  Inexact staggering: a u-step between two φ-steps that have not converged stops at a residual of
  INEXACT × max|Δφ| of the force scale instead of 1e-10 (the next φ-step cannot tell u more
  exactly than the φ it was computed from), in at most MID_NEWTON (1) Newton steps whose linear
  solve goes to MID_LINEAR (0.5) of that residual; the u-step of the converged φ (or at the cap)
  always goes to 1e-10.
  Local iterations (fem.local_radius, vefrac/fem_local.py): after each φ-step, the next iteration
  updates φ and u only on the nodes within local_radius · ℓe of those it moved by more than
  fem.tolerance (one Newton step there, CG with the diagonal), the others held; when that region
  settles, a global φ-step checks, so a step ends on the same global test as before. Measured on
  square-mud: the same cells, 1.3× faster at domain/s = 50 and 1.3–1.6× at 100.
  Measured at domain/s = 50, η = 100 (docs/irreversibility-and-fem-solvers.md): the same
  staggered iterations, fragments and lengths to 1e-7, a third of the u-steps' CG iterations.
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

Modules: fem_mesh.py (the Q1 mesh, shape functions, sparsity, and `FemModel`, the nodal solution
(buffers, so checkpoints carry it) answering `fields(x, t)` with the Q1 interpolation, like
pinn_model.FieldModel); fem_material.py (the split densities, stress and tangent in numpy); this
module (the staggered scheme and its linear solves); fem_solver.py (the solver protocol).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.optimize
import scipy.sparse as sp
import torch

from . import config, linsolve
from .fem_material import split_densities, stress_tangent
from .fem_local import Regions
from .fem_mesh import GAUSS_POINTS, FemModel, QuadMesh, SparsityPattern, build_mesh, element_size, q1_shape
from .fields import bilinear
from .problem import Problem

__all__ = ["FemModel", "QuadMesh", "StepResult", "Staggered", "box_qp", "build_mesh", "element_size", "factor",
           "split_densities", "stress_tangent"]

# ----------------------------------------------------------------------------- solver

U_TOLERANCE = 1e-10  # the u-step's nodal residual, as a fraction of the force the shrinkage stress puts on a node
STALL = 3  # Newton iterations without a tenth off the residual, below 1e-6 of the scale, end the u-step
INEXACT = 1e-2  # mid-staggered u-steps to INEXACT × max|Δφ| of that residual scale (0: always U_TOLERANCE);
# measured at domain/s = 50, η = 100: 1e-2 keeps every staggered iteration, 1e-1 adds 0.7 %
MID_NEWTON = 1  # and in at most this many Newton steps (0: no cap); measured at domain/s = 100, η = 100: 1.6×
# fewer Newton iterations for 0.7 % more staggered ones, 1.42× faster (docs/irreversibility-and-fem-solvers.md)
MID_LINEAR = 0.5  # their one linear solve to half their tolerance, not a tenth: no further Newton step corrects
# it (at domain/s = 50 and 100, η = 100: the same staggered iterations, a quarter fewer CG ones; 0.7 and 1.0
# change the staggered path at 50: 741 and 738 iterations against 698)


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
    local_iterations: int = 0  # of them on a region of the layer (fem.local_radius)
    qp_fallbacks: int = 0
    seconds: float = 0.0


class Staggered:
    """Alternate minimisation of the discrete energy on a FemModel, one load step at a time.

    progress(count, terms) is called after every staggered iteration with the running count in
    counter[0]. `rewind` puts the model back to the start of the interrupted step.
    """

    def __init__(self, problem: Problem, fem: config.Fem, model: FemModel, *, counter: list[int],
                 progress: Callable[[int, dict], None] | None = None, log: Callable[[str], None] = lambda s: None):
        self.problem, self.fem, self.model, self.counter = problem, fem, model, counter
        self.progress = progress or (lambda count, terms: None)
        self.log = log
        ph, m = problem.physics, model.mesh
        self.ph, self.mesh = ph, m
        n, dxi = q1_shape(GAUSS_POINTS)
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
        self.u_pattern = SparsityPattern(self.udofs, 2 * m.n_dofs)
        self.gauss_points = torch.as_tensor(m.points.reshape(-1, 2), dtype=torch.float64)
        # c(x) = h(x)/h_ref at the Gauss points, on W+ and W− (1.0: a uniform layer, computed as before)
        self.c: np.ndarray | float = 1.0
        if problem.stiffness is not None:
            with torch.no_grad():
                self.c = problem.stiffness(self.gauss_points).double().cpu().numpy().reshape(-1, 4)
        # q(x) = η(x)/η at the Gauss points where η follows the thickness: per-element substrate blocks
        self.q: np.ndarray | float = 1.0
        if problem.substrate_factor is not None:
            with torch.no_grad():
                self.q = problem.substrate_factor(self.gauss_points).double().cpu().numpy().reshape(-1, 4)
            blocks = ph.eta * self.w * np.einsum("eq,qa,qb->eab", self.q, n, n)  # (E, 4, 4)
            self.substrate = np.einsum("eab,ij->eaibj", blocks, np.eye(2)).reshape(-1, 8, 8)
        if ph.fracture:
            self.phi_pattern = SparsityPattern(m.elements, m.n_dofs)
            self.refresh_toughness()
        self.misfit: tuple[np.ndarray, np.ndarray] | None = None  # set_misfit: (w·m, φ_obs) at the Gauss points
        self._start: tuple | None = None
        self._memo: tuple | None = None  # (U, εs, fields): see _u_fields
        # fem.linear_solver: sparse direct, or Krylov with multigrid (vefrac/linsolve.py)
        kind = fem.linear_solver
        self.u_solver = linsolve.DisplacementSolver(kind, points=dof_points(m))
        # local iterations (vefrac/fem_local.py): the nodes within fem.local_radius · ℓe of those the
        # last φ-step moved by more than fem.tolerance
        self.regions = (Regions(m, radius=fem.local_radius * ph.elastic_length, periodic=problem.domain.periodic)
                        if ph.fracture and fem.local_radius > 0 else None)
        self.phi_solver = linsolve.DamageSolver(kind)
        self.local_solver = linsolve.RegionSolver(kind)

    # -------------------------------------------------------------- fields at Gauss points

    def _at_points(self, U: np.ndarray, elements: np.ndarray | None = None):
        """Nodal dofs -> u (E, 4, 2), ∇u (E, 4, 2, 2) at the Gauss points (of `elements` alone, indices)."""
        ue = U.reshape(-1, 2)[self.mesh.elements if elements is None else self.mesh.elements[elements]]  # (E, 4, 2)
        grad_u = (self.D @ ue).reshape(-1, 4, 2, 2).transpose(0, 1, 3, 2)  # [e, q, i, j] = ∂u_i/∂x_j
        return self.N @ ue, grad_u

    def _u_fields(self, U: np.ndarray, eps_s):
        """u, the strain (εxx, εyy, γxy) and the split densities (W+, W−) at the Gauss points, kept for
        the last (U, εs) asked: a staggered iteration asks for them at one U four times (the line
        search's trial, the energy, the φ-step, the next u-step's tangent). Keyed on the objects, so U and εs must not be changed
        in place (nothing here does: every update makes a new array)."""
        if self._memo is not None and self._memo[0] is U and self._memo[1] is eps_s:
            return self._memo[2]
        self._memo = (U, eps_s, self._fields_on(U, eps_s))
        return self._memo[2]

    def _fields_on(self, U: np.ndarray, eps_s, elements: np.ndarray | None = None):
        """u, the strain and (W+, W−) at the Gauss points of `elements` (indices; None: all), not kept."""
        u, grad_u = self._at_points(U, elements)
        strain = self._strain(grad_u, _rows(eps_s, elements))
        w_pos, w_neg = split_densities(*strain, lam=self.ph.lam, mu=self.ph.mu, split=self.ph.split)
        return u, strain, w_pos, w_neg

    def refresh_toughness(self) -> None:
        """G at the Gauss points (E, 4), from problem.toughness (again after a rewetting healed it)."""
        pts = self.gauss_points
        dev = next(iter(self.problem.toughness.buffers()), pts).device
        with torch.no_grad():
            G = self.problem.toughness(pts.to(dev)).double().cpu().numpy()
        self.G = G.reshape(-1, 4)

    def set_misfit(self, observed: torch.Tensor, *, origin, spacing, weight: float) -> None:
        """Add the misfit w·(φ − φ_obs)² on the imaged material to the energy (vefrac invert's
        assimilated state): observed (ny, nx, 2) on a grid of `origin` and `spacing`, φ_obs and the
        material (0/1), interpolated bilinearly at the Gauss points like inverse.misfit_term does for
        the PINN; weight = w·Ḡ/(2s). It is quadratic in φ, so the φ-step stays a box QP."""
        obs = bilinear(observed.double().cpu(), self.gauss_points, origin=origin, spacing=spacing).numpy()
        self.misfit = (weight * obs[:, 1].reshape(-1, 4), obs[:, 0].reshape(-1, 4))

    def shrinkage_at(self, t: float):
        """εs at the Gauss points at time t: the number rate·t for the plain form, else (E, 4)
        (isotropic) or (E, 4, 3) (εxx, εyy, εxy), from problem.shrinkage_strain."""
        field = self.problem.shrinkage
        if field is None or field.plain:
            return self.problem.rate * t
        with torch.no_grad():
            e = self.problem.shrinkage_strain(self.gauss_points, t).cpu().numpy()
        return e.reshape(-1, 4, *e.shape[1:])

    def _strain(self, grad_u: np.ndarray, eps_s):
        """(εxx, εyy, γxy = 2εxy) at the Gauss points of sym ∇u + εs; eps_s as `shrinkage_at` gives it."""
        if np.ndim(eps_s) == 3:
            return (grad_u[..., 0, 0] + eps_s[..., 0], grad_u[..., 1, 1] + eps_s[..., 1],
                    grad_u[..., 0, 1] + grad_u[..., 1, 0] + 2 * eps_s[..., 2])
        return (grad_u[..., 0, 0] + eps_s, grad_u[..., 1, 1] + eps_s, grad_u[..., 0, 1] + grad_u[..., 1, 0])

    def _weighted_square(self, u: np.ndarray, elements: np.ndarray | None = None) -> float:
        """Σ q|u|² over the Gauss points (of `elements`; q = η(x)/η; a plain Σ|u|² where η is uniform)."""
        return (u**2).sum() if np.ndim(self.q) == 0 else (_rows(self.q, elements) * (u**2).sum(-1)).sum()

    def _g(self, phi):
        return 1.0 if phi is None else (1 - phi) ** 2 + self.ph.k_res

    def energy(self, U: np.ndarray, Phi: np.ndarray | None, eps_s) -> dict[str, float]:
        """The discrete energy: 'elastic', 'surface', 'substrate' (Gauss-rule sums)."""
        ph = self.ph
        u, _, w_pos, w_neg = self._u_fields(U, eps_s)
        phi = grad_phi = None
        if Phi is not None:
            pe = Phi[self.mesh.elements]
            phi, grad_phi = pe @ self.N.T, (pe @ self.D.T).reshape(-1, 4, 2)
        out = {"elastic": self.w * float((self.c * (self._g(phi) * w_pos + w_neg)).sum()),
               "substrate": self.w * float(0.5 * ph.eta * self._weighted_square(u))}
        surface = 0.0
        if Phi is not None:  # energy.surface_density, in numpy
            g2 = (grad_phi**2).sum(-1)
            dens = (self.G / (2 * ph.s) * (phi**2 + ph.s**2 * g2) if ph.model == "at2"
                    else 3 * self.G / (8 * ph.s) * (phi + ph.s**2 * g2))
            surface = self.w * float(dens.sum())
            if self.misfit is not None:
                wm, target = self.misfit
                out["misfit"] = self.w * float((wm * (phi - target) ** 2).sum())
        return out | {"surface": surface}

    # -------------------------------------------------------------- u-step

    def u_step(self, U: np.ndarray, Phi: np.ndarray | None, eps_s, *, max_newton: int = 50,
               tolerance: float = U_TOLERANCE, test_last: bool = True, linear: float = 0.1):
        """Minimise E_h over u for fixed φ: semi-smooth Newton with backtracking, to a nodal residual of
        `tolerance` times the shrinkage force scale. Returns (U, iterations, ok).

        test_last=False: after the max_newton-th step return at once (ok False), without the residual
        and tangent of the new U (a mid-staggered u-step: the next φ-step is all that uses it)."""
        ph = self.ph
        phi = None if Phi is None else Phi[self.mesh.elements] @ self.N.T
        g = self._g(phi) * np.ones((self.udofs.shape[0], 4))
        scale = self._force_scale(eps_s)
        history = []  # max nodal residual at each iteration
        for it in range(max_newton + 1):
            energy, residual, C = self._u_terms(U, g, eps_s, tangent=True)
            history.append(np.abs(residual).max())
            if history[-1] <= tolerance * scale:
                return U, it, True
            if it >= STALL and history[-1] > 0.9 * history[-1 - STALL] and history[-1] <= 1e-6 * scale:
                return U, it, True  # stalled at round-off level (a stiff substrate): as converged as it gets
            if it == max_newton:
                break
            K = self._tangent(C)
            # the linear residual a tenth (`linear`) of the Newton loop's own stopping residual
            step = self.u_solver.solve(K, -residual, atol=linear * tolerance * scale)
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
            if not test_last and it + 1 == max_newton:
                return U, max_newton, False
        return U, max_newton, False

    def _force_scale(self, eps_s) -> float:
        """The nodal force the shrinkage stress puts on a free edge node, which the u-step's residual
        tolerances are fractions of (a rewetted layer may have εs = 0: then of a millionth of the
        history's largest)."""
        eps = max(float(np.abs(eps_s).max()), 1e-6 * self.problem.eps_ref, 1e-300)
        return 2 * (self.ph.lam + self.ph.mu) * eps * max(self.mesh.spacing)

    def _u_terms(self, U, g, eps_s, *, tangent: bool, elements: np.ndarray | None = None, fields=None):
        """Energy (elastic + substrate), residual (n_u,), tangent per Gauss point (E, 4, 3, 3).
        With `elements` (indices) and their `fields` (`_fields_on`): those elements' terms alone
        (g and the tangent theirs), so the residual is complete at dofs all of whose elements they are."""
        ph = self.ph
        u, (exx, eyy, gam), w_pos, w_neg = self._u_fields(U, eps_s) if fields is None else fields
        c = _rows(self.c, elements)
        energy = self.w * ((c * (g * w_pos + w_neg)).sum() + 0.5 * ph.eta * self._weighted_square(u, elements))
        if not tangent:
            return energy, None, None
        stress, C = stress_tangent(exx, eyy, gam, g, lam=ph.lam, mu=ph.mu, split=ph.split)
        if self.problem.stiffness is not None:  # ψ = c (g W+ + W−): stress and tangent scale with c
            stress, C = c[..., None] * stress, c[..., None, None] * C
        udofs = _rows(self.udofs, elements)
        ue = U[udofs]
        substrate = (ue @ self.substrate if self.substrate.ndim == 2
                     else np.einsum("ea,eab->eb", ue, _rows(self.substrate, elements)))
        re = stress.reshape(len(stress), 12) @ (self.w * self.B.reshape(12, 8)) + substrate
        residual = np.bincount(udofs.ravel(), weights=re.ravel(), minlength=U.size)
        return energy, residual, C

    def _tangent(self, C, elements: np.ndarray | None = None) -> sp.csr_matrix:
        """The u-step's tangent matrix from the tangents per Gauss point (of `elements` alone)."""
        substrate = self.substrate.reshape(-1, 64)
        if elements is not None and len(substrate) > 1:
            substrate = substrate[elements]
        return self.u_pattern.assemble(C.reshape(len(C), 36) @ self.BB + substrate, elements)

    # -------------------------------------------------------------- φ-step

    def phi_qp(self, U: np.ndarray, eps_s, elements: np.ndarray | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
        """The φ-step as ½ φᵀAφ − bᵀφ (+ const) for fixed u (the integrals over `elements` alone,
        indices: complete in the rows of nodes all of whose elements they are).

        AT2: A = ∫ (2W+ + G/s) NᵀN + G s ∇Nᵀ∇N, b = ∫ 2W+ N.
        AT1: A = ∫ 2W+ NᵀN + (3Gs/4) ∇Nᵀ∇N,     b = ∫ (2W+ − 3G/(8s)) N.
        """
        ph = self.ph
        # the driving force follows the local stiffness; G carries c already
        w_pos = _rows(self.c, elements) * _rows(self._u_fields(U, eps_s)[2], elements)
        G, s = _rows(self.G, elements), ph.s
        if ph.model == "at2":
            c_mass, c_grad, c_load = 2 * w_pos + G / s, G * s, 2 * w_pos
        else:
            c_mass, c_grad, c_load = 2 * w_pos, 0.75 * G * s, 2 * w_pos - 3 * G / (8 * s)
        if self.misfit is not None:  # w m (φ − φ_obs)²: 2wm on the mass, 2wm φ_obs on the load
            wm, target = (_rows(a, elements) for a in self.misfit)
            c_mass, c_load = c_mass + 2 * wm, c_load + 2 * wm * target
        ae = c_mass @ self.NN + c_grad @ self.DD
        be = self.w * c_load @ self.N
        b = np.bincount(_rows(self.mesh.elements, elements).ravel(), weights=be.ravel(), minlength=self.mesh.n_dofs)
        return self.phi_pattern.assemble(ae, elements), b

    # -------------------------------------------------------------- load step

    def solve_step(self, t: float, *, irreversible: bool = True) -> StepResult:
        """Advance to time t: φ_prev ← φ, then alternate minimisation until max|Δφ| < tolerance.
        irreversible False: φ ≥ 0 only, from the current state (a minimisation at t, as vefrac invert's
        assimilation, warm-started from an earlier one)."""
        started = time.perf_counter()
        m, model, fem = self.mesh, self.model, self.fem
        eps_s = self.shrinkage_at(t)
        self._start = (model.u.clone(), model.phi.clone(), model.phi_prev.clone(), self.counter[0])
        self.u_solver.new_step()
        U = m.dofs(model.u.cpu().numpy()).ravel()
        Phi = m.dofs(model.phi.cpu().numpy()) if model.fracture else None
        U, newton, ok = self.u_step(U, Phi, eps_s)
        energies = [sum(self.energy(U, Phi, eps_s).values())]
        result = StepResult(t=t, iterations=0, converged=ok, residual=0.0, energies=energies, newton_iterations=newton)
        if model.fracture:
            lb = Phi.copy() if irreversible else np.zeros_like(Phi)  # irreversibility: no smaller than before
            result.converged = False
            local = None  # the region of a local iteration (vefrac/fem_local.py), None: global
            for it in range(1, fem.max_iterations + 1):
                if local is not None:  # φ on the region, every other node held
                    target, qp_ok, local_qp = self._local_phi_step(U, Phi, lb, eps_s, local)
                    if np.abs(target - Phi).max() < fem.tolerance:  # the region has settled: check globally
                        result.qp_fallbacks += not qp_ok
                        local = None
                if local is None:
                    A, b = self.phi_qp(U, eps_s)
                    target, qp_ok = box_qp(A, b, lb, np.ones_like(lb), Phi, solve=self.phi_solver.solve)
                result.qp_fallbacks += not qp_ok
                moved = np.abs(target - Phi)
                result.residual = float(moved.max())
                done = local is None and result.residual < fem.tolerance
                if done:
                    Phi = target
                elif local is None:
                    Phi = self._accelerate(A, b, Phi, target, lb)
                else:
                    Phi = self._accelerate(*local_qp, Phi, target, lb, rows=local.dofs)
                # mid-iteration u need only be as exact as the next φ-step can tell: a fraction of
                # this φ change (the last u-step, converged or at the cap, to the full tolerance)
                last = done or it == fem.max_iterations
                tolerance = U_TOLERANCE if last else max(U_TOLERANCE, INEXACT * result.residual)
                if last or not (INEXACT and MID_NEWTON):
                    U, newton, ok = self.u_step(U, Phi, eps_s, tolerance=tolerance)
                elif local is not None:  # one Newton step on the region's displacements
                    U, newton = self._local_u_step(U, Phi, eps_s, local, tolerance=tolerance), 1
                    result.local_iterations += 1
                else:  # one Newton step (or MID_NEWTON) towards the inexact tolerance is enough mid-way
                    U, newton, ok = self.u_step(U, Phi, eps_s, tolerance=tolerance, max_newton=MID_NEWTON,
                                                test_last=False, linear=MID_LINEAR)
                result.newton_iterations += newton
                if self.regions is not None and not last:  # the next iteration's region
                    local = self.regions.around(moved > fem.tolerance)
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

    def _accelerate(self, A, b, phi, target, lb, rows: np.ndarray | None = None):
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

        if rows is None:
            return candidate if q(candidate) <= q(phi) else target
        # a local φ-step: (A, b) the region's own QP; outside it candidate = target = phi
        return candidate if q(candidate[rows]) <= q(phi[rows]) else target

    # -------------------------------------------------------------- local iterations

    def _local_phi_step(self, U, Phi, lb, eps_s, local) -> tuple[np.ndarray, bool, tuple]:
        """The φ-step on the region's nodes, every other node held at Phi: the box QP of the rows
        A_RR x = b_R − A_RC Φ_C, from the integrals over the region's elements. Returns (φ, ok,
        (A_RR, b_R − A_RC Φ_C)), the last for the over-relaxation's test."""
        A, b = self.phi_qp(U, eps_s, local.elements)
        R = local.dofs
        rows = A[R]
        rhs = b[R] - rows @ np.where(R, 0.0, Phi)
        A_RR = rows[:, R].tocsr()
        x, ok = box_qp(A_RR, rhs, lb[R], np.ones(int(R.sum())), Phi[R], solve=self.phi_solver.solve)
        target = Phi.copy()
        target[R] = x
        return target, ok, (A_RR, rhs)

    def _local_u_step(self, U, Phi, eps_s, local, *, tolerance: float) -> np.ndarray:
        """One Newton step on the region's displacements, every other dof held, with the u-step's
        backtracking on the energy of the region's elements (all that the step changes). Its linear
        solve (linsolve.RegionSolver) is diagonally preconditioned CG to MID_LINEAR of the
        iteration's tolerance, as the global mid-way step's: the region changes from one iteration
        to the next, so a multigrid hierarchy would be set up each time, and a factorisation cost
        1.3× more in all at domain/s = 50. The fields kept (`_u_fields`) are updated on the
        region's elements alone."""
        e = local.elements
        base = self._u_fields(U, eps_s)
        fields = _each(lambda whole: whole[e], base)
        g = self._g(Phi[self.mesh.elements[e]] @ self.N.T)
        energy, residual, C = self._u_terms(U, g, eps_s, tangent=True, elements=e, fields=fields)
        r = local.udofs
        step = np.zeros_like(U)
        K = self._tangent(C, e)[r][:, r]
        step[r] = self.local_solver.solve(K, -residual[r], atol=MID_LINEAR * tolerance * self._force_scale(eps_s))
        slope = np.dot(residual, step)
        alpha = 1.0
        while alpha > 1e-8:  # Armijo backtracking, as in u_step
            trial = U + alpha * step
            fields = self._fields_on(trial, eps_s, e)
            if self._u_terms(trial, g, eps_s, tangent=False, elements=e, fields=fields)[0] <= energy + 1e-4 * alpha * slope:
                break
            alpha *= 0.5
        else:
            return U
        self._memo = (trial, eps_s, _each(lambda whole, part: _replace_rows(whole, e, part), base, fields))
        return trial

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


def _rows(values, elements: np.ndarray | None):
    """values per element (E, ...) restricted to `elements` (indices); a number or None: all, as is."""
    if elements is None or np.ndim(values) == 0:
        return values
    return values[elements]


def _each(fn, *fields):
    """fn applied to the matching arrays of `_fields_on`'s tuples (u, strain, W+, W−), into the
    strain's three components too."""
    return tuple(_each(fn, *parts) if isinstance(parts[0], tuple) else fn(*parts) for parts in zip(*fields))


def _replace_rows(whole: np.ndarray, elements: np.ndarray, part: np.ndarray) -> np.ndarray:
    """A copy of `whole` (E, ...) with the rows `elements` replaced by `part`."""
    out = whole.copy()
    out[elements] = part
    return out
