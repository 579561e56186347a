"""Checkpoints that cannot run code: plain data in, plain data out.

A checkpoint holds only tensors, numbers, strings, booleans, None and lists/tuples/dicts of them
(`plain` makes such data of numpy arrays, numpy scalars and dataclasses), and is read back with
`torch.load(..., weights_only=True)`: a file that holds anything else (a pickled object, which
could run code while it is read) is refused with an InputError (exit code 2) before anything in
it is executed. Written atomically: a kill leaves the previous checkpoint whole.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from . import export
from .errors import InputError
from .geometry import Grid


def plain(value):
    """`value` as plain data: numpy arrays -> tensors, numpy scalars -> Python numbers,
    dataclasses -> dicts (recursively). Raises TypeError for anything it cannot make plain."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)) and not isinstance(value, np.generic):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    raise TypeError(f"a checkpoint holds only tensors, numbers, strings and lists/dicts of them, "
                    f"not {type(value).__name__}")


def grid_state(grid: Grid | None) -> dict | None:
    """A Grid as lists (None stays None)."""
    return None if grid is None else {"origin": list(grid.origin), "spacing": list(grid.spacing),
                                      "shape": list(grid.shape)}


def grid_from_state(state: dict | None) -> Grid | None:
    """The inverse of `grid_state`."""
    if state is None:
        return None
    return Grid(tuple(float(v) for v in state["origin"]), tuple(float(v) for v in state["spacing"]),
                tuple(int(v) for v in state["shape"]))


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save of `plain(payload)`, written atomically."""
    buf = io.BytesIO()
    torch.save(plain(payload), buf)
    export.atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, *, device) -> dict:
    """A checkpoint's payload; InputError (exit code 2) for a truncated, foreign or unsafe file."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise InputError(f"--resume: checkpoint {str(path)!r} holds more than tensors, numbers and strings: "
                         f"a pickled object{what}, which could run code when loaded; refused without loading "
                         f"it (a checkpoint of an older vefrac is refused too: start afresh with --overwrite)") from None
    except Exception as exc:
        raise InputError(f"--resume: checkpoint {str(path)!r} cannot be read: {exc}") from None
