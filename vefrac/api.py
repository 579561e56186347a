"""The Python API: scenarios from files or dicts, runs in memory or to a folder, results as numpy.

    import vefrac
    scn = vefrac.load_scenario("scenarios/square-mud.yaml", {"solver.load_steps": 4})
    result = vefrac.run(scn)                        # in memory; out="folder" writes the usual files
    last = result.snapshots[-1]                      # .t, .phi (ny, nx), .u (ny, nx, 2), .G, .mask, .x, .y
    print(result.statistics["fragments"], result.history_table()["crack_length"])

Nothing here touches torch at import: torch is imported by `run` (the solver needs it) and not
before, and no global torch setting outlives a call (`run` restores the thread count it sets).
"""

from __future__ import annotations

import contextlib
import copy
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import config
from .errors import InputError

Overrides = Mapping[str, Any] | Sequence[str]


# ----------------------------------------------------------------------------- scenarios


def load_scenario(source: str | Path | Mapping | config.Scenario, overrides: Overrides = (), *,
                  base_dir: str | Path | None = None) -> config.Scenario:
    """A validated scenario from a YAML file, a dict (the file's content) or another Scenario.

    overrides: {"solver.load_steps": 4, ...} (Python values) or ["solver.load_steps=4", ...] (the
    CLI's --set text, VALUE read as YAML). base_dir: where relative image/mesh paths of a dict
    are found (default: the working directory; a file's own folder for a file).
    Raises InputError naming the key and what is allowed.
    """
    items = override_items(overrides)
    if isinstance(source, (str, Path)):
        return config.load_scenario(source, items)
    if isinstance(source, config.Scenario):
        source = source.model_dump(mode="json")
    if not isinstance(source, Mapping):
        raise InputError(f"load_scenario: expected a path, a dict or a Scenario, not {type(source).__name__}")
    data = copy.deepcopy(dict(source))
    for item in items:
        config.apply_override(data, item)
    where = "scenario (dict)" + (f" with --set {' '.join(items)}" if items else "")
    return config.validate_scenario(data, base_dir=base_dir or ".", source=where)


def override_items(overrides: Overrides) -> list[str]:
    """Overrides as the CLI's KEY.PATH=VALUE strings; a mapping's values are written as JSON
    (which YAML reads back as the same value: 1e-3 stays a number, "1" stays text)."""
    if isinstance(overrides, str):
        raise InputError(f"overrides: a list of KEY.PATH=VALUE strings or a dict, not the text {overrides!r}")
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value, default=_plain)}" for key, value in overrides.items()]
    return [str(item) for item in overrides]


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise InputError(f"overrides: {value!r} ({type(value).__name__}) is not a number, text, list or dict")


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Snapshot:
    """One output time on the export grid. Arrays are numpy, row j at y[j], column i at x[i].

    arrays: every point array of the snapshot by name ('phi', 'u' (ny, nx, 3), 'G', 'mask',
    the energy densities, ...).
    """

    t: float
    x: np.ndarray  # (nx,) coordinates of the grid's columns
    y: np.ndarray  # (ny,) coordinates of the grid's rows (increasing)
    arrays: dict[str, np.ndarray] = field(repr=False)

    @property
    def phi(self) -> np.ndarray:
        """(ny, nx) phase field, 0 intact, 1 broken; 0 outside the domain."""
        return self.arrays["phi"]

    @property
    def u(self) -> np.ndarray:
        """(ny, nx, 2) in-plane displacement."""
        return self.arrays["u"][..., :2]

    @property
    def G(self) -> np.ndarray:  # noqa: N802 (the physics' name)
        """(ny, nx) toughness G(x)."""
        return self.arrays["G"]

    @property
    def mask(self) -> np.ndarray:
        """(ny, nx) bool, True inside the material."""
        return self.arrays["mask"].astype(bool)

    @property
    def spacing(self) -> tuple[float, float]:
        """(hx, hy) grid spacing, as the analysis functions take it."""
        return (float(self.x[1] - self.x[0]) if len(self.x) > 1 else 1.0,
                float(self.y[1] - self.y[0]) if len(self.y) > 1 else 1.0)

    @property
    def points(self) -> np.ndarray:
        """(ny*nx, 2) point coordinates, x fastest (the order of `phi.ravel()`)."""
        xx, yy = np.meshgrid(self.x, self.y)
        return np.stack([xx.ravel(), yy.ravel()], axis=1)


