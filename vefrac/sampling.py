"""Integration points drawn on the device, with weights that keep energy estimates unbiased.

Points fill the domain's bounding box; a point's weight is box_area / N on the material and
0 outside, so Σ w f(x) estimates ∫_Ω f dx without bias for every shape, at a fixed N.

`importance` sampling draws from a mixture instead, N_u points stratified over the box and
N_q points from a density q that is piecewise constant on the cells of a grid (the load
stepping cache grid, q following the previous step's crack band). Every point is weighted
w = inside(x) / (N_u/|box| + N_q q(x)) = inside(x) / (N p(x)), p the mixture density, so
E Σ w f = ∫_Ω f still, for any q (the stratified part keeps p > 0 on the whole box).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .geometry import Domain, Grid

FLOOR = 0.01  # q is at least this fraction of its mean on the material cells


def _strata(n: int, *, w: float, h: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """An nx × ny grid of about n cells over the unit square, as close to square cells as the
    box allows. Returns the cells' lower-left corners in cell units (nx·ny, 2) and the cell
    size (2,) in unit-square coordinates."""
    nx = max(1, round(math.sqrt(n * w / h)))
    ny = max(1, round(n / nx))
    iy, ix = torch.meshgrid(torch.arange(ny, device=device), torch.arange(nx, device=device), indexing="ij")
    cells = torch.stack([ix.reshape(-1), iy.reshape(-1)], 1).to(dtype)
    return cells, torch.tensor([1.0 / nx, 1.0 / ny], dtype=dtype, device=device)


def crack_band_density(indicator: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Cell probabilities of q from an indicator given at the nodes of a grid.

    indicator: (ny, nx) ≥ 0 at the grid nodes (the crack-length density of the previous step,
    say); inside: (ny, nx) bool, nodes on the material. Returns (ny−1, nx−1) probabilities
    summing to 1: per cell the largest indicator at its 4 nodes, spread to the neighbouring
    cells (a band thinner than a cell, its flanks and a tip that grows by a cell are all
    covered), 0 on cells with no material node, and at least FLOOR × its mean elsewhere.
    """
    nodes = indicator.clamp_min(0)[None, None]
    cell = F.max_pool2d(F.max_pool2d(nodes, 2, stride=1), 3, stride=1, padding=1)[0, 0]
    material = F.max_pool2d(inside.to(indicator.dtype)[None, None], 2, stride=1)[0, 0] > 0
    material = material | ~material.any()  # no material node at all: spread over the whole box
    mean = (cell * material).sum() / material.sum()
    q = torch.where(material, cell.clamp_min(FLOOR * mean + torch.finfo(indicator.dtype).tiny), 0.0)
    return q / q.sum()


