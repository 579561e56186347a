"""The scenario schema: every key of a scenario file, its type, bounds and default.

Pydantic models, strict and immutable; `vefrac.config` reads files into them and re-exports
them (`config.Scenario`, `config.Rectangle`, ...). No torch in this module.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationInfo, field_validator, model_serializer, model_validator

from . import layer
from .drying import Shrinkage
from .schema_base import Pair, PositiveFloat, _input_path, _resolve_image, _Strict  # noqa: F401
from .schema_invert import Displacement, Invert, Observation, Prior  # noqa: F401 (re-exported)


# ----------------------------------------------------------------------------- domain


class Rectangle(_Strict):
    shape: Literal["rectangle"]
    size: Pair = [1.0, 1.0]
    periodic: Annotated[list[bool], Field(min_length=2, max_length=2)] = [False, False]


class Disk(_Strict):
    shape: Literal["disk"]
    radius: PositiveFloat = 0.5


class Polygon(_Strict):
    shape: Literal["polygon"]
    vertices: list[Annotated[list[float], Field(min_length=2, max_length=2)]]

    @field_validator("vertices")
    @classmethod
    def _simple_polygon(cls, v: list[list[float]]) -> list[list[float]]:
        if len(v) < 3:
            raise ValueError(f"a polygon needs at least 3 vertices [x, y] (got {len(v)})")
        if _self_intersects(v):
            raise ValueError("the polygon's edges cross each other; give the vertices in order "
                             "around a simple (non-self-intersecting) outline")
        if abs(_shoelace(v)) <= 0.0:
            raise ValueError("the polygon has zero area")
        return v


class Mask(_Strict):
    shape: Literal["mask"]
    image: str
    size: Pair
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5

    _image = field_validator("image")(_resolve_image)


class Mesh(_Strict):
    shape: Literal["mesh"]
    file: str

    @field_validator("file")
    @classmethod
    def _mesh_exists(cls, value: str, info: ValidationInfo) -> str:
        path = _input_path(value, info)
        if not path.is_file():
            raise ValueError(f"mesh file {str(path)!r} does not exist")
        return str(path.resolve())


Domain = Annotated[Union[Rectangle, Disk, Polygon, Mask, Mesh], Field(discriminator="shape")]


# ----------------------------------------------------------------------------- physics


class ImageThickness(layer.ImageThicknessKeys):
    _image = field_validator("image")(_resolve_image)


Thickness = Annotated[
    Union[layer.ConstantThickness, layer.DishThickness, layer.LinearThickness, layer.LogNormalThickness,
          ImageThickness],
    Field(discriminator="kind"),
]


class Material(_Strict):
    """The layer per area (λ, μ, η), or physically (E, ν, h, Gc, substrate), reduced to per area
    on validation (vefrac/layer.py): then lame_lambda, lame_mu, substrate_stiffness hold the
    derived values. thickness: h(x); the moduli and G follow h(x)/h_ref, η does not."""

    lame_lambda: Annotated[float, Field(ge=0)] = 1.0
    lame_mu: PositiveFloat = 1.0
    substrate_stiffness: PositiveFloat = 400.0
    split: Literal["amor", "spectral", "none"] = "amor"
    young_modulus: PositiveFloat | None = None
    poisson_ratio: Annotated[float, Field(ge=0, lt=0.5)] | None = None
    fracture_energy: PositiveFloat | None = None  # Gc: G = Gc·h replaces fracture.toughness.mean
    substrate: layer.Substrate | None = None
    thickness: Thickness | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _per_area(cls, data, handler):
        return layer.reduce_material(handler(data))

    @model_serializer(mode="wrap")
    def _as_given(self, handler):
        """Written back in the form it was given, so that the resolved scenario loads again."""
        out = {k: v for k, v in handler(self).items() if v is not None}
        if self.young_modulus is not None:  # the per-area values are derived, not given
            for key in layer.PER_AREA_KEYS:
                out.pop(key, None)
        return out


FieldSeed = Annotated[int, Field(ge=0, lt=2**63)] | None


class ConstantToughness(_Strict):
    kind: Literal["constant"]
    mean: PositiveFloat = 1.0e-3


class LogNormalToughness(_Strict):
    kind: Literal["lognormal"]
    mean: PositiveFloat = 1.0e-3
    cv: Annotated[float, Field(ge=0)] = 0.2
    correlation_length: PositiveFloat = 0.05
    seed: FieldSeed = None  # the field's own draw; None: the scenario's seed


class NetworkToughness(_Strict):
    kind: Literal["network"]
    mean: PositiveFloat = 1.0e-3
    cv: Annotated[float, Field(ge=0)] = 0.2
    correlation_length: PositiveFloat = 0.05
    features: Annotated[int, Field(ge=8, le=65536)] = 256
    seed: FieldSeed = None


class ImageToughness(_Strict):
    kind: Literal["image"]
    image: str
    range: Pair

    _image = field_validator("image")(_resolve_image)

    @field_validator("range")
    @classmethod
    def _ordered(cls, v: list[float]) -> list[float]:
        if v[0] > v[1]:
            raise ValueError(f"range must be [Gmin, Gmax] with Gmin <= Gmax (got {v})")
        return v


Toughness = Annotated[
    Union[ConstantToughness, LogNormalToughness, NetworkToughness, ImageToughness],
    Field(discriminator="kind"),
]


class Fracture(_Strict):
    enabled: bool = True
    model: Literal["at2", "at1"] = "at2"
    length_scale: PositiveFloat = 0.01
    residual_stiffness: Annotated[float, Field(ge=0, lt=1)] = 1.0e-6
    toughness: Toughness = LogNormalToughness(kind="lognormal")


class Output(_Strict):
    snapshots: Annotated[int, Field(ge=2, le=10000)] = 20
    # export points along the domain's longest side; "auto": EXPORT_POINTS_PER_S per crack width s
    # (budget.export_resolution), so a layer larger against s keeps its crack bands resolved
    resolution: Annotated[int, Field(ge=16, le=8192)] | Literal["auto"] = "auto"

    @field_validator("resolution", mode="before")
    @classmethod
    def _resolution(cls, v: Any) -> Any:
        return _whole_or_auto(v, 16, 8192)


# ----------------------------------------------------------------------------- numerics


class Network(_Strict):
    fourier_features: Annotated[int, Field(ge=1, le=8192)] = 128
    fourier_scale: Annotated[float, Field(gt=0)] | None = None
    # multi-scale features: one σ per group, the features split evenly; None: one scale
    fourier_scales: Annotated[list[PositiveFloat], Field(min_length=1, max_length=64)] | None = None
    hidden_layers: Annotated[int, Field(ge=1, le=16)] = 3
    width: Annotated[int, Field(ge=4, le=4096)] = 64
    time_knots: Annotated[int, Field(ge=2, le=1024)] = 16
    # patches: a partition of unity of local networks (vefrac/patches.py), each of the size above
    representation: Literal["global", "patches"] = "global"
    patch_size: PositiveFloat = 3.0  # side of a patch, in elastic lengths ℓe = sqrt((λ + 2μ)/η)
    patch_overlap: Annotated[float, Field(gt=0, lt=0.5)] = 0.25  # band shared with a neighbour, × the side

    @field_validator("fourier_scales")
    @classmethod
    def _one_scale_setting(cls, v: list[float] | None, info: ValidationInfo) -> list[float] | None:
        if v is None:
            return v
        if info.data.get("fourier_scale") is not None:
            raise ValueError("give network.fourier_scale (one scale) or network.fourier_scales "
                             "(several), not both")
        features = info.data.get("fourier_features")
        if features is not None and len(v) > features:
            raise ValueError(f"{len(v)} scales for {features} network.fourier_features: every scale "
                             f"needs at least one feature")
        return v


# what "auto" means for Adam's step settings: "localising" for load stepping with fracture (a
# constant rate, the φ-net's output layer at 5×: each step nearer its minimiser, cracks forming
# sooner), "converging" for space-time and for runs without fracture (the rate decays to 0.1×
# for a precise minimum: the elastic strip's closed form is met to 1 % that way, not at a constant rate)
STEP_SETTINGS = {"localising": {"final_lr_fraction": 1.0, "phi_output_lr_scale": 5.0},
                 "converging": {"final_lr_fraction": 0.1, "phi_output_lr_scale": 1.0}}


class Solver(_Strict):
    backend: Literal["pinn", "fem"] = "pinn"
    time: Literal["load_stepping", "space_time"] = "load_stepping"
    load_steps: Annotated[int, Field(ge=1, le=10000)] = 16
    # twice the iterations on half the points of the former defaults (120, 400; 8192 on square-mud's
    # box): the same cost on a CPU, each load step nearer its minimiser (docs/benchmarks.md)
    iterations: Annotated[int, Field(ge=1, le=10_000_000)] = 240
    first_step_iterations: Annotated[int, Field(ge=1, le=10_000_000)] = 800
    # "auto": POINTS_PER_S2 per s² of the domain's box (solve.sampled_points), so that a layer
    # larger against s gets as many points per crack-band area as square-mud's 4096 on 1 × 1, s = 0.02
    points: int | Literal["auto"] = "auto"
    sampling: Literal["stratified", "sobol", "uniform", "importance"] = "stratified"
    importance_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.5  # importance: share of points from q
    learning_rate: PositiveFloat = 2.0e-3
    # "auto": resolved by the Scenario (STEP_SETTINGS): with load stepping and fracture Adam's rate
    # stays constant within a step and the φ-net's output layer takes 5× it (each step ends nearer
    # its minimiser: docs/benchmarks.md); otherwise the rate decays to 0.1×, the output at 1×
    final_lr_fraction: Annotated[float, Field(gt=0, le=1)] | Literal["auto"] = Field("auto", validate_default=True)
    lbfgs_iterations: Annotated[int, Field(ge=0, le=100000)] = 0
    phi_bias: Annotated[float, Field(le=0)] = -6.0
    # the φ-net's last layer: lr × this ("auto": see final_lr_fraction)
    phi_output_lr_scale: Annotated[float, Field(gt=0, le=1000)] | Literal["auto"] = Field("auto", validate_default=True)
    cache_points_per_length: PositiveFloat = 3.0
    threads: Annotated[int, Field(ge=0, le=1024)] = 1
    checkpoint_every: Annotated[int, Field(ge=1)] = 500
    dtype: Literal["float32", "float64"] = "float32"
    chunk_points: Annotated[int, Field(ge=64, le=1 << 26)] = 65536
    compile: bool = False  # torch.compile the loss (energy + forward-mode derivatives)
    # reduced-precision matmuls in the loss, used only if the gradient passes a check against float32
    precision: Literal["float32", "tf32", "bf16"] = "float32"
    # adaptive load steps: after a step's budget, more blocks of `iterations` while the crack
    # length still changes by more than step_tolerance × the domain's length per block
    step_tolerance: Annotated[float, Field(gt=0, lt=1)] | None = None
    max_step_iterations: Annotated[int, Field(ge=1, le=10_000_000)] = 1000
    # load stepping: the displacement a step starts from, the previous step's scaled by the ratio
    # of the shrinkage histories ("scaled": exact for a fixed φ, the layer linear; the default since
    # 2026-12-07: at domain/s = 50 more of the FEM's cells at the same cost) or as it is ("none")
    predictor: Literal["none", "scaled"] = "scaled"

    @model_serializer(mode="wrap")
    def _as_before(self, handler):  # the default left out: the dumps and hashes of older versions
        out = handler(self)
        if self.predictor == "scaled":
            out.pop("predictor", None)
        return out

    @field_validator("points", mode="before")
    @classmethod
    def _points(cls, v: Any) -> Any:
        return _whole_or_auto(v, 64, 1 << 26)

    @field_validator("final_lr_fraction", "phi_output_lr_scale", mode="before")
    @classmethod
    def _step_settings(cls, v: Any, info: ValidationInfo) -> Any:
        if v == "auto":  # resolved by the Scenario (_auto_step_settings), which knows about fracture
            return v
        top = 1 if info.field_name == "final_lr_fraction" else 1000
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= top:
            raise ValueError(f"must be a number in (0, {top}], or 'auto' (got {v!r})")
        return v


class Fem(_Strict):
    """The finite-element reference backend (solver.backend: fem), see vefrac/fem.py."""

    points_per_length: PositiveFloat = 2.0
    elements_per_length: Annotated[int, Field(ge=2, le=100000)] = 200
    tolerance: PositiveFloat = 1.0e-3
    max_iterations: Annotated[int, Field(ge=1, le=1_000_000)] = 500
    acceleration: Literal["overrelaxation", "none"] = "overrelaxation"
    relaxation: Annotated[float, Field(ge=1, lt=2)] = 1.8
    local_radius: Annotated[float, Field(ge=0, le=100)] = 1.0  # in elastic lengths; 0: every iteration global
    linear_solver: Literal["amg", "direct"] = "amg"  # vefrac/linsolve.py


class Scenario(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")] = "scenario"
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    domain: Domain = Rectangle(shape="rectangle")
    material: Material = Material()
    fracture: Fracture = Fracture()
    shrinkage: Shrinkage = Shrinkage()
    output: Output = Output()
    network: Network = Network()
    solver: Solver = Solver()
    fem: Fem = Fem()
    invert: Invert = Invert()

    @model_validator(mode="wrap")
    @classmethod
    def _layer_toughness(cls, data, handler):
        return layer.toughness_from_fracture_energy(handler(data))

    @model_serializer(mode="wrap")
    def _as_given(self, handler):
        out = handler(self)
        if self.material.fracture_energy is not None:  # the mean is derived from it, not given
            out["fracture"]["toughness"].pop("mean", None)
        return out

    @model_validator(mode="after")
    def _auto_step_settings(self) -> "Scenario":
        names = [k for k in STEP_SETTINGS["localising"] if getattr(self.solver, k) == "auto"]
        if names:
            kind = "localising" if self.solver.time == "load_stepping" and self.fracture.enabled else "converging"
            resolved = self.solver.model_copy(update={k: STEP_SETTINGS[kind][k] for k in names})
            object.__setattr__(self, "solver", resolved)  # frozen: set once, while validating
        return self

    @model_validator(mode="after")
    def _patches_not_compiled(self) -> "Scenario":
        # the patches' pairs and blocks have data-dependent shapes: torch.compile recompiles
        # them without end (measured: no compiled step within 8 minutes on a 2-core CPU)
        if self.network.representation == "patches" and self.solver.compile and self.solver.backend == "pinn":
            raise ValueError("network.representation: patches cannot be combined with solver.compile: true "
                             "(its per-step shapes depend on where the points fall); set solver.compile: false "
                             "or network.representation: global")
        return self


def _whole_or_auto(v: Any, low: int, high: int) -> Any:
    """A key that takes a whole number in [low, high] or 'auto' (one message for both mistakes)."""
    if v == "auto":
        return v
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise ValueError(f"must be a whole number from {low} to {high}, or 'auto' (got {v!r})")
    return v


def _shoelace(v: list[list[float]]) -> float:
    return 0.5 * sum(v[i][0] * v[(i + 1) % len(v)][1] - v[(i + 1) % len(v)][0] * v[i][1]
                     for i in range(len(v)))


def _self_intersects(v: list[list[float]]) -> bool:
    n = len(v)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def proper(p1, p2, q1, q2):
        d1, d2 = cross(q1, q2, p1), cross(q1, q2, p2)
        d3, d4 = cross(p1, p2, q1), cross(p1, p2, q2)
        return (d1 * d2 < 0) and (d3 * d4 < 0)

    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbouring edges share a vertex
            if proper(v[i], v[(i + 1) % n], v[j], v[(j + 1) % n]):
                return True
    return len({(a, b) for a, b in v}) < n  # repeated vertices
