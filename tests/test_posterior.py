"""The uncertainty map of an inferred log G: a Gaussian-process posterior whose data are the cracks."""

import math

import numpy as np
import pytest

from vefrac import posterior
from vefrac.geometry import Grid

SIGMA, ELL, S = 0.47, 0.04, 0.02


def _grid(n: int = 201, size: float = 1.0) -> Grid:
    return Grid((0.0, 0.0), (size / (n - 1), size / (n - 1)), (n, n))


def test_one_crack_point_gives_the_closed_form():
    # a single centre-line pixel: one measurement of error tau * sqrt(s / h) at that point, so
    # σ² there is σp² τ'² / (σp² + τ'²) and, at distance r, σp² − σp⁴ exp(−r²/ℓ²) / (σp² + τ'²)
    grid = _grid(41)  # spacing 0.025 > ℓ/2: σ is computed on this grid itself, no interpolation
    skeleton = np.zeros(grid.shape, bool)
    skeleton[20, 20] = True
    tau = 0.3
    sigma = posterior.posterior_std(skeleton, grid, s=S, prior_std=SIGMA, correlation_length=ELL, error=tau)
    noise = tau**2 * S / grid.spacing[0]
    assert sigma[20, 20] ** 2 == pytest.approx(SIGMA**2 * noise / (SIGMA**2 + noise), rel=1e-9)
    r = 2 * grid.spacing[0]
    expected = SIGMA**2 - SIGMA**4 * math.exp(-(r**2) / ELL**2) / (SIGMA**2 + noise)
    assert sigma[20, 22] ** 2 == pytest.approx(expected, rel=1e-9)
    assert sigma[0, 0] == pytest.approx(SIGMA, rel=1e-9)  # 20 ℓ away: the prior


def test_no_cracks_leave_the_prior_and_more_crack_means_less_spread():
    grid = _grid()
    none = posterior.posterior_std(np.zeros(grid.shape, bool), grid, s=S, prior_std=SIGMA, correlation_length=ELL,
                                   error=0.3)
    assert np.allclose(none, SIGMA, rtol=1e-12)
    line = np.zeros(grid.shape, bool)
    line[100, 20:180] = True
    cross = line.copy()
    cross[20:180, 100] = True
    a, b = (posterior.posterior_std(k, grid, s=S, prior_std=SIGMA, correlation_length=ELL, error=0.3)
            for k in (line, cross))
    assert a[100, 60] < 0.7 * SIGMA and a[10, 10] == pytest.approx(SIGMA, rel=1e-6)
    # more data never widens the posterior (up to 1e-4: the crossing moves a binned crack point)
    assert np.all(b <= a + 1e-4) and b[100, 100] < a[100, 100] - 0.01
    assert b[60, 100] < 0.7 * SIGMA and a[60, 100] > 0.99 * SIGMA  # the second crack informs its own line
    # a larger error informs less
    loose = posterior.posterior_std(line, grid, s=S, prior_std=SIGMA, correlation_length=ELL, error=1.0)
    assert np.all(loose >= a - 1e-12) and loose[100, 60] > a[100, 60] + 0.05


def test_tiles_match_one_global_solve():
    # a layer of 50 ℓ: many tiles; the tiled variance equals the untiled one (the halo is 4 ℓ)
    grid = _grid(201, size=2.0)
    rng = np.random.default_rng(0)
    skeleton = np.zeros(grid.shape, bool)
    for _ in range(3):
        i = rng.integers(10, 190)
        skeleton[i, 10:190] = True
        skeleton[10:190, i] = True
    tiled = posterior.posterior_std(skeleton, grid, s=S, prior_std=SIGMA, correlation_length=ELL, error=0.4)
    tile = posterior.TILE
    try:
        posterior.TILE = 1000.0  # one tile covering the whole layer
        whole = posterior.posterior_std(skeleton, grid, s=S, prior_std=SIGMA, correlation_length=ELL, error=0.4)
    finally:
        posterior.TILE = tile
    assert np.abs(tiled - whole).max() < 1e-3
    assert whole.min() < 0.6 * SIGMA


def test_calibration_recovers_the_error_of_simulated_residuals():
    # residuals drawn with the spread the posterior itself claims for tau = 0.35: the χ² calibration
    # finds tau again, and then ±2σ covers about 95 % of the points
    grid = _grid()
    skeleton = np.zeros(grid.shape, bool)
    skeleton[100, 10:190] = True
    skeleton[10:190, 60] = True
    skeleton[10:190, 140] = True
    sigma = posterior.posterior_std(skeleton, grid, s=S, prior_std=SIGMA, correlation_length=ELL, error=0.35)
    residual = sigma * np.random.default_rng(1).standard_normal(grid.shape)
    yy, xx = np.mgrid[0:201, 0:201]
    near = (np.abs(yy - 100) <= 3) | (np.abs(xx - 60) <= 3) | (np.abs(xx - 140) <= 3)
    tau = posterior.calibrate_noise(residual, near, skeleton, grid, s=S, prior_std=SIGMA, correlation_length=ELL)
    assert tau == pytest.approx(0.35, rel=0.1)
    fitted = posterior.posterior_std(skeleton, grid, s=S, prior_std=SIGMA, correlation_length=ELL, error=tau)
    assert 0.92 < np.mean(np.abs(residual[near]) <= 2 * fitted[near]) < 0.98
