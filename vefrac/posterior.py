"""The uncertainty of an inferred log G(x): a Gaussian-process posterior whose data are the cracks.

Prior: log G = m + f(x), f a stationary Gaussian process of standard deviation σp and correlation
exp(−r²/(2ℓ²)), the same kernel as vefrac's log-normal toughness fields (vefrac/fields.py).

Data: a picture measures log G where it shows a crack, and nowhere else. Each length s of
observed crack centre line counts as one measurement of log G there with error τ (`error`); far
from every crack the picture says only that G was high enough, which is left to the prior. The
posterior variance of a Gaussian process does not depend on the measured values, only on where
they are and how precise, so

    σ²(x) = σp² − k(x, O) (K(O, O) + diag(τ² s / ℓi))⁻¹ k(O, x)

with O the crack points (centre-line pixels binned to cells of side s, ℓi the centre-line
length in cell i). This is the linearised (Laplace) posterior of the inversion with its
misfit's curvature replaced by a crack-length-weighted diagonal of constant τ: τ is calibrated
on twins with known G (docs/inverse.md), not derived from the energies.

The variance is exact for that model: no random-feature approximation. The cost stays linear
in the layer's area: tiles of 10 ℓ each see only the crack points within 4 ℓ of them (the kernel
is below 4e-4 there), and σ is evaluated at ℓ/2 and interpolated to the output grid.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg, ndimage

from .geometry import Grid

# τ, calibrated (χ²) on the twins of twin-mud at the inversion's defaults (read gap, step 0.6, 6
# outer iterations; docs/inverse.md#how-sure-the-inferred-g-is). One picture: 0.84 on the smooth
# twin. A time-lapse, whose timing pins G down better: 0.33 on the smooth twin's four frames
# (0.315 on the weak-lines twin's, which did not set it: ±2σ covers 95 % near its cracks).
CRACK_NOISE = 0.84
CRACK_NOISE_TIME_LAPSE = 0.33
TILE = 10.0  # tile side, in correlation lengths
HALO = 4.0  # crack points this far (in ℓ) outside a tile still inform it


def default_crack_noise(frames: int) -> float:
    """τ when invert.crack_noise is unset: the one-picture or the time-lapse calibration."""
    return CRACK_NOISE_TIME_LAPSE if frames > 1 else CRACK_NOISE


def crack_points(skeleton: np.ndarray, grid: Grid, *, s: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) centres of the observed centre-line pixels binned to cells of side s, and (N,) the
    centre-line length in each cell (pixel count × mean pixel size)."""
    pts = grid.points()[np.asarray(skeleton, dtype=bool).ravel()]
    if len(pts) == 0:
        return np.zeros((0, 2)), np.zeros(0)
    cells = np.floor((pts - np.asarray(grid.origin)) / s).astype(np.int64)
    _, index, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    index = index.ravel()
    centres = np.zeros((len(counts), 2))
    np.add.at(centres, index, pts)
    centres /= counts[:, None]
    return centres, counts * float(np.mean(grid.spacing))


def posterior_std(skeleton: np.ndarray, grid: Grid, *, s: float, prior_std: float, correlation_length: float,
                  error: float) -> np.ndarray:
    """(ny, nx) posterior standard deviation of log G on `grid`, given the observed centre lines
    `skeleton` ((ny, nx) bool on the same grid). Equal to prior_std far from every crack."""
    centres, lengths = crack_points(skeleton, grid, s=s)
    ell = correlation_length
    coarse = _coarse_grid(grid, ell / 2)
    var = np.full(coarse.shape, prior_std**2)
    if len(centres):
        noise = error**2 * s / lengths
        points = coarse.points()
        ny, nx = coarse.shape
        step = max(1, int(round(TILE * 2)))  # coarse points per tile side (spacing ℓ/2)
        for i0 in range(0, ny, step):
            for j0 in range(0, nx, step):
                rows = np.arange(i0, min(i0 + step, ny))
                cols = np.arange(j0, min(j0 + step, nx))
                idx = (rows[:, None] * nx + cols[None, :]).ravel()
                var.ravel()[idx] = _tile_variance(points[idx], centres, noise, prior_std, ell)
    std = np.sqrt(np.clip(var, 0.0, None))
    return _to_grid(std, coarse, grid)


def _tile_variance(x: np.ndarray, centres: np.ndarray, noise: np.ndarray, sigma: float, ell: float) -> np.ndarray:
    lo, hi = x.min(0) - HALO * ell, x.max(0) + HALO * ell
    near = np.all((centres >= lo) & (centres <= hi), axis=1)
    if not near.any():
        return np.full(len(x), sigma**2)
    o = centres[near]
    k_oo = sigma**2 * _kernel(o, o, ell)
    k_oo[np.diag_indices_from(k_oo)] += noise[near]
    chol = linalg.cholesky(k_oo, lower=True)
    v = linalg.solve_triangular(chol, sigma**2 * _kernel(o, x, ell), lower=True)
    return sigma**2 - np.einsum("ij,ij->j", v, v)


def _kernel(a: np.ndarray, b: np.ndarray, ell: float) -> np.ndarray:
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-0.5 * d2 / ell**2)


def _coarse_grid(grid: Grid, spacing: float) -> Grid:
    """A grid over the same box as `grid`, no coarser than `spacing` (and no finer than grid)."""
    ny, nx = grid.shape
    width = grid.spacing[0] * (nx - 1)
    height = grid.spacing[1] * (ny - 1)
    mx = min(nx, max(2, int(math.ceil(width / spacing)) + 1))
    my = min(ny, max(2, int(math.ceil(height / spacing)) + 1))
    return Grid(grid.origin, (width / (mx - 1), height / (my - 1)), (my, mx))


def _to_grid(values: np.ndarray, coarse: Grid, grid: Grid) -> np.ndarray:
    """Bilinear interpolation from `coarse` to `grid` (same box)."""
    if coarse.shape == grid.shape:
        return values
    ny, nx = grid.shape
    rows = np.arange(ny) * grid.spacing[1] / coarse.spacing[1]
    cols = np.arange(nx) * grid.spacing[0] / coarse.spacing[0]
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return ndimage.map_coordinates(values, [rr, cc], order=1, mode="nearest")


def calibrate_noise(residual: np.ndarray, near: np.ndarray, skeleton: np.ndarray, grid: Grid, *, s: float,
                    prior_std: float, correlation_length: float, low: float = 1e-3, high: float = 100.0) -> float:
    """The τ at which the inferred log G's residuals against a known truth have, near the cracks,
    the spread the posterior claims: mean of (residual/σ)² over `near` equal to one (a χ²
    calibration; the coverage of ±2σ is then a result, not a target). Bisection in log τ."""
    r2 = residual[near] ** 2

    def excess(tau: float) -> float:
        sigma = posterior_std(skeleton, grid, s=s, prior_std=prior_std, correlation_length=correlation_length,
                              error=tau)
        return float(np.mean(r2 / sigma[near] ** 2)) - 1.0

    if excess(high) > 0:  # even the prior is too confident: the data cannot be matched
        return high
    if excess(low) < 0:
        return low
    for _ in range(40):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if excess(mid) > 0 else (low, mid)
        if high / low < 1.01:
            break
    return math.sqrt(low * high)
