"""Scenario schema, loading and overrides.

A scenario is parsed and validated once, here, at the edge; the rest of vefrac receives
typed, immutable objects. Every problem with the input becomes an `InputError` whose
message names the key (or file) and what is allowed. No torch in this module.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .errors import InputError
from .imageio import read_grey


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


PositiveFloat = Annotated[float, Field(gt=0)]
Pair = Annotated[list[PositiveFloat], Field(min_length=2, max_length=2)]


def _input_path(value: str, info: ValidationInfo) -> Path:
    """A path from the scenario, relative to the scenario's folder; ValueError if unusable."""
    base = Path((info.context or {}).get("base_dir", "."))
    try:
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base / path
        path.is_file()  # raises OSError for names the system cannot hold
    except (RuntimeError, OSError, ValueError) as exc:
        raise ValueError(f"{value!r} is not a usable path: {exc}") from None
    return path


def _resolve_image(value: str, info: ValidationInfo) -> str:
    """Resolve an image path relative to the scenario's folder and check it can be read."""
    path = _input_path(value, info)
    try:
        read_grey(path)
    except InputError as exc:  # re-raised as ValueError so that the message names the key
        raise ValueError(str(exc)) from None
    return str(path.resolve())


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


class Material(_Strict):
    lame_lambda: Annotated[float, Field(ge=0)] = 1.0
    lame_mu: PositiveFloat = 1.0
    substrate_stiffness: PositiveFloat = 400.0
    split: Literal["amor", "spectral", "none"] = "amor"


class ConstantToughness(_Strict):
    kind: Literal["constant"]
    mean: PositiveFloat = 1.0e-3


class LogNormalToughness(_Strict):
    kind: Literal["lognormal"]
    mean: PositiveFloat = 1.0e-3
    cv: Annotated[float, Field(ge=0)] = 0.2
    correlation_length: PositiveFloat = 0.05


class NetworkToughness(_Strict):
    kind: Literal["network"]
    mean: PositiveFloat = 1.0e-3
    cv: Annotated[float, Field(ge=0)] = 0.2
    correlation_length: PositiveFloat = 0.05
    features: Annotated[int, Field(ge=8, le=65536)] = 256


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


class Shrinkage(_Strict):
    rate: PositiveFloat = 1.0
    t_end: PositiveFloat = 0.1


class Output(_Strict):
    snapshots: Annotated[int, Field(ge=2, le=10000)] = 20
    resolution: Annotated[int, Field(ge=16, le=8192)] = 256


# ----------------------------------------------------------------------------- numerics


class Network(_Strict):
    fourier_features: Annotated[int, Field(ge=1, le=8192)] = 128
    fourier_scale: Annotated[float, Field(gt=0)] | None = None
    # multi-scale features: one σ per group, the features split evenly; None: one scale
    fourier_scales: Annotated[list[PositiveFloat], Field(min_length=1, max_length=64)] | None = None
    hidden_layers: Annotated[int, Field(ge=1, le=16)] = 3
    width: Annotated[int, Field(ge=4, le=4096)] = 64
    time_knots: Annotated[int, Field(ge=2, le=1024)] = 16

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


class Solver(_Strict):
    backend: Literal["pinn", "fem"] = "pinn"
    time: Literal["load_stepping", "space_time"] = "load_stepping"
    load_steps: Annotated[int, Field(ge=1, le=10000)] = 16
    iterations: Annotated[int, Field(ge=1, le=10_000_000)] = 120
    first_step_iterations: Annotated[int, Field(ge=1, le=10_000_000)] = 400
    points: Annotated[int, Field(ge=64, le=1 << 26)] = 8192
    sampling: Literal["stratified", "sobol", "uniform", "importance"] = "stratified"
    importance_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.5  # importance: share of points from q
    learning_rate: PositiveFloat = 2.0e-3
    final_lr_fraction: Annotated[float, Field(gt=0, le=1)] = 0.1
    lbfgs_iterations: Annotated[int, Field(ge=0, le=100000)] = 0
    phi_bias: Annotated[float, Field(le=0)] = -6.0
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


