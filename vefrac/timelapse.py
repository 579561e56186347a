"""A time-lapse of the drying for `vefrac invert`: which pictures, taken when, and their report.

    vefrac invert SCENARIO --image A.png --image B.png --times 0.05 0.1
    vefrac invert SCENARIO --images FRAMES/          # FRAMES/times.txt (or times.csv) lists them

A times file has one line per frame, `FILE TIME` (separated by spaces, a tab or a comma; FILE
relative to the folder; lines starting with # and a header line `file,time` are skipped), in the
order the frames were taken. Only the files it lists are read.

Checks, each an InputError naming the option or file: as many times as pictures; times strictly
increasing, > 0 and ≤ shrinkage.t_end; every picture of the same size in pixels (the same framing:
one camera, one crop); every time a load-step time of the forward run, which runs to the last
frame's time t_last in solver.load_steps equal steps (so each time is a multiple of
t_last / load_steps; the message proposes a load_steps that fits).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import analysis, plots
from .errors import InputError
from .imageio import picture_size
from .solve import step_times

TIMES_FILES = ("times.txt", "times.csv")
_ON_STEP = 1e-6  # relative to t_last: a time this close to a load step is that load step


@dataclass(frozen=True)
class Frame:
    """One picture of the sequence and the time t it was taken (None: invert.observation.time)."""

    path: Path
    time: float | None = None


def frames_from_options(images: list[str] | None, times: list[float] | None, folder: str | None) -> list[Frame]:
    """The frames the command line names: --image (repeatable) with --times, or --images DIR."""
    if folder is not None:
        if images or times:
            raise InputError("--images DIR lists the frames and their times itself: give it without "
                             "--image and --times")
        return read_times_file(Path(folder))
    if not images:
        raise InputError("vefrac invert needs the picture(s): --image CRACKS.png (repeatable, with --times "
                         "for a sequence) or --images DIR (a folder with times.txt)")
    if times is None:
        if len(images) > 1:
            raise InputError(f"--image given {len(images)} times: a sequence needs --times, one time per "
                             f"picture in the same order")
        return [Frame(Path(images[0]))]
    if len(times) != len(images):
        raise InputError(f"--times gives {len(times)} times for {len(images)} --image pictures: one time "
                         f"per picture, in the same order")
    return [Frame(Path(p), float(t)) for p, t in zip(images, times)]


def read_times_file(folder: Path) -> list[Frame]:
    """The frames of a folder's times.txt or times.csv (see the module docstring)."""
    if not folder.is_dir():
        raise InputError(f"--images {str(folder)!r}: not a folder (a folder of frames with times.txt)")
    found = [folder / name for name in TIMES_FILES if (folder / name).is_file()]
    if not found:
        raise InputError(f"--images {str(folder)!r}: no times.txt or times.csv in it; write one line "
                         f"'FILE TIME' per frame")
    path = found[0]
    frames = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cells = next(csv.reader([line])) if "," in line else line.split()
        cells = [c.strip() for c in cells if c.strip()]
        if len(cells) != 2:
            raise InputError(f"{str(path)!r} line {number}: {line!r}; each line is 'FILE TIME'")
        try:
            t = float(cells[1])
        except ValueError:
            if not frames and cells[1].lower() in ("time", "t"):  # a header
                continue
            raise InputError(f"{str(path)!r} line {number}: time {cells[1]!r} is not a number") from None
        frames.append(Frame(folder / cells[0], t))
    if not frames:
        raise InputError(f"{str(path)!r} lists no frame; each line is 'FILE TIME'")
    return frames


def check_frames(frames: list[Frame], *, t_end: float, load_steps: int, single_time: float | None) -> np.ndarray:
    """Validate the frames (see the module docstring). Returns (n,) their times, snapped onto the
    forward run's load steps (one picture without a time: single_time or t_end, as always)."""
    what = "--times"
    if len(frames) == 1 and frames[0].time is None:
        t = single_time or t_end
        if t > t_end * (1 + 1e-12):
            raise InputError(f"invert.observation.time = {t} lies after shrinkage.t_end = {t_end}; allowed: "
                             f"0 < time <= t_end")
        return np.array([t])
    if single_time is not None:
        raise InputError("invert.observation.time is the time of a single picture; the frames of a "
                         "sequence take theirs from --times or the times file: remove it")
    times = np.array([f.time for f in frames], dtype=float)
    if np.any(times <= 0):
        raise InputError(f"{what}: every time must be > 0 (got {times.tolist()})")
    if np.any(np.diff(times) <= 0):
        raise InputError(f"{what}: the times must increase strictly, in the order of the pictures "
                         f"(got {times.tolist()})")
    if times[-1] > t_end * (1 + 1e-12):
        raise InputError(f"{what}: t = {times[-1]:g} lies after shrinkage.t_end = {t_end:g}; allowed: "
                         f"0 < t <= t_end")
    first = picture_size(frames[0].path)
    for f in frames[1:]:
        size = picture_size(f.path)
        if size != first:
            raise InputError(f"image {str(f.path)!r} is {size[0]} × {size[1]} pixels but "
                             f"{str(frames[0].path)!r} is {first[0]} × {first[1]}: the frames of a sequence "
                             f"must share one framing (one camera view, cropped alike)")
    t_last = float(times[-1])
    grid = step_times(t_last, load_steps, 2)
    nearest = np.abs(times[:, None] - grid[None, :]).argmin(1)
    off = np.abs(times - grid[nearest]) > _ON_STEP * t_last
    if off.any():
        bad = float(times[off][0])
        raise InputError(f"{what}: t = {bad:g} is not a load step of the forward run, which runs to "
                         f"t_last = {t_last:g} in solver.load_steps = {load_steps} steps of "
                         f"{t_last / load_steps:.4g}; set solver.load_steps to "
                         f"{fitting_load_steps(times, load_steps)} or move the time to a multiple of the step")
    return grid[nearest]


