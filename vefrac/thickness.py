"""The layer's thickness field h(x) and what follows it: the stiffness factor c(x) = h(x)/h_ref that
multiplies λ, μ (so W+ and W−) and G, the substrate's η left as it is (docs/physical-inputs.md).

Kinds (material.thickness.kind): constant, dish (thicker, or thinner, in the middle), linear (a
ramp), lognormal (a smooth random field, drawn like a log-normal toughness from its own stream of
the scenario seed) and image (grey level → range). A constant thickness has no factor at all, so
such a layer is computed exactly as a per-area one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import config, layer
from .budget import export_resolution, export_resolution_note
from .errors import InputError
from .fields import ConstantField, build_toughness
from .geometry import Domain, build_domain

THICKNESS_STREAM = 0x7A1C  # added to the seed: h(x) independent of G(x) for the same seed


class DishField(nn.Module):
    """h = value · (1 + rise · max(0, 1 − r²/R²)), r = |x − centre|."""

    def __init__(self, *, value: float, rise: float, radius: float, centre: tuple[float, float]):
        super().__init__()
        self.value, self.rise, self.radius, self.centre = value, rise, radius, centre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 2). Returns (N,) thickness."""
        r2 = (x[:, 0] - self.centre[0]) ** 2 + (x[:, 1] - self.centre[1]) ** 2
        return self.value * (1 + self.rise * torch.relu(1 - r2 / self.radius**2))


class LinearField(nn.Module):
    """h = value · (1 + slope · (x − centre)·n), n = (cos angle, sin angle)."""

    def __init__(self, *, value: float, slope: float, angle_deg: float, centre: tuple[float, float]):
        super().__init__()
        a = math.radians(angle_deg)
        self.value, self.slope, self.normal, self.centre = value, slope, (math.cos(a), math.sin(a)), centre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        along = (x[:, 0] - self.centre[0]) * self.normal[0] + (x[:, 1] - self.centre[1]) * self.normal[1]
        return self.value * (1 + self.slope * along)


class RelativeThickness(nn.Module):
    """c(x) = h(x)/h_ref: the factor on the elastic energy density and on G. (N, 2) -> (N,)."""

    def __init__(self, thickness: nn.Module, *, reference: float):
        super().__init__()
        self.thickness, self.reference = thickness, reference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.thickness(x) / self.reference


class ThickToughness(nn.Module):
    """G(x) · c(x): a toughness field carried by a layer whose thickness varies."""

    def __init__(self, toughness: nn.Module, stiffness: nn.Module):
        super().__init__()
        self.toughness, self.stiffness = toughness, stiffness

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.toughness(x) * self.stiffness(x)


def build_thickness(spec, domain: Domain, *, seed: int) -> nn.Module:
    """h(x) for a validated material.thickness spec: (N, 2) -> (N,) > 0."""
    xmin, ymin, xmax, ymax = domain.bounds
    box_centre = (0.5 * (xmin + xmax), 0.5 * (ymin + ymax))
    if isinstance(spec, layer.ConstantThickness):
        return ConstantField(spec.value)
    if isinstance(spec, layer.DishThickness):
        radius = spec.radius if spec.radius is not None else 0.5 * min(xmax - xmin, ymax - ymin)
        centre = tuple(spec.centre) if spec.centre is not None else box_centre
        return DishField(value=spec.value, rise=spec.rise, radius=radius, centre=centre)
    if isinstance(spec, layer.LinearThickness):
        field = LinearField(value=spec.value, slope=spec.slope, angle_deg=spec.angle, centre=box_centre)
        corners = torch.tensor([[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]], dtype=torch.float64)
        lowest = float(field(corners).min())
        if lowest <= 0:
            raise InputError(f"material.thickness.slope: {spec.slope:g} makes the thickness {lowest:.3g} <= 0 "
                             f"inside the domain's bounding box; |slope| must stay below "
                             f"{1 / _half_extent(domain, field.normal):.4g} per unit length at this angle")
        return field
    if isinstance(spec, layer.LogNormalThickness):
        like = config.LogNormalToughness(kind="lognormal", mean=spec.value, cv=spec.cv,
                                         correlation_length=spec.correlation_length)
        return build_toughness(like, domain, seed=seed + THICKNESS_STREAM)
    if spec.kind == "image":  # the path was resolved and read when the scenario was validated
        like = config.ImageToughness.model_construct(kind="image", image=spec.image, range=list(spec.range))
        return build_toughness(like, domain, seed=seed)
    raise TypeError(f"unknown thickness {spec!r}")


def _half_extent(domain: Domain, normal: tuple[float, float]) -> float:
    """The largest (x − box centre)·n over the domain's bounding box."""
    xmin, ymin, xmax, ymax = domain.bounds
    return 0.5 * ((xmax - xmin) * abs(normal[0]) + (ymax - ymin) * abs(normal[1]))


def build_stiffness(material: config.Material, domain: Domain, *, seed: int) -> RelativeThickness | None:
    """c(x) = h(x)/h_ref for the scenario's thickness; None where h is uniform (the factor would be 1)."""
    spec = material.thickness
    if spec is None or isinstance(spec, layer.ConstantThickness):
        return None
    return RelativeThickness(build_thickness(spec, domain, seed=seed), reference=layer.reference_thickness(spec))


