"""How scenario problems are told: pydantic's validation errors and unknown keys, in the words
of a scenario author (the dotted key, what it must be, what it got, the name that was meant).

Also the walks over the schema that the messages and `--set` need: the keys allowed at one
level (tagged unions resolved through their `shape` or `kind`) and every dotted key path.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from .schema import Scenario

# the tagged unions of the schema: the key that holds each one's tag
_TAGS = {"domain": "shape", "toughness": "kind", "thickness": "kind", "substrate": "kind"}


def fields_of(model: Any, node: dict) -> dict[str, Any]:
    """Allowed keys (-> their model) at one level; unions resolve through their tag."""
    annotation = _optional_model(getattr(model, "annotation", model))
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


def _optional_model(annotation: Any) -> Any:
    """`Model | None` (an optional section such as shrinkage.front) -> Model; anything else as is."""
    args = get_args(annotation)
    if get_origin(annotation) is not None and type(None) in args:
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(models) == 1 and len(args) == 2:
            return models[0]
    return annotation


def _union_variants(annotation: Any) -> dict[str, type]:
    if get_origin(annotation) is Union and type(None) in get_args(annotation):  # an optional tagged union
        rest = [a for a in get_args(annotation) if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else annotation
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


def unknown_key(dotted: str, key: str, allowed: dict, *, origin: str) -> str:
    """The message for a key not allowed at `dotted`: the close name, the shape or kind it
    belongs to, or where it lives; `allowed` the keys of that level; origin 'file' or '--set'."""
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
        homes = [p for p in schema_paths() if p.rpartition(".")[2] == key]
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


def schema_paths(model: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key path of the schema, through each variant of the tagged unions."""
    out: list[str] = []
    for name, info in (model or Scenario).model_fields.items():
        out.append(_join(prefix, name))
        variants = _union_variants(info.annotation)
        for sub in variants.values() if variants else [info.annotation]:
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                out += [p for p in schema_paths(sub, _join(prefix, name)) if p not in out]
    return out


# pydantic's constraint errors, said the way a scenario author thinks of them
_BOUND_TYPES = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}
_TYPE_ERRORS = {"float_type": "a number", "float_parsing": "a number", "int_type": "a whole number",
                "int_parsing": "a whole number", "int_from_float": "a whole number",
                "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
                "list_type": "a list", "model_type": "a mapping of keys", "dict_type": "a mapping of keys",
                "model_attributes_type": "a mapping of keys"}
_NAME_PATTERN = "^[A-Za-z0-9._-]+$"


def describe(exc: ValidationError, data: dict, source: str) -> str:
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
            names = sorted(fields_of(parent, node if isinstance(node, dict) else {}))
            where = _path(loc[:-1]) if loc[:-1] else "the top level"
            lines.append(f"{where}: key {_show(loc[-1])} is not a name"
                         + (f"; allowed here: {', '.join(names)}" if names else ""))
        elif kind == "extra_forbidden":
            parent_loc, key = loc[:-1], loc[-1]
            node, model = data, Scenario
            for part in parent_loc:
                model = fields_of(model, node).get(part)
                node = node.get(part, {}) if isinstance(node, dict) else {}
            lines.append(unknown_key(dotted, key, fields_of(model, node), origin="file"))
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
    lines = [line.removeprefix("(top level): ") for line in lines]  # a scenario-wide rule names its keys
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
        info = fields_of(model, node if isinstance(node, dict) else {}).get(part)
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