class Fem(_Strict):
    """The finite-element reference backend (solver.backend: fem), see vefrac/fem.py."""

    points_per_length: PositiveFloat = 2.0
    elements_per_length: Annotated[int, Field(ge=2, le=100000)] = 200
    tolerance: PositiveFloat = 1.0e-3
    max_iterations: Annotated[int, Field(ge=1, le=1_000_000)] = 500
    acceleration: Literal["overrelaxation", "none"] = "overrelaxation"
    relaxation: Annotated[float, Field(ge=1, lt=2)] = 1.8
    linear_solver: Literal["amg", "direct"] = "amg"  # vefrac/linsolve.py


class Observation(_Strict):
    """How `vefrac invert` reads the crack image (see vefrac/observe.py)."""

    cracks: Literal["auto", "dark", "light"] = "auto"  # auto: the minority side of the threshold
    threshold: Annotated[float, Field(gt=0, lt=1)] | None = None  # grey level; None: Otsu's
    crop: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=4, max_length=4)] | None = None
    size: Pair | None = None  # physical [w, h] the (cropped) image spans; None: the domain's box
    mask: str | None = None  # image of the material region (light = material), same framing
    min_crack_length: Annotated[float, Field(ge=0)] | None = None  # drop specks shorter; None: 4 s
    time: PositiveFloat | None = None  # when the picture was taken; None: shrinkage.t_end

    _mask = field_validator("mask")(lambda v, info: v if v is None else _resolve_image(v, info))

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


class Invert(_Strict):
    """The inverse mode: infer G(x) from a crack image (`vefrac invert`)."""

    unknown: Literal["grid", "network"] = "grid"
    grid_spacing: PositiveFloat | None = None  # coarse grid of log G; None: s
    observation: Observation = Observation()
    prior: Prior = Prior()
    misfit_weight: PositiveFloat = 10.0  # in units of the surface energy density G/(2s)
    outer_iterations: Annotated[int, Field(ge=1, le=10000)] = 10
    step: PositiveFloat = 0.3  # largest change of log G per outer iteration
    assimilation_iterations: Annotated[int, Field(ge=1, le=10_000_000)] = 300
    seeds: Annotated[int, Field(ge=1, le=100)] = 1
    overlap_tolerance: PositiveFloat = 2.0  # in units of s: how far a crack may be and still match


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


# ----------------------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading 1e-3 as a number as YAML 1.2 does (YAML 1.1 wants 1.0e-3)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

_TAGS = {"domain": "shape", "toughness": "kind"}


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Read, override and validate a scenario file. Raises InputError on any problem."""
    path = Path(path)
    try:
        exists = path.is_file()
    except OSError as exc:
        raise InputError(f"scenario file {str(path)!r} is not a usable path: {exc}") from None
    if not exists:
        raise InputError(f"scenario file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"scenario file {str(path)!r} cannot be read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except Exception as exc:  # PyYAML raises YAMLError, and ValueError etc. from its constructors
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}: malformed YAML{at}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: the top level must be a mapping of keys (name, domain, "
                         f"material, ...), not {_kind_of(data)}")
    data.setdefault("name", re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-") or "scenario")
    for item in overrides:
        apply_override(data, item)
    return validate_scenario(data, base_dir=path.parent, source=_source(path, overrides))


def validate_scenario(data: dict, *, base_dir: str | Path = ".", source: str = "scenario") -> Scenario:
    """Validate a raw mapping into a Scenario, with errors that name the key."""
    try:
        return Scenario.model_validate(data, context={"base_dir": str(base_dir)})
    except ValidationError as exc:
        raise InputError(_describe(exc, data, source)) from None
    except InputError as exc:  # an image read inside a validator
        raise InputError(f"{source}: {exc}") from None


def apply_override(data: dict, item: str) -> None:
    """Apply one `KEY.PATH=VALUE` override (VALUE parsed as YAML) to a raw mapping in place."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InputError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. --set material.lame_mu=2.0")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else raw
    except Exception:  # not YAML (or a YAML constructor error): take the text as it is
        value = raw
    parts = key.split(".")
    node = data
    model: Any = Scenario
    for depth, part in enumerate(parts):
        fields = _fields_of(model, node)
        if part not in fields:
            raise InputError(_unknown_key(".".join(parts[: depth + 1]), part, fields, origin="--set"))
        model = fields[part]
        if depth == len(parts) - 1:
            node[part] = value
        else:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise InputError(f"--set {key}: '{'.'.join(parts[: depth + 1])}' is not a mapping")
            node = child


def _kind_of(value: Any) -> str:
    return {str: "a single value (text)", list: "a list", int: "a number", float: "a number",
            bool: "true/false"}.get(type(value), f"a {type(value).__name__}")