@dataclass(frozen=True)
class Result:
    """A finished run: snapshots (numpy), history rows, statistics and the full summary.

    folder: the run's output folder, None for a run in memory.
    """

    snapshots: list[Snapshot]
    history: list[dict]  # one dict per snapshot, the columns of history.csv
    summary: dict  # summary.json's content
    folder: Path | None = None

    @property
    def statistics(self) -> dict:
        """The final crack statistics: crack_length, skeleton_length, fragments, mean_fragment_area, ..."""
        return self.summary["final"]

    def history_table(self) -> dict[str, np.ndarray]:
        """The history as columns: name -> (n_snapshots,) numpy array (missing cells are NaN)."""
        names = list(dict.fromkeys(k for row in self.history for k in row))
        return {k: np.array([np.nan if row.get(k) is None else row[k] for row in self.history]) for k in names}

    def history_frame(self):
        """The history as a pandas DataFrame (needs pandas, which vefrac does not depend on)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Result.history_frame needs pandas (pip install pandas); "
                              "Result.history_table() gives the same columns as numpy arrays") from None
        return pd.DataFrame(self.history)

    def __repr__(self) -> str:
        s = self.statistics
        return (f"Result({self.summary.get('name')!r}: {len(self.snapshots)} snapshots, "
                f"{s.get('fragments')} fragments, crack length {s.get('crack_length', float('nan')):.3g}, "
                f"folder={str(self.folder) if self.folder else None})")

    @classmethod
    def from_outputs(cls, *, summary: dict, rows: list[dict], snapshots: Sequence, grid,
                     folder: Path | None = None) -> Result:
        """From a Run's in-memory outputs: `snapshots` with `.t` and `.arrays`, `grid` with
        origin, spacing and shape (ny, nx)."""
        ny, nx = grid.shape
        x = grid.origin[0] + grid.spacing[0] * np.arange(nx)
        y = grid.origin[1] + grid.spacing[1] * np.arange(ny)
        snaps = [Snapshot(t=float(s.t), x=x, y=y, arrays=dict(s.arrays)) for s in snapshots]
        return cls(snapshots=snaps, history=[dict(r) for r in rows], summary=summary, folder=folder)


def open_run(folder: str | Path) -> Result:
    """Read a finished run folder (fields.pvd and its .vti files, history.csv, summary.json).

    Raises InputError when the folder holds no finished run.
    """
    from .export import read_csv

    folder = Path(folder)
    for name in ("summary.json", "fields.pvd", "history.csv"):
        if not (folder / name).is_file():
            raise InputError(f"{str(folder)!r} is not a finished vefrac run folder: it has no {name}")
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        entries = [(float(d.get("timestep")), d.get("file")) for d in ET.parse(folder / "fields.pvd").iter("DataSet")]
    except (OSError, ValueError, TypeError, ET.ParseError) as exc:
        raise InputError(f"{str(folder)!r}: summary.json or fields.pvd cannot be read: {exc}") from None
    snapshots = [_read_vti(folder / name, t) for t, name in sorted(entries)]
    return Result(snapshots=snapshots, history=read_csv(folder / "history.csv"), summary=summary, folder=folder)


def _read_vti(path: Path, t: float) -> Snapshot:
    import pyvista as pv

    try:
        image = pv.read(path)
    except Exception as exc:  # a missing or truncated file: VTK's own exceptions vary
        raise InputError(f"snapshot {str(path)!r} cannot be read: {exc}") from None
    nx, ny, _ = image.dimensions
    (x0, y0, _), (hx, hy, _) = image.origin, image.spacing
    arrays = {}
    for name in image.point_data.keys():
        a = np.asarray(image.point_data[name])
        arrays[name] = a.reshape(ny, nx, *a.shape[1:])  # VTK's point order runs x fastest
    return Snapshot(t=t, x=x0 + hx * np.arange(nx), y=y0 + hy * np.arange(ny), arrays=arrays)


# ----------------------------------------------------------------------------- running


def run(scenario: config.Scenario | str | Path | Mapping, *, out: str | Path | None = None, device: Any = "auto",
        resume: bool = False, overwrite: bool = False, progress: bool | Callable[[int, dict], None] = False,
        log: Callable[[str], None] | None = None) -> Result:
    """Run a scenario; returns its Result.

    out: None runs in memory (no files); a folder gets the CLI's outputs (fields.pvd, history.csv,
    summary.json, checkpoint, pictures). device: "auto" | "cpu" | "cuda" or a torch.device.
    resume/overwrite: as the CLI's --resume/--overwrite (folder runs only). progress: True shows
    a progress bar; a callable gets (iterations done, loss terms). log: gets the step log lines
    (default: silent). solver.threads > 0 sets torch's thread count for the run, then restores it.
    """
    from .runner import Run, output_lock, pick_device, prepare_output

    scn = scenario if isinstance(scenario, config.Scenario) else load_scenario(scenario)
    device = pick_device(device) if isinstance(device, str) else device
    log = log or (lambda line: None)
    if out is None and resume:
        raise InputError("run: resume=True needs the folder of the run to continue (out=...)")
    with _progress(progress, scn) as callback, _threads(scn.solver.threads):
        if out is None:
            work = Run(scn, None, device=device, progress=callback, log=log)
            summary = work.execute()
            return Result.from_outputs(summary=summary, rows=work.outputs.rows,
                                       snapshots=work.outputs.snapshots, grid=work.grid)
        out = Path(out)
        prepare_output(out, resume=resume, overwrite=overwrite)
        work = Run(scn, out, device=device, resume=resume, progress=callback, log=log)
        with output_lock(out):
            work.execute()
    return open_run(out)


@contextlib.contextmanager
def _threads(n: int):
    """torch's intra-op thread count set to n (n > 0) for the block, restored after it."""
    import torch

    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def _progress(progress, scn):
    """The progress callback: a tqdm bar (True), the user's callable, or none (False)."""
    if callable(progress) or not progress:
        yield progress or None
        return
    from tqdm import tqdm

    bar = tqdm(total=None, unit="it", dynamic_ncols=True, desc=scn.name)

    def update(count: int, terms: dict) -> None:
        bar.update(count - bar.n)
        bar.set_postfix({k[:4]: f"{v:.3g}" for k, v in terms.items()}, refresh=False)

    try:
        yield update
    finally:
        bar.close()


# ----------------------------------------------------------------------------- analysing


def analyze(source: str | Path, *, size: Sequence[float] | None = None,
            scenario: config.Scenario | str | Path | Mapping | None = None):
    """The crack-pattern statistics of a picture or a finished run folder, by the code of
    `vefrac analyze` (vefrac/pattern.py). size: the physical [width, height] a picture spans
    (default: pixels); scenario: read the picture with its domain, s and observation keys.
    Returns a pattern.Pattern (`.statistics` dict, cell labels, skeleton, junctions)."""
    from .pattern_sources import analyse, load_source

    if scenario is not None and not isinstance(scenario, config.Scenario):
        scenario = load_scenario(scenario)
    return analyse(load_source(source, size=size, scenario=scenario))
