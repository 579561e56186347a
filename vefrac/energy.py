"""The energy of a shrinking layer on a substrate: pure functions of tensors.

Strains are carried as their three components (exx, eyy, exy), each (N,). Densities are
per unit area, in the scenario's units.

    E = ∫ g(φ) W+(εe) + W−(εe)  +  surface(φ, ∇φ; G, s)  +  η/2 |u|²  dx,   εe = sym ∇u + εs(x, t)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Strain = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def elastic_strain(grad_u: torch.Tensor, eps_s: float | torch.Tensor) -> Strain:
    """grad_u: (N, 2, 2) with grad_u[:, i, j] = ∂u_i/∂x_j. Returns (exx, eyy, exy) of sym∇u + εs.

    eps_s: the shrinkage strain, a number or (N,) (isotropic, εs I) or (N, 3) (εxx, εyy, εxy)."""
    if isinstance(eps_s, torch.Tensor) and eps_s.dim() == 2:
        return (grad_u[:, 0, 0] + eps_s[:, 0], grad_u[:, 1, 1] + eps_s[:, 1],
                0.5 * (grad_u[:, 0, 1] + grad_u[:, 1, 0]) + eps_s[:, 2])
    exx = grad_u[:, 0, 0] + eps_s
    eyy = grad_u[:, 1, 1] + eps_s
    exy = 0.5 * (grad_u[:, 0, 1] + grad_u[:, 1, 0])
    return exx, eyy, exy


def split_energy(strain: Strain, *, lam: float, mu: float, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(W+, W−): the part of W = λ/2 (tr ε)² + μ ε:ε that cracks degrade, and the rest."""
    exx, eyy, exy = strain
    tr = exx + eyy
    if split == "amor":
        bulk = lam + mu  # 2D bulk modulus
        dev2 = 0.5 * (exx - eyy) ** 2 + 2 * exy**2  # |dev ε|², dev ε = ε − ½ tr ε I
        pos, neg = torch.relu(tr), torch.relu(-tr)
        return 0.5 * bulk * pos**2 + mu * dev2, 0.5 * bulk * neg**2
    if split == "spectral":
        # the tiny shift keeps the square root differentiable at equibiaxial states
        radius = torch.sqrt(0.25 * (exx - eyy) ** 2 + exy**2 + 1e-30)
        e1, e2 = 0.5 * tr + radius, 0.5 * tr - radius
        w_pos = 0.5 * lam * torch.relu(tr) ** 2 + mu * (torch.relu(e1) ** 2 + torch.relu(e2) ** 2)
        w_neg = 0.5 * lam * torch.relu(-tr) ** 2 + mu * (torch.relu(-e1) ** 2 + torch.relu(-e2) ** 2)
        return w_pos, w_neg
    if split == "none":
        w = 0.5 * lam * tr**2 + mu * (exx**2 + eyy**2 + 2 * exy**2)
        return w, torch.zeros_like(w)
    raise ValueError(f"unknown split {split!r}")


def degradation(phi: torch.Tensor, *, k_res: float) -> torch.Tensor:
    """g(φ) = (1 − φ)² + k_res: a broken layer keeps a trace of stiffness."""
    return (1 - phi) ** 2 + k_res


def surface_density(phi: torch.Tensor, grad_phi: torch.Tensor, G: torch.Tensor, *, s: float,
                    model: str = "at2") -> torch.Tensor:
    """Crack-surface energy density. phi: (N,), grad_phi: (N, 2), G: (N,).

    AT2: G/(2s) (φ² + s²|∇φ|²); AT1: 3G/(8s) (φ + s²|∇φ|²).
    """
    g2 = (grad_phi**2).sum(-1)
    if model == "at2":
        return G / (2 * s) * (phi**2 + s**2 * g2)
    if model == "at1":
        return 3 * G / (8 * s) * (phi + s**2 * g2)
    raise ValueError(f"unknown crack model {model!r}")


def crack_length_density(phi: torch.Tensor, grad_phi: torch.Tensor, *, s: float, model: str = "at2") -> torch.Tensor:
    """The surface functional with G = 1: integrates to the crack length of optimal profiles."""
    return surface_density(phi, grad_phi, torch.ones_like(phi), s=s, model=model)


def substrate_density(u: torch.Tensor, *, eta: float) -> torch.Tensor:
    """η/2 |u|². u: (N, 2)."""
    return 0.5 * eta * (u**2).sum(-1)


@dataclass(frozen=True)
class Physics:
    """The coefficients of the energy, in the scenario's units."""

    lam: float
    mu: float
    eta: float
    split: str
    fracture: bool
    s: float
    k_res: float
    model: str = "at2"

    @property
    def elastic_length(self) -> float:
        """ℓe = sqrt((λ + 2μ)/η): stresses relax within about ℓe of a free edge or crack."""
        return ((self.lam + 2 * self.mu) / self.eta) ** 0.5


def energy_densities(physics: Physics, *, u: torch.Tensor, grad_u: torch.Tensor, phi: torch.Tensor | None,
                     grad_phi: torch.Tensor | None, G: torch.Tensor | None, eps_s,
                     stiffness: torch.Tensor | None = None,
                     substrate_factor: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Every energy density at N points: 'elastic', 'surface', 'substrate', each (N,).

    stiffness: (N,) factor c(x) on λ and μ (a layer of varying thickness); None: 1.
    substrate_factor: (N,) factor q(x) on η (Problem.substrate_factor); None: 1."""
    w_pos, w_neg = split_energy(elastic_strain(grad_u, eps_s), lam=physics.lam, mu=physics.mu,
                                split=physics.split)
    if stiffness is not None:  # W is linear in (λ, μ): scaling both scales W+ and W−
        w_pos, w_neg = stiffness * w_pos, stiffness * w_neg
    if physics.fracture:
        elastic = degradation(phi, k_res=physics.k_res) * w_pos + w_neg
        surface = surface_density(phi, grad_phi, G, s=physics.s, model=physics.model)
    else:
        elastic, surface = w_pos + w_neg, torch.zeros_like(w_pos)
    substrate = substrate_density(u, eta=physics.eta)
    if substrate_factor is not None:
        substrate = substrate_factor * substrate
    return {"elastic": elastic, "surface": surface, "substrate": substrate}
