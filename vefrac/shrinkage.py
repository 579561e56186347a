"""The shrinkage strain εs(x, t) of a scenario, as a function of tensors (model: vefrac/drying.py).

    εs(x, t) = f(t − τ(x)) · (I + a (n⊗n − I/2))

`ShrinkageField.strain(x, t)` returns the compact form both backends add to sym ∇u: the
isotropic (N,) value f where there is no anisotropy (for the plain `rate` form exactly
`rate * t`, so today's runs are reproduced bit for bit), else the (N, 3) components
(εxx, εyy, εxy). `eigenstrain` always returns (N, 3).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

from . import drying
from .fields import GridField
from .geometry import Domain

# rim distance of a non-disk domain: a distance transform on this many cells along the longest side
RIM_RESOLUTION = 1024


def interp(t: torch.Tensor, times: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation through (times, values) (K,), constant outside. t: any shape."""
    k = torch.searchsorted(times, t.detach().contiguous(), right=True).clamp(1, len(times) - 1)
    t0, t1, v0, v1 = times[k - 1], times[k], values[k - 1], values[k]
    w = ((t - t0) / (t1 - t0)).clamp(0, 1)
    return v0 + w * (v1 - v0)


class ShrinkageField:
    """εs(x, t) of a validated `drying.Shrinkage` over `domain`."""

    def __init__(self, spec: drying.Shrinkage, domain: Domain):
        self.spec, self.domain = spec, domain
        self.plain = spec.history is None and spec.cycles is None and spec.front is None and spec.anisotropy is None
        times, strains = drying.knots(spec)
        self.knot_times = np.asarray(times, float)
        self.knot_strains = np.asarray(strains, float)
        self._tables: dict = {}
        self.distance = None if spec.front is None else front_distance(spec.front.edge, domain)
        if spec.anisotropy is None:
            self.tensor = None
        else:
            a, th = spec.anisotropy.amplitude, math.radians(spec.anisotropy.angle)
            # I + a (n⊗n − I/2) = (1 + a/2 cos 2θ, 1 − a/2 cos 2θ, a/2 sin 2θ)
            self.tensor = (1 + 0.5 * a * math.cos(2 * th), 1 - 0.5 * a * math.cos(2 * th), 0.5 * a * math.sin(2 * th))

    @property
    def rate(self) -> float:
        return self.spec.rate

    @property
    def peak(self) -> float:
        """max over the history of |εs|: the largest principal shrinkage strain."""
        if self.plain:
            return self.spec.rate * self.spec.t_end
        f = float(self.knot_strains[self.knot_times <= self.spec.t_end * (1 + 1e-12)].max())
        if self.spec.t_end > self.knot_times[-1]:
            f = max(f, float(self.knot_strains[-1]))
        a = 0.0 if self.spec.anisotropy is None else abs(self.spec.anisotropy.amplitude)
        return f * (1 + 0.5 * a)

    def history(self, t: float) -> float:
        """f(t): the strain of a point that has dried since t = 0 (the history.csv column eps_s)."""
        if self.plain:
            return self.spec.rate * t
        return float(np.interp(t, self.knot_times, self.knot_strains))

    def _f(self, t: torch.Tensor) -> torch.Tensor:
        key = (t.device, t.dtype)
        if key not in self._tables:
            self._tables[key] = (torch.as_tensor(self.knot_times, device=t.device, dtype=t.dtype),
                                 torch.as_tensor(self.knot_strains, device=t.device, dtype=t.dtype))
        return interp(t, *self._tables[key])

    def strain(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """x: (N, 2), t: (N,) or a number. Returns (N,) isotropic εs, or (N, 3) with anisotropy."""
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if self.plain:
            return self.spec.rate * t
        if self.distance is not None:
            t = torch.relu(t - self.distance(x) / self.spec.front.speed)
        f = self._f(t)
        if self.tensor is None:
            return f
        return f[:, None] * f.new_tensor(self.tensor)

    def eigenstrain(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """(N, 3) shrinkage strain (εxx, εyy, εxy)."""
        e = self.strain(x, t)
        return e if e.dim() == 2 else torch.stack([e, e, torch.zeros_like(e)], -1)


def front_distance(edge: str, domain: Domain):
    """d(x): distance to the edge the front enters from, a function (N, 2) -> (N,).

    left/right/bottom/top: the bounding box's side. rim: the distance to the domain's boundary
    (a Euclidean distance transform of the material on a grid of RIM_RESOLUTION points along the
    longest side, interpolated bilinearly)."""
    xmin, ymin, xmax, ymax = domain.bounds
    if edge == "left":
        return lambda x: x[:, 0] - xmin
    if edge == "right":
        return lambda x: xmax - x[:, 0]
    if edge == "bottom":
        return lambda x: x[:, 1] - ymin
    if edge == "top":
        return lambda x: ymax - x[:, 1]
    if edge != "rim":
        raise ValueError(f"unknown front edge {edge!r}")
    return rim_distance_field(domain)


def rim_distance_field(domain: Domain, resolution: int = RIM_RESOLUTION) -> GridField:
    """Distance to the material's boundary on a grid over the bounding box (0 outside)."""
    grid = domain.grid(resolution)
    inside = domain.inside(torch.as_tensor(grid.points())).numpy().reshape(grid.shape)
    padded = np.pad(inside, 1)  # the box's edge is the boundary of a material touching it
    hx, hy = grid.spacing
    d = ndimage.distance_transform_edt(padded, sampling=(hy, hx))[1:-1, 1:-1]
    # a grid node at the boundary lies half a spacing inside the last material cell
    d = np.where(inside, np.maximum(d - 0.5 * min(hx, hy), 0.0), 0.0)
    return GridField(d, origin=grid.origin, spacing=grid.spacing)