class SubstrateFactor(nn.Module):
    """q(x) = η(x)/η(h_ref) = (1 + a)/(1 + a c(x)) for a bond in series with the layer's own shear
    (material.substrate.layer_shear; a = layer.layer_shear_ratio), c = h/h_ref. (N, 2) -> (N,)."""

    def __init__(self, stiffness: nn.Module, *, ratio: float):
        super().__init__()
        self.stiffness, self.ratio = stiffness, ratio

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1 + self.ratio) / (1 + self.ratio * self.stiffness(x))


def build_substrate_factor(material: config.Material, stiffness: nn.Module | None) -> SubstrateFactor | None:
    """The factor on η where it follows the thickness (layer_shear with a varying h); else None."""
    ratio = layer.layer_shear_ratio(material)
    if ratio is None or stiffness is None:
        return None
    return SubstrateFactor(stiffness, ratio=ratio)


@torch.no_grad()
def thickness_range(stiffness: nn.Module | None, domain: Domain, *, reference: float,
                    resolution: int = 128) -> tuple[float, float]:
    """(min, max) of h over the domain, sampled on its export grid at `resolution`."""
    if stiffness is None:
        return reference, reference
    grid = domain.grid(resolution)
    x = torch.as_tensor(grid.points(), dtype=torch.float64)
    inside = domain.inside(x)
    h = reference * stiffness(x)[inside].double().numpy()
    return float(np.min(h)), float(np.max(h))


def derived_lines(scn: config.Scenario) -> list[str]:
    """What `vefrac check` adds below the resolved scenario (as YAML comments): the per-area
    coefficients, ℓe, ℓe/s and the shrinkage at which the layer should first crack."""
    mat, fr, rate = scn.material, scn.fracture, scn.shrinkage.rate
    tough = fr.toughness
    G = 0.5 * sum(tough.range) if tough.kind == "image" else tough.mean
    n = layer.derived_numbers(lam=mat.lame_lambda, mu=mat.lame_mu, eta=mat.substrate_stiffness, G=G,
                              s=fr.length_scale, model=fr.model)
    h_ref = layer.reference_thickness(mat.thickness) if mat.thickness is not None else None
    at = f" at the reference thickness h_ref = {h_ref:.4g}" if h_ref is not None else ""
    lines = [f"derived (docs/physical-inputs.md), per unit area{at}:",
             f"  lambda = {n['lambda']:.4g}, mu = {n['mu']:.4g}, eta = {n['eta']:.4g}, G = {n['G']:.4g}"
             + (" (mean)" if tough.kind != "constant" else ""),
             f"  elastic length = sqrt((lambda + 2 mu)/eta) = {n['elastic_length']:.4g}; "
             f"elastic length / s = {n['elastic_length_over_s']:.3g}",
             f"  Griffith shrinkage (first straight crack, mean G): eps_s = {n['griffith_strain']:.4g} "
             f"(t = {n['griffith_strain'] / rate:.4g})",
             f"  {fr.model.upper()} strength of the uniform layer: eps_s = {n['strength_strain']:.4g} "
             f"(t = {n['strength_strain'] / rate:.4g})",
             f"  shrinkage at t_end: eps_s = {rate * scn.shrinkage.t_end:.4g}"]
    if not fr.enabled:
        lines[3:5] = ["  fracture disabled: no crack estimates"]
    length = build_domain(scn.domain).length
    res = export_resolution(scn, length)
    lines.append(f"  export grid: {res} points along the longest side"
                 + (f" ({(res - 1) * fr.length_scale / length:.3g} per s)" if fr.enabled else "")
                 + (" (output.resolution: auto)" if scn.output.resolution == "auto" else ""))
    note = export_resolution_note(scn, length)
    if note:
        lines.append(f"  warning: {note}")
    stiffness = build_stiffness(mat, build_domain(scn.domain), seed=scn.seed)
    if stiffness is not None:
        lo, hi = thickness_range(stiffness, build_domain(scn.domain), reference=h_ref)
        c_lo, c_hi = lo / h_ref, hi / h_ref
        a = layer.layer_shear_ratio(mat) or 0.0  # η(x)/η(h_ref) = (1 + a)/(1 + a c): ℓe ∝ sqrt(c/q)
        ell = lambda c: n['elastic_length'] * (c * (1 + a * c) / (1 + a)) ** 0.5  # noqa: E731
        lines.append(f"  thickness over the domain: {lo:.4g} to {hi:.4g} (h/h_ref {c_lo:.3g} to {c_hi:.3g}): "
                     f"elastic length {ell(c_lo):.4g} to {ell(c_hi):.4g}, "
                     f"Griffith eps_s {n['griffith_strain'] * (ell(c_hi) / n['elastic_length'])**-0.5:.4g} "
                     f"(thickest) to {n['griffith_strain'] * (ell(c_lo) / n['elastic_length'])**-0.5:.4g}; "
                     f"the strength does not depend on h")
    return lines