def fitting_load_steps(times: np.ndarray, load_steps: int, *, most: int = 10_000) -> str:
    """The smallest number of load steps ≥ load_steps that puts every time on a step (as text)."""
    ratios = times / times[-1]
    for n in range(load_steps, most + 1):
        if np.all(np.abs(ratios * n - np.round(ratios * n)) <= _ON_STEP * n):
            return str(n)
    return f"a multiple that fits (none up to {most})"


# ----------------------------------------------------------------------------- the report


def frame_report(frames: list[Frame], times: np.ndarray, *, observed: list, model_phi: list[np.ndarray],
                 overlaps: list[dict], lengths) -> list[dict]:
    """Per frame: its picture, time, observed and model crack length (skeletons) and overlap.
    `lengths(skeleton_or_phi, observed=bool)` measures a crack length on the grid."""
    rows = []
    for f, t, ob, phi, ov in zip(frames, times, observed, model_phi, overlaps):
        rows.append({"image": str(f.path.resolve()), "time": float(t), "observed_cracks": ob.cracks,
                     "observed_crack_length": lengths(ob.skeleton, observed=True),
                     "model_crack_length": lengths(phi, observed=False), "overlap": ov["iou"],
                     "precision": ov["precision"], "recall": ov["recall"]})
    return rows


def plot_lengths(path: Path, rows: list[dict], frames: list[dict], *, first_crack: float | None) -> None:
    """Crack length over time: the forward run with the inferred G (its snapshots) against the frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), constrained_layout=True)
    ax.plot([r["t"] for r in rows], [r["skeleton_length"] for r in rows], "-", label="model (inferred G)")
    ax.plot([f["time"] for f in frames], [f["observed_crack_length"] for f in frames], "o", label="observed frames")
    if first_crack is not None:
        ax.axvline(first_crack, color="grey", lw=0.8, ls=":", label=f"model's first crack t = {first_crack:.3g}")
    ax.set_xlabel("t")
    ax.set_ylabel("crack length (skeleton)")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def snapshot_times(t_last: float, snapshots: int, times: np.ndarray) -> np.ndarray:
    """The final forward run's snapshots: output.snapshots evenly spaced, plus every frame's time."""
    merged = np.union1d(np.linspace(0.0, t_last, snapshots), times)
    keep = np.concatenate([[True], np.diff(merged) > 1e-9 * t_last])
    return merged[keep]


def time_lapse_report(out: Path, run, *, frames: list[Frame], times: np.ndarray, observations: list,
                      material: np.ndarray, grid, overlap: Callable[[np.ndarray, int], dict],
                      first_crack: float | None) -> dict:
    """A time-lapse's report: per frame, the observed and re-simulated cracks (crack_lengths.png,
    frames_observed_vs_model.png in `out`) and the first-crack times. run: the final forward
    run (its outputs hold the model's φ at the frame times); overlap(φ, k): frame k's overlap."""
    spacing, extent = grid.spacing, grid.extent
    seen = [t for t, _, _ in run.outputs.frames]
    model = [run.outputs.frames[int(np.argmin(np.abs(np.asarray(seen) - t)))][1] for t in times]
    overlaps = [overlap(phi, k) for k, phi in enumerate(model)]

    def length(field_: np.ndarray, *, observed: bool) -> float:
        skeleton = field_ if observed else analysis.crack_skeleton(field_, mask=material)
        return float(analysis.length_of_skeleton(skeleton, spacing))

    report = frame_report(frames, times, observed=observations, model_phi=model, overlaps=overlaps, lengths=length)
    plot_lengths(out / "crack_lengths.png", run.outputs.rows, report, first_crack=first_crack)
    panels = [(f"observed, t = {t:.3g}", ob.phi, material, extent) for t, ob in zip(times, observations)]
    panels += [(f"model, t = {t:.3g} (overlap {o['iou']:.2f})", phi, material, extent)
               for t, phi, o in zip(times, model, overlaps)]
    plots.plot_side_by_side(out / "frames_observed_vs_model.png", panels)
    return {"times": times.tolist(), "frames": report, "overlap_per_frame": [o["iou"] for o in overlaps],
            "first_crack_time": {"model": first_crack, "observed_by": float(times[0])}}
