"""The layer described physically: its thickness field h(x), the substrate's interface model, and
the reduction of (E, ν, h, Gc, substrate) to the per-area model the solvers minimise.

    λ' = E ν / (1 − ν²) · h,   μ' = E / (2 (1 + ν)) · h      plane-stress moduli × thickness
    G  = Gc · h                                               fracture energy × thickness
    η  = k  (interface stiffness)   or   μb / hb  (shear-lag bonding layer)

and the numbers worth knowing that follow (ℓe, the Griffith and AT2-strength shrinkage
estimates); docs/physical-inputs.md derives them. Pydantic models and plain floats: no torch
(the thickness fields themselves are built in vefrac/thickness.py).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

PositiveFloat = Annotated[float, Field(gt=0)]
Pair = Annotated[list[PositiveFloat], Field(min_length=2, max_length=2)]
PER_AREA_KEYS = ("lame_lambda", "lame_mu", "substrate_stiffness")
PHYSICAL_KEYS = ("young_modulus", "poisson_ratio", "fracture_energy", "substrate")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


# ----------------------------------------------------------------------------- substrate


class InterfaceSubstrate(_Strict):
    """A bond of stiffness k: traction = k u (force per area per length).
    layer_shear: the layer's own shear through its thickness in series with the bond (see
    `layer_shear_stiffness`)."""

    kind: Literal["interface"]
    stiffness: PositiveFloat
    layer_shear: bool = False


class ShearLagSubstrate(_Strict):
    """A thin compliant bonding layer (or substrate skin) sheared through its thickness:
    traction = μb u / hb. layer_shear: as for the interface."""

    kind: Literal["shear_lag"]
    shear_modulus: PositiveFloat
    thickness: PositiveFloat
    layer_shear: bool = False


Substrate = Annotated[Union[InterfaceSubstrate, ShearLagSubstrate], Field(discriminator="kind")]


def substrate_stiffness(substrate: InterfaceSubstrate | ShearLagSubstrate) -> float:
    """η of the bond alone, the foundation stiffness per unit area of the layer."""
    if isinstance(substrate, InterfaceSubstrate):
        return substrate.stiffness
    return substrate.shear_modulus / substrate.thickness


def layer_shear_stiffness(young_modulus: float, poisson_ratio: float, thickness: float) -> float:
    """3μ/h: the stiffness per area of a layer of thickness h held at its base, dragged in-plane
    by its mean displacement ū (shear modulus μ = E/(2(1 + ν))). With u(z) = u_top (2z/h − z²/h²)
    (no shear stress at the free top), ū = 2u_top/3 and the shear energy ∫ μ/2 (du/dz)² dz =
    2μ u_top²/(3h) = (3μ/h) ū²/2."""
    return 3 * young_modulus / (2 * (1 + poisson_ratio)) / thickness


def coupled_stiffness(bond: float, layer: float) -> float:
    """The bond and the layer's own shear in series: 1/η = 1/η_bond + 1/η_layer."""
    return 1.0 / (1.0 / bond + 1.0 / layer)


def layer_shear_ratio(mat) -> float | None:
    """a = η_bond / η_layer(h_ref) of a validated physical material with substrate.layer_shear,
    else None: η(x)/η(h_ref) = (1 + a)/(1 + a c(x)) with c = h/h_ref (the layer's shear
    stiffness 3μ/h falls as it thickens, so thicker parts hold less firmly to the floor)."""
    sub = getattr(mat, "substrate", None)
    if sub is None or not sub.layer_shear:
        return None
    return substrate_stiffness(sub) / layer_shear_stiffness(mat.young_modulus, mat.poisson_ratio,
                                                            reference_thickness(mat.thickness))


# ----------------------------------------------------------------------------- thickness


class ConstantThickness(_Strict):
    kind: Literal["constant"]
    value: PositiveFloat = 1.0


class DishThickness(_Strict):
    """h = value · (1 + rise · (1 − r²/R²)) within r < R of the centre, `value` beyond."""

    kind: Literal["dish"]
    value: PositiveFloat = 1.0
    rise: Annotated[float, Field(gt=-1)] = 1.0
    radius: PositiveFloat | None = None  # None: half the shorter side of the domain's bounding box
    centre: Annotated[list[float], Field(min_length=2, max_length=2)] | None = None  # None: the box's centre


class LinearThickness(_Strict):
    """h = value · (1 + slope · (x − c)·n), n at `angle` degrees from the x axis, c the box's centre."""

    kind: Literal["linear"]
    value: PositiveFloat = 1.0
    slope: float = 1.0  # relative change of h per unit length along n
    angle: float = 0.0


class LogNormalThickness(_Strict):
    """h = value · exp(σZ − σ²/2), Z a smooth unit Gaussian field (as a log-normal toughness)."""

    kind: Literal["lognormal"]
    value: PositiveFloat = 1.0
    cv: Annotated[float, Field(ge=0)] = 0.2
    correlation_length: PositiveFloat = 0.1


class ImageThicknessKeys(_Strict):
    """Grey level of a picture, black → range[0], white → range[1] (schema.ImageThickness adds
    the check that the picture can be read)."""

    kind: Literal["image"]
    image: str
    range: Pair


