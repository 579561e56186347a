"""Parameter sweeps: every combination of a grid of overrides, each run in its own folder.

    vefrac sweep SCENARIO --grid KEY=V1,V2,... [--grid ...] [--set ...] [--out DIR] [--jobs N]

A plan (`plan_sweep`) validates every combination against the scenario schema before anything
runs. `run_local` runs the plan N at a time as `python -m vefrac run ... --quiet` subprocesses,
`run_on_submitit` as a job array through submitit (SLURM, see docs/sweeps.md). Both skip
finished runs (summary.json present), resume interrupted ones when asked, and rewrite
`sweep.csv` (one row per combination: the grid's values, the run's statistics, its status)
atomically as runs finish.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from . import config
from .errors import InputError
from .export import write_csv

TABLE = "sweep.csv"
STATISTICS = ("fragments", "crack_length", "skeleton_length", "mean_fragment_area")
COLUMNS_AFTER_GRID = [*STATISTICS, "first_crack_t", "wall_time_s", "status", "folder"]


@dataclass(frozen=True)
class SweepRun:
    """One combination: its grid values (KEY -> value text), its folder and its overrides."""

    values: dict[str, str]
    folder: Path
    overrides: tuple[str, ...]  # the sweep's --set items, then this combination's KEY=VALUE items

    def state(self) -> str:
        """'done' (summary.json), 'interrupted' (a run started here, not finished) or 'new'."""
        if (self.folder / "summary.json").is_file():
            return "done"
        if any((self.folder / f).exists() for f in ("checkpoint.pt", "fields.pvd")):
            return "interrupted"
        return "new"


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the scenario file, the grid (KEY -> value texts) and its runs."""

    scenario: Path
    grid: dict[str, list[str]]
    out: Path
    runs: list[SweepRun] = field(repr=False)

    @property
    def table(self) -> Path:
        return self.out / TABLE


