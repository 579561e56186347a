"""The inverse mode's unknown, g = log G(x) on a grid or as a network, and its update rule
(one descent step of the energy gap; see inverse.py for the method)."""

from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
import torch
from scipy import ndimage

from . import config
from .fields import GridField, bilinear, build_toughness
from .geometry import Grid
from .nets import FourierMLP


class LogToughness:
    """g = log G(x) on a coarse grid (bilinear) or as a Fourier-feature network.

    `field(grid)` returns G on `grid` as a GridField the solver can use; `update(target)` moves
    g towards target values given on the evaluation grid. Every random draw (the network's
    initial weights, the points of its regressions) comes from `seed`: the n-th update draws from
    a generator seeded by (seed, n), so a resumed inversion repeats an uninterrupted one."""

    def __init__(self, spec: config.Invert, *, grid: Grid, domain, g0: float, s: float, seed: int):
        self.kind, self.grid = spec.unknown, grid
        self.g0, self.seed = g0, seed
        self.updates = 0  # regressions done: the stream of the next one
        xmin, ymin, xmax, ymax = domain.bounds
        if self.kind == "grid":
            h = spec.grid_spacing or s
            nx = max(2, int(math.ceil((xmax - xmin) / h)) + 1)
            ny = max(2, int(math.ceil((ymax - ymin) / h)) + 1)
            self.coarse = Grid((xmin, ymin), ((xmax - xmin) / (nx - 1), (ymax - ymin) / (ny - 1)), (ny, nx))
            self.values = np.full((ny, nx), g0)
        else:
            gen = torch.Generator().manual_seed(seed)
            self.centre = np.array([(xmin + xmax) / 2, (ymin + ymax) / 2])
            self.length = max(xmax - xmin, ymax - ymin)
            scale = max(2.0, 0.5 * self.length / (spec.prior.correlation_length or 2 * s))
            self.net = FourierMLP(out=1, features=128, scale=scale, hidden_layers=2, width=64, generator=gen)
            self.net.reset_output(0.0)
            self.net.float()  # a smooth field: float32 is plenty, and twice as fast on a CPU

    def on_grid(self) -> np.ndarray:
        """(ny, nx) log G on the evaluation grid."""
        pts = self.grid.points()
        if self.kind == "grid":
            v = bilinear(torch.as_tensor(self.values), torch.as_tensor(pts), origin=self.coarse.origin,
                         spacing=self.coarse.spacing)
            return v.numpy().reshape(self.grid.shape)
        with torch.no_grad():
            xh = torch.as_tensor((pts - self.centre) / self.length, dtype=torch.float32)
            return (self.g0 + self.net.value(xh)[:, 0].double()).numpy().reshape(self.grid.shape)

    def field(self) -> GridField:
        return GridField(np.exp(self.on_grid()), origin=self.grid.origin, spacing=self.grid.spacing)

    def update(self, target: np.ndarray, material: np.ndarray) -> None:
        """Move g towards `target` (ny, nx) on the evaluation grid (fitted on the material)."""
        if self.kind == "grid":
            ny, nx = self.coarse.shape
            xs = (self.coarse.origin[0] + self.coarse.spacing[0] * np.arange(nx) - self.grid.origin[0]) / self.grid.spacing[0]
            ys = (self.coarse.origin[1] + self.coarse.spacing[1] * np.arange(ny) - self.grid.origin[1]) / self.grid.spacing[1]
            yy, xx = np.meshgrid(ys, xs, indexing="ij")
            self.values = ndimage.map_coordinates(target, [yy, xx], order=1, mode="nearest")
            return
        pts = torch.as_tensor((self.grid.points()[material.ravel()] - self.centre) / self.length, dtype=torch.float32)
        goal = torch.as_tensor(target.ravel()[material.ravel()] - self.g0, dtype=torch.float32)
        gen = torch.Generator().manual_seed(_update_seed(self.seed, self.updates))
        self.updates += 1
        opt = torch.optim.Adam(self.net.parameters(), lr=3e-3)
        for _ in range(200):  # a regression onto the smoothed target: cheap next to the solves
            idx = torch.randint(0, pts.shape[0], (min(2048, pts.shape[0]),), generator=gen)
            opt.zero_grad()
            loss = ((self.net.value(pts[idx])[:, 0] - goal[idx]) ** 2).mean()
            loss.backward()
            opt.step()

    def state(self) -> dict:
        if self.kind == "grid":
            return {"values": self.values.copy()}
        return {"net": copy.deepcopy(self.net.state_dict()), "updates": self.updates}

    def load(self, state: dict) -> None:
        if self.kind == "grid":
            self.values = np.array(state["values"])
        else:
            self.net.load_state_dict(state["net"])
            self.updates = int(state.get("updates", 0))


def _update_seed(seed: int, updates: int) -> int:
    """The seed of the n-th regression's generator: distinct from the network's own (seed)."""
    return (seed * 1_000_003 + 0x1AB + updates) % (2**63)


def gap_step(g: np.ndarray, *, c_assimilated: np.ndarray, c_free: np.ndarray, material: np.ndarray, s: float,
             step: float, scale: float, smooth: Callable[[np.ndarray], np.ndarray], mean_weight: float,
             g_mean: float) -> np.ndarray:
    """One descent step of the energy gap in g = log G. All fields (ny, nx) on one grid.

    c_*: crack-length densities (φ² + s²|∇φ|²)/(2s) of the assimilated and the free state, so that
    ∂J/∂G = c_assimilated − c_free (Danskin); with invert.gradient read_gap, c_free is that of the
    free state read like the picture and assimilated alike. The gradient is made dimensionless by s, smoothed by
    the prior (`smooth`), divided by `scale` and clipped to ±1: log G moves by at most `step`.
    Then the mean of G is pulled towards g_mean by the fraction `mean_weight` (in log).
    """
    gradient = smooth(s * (c_assimilated - c_free))
    target = g - step * np.clip(gradient / scale, -1.0, 1.0)
    return target - mean_weight * math.log(np.exp(target[material]).mean() / g_mean)


def prior_cv(scn: config.Scenario) -> float:
    """The prior's coefficient of variation of G: invert.prior.cv, else the toughness's cv, else 0.5."""
    cv = scn.invert.prior.cv
    if cv is None:
        cv = getattr(scn.fracture.toughness, "cv", None) or 0.5
    return cv


def prior_draw(scn: config.Scenario, *, g_mean: float, smoothing: float, domain, grid: Grid, seed: int) -> np.ndarray:
    """(ny, nx) log G on grid: a log-normal field with the prior's mean, cv and correlation length
    (`smoothing`), the start of seed `seed` of an ensemble.

    Where the picture says nothing the updates leave a seed's start alone, so the spread of
    the seeds there is the prior's: the ensemble shows what the picture does not constrain."""
    cv = prior_cv(scn)
    spec = config.LogNormalToughness(kind="lognormal", mean=g_mean, cv=cv, correlation_length=smoothing)
    field_ = build_toughness(spec, domain, seed=seed + 0x5EED)
    values = field_(torch.as_tensor(grid.points())).numpy()
    return np.log(values).reshape(grid.shape)