def reference_thickness(spec) -> float:
    """h_ref, the thickness at which the per-area moduli and toughness hold: `value` (the rim of a
    dish, the centre of a linear ramp, the mean of a log-normal field), the middle of an image's range."""
    if spec.kind == "image":
        return 0.5 * (spec.range[0] + spec.range[1])
    return spec.value


# ----------------------------------------------------------------------------- reduction


def plane_stress_per_area(young_modulus: float, poisson_ratio: float, thickness: float) -> tuple[float, float]:
    """(λ', μ'): the plane-stress Lamé moduli of a layer of thickness h, times h (force per length)."""
    e, nu = young_modulus, poisson_ratio
    return e * nu / (1 - nu * nu) * thickness, e / (2 * (1 + nu)) * thickness


def griffith_strain(*, lam: float, mu: float, eta: float, G: float) -> float:
    """εs at which one straight crack across a long uniformly shrunk layer releases G per length:
    σ0² ℓe / (λ+2μ) = G with σ0 = 2(λ+μ) εs, so εs = (λ+2μ)/(2(λ+μ)) · sqrt(G / ((λ+2μ) ℓe))."""
    m = lam + 2 * mu
    ell = math.sqrt(m / eta)
    return m / (2 * (lam + mu)) * math.sqrt(G / (m * ell))


def strength_strain(*, lam: float, mu: float, G: float, s: float, model: str) -> float:
    """εs at which the uniform state (u = 0, ε = εs I, W+ = 2(λ+μ)εs²) reaches its strength.

    AT2: φ = W+/(W+ + G/(2s)); the stress 4Kεs (1−φ)² peaks at W+ = G/(6s), εs = sqrt(G/(12 K s)).
    AT1: elastic until W+ = 3G/(16s), εs = sqrt(3G/(32 K s)). K = λ + μ.
    """
    k = lam + mu
    return math.sqrt(G / (12 * k * s)) if model == "at2" else math.sqrt(3 * G / (32 * k * s))


def derived_numbers(*, lam: float, mu: float, eta: float, G: float, s: float, model: str) -> dict[str, float]:
    """The per-area coefficients and the lengths and strains they set, for `vefrac check`."""
    ell = math.sqrt((lam + 2 * mu) / eta)
    return {"lambda": lam, "mu": mu, "eta": eta, "G": G, "elastic_length": ell, "elastic_length_over_s": ell / s,
            "griffith_strain": griffith_strain(lam=lam, mu=mu, eta=eta, G=G),
            "strength_strain": strength_strain(lam=lam, mu=mu, G=G, s=s, model=model)}


# ----------------------------------------------------------------------------- validation (schema.py calls these)


def reduce_material(mat):
    """A validated schema.Material, the physical form reduced: lame_lambda, lame_mu and
    substrate_stiffness hold the derived values. ValueError when the forms are mixed or incomplete."""
    given = [k for k in PHYSICAL_KEYS if getattr(mat, k) is not None]
    if not given:
        return mat
    named = lambda keys: ", ".join("material." + k for k in keys)  # noqa: E731
    both = [k for k in PER_AREA_KEYS if k in mat.model_fields_set]
    if both:
        raise ValueError(f"give the layer per area ({', '.join(PER_AREA_KEYS)}) or physically (young_modulus, "
                         f"poisson_ratio, thickness, substrate, fracture_energy), not both: got {named(both)} "
                         f"with {named(given)}")
    missing = [k for k in ("young_modulus", "poisson_ratio", "thickness", "substrate") if getattr(mat, k) is None]
    if missing:
        raise ValueError(f"the physical form (material.{given[0]} given) needs {named(missing)} too; or give "
                         f"the layer per area ({', '.join(PER_AREA_KEYS)}) without {named(given)}")
    h_ref = reference_thickness(mat.thickness)
    lam, mu = plane_stress_per_area(mat.young_modulus, mat.poisson_ratio, h_ref)
    eta = substrate_stiffness(mat.substrate)
    if mat.substrate.layer_shear:  # η at h_ref; a thickness field varies it (layer_shear_ratio)
        eta = coupled_stiffness(eta, layer_shear_stiffness(mat.young_modulus, mat.poisson_ratio, h_ref))
    return mat.model_copy(update={"lame_lambda": lam, "lame_mu": mu, "substrate_stiffness": eta})


def toughness_from_fracture_energy(scn):
    """A validated schema.Scenario whose material.fracture_energy Gc sets the toughness's mean,
    G = Gc·h_ref (its cv and correlation length stay). ValueError when G is also given per area."""
    mat, tough = scn.material, scn.fracture.toughness
    if mat.fracture_energy is None:
        if mat.young_modulus is not None and scn.fracture.enabled:
            raise ValueError("material.fracture_energy: missing; the physical form gives the toughness as the "
                             "fracture energy Gc (G = Gc·h), not as fracture.toughness.mean")
        return scn
    if tough.kind == "image":
        raise ValueError("fracture.toughness: an image toughness gives G per area (range); with "
                         "material.fracture_energy use kind constant, lognormal or network")
    if "mean" in tough.model_fields_set:
        raise ValueError("give the toughness as material.fracture_energy (Gc) or as fracture.toughness.mean "
                         "(G per area), not both")
    mean = mat.fracture_energy * reference_thickness(mat.thickness)
    return scn.model_copy(update={"fracture": scn.fracture.model_copy(
        update={"toughness": tough.model_copy(update={"mean": mean})})})
