"""Domains: which points are material, the area, and the regular grid used for export.

Every domain lives inside its bounding box. Points are sampled in that box and weighted by
box_area / N on the material (0 outside), so Monte-Carlo energy estimates stay unbiased for
any shape without a change of the point count from one iteration to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from . import config
from .errors import InputError
from .imageio import read_grey


@dataclass(frozen=True)
class Grid:
    """A regular grid over a box: (ny, nx) points, row 0 at the smallest y."""

    origin: tuple[float, float]
    spacing: tuple[float, float]
    shape: tuple[int, int]  # (ny, nx)

    def points(self) -> np.ndarray:
        """(ny*nx, 2) point coordinates, x varying fastest (VTK order)."""
        ny, nx = self.shape
        x = self.origin[0] + self.spacing[0] * np.arange(nx)
        y = self.origin[1] + self.spacing[1] * np.arange(ny)
        xx, yy = np.meshgrid(x, y)
        return np.stack([xx.ravel(), yy.ravel()], axis=1)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        ny, nx = self.shape
        return (self.origin[0], self.origin[0] + self.spacing[0] * (nx - 1),
                self.origin[1], self.origin[1] + self.spacing[1] * (ny - 1))


@dataclass(frozen=True)
class Domain:
    """A 2D material region.

    bounds: (xmin, ymin, xmax, ymax). `inside(x)` takes (N, 2) points and returns (N,) bool.
    """

    bounds: tuple[float, float, float, float]
    area: float
    periodic: tuple[bool, bool] = (False, False)
    _raster: np.ndarray | None = field(default=None, repr=False)  # (H, W) bool, row 0 = top
    _polygon: np.ndarray | None = field(default=None, repr=False)  # (V, 2)
    _radius: float | None = None
    _on_device: dict = field(default_factory=dict, compare=False, repr=False)  # cached tensors

    @property
    def size(self) -> tuple[float, float]:
        return self.bounds[2] - self.bounds[0], self.bounds[3] - self.bounds[1]

    @property
    def center(self) -> tuple[float, float]:
        return 0.5 * (self.bounds[0] + self.bounds[2]), 0.5 * (self.bounds[1] + self.bounds[3])

    @property
    def length(self) -> float:
        """The reference length: the longest side of the bounding box."""
        return max(self.size)

    @property
    def box_area(self) -> float:
        return self.size[0] * self.size[1]

    def inside(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 2) points. Returns (N,) bool, True on the material."""
        xmin, ymin, xmax, ymax = self.bounds
        in_box = (x[:, 0] >= xmin) & (x[:, 0] <= xmax) & (x[:, 1] >= ymin) & (x[:, 1] <= ymax)
        if self._radius is not None:
            return (x * x).sum(-1) <= self._radius**2
        if self._polygon is not None:
            return in_box & _in_polygon(x, self._tensor("_polygon", x))
        if self._raster is not None:
            raster = self._tensor("_raster", x)
            h, w = raster.shape
            col = ((x[:, 0] - xmin) / (xmax - xmin) * w).long().clamp(0, w - 1)
            row = ((ymax - x[:, 1]) / (ymax - ymin) * h).long().clamp(0, h - 1)
            return in_box & raster[row, col]
        return in_box

    def _tensor(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """A numpy attribute as a tensor on `like`'s device, converted once."""
        key = (name, like.device, like.dtype)
        if key not in self._on_device:
            value = getattr(self, name)
            dtype = torch.bool if value.dtype == bool else like.dtype
            self._on_device[key] = torch.as_tensor(value, dtype=dtype, device=like.device)
        return self._on_device[key]

    def grid(self, resolution: int) -> Grid:
        """The export grid: `resolution` points along the longest side, the box's corners included."""
        w, h = self.size
        n_long = resolution
        step = max(w, h) / (n_long - 1)
        nx = max(2, int(round(w / step)) + 1)
        ny = max(2, int(round(h / step)) + 1)
        return Grid(origin=(self.bounds[0], self.bounds[1]),
                    spacing=(w / (nx - 1), h / (ny - 1)), shape=(ny, nx))


def _in_polygon(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Even-odd rule. x: (N, 2), v: (V, 2). Returns (N,) bool."""
    a, b = v, torch.roll(v, -1, dims=0)  # edges a -> b, (V, 2)
    px, py = x[:, None, 0], x[:, None, 1]
    crosses = (a[:, 1] > py) != (b[:, 1] > py)
    t = (py - a[:, 1]) / torch.where(b[:, 1] == a[:, 1], torch.ones_like(a[:, 1]), b[:, 1] - a[:, 1])
    x_cross = a[:, 0] + t * (b[:, 0] - a[:, 0])
    return ((crosses & (px < x_cross)).sum(-1) % 2) == 1


def build_domain(spec: config.Rectangle | config.Disk | config.Polygon | config.Mask | config.Mesh) -> Domain:
    """Build the Domain a validated scenario describes."""
    if isinstance(spec, config.Rectangle):
        w, h = spec.size
        return Domain(bounds=(-w / 2, -h / 2, w / 2, h / 2), area=w * h, periodic=tuple(spec.periodic))
    if isinstance(spec, config.Disk):
        r = spec.radius
        return Domain(bounds=(-r, -r, r, r), area=np.pi * r * r, _radius=r)
    if isinstance(spec, config.Polygon):
        v = np.asarray(spec.vertices, dtype=np.float64)
        area = 0.5 * abs(np.dot(v[:, 0], np.roll(v[:, 1], -1)) - np.dot(np.roll(v[:, 0], -1), v[:, 1]))
        bounds = (*v.min(0), *v.max(0))
        return Domain(bounds=tuple(float(b) for b in bounds), area=float(area), _polygon=v)
    if isinstance(spec, config.Mask):
        raster = read_grey(spec.image) >= spec.threshold
        if not raster.any():
            raise InputError(f"domain.image {spec.image!r}: no light pixels (material) above "
                             f"threshold {spec.threshold}; light pixels are the material")
        w, h = spec.size
        return Domain(bounds=(-w / 2, -h / 2, w / 2, h / 2), area=float(raster.mean()) * w * h,
                      _raster=raster)
    if isinstance(spec, config.Mesh):
        return _mesh_domain(spec.file)
    raise TypeError(f"unknown domain {spec!r}")


def _mesh_domain(path: str, resolution: int = 1024) -> Domain:
    """A mesh's cells (triangles, quads) rasterised at `resolution` pixels along the longest side."""
    import meshio
    from matplotlib.tri import Triangulation

    try:
        mesh = meshio.read(path)
    except Exception as exc:  # meshio raises many types for unreadable files
        raise InputError(f"domain.file {path!r} cannot be read as a mesh: {exc}") from None
    pts = np.asarray(mesh.points, dtype=np.float64)[:, :2]
    tris = []
    for block in mesh.cells:
        if block.type.startswith("triangle"):
            tris.append(block.data[:, :3])
        elif block.type.startswith("quad"):
            q = block.data[:, :4]
            tris += [q[:, [0, 1, 2]], q[:, [0, 2, 3]]]
    if not tris:
        raise InputError(f"domain.file {path!r} has no triangle or quad cells")
    tri = np.concatenate(tris)
    p = pts[tri]
    area = 0.5 * np.abs((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                        - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1])).sum()
    if area <= 0:
        raise InputError(f"domain.file {path!r} has cells of zero total area")
    lo, hi = pts[np.unique(tri)].min(0), pts[np.unique(tri)].max(0)
    step = (hi - lo).max() / resolution
    w, h = max(1, int(np.ceil((hi - lo)[0] / step))), max(1, int(np.ceil((hi - lo)[1] / step)))
    xs = lo[0] + (np.arange(w) + 0.5) * (hi - lo)[0] / w
    ys = hi[1] - (np.arange(h) + 0.5) * (hi - lo)[1] / h  # row 0 = top
    xx, yy = np.meshgrid(xs, ys)
    finder = Triangulation(pts[:, 0], pts[:, 1], tri).get_trifinder()
    raster = finder(xx, yy) >= 0
    return Domain(bounds=(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])),
                  area=float(area), _raster=raster)
