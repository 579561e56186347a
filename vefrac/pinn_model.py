"""The PINN's fields: u(x, t) and φ(x, t) in physical units from non-dimensional networks.

Networks see x̂ = (x − centre)/L (one global network, or a partition of unity of local ones:
network.representation, see patches.py); the u-net returns u/(ε_ref L) with ε_ref = εs(t_end). Load
stepping: φ = φ_prev + (1 − φ_prev)·σ(z), φ_prev the previous step's φ cached on a grid (refreshed
by phi_cache.refresh_cache); space-time: φ non-decreasing in t by construction.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
from torch import nn

from . import config
from .fields import bilinear
from .geometry import Grid
from .nets import FourierMLP, incremental_phase_field, space_time_phase_field
from .patches import PatchLayout, PatchNet
from .problem import Problem


def fourier_scale(network: config.Network, problem: Problem) -> float:
    """Fourier scale in units of 1/L: 0.1·L/s (≥ 2) resolves crack bands of width ~s.
    (`network.fourier_scales`, when given, replaces it by one scale per group of features.)"""
    if network.fourier_scale is not None:
        return network.fourier_scale
    if not problem.physics.fracture:
        return 2.0
    return max(2.0, 0.1 * problem.domain.length / problem.physics.s)


def patch_layout(network: config.Network, problem: Problem) -> PatchLayout:
    """network.representation patches: the patch grid over the domain's box, in x̂ = (x − centre)/L,
    patches of side network.patch_size·ℓe (at most: the grid is stretched to tile the box)."""
    dom, ph = problem.domain, problem.physics
    elastic_length = math.sqrt((ph.lam + 2 * ph.mu) / ph.eta)
    lower = [(b - c) / dom.length for b, c in zip(dom.bounds[:2], dom.center)]
    upper = [(b - c) / dom.length for b, c in zip(dom.bounds[2:], dom.center)]
    return PatchLayout.over(lower, upper, side=network.patch_size * elastic_length / dom.length,
                            overlap=network.patch_overlap, periodic=dom.periodic)


def representation(network: config.Network, problem: Problem) -> Callable[..., nn.Module]:
    """A constructor of the scenario's networks, (out, generator, extra) -> module with
    forward(x̂, extra) -> (value, grad) and reset_output(bias): one global FourierMLP, or a
    partition of unity of local ones whose frequencies have the same resolution per unit length."""
    scale = tuple(network.fourier_scales) if network.fourier_scales else fourier_scale(network, problem)
    common = dict(features=network.fourier_features, hidden_layers=network.hidden_layers, width=network.width)
    dom = problem.domain
    if network.representation == "global":
        periods = tuple(size / dom.length if p else None for size, p in zip(dom.size, dom.periodic))
        return partial(FourierMLP, scale=scale, periods=periods, **common)
    layout = patch_layout(network, problem)
    local = tuple(v * layout.side for v in scale) if isinstance(scale, tuple) else scale * layout.side
    return partial(PatchNet, layout, scale=local, **common)


class FieldModel(nn.Module):
    """u(x, t) and φ(x, t) in physical units from non-dimensional networks.

    fields(x (N, 2), t (N,)) -> u (N, 2), ∇u (N, 2, 2) [∂u_i/∂x_j], φ (N,) or None, ∇φ (N, 2) or None.
    """

    def __init__(self, problem: Problem, network: config.Network, generator: torch.Generator, *,
                 space_time: bool, phi_bias: float):
        super().__init__()
        dom = problem.domain
        self.register_buffer("center_t", torch.tensor(dom.center, dtype=torch.float64), persistent=False)
        self.length = dom.length
        self.eps_ref = problem.eps_ref
        self.t_end = problem.t_end
        self.space_time = space_time
        self.fracture = problem.physics.fracture
        make = representation(network, problem)
        self.u_net = make(out=2, generator=generator, extra=1 if space_time else 0)
        self.u_net.reset_output(0.0)  # start from u = 0: the uniform state, not a random strain
        self.phi_net = None
        if problem.physics.fracture:
            out = network.time_knots if space_time else 1
            self.phi_net = make(out=out, generator=generator)
            self.phi_net.reset_output(phi_bias)
            k = network.time_knots
            self.register_buffer("knots", (torch.arange(k, dtype=torch.float64) + 0.5) / k)
            self.knot_width = 0.5 / k
        # load stepping: φ of the previous step on a grid, channels (φ, ∂φ/∂x, ∂φ/∂y)
        self.cache_grid: Grid | None = None
        self.register_buffer("cache", None)
        self.committed_only = False  # φ is the cache alone: the committed state (see phi_cache.committed_state)

    def forward(self, x: torch.Tensor, t: torch.Tensor):
        """Same as `fields`: lets DistributedDataParallel wrap the model."""
        return self.fields(x, t)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.center_t) / self.length

    def fields(self, x: torch.Tensor, t: torch.Tensor):
        xh = self.normalise(x)
        th = (t / self.t_end)[:, None]
        if self.space_time:
            v, gv = self.u_net(xh, th)
            u, grad_u = v * th, gv * th[:, :, None]  # u = 0 at t = 0, grows with the load
        else:
            u, grad_u = self.u_net(xh)
        u = u * (self.eps_ref * self.length)
        grad_u = grad_u * self.eps_ref  # (U / L) ∂/∂x̂
        if self.phi_net is None:
            return u, grad_u, None, None
        phi, grad_phi = self._phase_field(xh, th, x)
        return u, grad_u, phi, grad_phi

    def phase_field(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """φ (N,) and ∇φ (N, 2) alone, by the same arithmetic as `fields` (the u-net is not
        evaluated): what the φ cache's refresh needs at its many check points."""
        return self._phase_field(self.normalise(x), (t / self.t_end)[:, None], x)

    def _phase_field(self, xh: torch.Tensor, th: torch.Tensor, x: torch.Tensor):
        a, grad_a = self.phi_net(xh)
        grad_a = grad_a / self.length
        if self.space_time:
            phi, grad_phi = space_time_phase_field(a, grad_a, th[:, 0], knots=self.knots.to(x.dtype),
                                                   width=self.knot_width)
        else:
            prev = self.previous_phi(x)
            if self.committed_only:
                phi, grad_phi = prev[:, 0], prev[:, 1:]
            else:
                phi, grad_phi = incremental_phase_field(prev[:, 0], prev[:, 1:], a[:, 0], grad_a[:, 0])
        return phi, grad_phi

    def previous_phi(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3): φ, ∂φ/∂x, ∂φ/∂y of the previous load step, interpolated from the cache."""
        if self.cache is None:
            return x.new_zeros((x.shape[0], 3))
        return bilinear(self.cache, x, origin=self.cache_grid.origin, spacing=self.cache_grid.spacing)
