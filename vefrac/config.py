"""Scenario files: loading, overrides, validation, and the resolved scenario written back.

A scenario is parsed and validated once, here, at the edge; the rest of vefrac receives
typed, immutable objects (the models of `vefrac.schema`, re-exported here as
`config.Scenario`, `config.Rectangle`, ...). Every problem with the input becomes an
`InputError` whose message names the key (or file) and what is allowed. No torch in this module.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from . import config_errors
from .errors import InputError
from .schema import (  # noqa: F401 (re-exported: config.Scenario, config.Rectangle, ...)
    ConstantToughness, Disk, Domain, Fem, Fracture, ImageToughness, Invert, LogNormalToughness, Mask, Material,
    Mesh, Network, NetworkToughness, Observation, Output, Polygon, Prior, Rectangle, Scenario, Shrinkage, Solver,
    Toughness,
)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading 1e-3 as a number as YAML 1.2 does (YAML 1.1 wants 1.0e-3)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


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
        data = yaml.load(text, Loader=_Loader) if text.strip() else None
    except Exception as exc:  # PyYAML raises YAMLError, and ValueError etc. from its constructors
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}: malformed YAML{at}: {problem}") from None
    if data is None and not _has_content(text):  # running every default is never what was meant
        raise InputError(f"scenario file {str(path)!r} is empty: write at least the domain and the keys that "
                         f"differ from the defaults (or {{}} for every default); start from a copy of "
                         f"scenarios/square-mud.yaml (`vefrac check` on it prints every key)")
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
        raise InputError(config_errors.describe(exc, data, source)) from None
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
        fields = config_errors.fields_of(model, node)
        if part not in fields:
            raise InputError(config_errors.unknown_key(".".join(parts[: depth + 1]), part, fields,
                                                        origin="--set"))
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


def _has_content(text: str) -> bool:
    """False for a document of only comments, white space and document markers (---, ...)."""
    if not text.strip():
        return False
    structure = (yaml.StreamStartToken, yaml.StreamEndToken, yaml.DocumentStartToken, yaml.DocumentEndToken)
    return any(not isinstance(token, structure) for token in yaml.scan(text, Loader=_Loader))


def _kind_of(value: Any) -> str:
    return {str: "a single value (text)", list: "a list", int: "a number", float: "a number",
            bool: "true/false", type(None): "null"}.get(type(value), f"a {type(value).__name__}")


def _source(path: Path, overrides) -> str:
    """'run.yaml with --set a.b=1': a bad value may come from the command line, not the file."""
    if not overrides:
        return str(path)
    shown = [(o if o.isprintable() else repr(o))[:60] + ("..." if len(o) > 60 else "") for o in overrides]
    return f"{path} with " + " ".join(f"--set {o}" for o in shown)


def dump_scenario(scenario: Scenario) -> str:
    """The fully resolved scenario as YAML (defaults included), so a run can be repeated."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)


def scenario_hash(scenario: Scenario) -> str:
    """A fingerprint of everything that changes the computed result (not the output layout)."""
    data = scenario.model_dump(mode="json")
    data.pop("name", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]



def schema_paths() -> list[str]:
    """Every dotted key path of a scenario ('domain.size', 'fracture.toughness.cv', ...), through
    each shape and kind of the tagged unions."""
    return config_errors.schema_paths()


