"""Integration points drawn on the device, with weights that keep energy estimates unbiased.

Points fill the domain's bounding box; a point's weight is box_area / N on the material and
0 outside, so Σ w f(x) estimates ∫_Ω f dx without bias for every shape, at a fixed N.
"""

from __future__ import annotations

import math

import torch

from .geometry import Domain


class Sampler:
    """Draw (x (N, 2), w (N,)) in physical coordinates; `kind` is stratified, sobol or uniform.

    stratified: one uniform point in each cell of an nx × ny grid over the box (N = nx·ny).
    sobol: a scrambled Sobol set, shifted by a fresh uniform offset modulo the box at each draw
    (randomised quasi-Monte-Carlo: unbiased). uniform: i.i.d. points.
    """

    def __init__(self, domain: Domain, *, n: int, kind: str, generator: torch.Generator,
                 dtype: torch.dtype = torch.float32):
        self.domain, self.kind, self.generator, self.dtype = domain, kind, generator, dtype
        device = generator.device
        w, h = domain.size
        xmin, ymin = domain.bounds[:2]
        self.lo = torch.tensor([xmin, ymin], dtype=dtype, device=device)
        self.extent = torch.tensor([w, h], dtype=dtype, device=device)
        if kind == "stratified":
            nx = max(1, round(math.sqrt(n * w / h)))
            ny = max(1, round(n / nx))
            iy, ix = torch.meshgrid(torch.arange(ny, device=device), torch.arange(nx, device=device), indexing="ij")
            self.cells = torch.stack([ix.reshape(-1), iy.reshape(-1)], 1).to(dtype)
            self.cell_size = torch.tensor([1.0 / nx, 1.0 / ny], dtype=dtype, device=device)
            n = nx * ny
        elif kind == "sobol":
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=device).item())
            engine = torch.quasirandom.SobolEngine(2, scramble=True, seed=seed)
            self.base = engine.draw(n, dtype=torch.float64).to(device=device, dtype=dtype)
        elif kind != "uniform":
            raise ValueError(f"unknown sampling {kind!r}")
        self.n = n
        self.weight = domain.box_area / n

    def unit(self) -> torch.Tensor:
        """(N, 2) points in the unit square."""
        noise = torch.rand((self.n, 2), generator=self.generator, device=self.generator.device, dtype=self.dtype)
        if self.kind == "stratified":
            return (self.cells + noise) * self.cell_size
        if self.kind == "sobol":
            return torch.remainder(self.base + noise[:1], 1.0)
        return noise

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.lo + self.unit() * self.extent
        inside = self.domain.inside(x)
        return x, inside.to(self.dtype) * self.weight