def dump_scenario(scenario: Scenario) -> str:
    """The fully resolved scenario as YAML (defaults included), so a run can be repeated."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)


def scenario_hash(scenario: Scenario) -> str:
    """A fingerprint of everything that changes the computed result (not the output layout)."""
    data = scenario.model_dump(mode="json")
    data.pop("name", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- messages


def _fields_of(model: Any, node: dict) -> dict[str, Any]:
    """Allowed keys (-> their model) at one level; unions resolve through their tag."""
    annotation = getattr(model, "annotation", model)
    variants = _union_variants(annotation)
    if variants:
        tag_key = _tag_key(next(iter(variants.values())))
        tag = node.get(tag_key) if isinstance(node, dict) else None
        chosen = variants.get(tag) if isinstance(tag, str) else None
        if chosen is None:
            return {k: v for var in variants.values() for k, v in var.model_fields.items()}
        annotation = chosen
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return dict(annotation.model_fields)
    return {}


def _union_variants(annotation: Any) -> dict[str, type]:
    args = getattr(annotation, "__args__", ())
    if getattr(annotation, "__metadata__", None):
        args = getattr(annotation.__origin__, "__args__", ())
    out = {}
    for arg in args:
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            for tag_key in ("shape", "kind"):
                field = arg.model_fields.get(tag_key)
                if field is not None and getattr(field.annotation, "__args__", None):
                    out[field.annotation.__args__[0]] = arg
    return out


def _tag_key(model: type) -> str:
    """The discriminating key of a union variant: 'shape' (domains) or 'kind' (toughness)."""
    return "shape" if "shape" in model.model_fields else "kind"


def _source(path: Path, overrides) -> str:
    """'run.yaml with --set a.b=1': a bad value may come from the command line, not the file."""
    if not overrides:
        return str(path)
    shown = [(o if o.isprintable() else repr(o))[:60] + ("..." if len(o) > 60 else "") for o in overrides]
    return f"{path} with " + " ".join(f"--set {o}" for o in shown)


def _unknown_key(dotted: str, key: str, allowed: dict, *, origin: str) -> str:
    where = "--set " if origin == "--set" else ""
    parent = dotted.rpartition(".")[0]
    dotted = dotted if dotted.isprintable() else repr(dotted)
    if not allowed:  # the parent is a plain value: nothing below it can be set
        return f"{where}{dotted}: '{parent}' is a single value, not a mapping; it has no key {str(key)!r}"
    names = sorted(allowed)
    close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
    if close:
        hint = f" (did you mean '{_join(parent, close[0])}'?)"
    elif _variants_with(parent, key):  # a key of another shape or kind
        tag, tags = _variants_with(parent, key)
        hint = f" ({key!r} is for {tag}: {' or '.join(tags)}, not this {tag})"
    else:  # a real key in the wrong place: say where it belongs
        homes = [p for p in _schema_paths() if p.rpartition(".")[2] == key]
        hint = f" (did you mean {' or '.join(repr(h) for h in homes[:3])}?)" if homes else ""
    return f"{where}{dotted}: unknown key{hint}; allowed here: {', '.join(names)}"


def _variants_with(parent: str, key: Any) -> tuple[str, list[str]] | None:
    """('shape', ['disk']) when `key` belongs to some variants of the tagged union at `parent`."""
    ann: Any = Scenario
    for part in parent.split(".") if parent else []:
        variants = _union_variants(ann)
        models = list(variants.values()) if variants else [ann]
        fields = {k: v for m in models if isinstance(m, type) and issubclass(m, BaseModel)
                  for k, v in m.model_fields.items()}
        if part not in fields:
            return None
        ann = fields[part].annotation
    variants = _union_variants(ann)
    tags = [t for t, m in variants.items() if key in m.model_fields]
    return (_tag_key(next(iter(variants.values()))), tags) if tags else None


def _schema_paths(model: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key path of the schema, through each variant of the tagged unions."""
    out: list[str] = []
    for name, info in (model or Scenario).model_fields.items():
        out.append(_join(prefix, name))
        variants = _union_variants(info.annotation)
        for sub in variants.values() if variants else [info.annotation]:
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                out += [p for p in _schema_paths(sub, _join(prefix, name)) if p not in out]
    return out