class Sampler:
    """Draw (x (N, 2), w (N,)) in physical coordinates; `kind` is stratified, sobol, uniform or
    importance.

    stratified: one uniform point in each cell of an nx × ny grid over the box (N = nx·ny).
    sobol: a scrambled Sobol set, shifted by a fresh uniform offset modulo the box at each draw
    (randomised quasi-Monte-Carlo: unbiased). uniform: i.i.d. points.
    importance: the mixture of the module docstring, a fraction `fraction` of the points from q
    (set by `set_density`); until a density is set, exactly the stratified sampler.
    """

    def __init__(self, domain: Domain, *, n: int, kind: str, generator: torch.Generator,
                 dtype: torch.dtype = torch.float32, fraction: float = 0.5):
        self.domain, self.kind, self.generator, self.dtype = domain, kind, generator, dtype
        device = generator.device
        w, h = domain.size
        xmin, ymin = domain.bounds[:2]
        self.lo = torch.tensor([xmin, ymin], dtype=dtype, device=device)
        self.extent = torch.tensor([w, h], dtype=dtype, device=device)
        if kind in ("stratified", "importance"):
            self.cells, self.cell_size = _strata(n, w=w, h=h, device=device, dtype=dtype)
            n_total = n
            n = self.cells.shape[0]
        elif kind == "sobol":
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=device).item())
            engine = torch.quasirandom.SobolEngine(2, scramble=True, seed=seed)
            self.base = engine.draw(n, dtype=torch.float64).to(device=device, dtype=dtype)
        elif kind != "uniform":
            raise ValueError(f"unknown sampling {kind!r}")
        self.n = n
        self.weight = domain.box_area / n
        self.density: dict | None = None
        if kind == "importance":
            if not 0 <= fraction < 1:
                raise ValueError(f"importance fraction must be in [0, 1), got {fraction}")
            self.n_q = round(fraction * n_total)
            self.mix_cells, self.mix_cell_size = _strata(n_total - self.n_q, w=w, h=h, device=device, dtype=dtype)
            self.n_u = self.mix_cells.shape[0]

    def set_density(self, indicator: torch.Tensor | None, grid: Grid | None) -> None:
        """Importance sampling: draw the q part in proportion to `indicator` (ny, nx) on the
        nodes of `grid` (see `crack_band_density`); None: back to the stratified sampler.
        Called once per load step, when the cache changes; drawing then needs no host sync."""
        if self.kind != "importance":
            raise ValueError("set_density needs kind='importance'")
        if indicator is None:
            self.density = None
            return
        device = self.generator.device
        nodes = torch.as_tensor(grid.points(), dtype=self.dtype, device=device)
        inside = self.domain.inside(nodes).reshape(grid.shape)
        prob = crack_band_density(indicator.to(device=device, dtype=torch.float64), inside)
        cdf = prob.reshape(-1).cumsum(0)
        cell_area = grid.spacing[0] * grid.spacing[1]
        self.density = {
            "cdf": cdf / cdf[-1],  # float64: fine tables of a million cells still resolve
            # points per unit area: N_q q(x) on each cell, N_u/|box| added when weighting
            "count": (self.n_q * prob / cell_area).to(self.dtype).reshape(-1),
            "origin": torch.tensor(grid.origin, dtype=self.dtype, device=device),
            "spacing": torch.tensor(grid.spacing, dtype=self.dtype, device=device),
            "cells": (grid.shape[1] - 1, grid.shape[0] - 1),  # (ncx, ncy)
        }

    def unit(self) -> torch.Tensor:
        """(N, 2) points in the unit square."""
        noise = torch.rand((self.n, 2), generator=self.generator, device=self.generator.device, dtype=self.dtype)
        if self.kind in ("stratified", "importance"):
            return (self.cells + noise) * self.cell_size
        if self.kind == "sobol":
            return torch.remainder(self.base + noise[:1], 1.0)
        return noise

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.density is not None:
            return self._mixture()
        x = self.lo + self.unit() * self.extent
        inside = self.domain.inside(x)
        return x, inside.to(self.dtype) * self.weight

    def _mixture(self) -> tuple[torch.Tensor, torch.Tensor]:
        """N_u stratified points, then N_q points from q; w = inside / (N p)."""
        d, g, device = self.density, self.generator, self.generator.device
        ncx, ncy = d["cells"]
        noise = torch.rand((self.n_u, 2), generator=g, device=device, dtype=self.dtype)
        x_u = self.lo + (self.mix_cells + noise) * self.mix_cell_size * self.extent
        ij = ((x_u - d["origin"]) / d["spacing"]).floor().long()
        cell_u = ij[:, 1].clamp(0, ncy - 1) * ncx + ij[:, 0].clamp(0, ncx - 1)
        pick = torch.rand(self.n_q, generator=g, device=device, dtype=torch.float64)
        cell_q = torch.searchsorted(d["cdf"], pick, right=True).clamp_(max=ncx * ncy - 1)
        corner = torch.stack([cell_q % ncx, cell_q // ncx], 1).to(self.dtype)
        noise = torch.rand((self.n_q, 2), generator=g, device=device, dtype=self.dtype)
        x_q = d["origin"] + (corner + noise) * d["spacing"]
        x = torch.cat([x_u, x_q])
        count = self.n_u / self.domain.box_area + d["count"][torch.cat([cell_u, cell_q])]
        return x, self.domain.inside(x).to(self.dtype) / count
