"""What is minimised, whatever the backend: the physics, the domain, G(x) and the shrinkage history.

Both backends (the PINN in solve.py / pinn_model.py, the finite elements in fem.py) receive a
`Problem`; `build_problem` makes it from a validated scenario.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from . import config
from .energy import Physics
from .fields import build_toughness
from .geometry import Domain, build_domain
from .thickness import ThickToughness, build_stiffness


@dataclass(frozen=True)
class Problem:
    """The physics, the domain, G(x) and the shrinkage history εs = rate·t on [0, t_end].

    stiffness: c(x) = h(x)/h_ref, (N, 2) -> (N,), the factor on λ and μ (W+ and W−) where the
    layer's thickness varies (vefrac/thickness.py); None: 1 everywhere. G(x) carries it already.
    """

    physics: Physics
    domain: Domain
    toughness: nn.Module
    rate: float
    t_end: float
    stiffness: nn.Module | None = None

    @property
    def eps_ref(self) -> float:
        """εs(t_end), the strain scale of the non-dimensional networks."""
        return self.rate * self.t_end

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
    return Problem(physics=physics, domain=domain, toughness=toughness,
                   rate=scn.shrinkage.rate, t_end=scn.shrinkage.t_end, stiffness=stiffness)