# ----------------------------------------------------------------------------- the plan


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """--grid KEY=V1,V2,... items -> {KEY: [V1, V2, ...]} (value texts, read as YAML later).

    Commas inside brackets or braces belong to the value: domain.size=[1,1],[2,1] has two values.
    """
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--grid {item!r}: expected KEY.PATH=V1,V2,..., e.g. --grid material.lame_mu=1,2")
        values = [v.strip() for v in _split_top_level(raw)]
        if not any(values):
            raise InputError(f"--grid {key}: no values; give them as {key}=V1,V2,...")
        if "" in values:
            raise InputError(f"--grid {key}={raw}: an empty value; give them as {key}=V1,V2,...")
        if key in grid:
            raise InputError(f"--grid {key}: given twice; list all its values in one --grid {key}=V1,V2,...")
        if len(set(values)) != len(values):
            raise InputError(f"--grid {key}={raw}: a value is listed twice")
        grid[key] = values
    return grid


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def read_sweep_file(path: str | Path) -> dict[str, Any]:
    """A sweep file: {scenario: FILE (relative to the sweep file), grid: {KEY: [values]},
    set: {KEY: value} or [KEY=VALUE], out: DIR}. Returns scenario (Path), grid (KEY -> value
    texts), overrides (list of KEY=VALUE) and out (Path or None)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"sweep file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"sweep file {str(path)!r}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"sweep file {str(path)!r}: expected a mapping with keys scenario, grid, set, out")
    unknown = set(data) - {"scenario", "grid", "set", "out"}
    if unknown:
        raise InputError(f"sweep file {str(path)!r}: unknown key {sorted(unknown)[0]!r}; allowed: scenario, "
                         f"grid, set, out")
    grid = data.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise InputError(f"sweep file {str(path)!r}: grid: expected a mapping KEY.PATH: [V1, V2, ...] with "
                         f"at least one key")
    texts = {}
    for key, values in grid.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise InputError(f"sweep file {str(path)!r}: grid.{key}: no values")
        texts[str(key)] = [v if isinstance(v, str) else json.dumps(v) for v in values]
    sets = data.get("set") or []
    if isinstance(sets, dict):
        sets = [f"{k}={json.dumps(v)}" for k, v in sets.items()]
    if not isinstance(sets, list):
        raise InputError(f"sweep file {str(path)!r}: set: expected a mapping KEY.PATH: value or a list of "
                         f"KEY.PATH=VALUE")
    scenario = data.get("scenario")
    return {"scenario": path.parent / scenario if scenario else None, "grid": texts,
            "overrides": [str(s) for s in sets],
            "out": path.parent / data["out"] if data.get("out") else None}


def plan_sweep(scenario: str | Path, grid: Mapping[str, Sequence[str]], *, overrides: Sequence[str] = (),
               out: str | Path | None = None) -> Sweep:
    """Validate every combination of the grid (InputError naming the key and value otherwise)
    and give each its folder under `out` (default outputs/<name>-sweep)."""
    if not grid:
        raise InputError("sweep: the grid is empty; give at least one --grid KEY.PATH=V1,V2,...")
    keys = list(grid)
    cases = [Case(values=dict(zip(keys, combo)), overrides=tuple(f"{k}={v}" for k, v in zip(keys, combo)))
             for combo in itertools.product(*(grid[k] for k in keys))]
    return plan_cases(scenario, cases, overrides=overrides, out=out, label="--grid ")


@dataclass(frozen=True)
class Case:
    """One run of a sweep that is not a plain grid (a study's variants): the values that label
    it in the table, the overrides that make it, and optionally its folder's name."""

    values: dict[str, str]
    overrides: tuple[str, ...]
    folder: str | None = None  # default: folder_name(values)


def plan_cases(scenario: str | Path, cases: Sequence[Case], *, overrides: Sequence[str] = (),
               out: str | Path | None = None, label: str = "") -> Sweep:
    """A sweep of explicit cases: each validated (InputError naming label and the case's
    overrides otherwise), each given its folder under `out`."""
    base = config.load_scenario(scenario, list(overrides))
    out = Path(out) if out else Path("outputs") / f"{base.name}-sweep"
    runs, names = [], set()
    for case in cases:
        try:
            config.load_scenario(scenario, [*overrides, *case.overrides])
        except InputError as exc:
            raise InputError(f"sweep: {label}{' '.join(case.overrides)}: {exc}") from None
        name = case.folder or folder_name(case.values)
        if name in names:  # two values that read alike once sanitised
            name += "-" + hashlib.sha256("\n".join(case.overrides).encode()).hexdigest()[:8]
        names.add(name)
        runs.append(SweepRun(values=dict(case.values), folder=out / name, overrides=(*overrides, *case.overrides)))
    columns = list(dict.fromkeys(k for case in cases for k in case.values))
    grid = {k: list(dict.fromkeys(c.values[k] for c in cases if k in c.values)) for k in columns}
    return Sweep(scenario=Path(scenario), grid=grid, out=out, runs=runs)


def folder_name(values: Mapping[str, str]) -> str:
    """'fracture.toughness.mean=0.001__solver.points=512': the key=value pairs, numbers written
    one way (1e-3 and 0.001 name one folder), sanitised for any file system; a long name is cut
    and keeps a hash of the whole."""
    text = "__".join(f"{k}={_canonical(v)}" for k, v in values.items())
    name = "__".join(f"{_safe(k)}={_safe(_canonical(v))}" for k, v in values.items())
    if len(name) > 120:
        name = name[:111] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return name


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-") or "-"


def _canonical(text: str) -> str:
    for kind in (int, float):
        try:
            return repr(kind(text))
        except ValueError:
            pass
    return text.strip()


# ----------------------------------------------------------------------------- the table


def table_row(run: SweepRun, status: str) -> dict:
    """The grid's values, the run's statistics (from its summary.json, if any) and its status."""
    row: dict[str, Any] = dict(run.values)
    try:
        summary = json.loads((run.folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = None
    if summary:
        row.update({k: summary["final"].get(k) for k in STATISTICS})
        row.update(first_crack_t=summary.get("first_crack_t"), wall_time_s=summary.get("wall_time_s"))
    row.update(status=status, folder=run.folder.name)
    return row


def write_table(sweep: Sweep, statuses: Sequence[str]) -> Path:
    """sweep.csv, replaced atomically: a reader never sees half a table."""
    sweep.out.mkdir(parents=True, exist_ok=True)
    rows = [table_row(r, s) for r, s in zip(sweep.runs, statuses)]
    return write_csv(sweep.table, rows, [*sweep.grid, *COLUMNS_AFTER_GRID])


# ----------------------------------------------------------------------------- running


def run_command(sweep: Sweep, run: SweepRun, *, resume: bool, device: str, threads: int) -> list[str]:
    """The `python -m vefrac run` command line of one run: fresh, resumed or restarted."""
    command = [sys.executable, "-m", "vefrac", "run", str(sweep.scenario), "--out", str(run.folder),
               "--quiet", "--device", device]
    for item in run.overrides:
        command += ["--set", item]
    if threads > 0:
        command += ["--set", f"solver.threads={threads}"]
    state = run.state()
    if state == "interrupted":
        command.append("--resume" if resume and (run.folder / "checkpoint.pt").is_file() else "--overwrite")
    return command


def sweep_threads(run: SweepRun, *, jobs: int, cores: int | None = None, threads: int | None = None) -> int:
    """Threads per run: `threads` if given, else the cores (default: this machine's) shared by
    the jobs; a resumed run keeps the count it was started with (part of the fingerprint that
    --resume checks)."""
    started = run.folder / "config.yaml"
    if run.state() == "interrupted" and started.is_file():
        try:
            return int(yaml.safe_load(started.read_text())["solver"]["threads"])
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
            pass
    return threads or max(1, (cores or _cores()) // jobs)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (cgroups, taskset)
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def pending(sweep: Sweep, *, resume: bool) -> list[int]:
    """Indices of the runs to do; InputError if some were interrupted and resume is not asked."""
    states = [r.state() for r in sweep.runs]
    stopped = [r.folder for r, s in zip(sweep.runs, states) if s == "interrupted"]
    if stopped and not resume:
        raise InputError(f"sweep: {len(stopped)} run(s) were interrupted (e.g. {str(stopped[0])!r}); continue "
                         f"them with --resume")
    return [i for i, s in enumerate(states) if s != "done"]


def run_local(sweep: Sweep, *, jobs: int = 1, resume: bool = False, device: str = "auto",
              threads: int | None = None, log: Callable[[str], None] = print) -> list[str]:
    """Run the sweep on this machine, `jobs` subprocesses at a time, each with `threads`
    threads (default: the cores shared by the jobs). Returns each run's status: 'skipped'
    (finished before), 'done', 'failed (exit N)' or 'interrupted'."""
    todo = pending(sweep, resume=resume)
    statuses = ["skipped" if i not in todo else "pending" for i in range(len(sweep.runs))]
    write_table(sweep, statuses)
    log(f"sweep: {len(sweep.runs)} runs, {len(sweep.runs) - len(todo)} finished before, {len(todo)} to run, "
        f"{jobs} at a time; table: {sweep.table}")
    running: dict[int, tuple[subprocess.Popen, Any, float]] = {}
    queue = list(todo)
    try:
        while queue or running:
            while queue and len(running) < jobs:
                i = queue.pop(0)
                running[i] = _start(sweep, sweep.runs[i], resume=resume, device=device, jobs=jobs, threads=threads)
                statuses[i] = "running"
                write_table(sweep, statuses)
            time.sleep(0.1)
            for i, (proc, logfile, started) in list(running.items()):
                if proc.poll() is None:
                    continue
                logfile.close()
                del running[i]
                statuses[i] = "done" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
                write_table(sweep, statuses)
                log(f"sweep: {sweep.runs[i].folder.name}: {statuses[i]} after {time.monotonic() - started:.0f} s"
                    + ("" if proc.returncode == 0 else f"; see {sweep.runs[i].folder / 'vefrac.log'}"))
    except KeyboardInterrupt:  # the runs got the Ctrl-C too: they checkpoint and stop
        for i, (proc, logfile, _) in running.items():
            proc.wait()
            logfile.close()
            statuses[i] = "interrupted"
        write_table(sweep, statuses)
        raise
    return statuses


def _start(sweep: Sweep, run: SweepRun, *, resume: bool, device: str, jobs: int, threads: int | None):
    threads = sweep_threads(run, jobs=jobs, threads=threads)
    command = run_command(sweep, run, resume=resume, device=device, threads=threads)
    run.folder.mkdir(parents=True, exist_ok=True)
    logfile = open(run.folder / "vefrac.log", "a", encoding="utf-8")
    env = {**os.environ, **child_env(threads)}
    proc = subprocess.Popen(command, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    return proc, logfile, time.monotonic()


def child_env(threads: int) -> dict[str, str]:
    """The environment a run adds: its thread count, and this vefrac first on the path, so that
    the runs execute the code the sweep was started with (a checkout, not another install)."""
    here = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "PYTHONPATH": here + (os.pathsep + path if path else "")}


def execute_command(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Run one sweep command where the job lands (a cluster node); returns its exit code."""
    return subprocess.run(list(command), env={**os.environ, **env}, stdin=subprocess.DEVNULL).returncode


def run_sweep(scenario: str | Path, grid: Mapping[str, Sequence[Any]], *,
              overrides: Mapping[str, Any] | Sequence[str] = (), out: str | Path | None = None, jobs: int = 1,
              resume: bool = False, device: str = "auto", log: Callable[[str], None] | None = None) -> list[dict]:
    """Run every combination of `grid` ({KEY.PATH: [values]}) on this machine, `jobs` at a time.

    Returns sweep.csv's rows (one dict per combination: the grid's values as given in the
    file's text, the statistics, status, folder). A finished run is skipped; resume=True
    continues interrupted ones. Raises InputError before anything runs on a bad key or value.
    """
    from .api import override_items

    texts = {k: [v if isinstance(v, str) else json.dumps(v) for v in values] for k, values in grid.items()}
    plan = plan_sweep(scenario, texts, overrides=override_items(overrides), out=out)
    statuses = run_local(plan, jobs=jobs, resume=resume, device=device, log=log or (lambda line: None))
    return [table_row(r, s) for r, s in zip(plan.runs, statuses)]