# pydantic's constraint errors, said the way a scenario author thinks of them
_BOUND_TYPES = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}
_TYPE_ERRORS = {"float_type": "a number", "float_parsing": "a number", "int_type": "a whole number",
                "int_parsing": "a whole number", "int_from_float": "a whole number",
                "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
                "list_type": "a list", "model_type": "a mapping of keys", "dict_type": "a mapping of keys",
                "model_attributes_type": "a mapping of keys"}
_NAME_PATTERN = "^[A-Za-z0-9._-]+$"


def _describe(exc: ValidationError, data: dict, source: str) -> str:
    """One line per problem: the dotted key, what it must be, and what it got."""
    lines = []
    for err in exc.errors():
        loc = _clean_loc(err["loc"], data)
        dotted = _path(loc)
        kind, got, ctx = err["type"], err.get("input"), err.get("ctx") or {}
        ann, meta = _field_at(loc, data)
        expected = _expected(ann, meta)
        if kind == "invalid_key":
            parent = _field_at(loc[:-1], data)[0] if loc[:-1] else Scenario
            node = data
            for part in loc[:-1]:
                node = node.get(part, {}) if isinstance(node, dict) else {}
            names = sorted(_fields_of(parent, node if isinstance(node, dict) else {}))
            where = _path(loc[:-1]) if loc[:-1] else "the top level"
            lines.append(f"{where}: key {_show(loc[-1])} is not a name"
                         + (f"; allowed here: {', '.join(names)}" if names else ""))
        elif kind == "extra_forbidden":
            parent_loc, key = loc[:-1], loc[-1]
            node, model = data, Scenario
            for part in parent_loc:
                model = _fields_of(model, node).get(part)
                node = node.get(part, {}) if isinstance(node, dict) else {}
            lines.append(_unknown_key(dotted, key, _fields_of(model, node), origin="file"))
        elif kind == "union_tag_invalid":
            tag = ctx["discriminator"].strip("'")
            lines.append(f"{_join(dotted, tag)}: must be one of {ctx['expected_tags']} "
                         f"(got {_show(got.get(tag) if isinstance(got, dict) else ctx['tag'])})")
        elif kind == "union_tag_not_found":
            tag = ctx["discriminator"].strip("'")
            lines.append(f"{_join(dotted, tag)}: missing; say which {tag} this is "
                         f"({', '.join(map(repr, _union_variants(ann)))})")
        elif kind == "missing":
            lines.append(f"{dotted}: missing (required)" + (f"; give {expected}" if expected else ""))
        elif kind == "finite_number":
            lines.append(f"{dotted}: must be a finite number{_bounds_text(meta)} (got {_show(got)})")
        elif kind == "literal_error":
            lines.append(f"{dotted}: must be one of {ctx['expected'].replace(' or ', ', ')} (got {_show(got)})")
        elif kind in _BOUND_TYPES or kind in _TYPE_ERRORS:
            wanted = expected or _TYPE_ERRORS.get(kind) or "a number" + _bounds_text([ctx])
            lines.append(f"{dotted}: must be {wanted} (got {_show(got)})")
        elif kind in ("too_short", "too_long"):
            wanted = expected or f"a list of {ctx.get('min_length', ctx.get('max_length'))} items"
            lines.append(f"{dotted}: must be {wanted} (got {ctx.get('actual_length')} items: {_show(got)})")
        elif kind == "string_pattern_mismatch" and ctx.get("pattern") == _NAME_PATTERN:
            lines.append(f"{dotted}: may contain only letters, digits, '.', '_' and '-' (got {_show(got)})")
        elif kind == "string_pattern_mismatch":
            lines.append(f"{dotted}: must match the pattern {ctx.get('pattern')!r} (got {_show(got)})")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            shown = _show(got)
            if isinstance(got, dict) or "(got " in msg or shown in msg:
                lines.append(f"{dotted}: {msg}")
            else:
                lines.append(f"{dotted}: {msg} (got {shown})")
    head = f"{source}: " if len(lines) == 1 else f"{source}: {len(lines)} problems:\n  "
    return head + "\n  ".join(lines)


def _clean_loc(loc: tuple, data: dict) -> tuple:
    """Drop the union tag pydantic inserts after a discriminated field ('domain', 'disk', ...)."""
    out = []
    skip_next = False
    for i, part in enumerate(loc):
        if skip_next:
            skip_next = False
            continue
        out.append(part)
        if part in _TAGS and i + 1 < len(loc) and isinstance(loc[i + 1], str):
            node = data
            for p in out:
                node = node.get(p, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict) and node.get(_TAGS[part]) == loc[i + 1]:
                skip_next = True
    return tuple(out)


