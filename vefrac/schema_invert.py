"""The scenario schema of the inverse mode (`invert.*`): the picture, the prior, observed
displacements and the schedule. Re-exported by vefrac.schema and vefrac.config."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_serializer

from .schema_base import Pair, PositiveFloat, _input_path, _resolve_image, _Strict


class Observation(_Strict):
    """How `vefrac invert` reads the crack image (see vefrac/observe.py)."""

    cracks: Literal["auto", "dark", "light"] = "auto"  # auto: the minority side of the threshold
    threshold: Annotated[float, Field(gt=0, lt=1)] | None = None  # grey level; None: Otsu's
    crop: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=4, max_length=4)] | None = None
    size: Pair | None = None  # physical [w, h] the (cropped) image spans; None: the domain's box
    mask: str | None = None  # image of the material region (light = material), same framing
    min_crack_length: Annotated[float, Field(ge=0)] | None = None  # drop specks shorter; None: 4 s
    time: PositiveFloat | None = None  # when the picture was taken; None: shrinkage.t_end
    # photographs of real layers (vefrac/ridges.py): ridge filter, hysteresis, spur pruning, gap closing
    method: Literal["threshold", "ridge"] = "threshold"  # ridge: Sato line filter at crack_width
    crack_width: PositiveFloat | None = None  # physical width of the cracks to read; None: 3 s
    hysteresis: Pair | None = None  # ridge: [low, high] strength (grey-level depth); None: Otsu's, half of it
    prune_length: Annotated[float, Field(ge=0)] | None = None  # free spurs shorter go; None: 3 widths (ridge), 0
    close_gaps: Annotated[float, Field(ge=0)] | None = None  # join free ends this near; None: 3 widths (ridge), 0
    illumination: Literal["auto", "none", "flatten"] = "auto"  # flatten: divide by the background; auto: ridge only

    _mask = field_validator("mask")(lambda v, info: v if v is None else _resolve_image(v, info))

    @field_validator("hysteresis")
    @classmethod
    def _low_high(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and v[0] >= v[1]:
            raise ValueError(f"hysteresis must be [low, high] with low < high (got {v})")
        return v

    @field_validator("crop")
    @classmethod
    def _crop_box(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (v[2] <= v[0] or v[3] <= v[1]):
            raise ValueError(f"crop must be [left, top, right, bottom] pixels with right > left and "
                             f"bottom > top (got {v})")
        return v


class Prior(_Strict):
    """What is assumed of G(x) before the image: its mean and how smooth it is."""

    mean: PositiveFloat | None = None  # None: fracture.toughness.mean
    mean_weight: Annotated[float, Field(ge=0, le=1)] = 0.5  # pull of mean log G towards log(mean) per update
    correlation_length: PositiveFloat | None = None  # smoothing length of the G updates; None: 2 s
    cv: Annotated[float, Field(ge=0)] | None = None  # spread of the start of each seed (seeds > 1); None: the toughness's cv or 0.5


_DISPLACEMENT_FILES = (".npz", ".vti", ".png", ".tif", ".tiff")


def _displacement_file(value: str, info: ValidationInfo) -> str:
    path = _input_path(value, info)
    if path.suffix.lower() not in _DISPLACEMENT_FILES:
        raise ValueError(f"{value!r}: allowed are {', '.join(_DISPLACEMENT_FILES)} files")
    if not path.is_file():
        raise ValueError(f"{value!r} does not exist")
    return str(path.resolve())


class Displacement(_Strict):
    """Observed in-plane displacements (image correlation) for `vefrac invert` (vefrac/displacements.py)."""

    file: str  # .npz (ux, uy), .vti (point array u), or a PNG/TIFF with R = ux, G = uy
    time: PositiveFloat | None = None  # one of the pictures' times; None: the last picture's
    weight: Annotated[float, Field(ge=0)] = 1.0  # in units of Ḡ/(2s) per (εs ℓe)²
    scale: PositiveFloat | None = None  # image: u = offset + scale·level (level in [0, 1]); required
    offset: float = 0.0
    size: Pair | None = None  # image: physical [w, h] it spans, centred on the domain; None: the domain's box

    _file = field_validator("file")(lambda v, info: _displacement_file(v, info))


class Invert(_Strict):
    """The inverse mode: infer G(x) from a crack image (`vefrac invert`)."""

    unknown: Literal["grid", "network"] = "grid"
    grid_spacing: PositiveFloat | None = None  # coarse grid of log G; None: s
    observation: Observation = Observation()
    prior: Prior = Prior()
    misfit_weight: PositiveFloat = 10.0  # in units of the surface energy density G/(2s)
    outer_iterations: Annotated[int, Field(ge=1, le=10000)] = 10
    step: PositiveFloat = 0.6  # largest change of log G per outer iteration
    assimilation_iterations: Annotated[int, Field(ge=1, le=10_000_000)] = 300
    seeds: Annotated[int, Field(ge=1, le=100)] = 1
    overlap_tolerance: PositiveFloat = 2.0  # in units of s: how far a crack may be and still match
    displacement: Displacement | None = None  # observed displacements (optional data)
    # forward runs after a seed's first: each load step starts from the previous outer iteration's
    # networks at that step and runs this share of its Adam iterations; None: cold, full budget
    warm_forward: Annotated[float, Field(gt=0, le=1)] | None = None
    # the uncertainty map (vefrac/posterior.py): the error of log G that each length s of observed
    # crack measures; None: the value calibrated on the twins, for one picture or a time-lapse
    # (posterior.default_crack_noise)
    crack_noise: PositiveFloat | None = None
    # what the assimilated state is compared with (the G update): the free state's cracks read
    # the way the picture is read (read_gap; one more assimilation per frame), so that cracks at
    # the picture's places pull G nowhere whatever the model's band width; or the free state
    # itself (energy_gap, before 2026-12-03)
    gradient: Literal["energy_gap", "read_gap"] = "read_gap"
    # the backend of the forward runs (the free states and the final run): the PINN, or the FEM
    # reference (deterministic, and faster where it is, as on twin-mud); the assimilations stay
    # PINN minimisations of E + wM
    forward: Literal["pinn", "fem"] = "pinn"
    # a seed's first G update: from the gap (assimilated against free, like every later one), or
    # from the picture alone (G lowered under the observed cracks, raised nowhere): the free state
    # at the prior's G cracks where that G happens to be weak, which says nothing of the truth
    first_update: Literal["gap", "picture"] = "gap"
    # the backend of the assimilations (the minimisations of E + wM at each frame's time): the PINN,
    # or the FEM at its fem.* keys, where the misfit is one more quadratic term of the φ-step
    assimilation: Literal["pinn", "fem"] = "pinn"

    @model_serializer(mode="wrap")
    def _as_before(self, handler):  # without the newer keys: the dump and the hash of older versions
        out = handler(self)
        for key in ("displacement", "warm_forward", "crack_noise"):
            if getattr(self, key) is None:
                out.pop(key, None)
        if self.forward == "pinn":
            out.pop("forward", None)
        if self.first_update == "gap":
            out.pop("first_update", None)
        if self.assimilation == "pinn":
            out.pop("assimilation", None)
        return out
