"""Wet–dry cycles: rewetting heals cracks to a fraction of their toughness.

Model. Within a drying phase the evolution is the project's: quasi-static, φ non-decreasing.
When the history f(t) falls back to `shrinkage.healing.threshold` (drying.rewet_times) the layer
is rewetted: the water closes the cracks (a paste or a colloidal gel swells back and its
particles re-bond across the crack faces), but a re-bonded crack is weaker than intact material.
So at the end of cycle n

    G_{n+1}(x) = G_n(x) · (1 − (1 − α) φ_n(x)),      φ ← 0,

α = healing.fraction: α = 1 heals completely (every cycle starts afresh), α = 0 leaves the
cracks as cuts of zero toughness. The next cycle is a new quasi-static evolution from an intact
but scarred layer: its cracks prefer the old paths, and may leave them where the energy gains by
it (Goehring et al. 2010: the old T-junctions migrate towards Y-junctions over cycles). The
irreversibility contract holds within each drying phase; the reset of φ at a rewetting is the
model's one exception, and happens only at the rewet times.

`HealedToughness` wraps a scenario's G(x): G(x) · H(x), H = Π_n (1 − (1 − α) φ_n) on a grid of
spacing ≤ s/4, interpolated bilinearly, so both backends (the FEM at its Gauss points, the PINN
at its samples) see the same healed field, and checkpoints carry H.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .fields import bilinear
from .geometry import Domain, Grid

# the healing grid: this many points per phase-field length s
POINTS_PER_LENGTH = 4


class HealedToughness(nn.Module):
    """G(x) = base(x) · H(x): the base toughness scarred by the cracks of earlier cycles."""

    def __init__(self, base: nn.Module, grid: Grid):
        super().__init__()
        self.base, self.grid = base, grid
        self.register_buffer("factor", torch.ones(grid.shape, dtype=torch.float64))
        self._cast: dict = {}
        self.version = 0  # bumped at every change of H: the cast copy is then renewed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 2). Returns (N,) G in x's dtype."""
        key = (x.dtype, x.device, self.version)
        if self._cast.get("key") != key:  # convert the grid once per cycle, not at every iteration
            self._cast = {"key": key, "values": self.factor.to(device=x.device, dtype=x.dtype)}
        h = bilinear(self._cast["values"], x, origin=self.grid.origin, spacing=self.grid.spacing)
        return self.base(x) * h

    @torch.no_grad()
    def heal(self, phi: np.ndarray, *, fraction: float) -> None:
        """A rewetting: H ← H · (1 − (1 − fraction) φ). phi: the cycle's φ at the grid's points
        (ny·nx,), clipped to [0, 1]."""
        p = torch.as_tensor(np.clip(phi, 0.0, 1.0).reshape(self.grid.shape), dtype=self.factor.dtype,
                            device=self.factor.device)
        self.factor.mul_(1 - (1 - fraction) * p)
        self.version += 1

    def load_factor(self, factor: torch.Tensor) -> None:
        """From a checkpoint."""
        with torch.no_grad():
            self.factor.copy_(factor.to(self.factor))
        self.version += 1


def healing_grid(domain: Domain, *, s: float) -> Grid:
    """The grid H lives on: at least POINTS_PER_LENGTH points per s along the longest side."""
    return domain.grid(max(16, int(math.ceil(POINTS_PER_LENGTH * domain.length / s)) + 1))


def cycle_statistics(pattern_stats: dict) -> dict:
    """The per-cycle record: cell count, junction kinds, T fraction, junction-angle summary and
    histogram (10° bins over [0, 180]), crack spacing and nematic order."""
    angles = np.asarray([a for arms in pattern_stats["junction_angles"] for a in arms], float)
    hist, _ = np.histogram(angles, bins=np.arange(0.0, 190.0, 10.0))
    # Goehring et al. measure three-armed junctions: T (90°, 90°, 180°) and Y (120° × 3) alike have a
    # mean of 120°, so their statistic is the angle distribution; its spread, and the largest angle
    # of each junction (180° for a T, 120° for a Y), tell them apart
    three = [arms for arms, kind in zip(pattern_stats["junction_angles"], pattern_stats["junction_kinds"])
             if kind in ("T", "Y")]
    three_angles = np.asarray([a for arms in three for a in arms], float)
    keys = ("cells", "interior_cells", "junctions", "t_junctions", "y_junctions", "x_junctions",
            "t_junction_fraction", "crack_spacing", "crack_length_per_area", "nematic_order")
    return {k: pattern_stats[k] for k in keys} | {
        "junction_angle_mean": pattern_stats["junction_angle"]["mean"],
        "junction_angle_median": pattern_stats["junction_angle"]["median"],
        "junction_angle_histogram": hist.tolist(),
        "three_arm_junctions": len(three),
        "three_arm_angle_std": float(three_angles.std()) if three_angles.size else None,
        "three_arm_largest_angle_mean": float(np.mean([max(arms) for arms in three])) if three else None}
