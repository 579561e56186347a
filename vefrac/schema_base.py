"""What every part of the scenario schema shares: strict immutable models, the path checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo

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
