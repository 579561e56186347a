"""Toughness fields G(x) > 0: constant, log-normal random, random-feature network, image.

Random fields are drawn with numpy from the scenario seed, so the same seed gives the same
G(x) on any device and in any backend. Log-normal fields have the requested mean and
coefficient of variation: G = mean * exp(σ Z - σ²/2), σ² = ln(1 + cv²), Z a unit Gaussian
field with correlation exp(-r² / (2 ℓ²)), ℓ = correlation_length.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import config
from .geometry import Domain
from .imageio import read_grey


class GridField(torch.nn.Module):
    """A field sampled on a regular grid and interpolated bilinearly (clamped at the edges).

    values: (ny, nx), row 0 at y = origin[1].
    """

    def __init__(self, values: np.ndarray, *, origin: tuple[float, float], spacing: tuple[float, float]):
        super().__init__()
        self.register_buffer("values", torch.as_tensor(values, dtype=torch.float64))
        self.origin, self.spacing = origin, spacing
        self._cast: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 2). Returns (N,) values in x's dtype."""
        key = (x.dtype, x.device)
        if self._cast.get("key") != key:  # convert the grid once, not at every iteration
            self._cast = {"key": key, "values": self.values.to(device=x.device, dtype=x.dtype)}
        return bilinear(self._cast["values"], x, origin=self.origin, spacing=self.spacing)


class RandomFeatureField(torch.nn.Module):
    """Log-normal field whose Gaussian part is a random Fourier-feature network.

    Z(x) = sqrt(2/M) Σ_j cos(ω_j·x + b_j), ω_j ~ N(0, I/ℓ²), b_j ~ U(0, 2π): a draw of a
    Gaussian process with covariance exp(-r²/(2ℓ²)) (Rahimi & Recht), smooth at every scale.
    """

    def __init__(self, *, mean: float, cv: float, correlation_length: float, features: int,
                 rng: np.random.Generator):
        super().__init__()
        self.register_buffer("omega", torch.as_tensor(rng.normal(size=(2, features)) / correlation_length))
        self.register_buffer("phase", torch.as_tensor(rng.uniform(0, 2 * np.pi, size=features)))
        self.sigma = math.sqrt(math.log1p(cv * cv))
        self.mean = mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.cos(x.double() @ self.omega + self.phase).sum(-1) * math.sqrt(2.0 / self.omega.shape[1])
        return (self.mean * torch.exp(self.sigma * z - 0.5 * self.sigma**2)).to(x.dtype)


class ConstantField(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_full((x.shape[0],), self.value)


def bilinear(values: torch.Tensor, x: torch.Tensor, *, origin, spacing) -> torch.Tensor:
    """Bilinear interpolation of a grid. values: (ny, nx) or (ny, nx, C); x: (N, 2).

    Returns (N,) or (N, C). Points outside the grid take the nearest edge value.
    """
    ny, nx = values.shape[:2]
    fx = ((x[:, 0] - origin[0]) / spacing[0]).clamp(0, nx - 1)
    fy = ((x[:, 1] - origin[1]) / spacing[1]).clamp(0, ny - 1)
    i0 = fx.floor().long().clamp(max=nx - 2)
    j0 = fy.floor().long().clamp(max=ny - 2)
    wx, wy = fx - i0, fy - j0
    flat = values.reshape(ny * nx, -1)
    k = j0 * nx + i0
    wx, wy = wx[:, None], wy[:, None]
    out = ((1 - wy) * ((1 - wx) * flat[k] + wx * flat[k + 1])
           + wy * ((1 - wx) * flat[k + nx] + wx * flat[k + nx + 1]))
    return out[:, 0] if values.dim() == 2 else out


def gaussian_random_field(shape: tuple[int, int], *, spacing: float, correlation_length: float,
                          rng: np.random.Generator) -> np.ndarray:
    """A unit-variance, zero-mean stationary Gaussian field on a periodic grid (FFT method).

    Correlation exp(-r²/(2ℓ²)). Returns (ny, nx). Pad the grid by a few ℓ beyond the region
    of interest so the periodic wrap-around does not correlate opposite edges.
    """
    ny, nx = shape
    kx = 2 * np.pi * np.fft.fftfreq(nx, d=spacing)
    ky = 2 * np.pi * np.fft.fftfreq(ny, d=spacing)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    amplitude = np.exp(-0.25 * k2 * correlation_length**2)  # sqrt of the Gaussian spectrum
    z = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * amplitude))
    return z / np.sqrt(np.mean(amplitude**2))


def build_toughness(spec, domain: Domain, *, seed: int) -> torch.nn.Module:
    """The G(x) module a validated toughness spec describes: (N, 2) -> (N,) > 0. A random field is
    drawn from the spec's own seed when it has one, else from the scenario's `seed`."""
    own = getattr(spec, "seed", None)
    rng = np.random.default_rng([seed if own is None else own, 0x70F])
    if isinstance(spec, config.ConstantToughness):
        return ConstantField(spec.mean)
    if isinstance(spec, config.NetworkToughness):
        return RandomFeatureField(mean=spec.mean, cv=spec.cv, correlation_length=spec.correlation_length,
                                  features=spec.features, rng=rng)
    xmin, ymin, xmax, ymax = domain.bounds
    if isinstance(spec, config.LogNormalToughness):
        ell = spec.correlation_length
        h = min(ell / 4, domain.length / 64)
        pad = 3 * ell
        nx = int(np.ceil((xmax - xmin + 2 * pad) / h)) + 1
        ny = int(np.ceil((ymax - ymin + 2 * pad) / h)) + 1
        if nx * ny > 4096 * 4096:
            h = max(xmax - xmin + 2 * pad, ymax - ymin + 2 * pad) / 4095
            nx = int(np.ceil((xmax - xmin + 2 * pad) / h)) + 1
            ny = int(np.ceil((ymax - ymin + 2 * pad) / h)) + 1
        z = gaussian_random_field((ny, nx), spacing=h, correlation_length=ell, rng=rng)
        sigma = math.sqrt(math.log1p(spec.cv**2))
        g = spec.mean * np.exp(sigma * z - 0.5 * sigma**2)
        return GridField(g, origin=(xmin - pad, ymin - pad), spacing=(h, h))
    if isinstance(spec, config.ImageToughness):
        grey = read_grey(spec.image)[::-1]  # row 0 of the picture is the top: largest y
        gmin, gmax = spec.range
        hgt, wid = grey.shape
        sx, sy = (xmax - xmin) / wid, (ymax - ymin) / hgt
        return GridField(gmin + (gmax - gmin) * grey, origin=(xmin + sx / 2, ymin + sy / 2), spacing=(sx, sy))
    raise TypeError(f"unknown toughness {spec!r}")
