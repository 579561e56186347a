"""What is minimised, whatever the backend: the physics, the domain, G(x) and the shrinkage history.

Both backends (the PINN in solve.py / pinn_model.py, the finite elements in fem.py) receive a
`Problem`; `build_problem` makes it from a validated scenario.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from . import config
from .cycles import HealedToughness, healing_grid
from .energy import Physics
from .fields import build_toughness
from .geometry import Domain, build_domain
from .shrinkage import ShrinkageField
from .thickness import ThickToughness, build_stiffness, build_substrate_factor


@dataclass(frozen=True)
class Problem:
    """The physics, the domain, G(x) and the shrinkage εs(x, t) on [0, t_end] (vefrac/drying.py;
    without a `shrinkage` field, the plain history εs = rate·t I).

    stiffness: c(x) = h(x)/h_ref, (N, 2) -> (N,), the factor on λ and μ (W+ and W−) where the
    layer's thickness varies (vefrac/thickness.py); None: 1 everywhere. G(x) carries it already.
    substrate_factor: q(x) = η(x)/η, the factor on the substrate term where the bond is in series
    with the layer's own shear through a varying thickness (thickness.SubstrateFactor); None: 1.
    """

    physics: Physics
    domain: Domain
    toughness: nn.Module
    rate: float
    t_end: float
    stiffness: nn.Module | None = None
    substrate_factor: nn.Module | None = None
    shrinkage: ShrinkageField | None = field(default=None, compare=False)

    @property
    def eps_ref(self) -> float:
        """max |εs| over the history (rate·t_end for the plain form): the strain scale of the
        non-dimensional networks."""
        return self.rate * self.t_end if self.shrinkage is None else self.shrinkage.peak

    def shrinkage_strain(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """The compact εs at x (N, 2), t (N,): (N,) isotropic, or (N, 3) (εxx, εyy, εxy); the plain
        form is exactly rate·t."""
        if self.shrinkage is None:
            return self.rate * t
        return self.shrinkage.strain(x, t)

    def eigenstrain(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """(N, 3) shrinkage strain (εxx, εyy, εxy) at x (N, 2), t (N,) or a number."""
        e = self.shrinkage_strain(x, torch.as_tensor(t, device=x.device, dtype=x.dtype).expand(x.shape[0]))
        return e if e.dim() == 2 else torch.stack([e, e, torch.zeros_like(e)], -1)

    def history(self, t: float) -> float:
        """εs of a point dried since t = 0 (history.csv's eps_s): rate·t for the plain form."""
        return self.rate * t if self.shrinkage is None else self.shrinkage.history(t)

    @property
    def energy_scale(self) -> float:
        """The uniform state's energy at t_end, 2K εs² · area: the loss is E / this."""
        return 2 * (self.physics.lam + self.physics.mu) * self.eps_ref**2 * self.domain.area


def build_problem(scn: config.Scenario, *, toughness: nn.Module | None = None) -> Problem:
    """The scenario's problem; `toughness` replaces the scenario's G(x) (the inverse mode's guess)."""
    domain = build_domain(scn.domain)
    fr, mat = scn.fracture, scn.material
    physics = Physics(lam=mat.lame_lambda, mu=mat.lame_mu, eta=mat.substrate_stiffness, split=mat.split,
                      fracture=fr.enabled, s=fr.length_scale, k_res=fr.residual_stiffness, model=fr.model)
    stiffness = build_stiffness(mat, domain, seed=scn.seed)
    if toughness is None:  # a given toughness (the inverse mode's) is G per area as it stands
        toughness = build_toughness(fr.toughness, domain, seed=scn.seed)
        toughness = toughness if stiffness is None else ThickToughness(toughness, stiffness)
    if scn.shrinkage.healing is not None and fr.enabled:  # wet–dry cycles scar G (vefrac/cycles.py)
        toughness = HealedToughness(toughness, healing_grid(domain, s=fr.length_scale))
    return Problem(physics=physics, domain=domain, toughness=toughness,
                   rate=scn.shrinkage.rate, t_end=scn.shrinkage.t_end, stiffness=stiffness,
                   substrate_factor=build_substrate_factor(mat, stiffness),
                   shrinkage=ShrinkageField(scn.shrinkage, domain))