def _path(loc: tuple) -> str:
    """('domain', 'size', 1) -> 'domain.size[1]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:  # a key with spaces, dots or control characters is shown quoted
            out = _join(out, part if re.fullmatch(r"[\w-]+", str(part)) else repr(part))
    return out or "(top level)"


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _show(value: Any, limit: int = 60) -> str:
    """A value as the user wrote it in YAML (true, null, [1, 2]), cut short when long."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
            text = text.removesuffix("...").strip()
        except yaml.YAMLError:
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field_at(loc: tuple, data: dict) -> tuple[Any, list]:
    """(type, constraints) of the schema field at a cleaned location; (None, []) if unknown."""
    model: Any = Scenario
    node: Any = data
    ann, meta = Scenario, []
    for part in loc:
        if isinstance(part, int):  # an item of a list
            args = get_args(ann)
            if get_origin(ann) is not list or not args:
                return None, []
            ann, meta = _unwrap(args[0])
            model, node = ann, node[part] if isinstance(node, list) and -len(node) <= part < len(node) else {}
            continue
        info = _fields_of(model, node if isinstance(node, dict) else {}).get(part)
        if info is None:
            return None, []
        ann, meta = _unwrap(info.annotation)
        meta = meta + list(info.metadata)
        model, node = info, node.get(part) if isinstance(node, dict) else None
    return ann, meta


def _unwrap(annotation: Any) -> tuple[Any, list]:
    """Annotated[T, ...] | None -> (T, constraints)."""
    meta: list = []
    if get_origin(annotation) is Union:
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            annotation = args[0]
    while getattr(annotation, "__metadata__", None) is not None:
        meta += list(annotation.__metadata__)
        annotation = annotation.__origin__
    flat = []
    for m in meta:  # Field(gt=0) inside Annotated carries its constraints in .metadata
        flat += list(getattr(m, "metadata", None) or [m])
    return annotation, flat


def _constraint(meta: list, name: str) -> Any:
    """A bound (gt, ge, min_length...) from constraint objects or a pydantic error's ctx dict."""
    for m in meta:
        value = m.get(name) if isinstance(m, dict) else getattr(m, name, None)
        if value is not None:
            return value
    return None


def _bounds_text(meta: list) -> str:
    gt, ge, lt, le = (_constraint(meta, k) for k in ("gt", "ge", "lt", "le"))
    lo, hi = (f"> {gt}" if gt is not None else f">= {ge}" if ge is not None else "",
              f"< {lt}" if lt is not None else f"<= {le}" if le is not None else "")
    if ge is not None and le is not None:
        return f" from {ge} to {le}"
    return " " + " and ".join(t for t in (lo, hi) if t) if (lo or hi) else ""


def _plural(item: str) -> str:
    """'a number > 0' -> 'numbers > 0', 'true or false' -> 'true/false values'."""
    if item == "true or false":
        return "true/false values"
    for single in ("a whole number", "a number", "a list", "a string", "a mapping"):
        if item.startswith(single):
            return single[2:] + "s" + item[len(single):]
    return "items"


def _expected(ann: Any, meta: list) -> str | None:
    """What a field accepts, in words: 'a number > 0', 'one of 'amor', 'spectral''..."""
    if ann is bool:
        return "true or false"
    if ann is int:
        return "a whole number" + _bounds_text(meta)
    if ann is float:
        return "a number" + _bounds_text(meta)
    if ann is str:
        return "a string"
    if get_origin(ann) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(ann))
    if get_origin(ann) is list:
        lo, hi = _constraint(meta, "min_length"), _constraint(meta, "max_length")
        count = f"{lo} " if lo is not None and lo == hi else f"at least {lo} " if lo else ""
        item = _expected(*_unwrap(get_args(ann)[0])) if get_args(ann) else None
        return f"a list of {count}{_plural(item)}" if item else "a list"
    variants = _union_variants(ann)
    if variants:
        tag = _tag_key(next(iter(variants.values())))
        return f"a mapping whose '{tag}' is one of {', '.join(map(repr, variants))}"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "a mapping with keys " + ", ".join(ann.model_fields)
    return None


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
