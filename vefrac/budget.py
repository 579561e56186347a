"""How much work a PINN run does: its load-step times, its Adam iterations and the points it
draws per iteration, from the scenario (no torch here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import math

import numpy as np

from . import config

if TYPE_CHECKING:
    from .problem import Problem


def space_time_iterations(solver: config.Solver) -> int:
    """The space-time budget: as many iterations as load stepping would take."""
    return solver.first_step_iterations + (solver.load_steps - 1) * solver.iterations


# square-mud's density: 4096 points on a 1 × 1 box with s = 0.02. Half of what it was, spent on twice
# the iterations (the defaults and square-mud's budget doubled with it): the same cost on a CPU, sharper
# bands (docs/benchmarks.md, "Points against iterations")
POINTS_PER_S2 = 4096 / 2500
AUTO_POINTS_RANGE = (2048, 1 << 22)


def sampled_points(solver: config.Solver, problem: Problem) -> int:
    """Points drawn per iteration: `solver.points`, or for "auto" POINTS_PER_S2 per s² of the
    domain's box (a multiple of 64 within AUTO_POINTS_RANGE; 8192 without fracture)."""
    if solver.points != "auto":
        return solver.points
    if not problem.physics.fracture:
        return 8192
    width, height = problem.domain.size
    n = POINTS_PER_S2 * width * height / problem.physics.s**2
    low, high = AUTO_POINTS_RANGE
    return int(min(max(64 * round(n / 64), low), high))


def planned_iterations(scn: config.Scenario) -> int | None:
    """Adam iterations a run will take (for progress bars; adaptive load steps: at least); None
    for the fem backend, whose staggered iterations are not known in advance."""
    if scn.solver.backend == "fem":
        return None
    if scn.solver.time == "space_time":
        return space_time_iterations(scn.solver)
    steps = len(step_times(scn.shrinkage.t_end, scn.solver.load_steps, scn.output.snapshots)) - 1
    planned = scn.solver.first_step_iterations + (steps - 1) * scn.solver.iterations
    if scn.solver.step_tolerance is not None and scn.fracture.enabled:  # one block to confirm each step
        planned += sum(min(scn.solver.iterations, max(0, scn.solver.max_step_iterations - base))
                       for base in [scn.solver.first_step_iterations] + [scn.solver.iterations] * (steps - 1))
    return planned


def step_times(t_end: float, load_steps: int, snapshots: int) -> np.ndarray:
    """Load-step times: the union of the load steps and the snapshot times, 0 included."""
    times = np.union1d(np.linspace(0, t_end, load_steps + 1), np.linspace(0, t_end, snapshots))
    keep = np.concatenate([[True], np.diff(times) > 1e-12 * t_end])
    return times[keep]


MIN_EXPORT_POINTS_PER_S = 3.0  # below it a φ > 0.5 band (about 1.4 s wide) is one or two pixels
EXPORT_POINTS_PER_S = 4.0  # output.resolution "auto": square-mud's 200 on 1 × 1 with s = 0.02
AUTO_RESOLUTION_RANGE = (64, 8192)


def export_resolution(scn: config.Scenario, domain_length: float) -> int:
    """Export points along the domain's longest side: `output.resolution`, or for "auto"
    EXPORT_POINTS_PER_S per crack width s (within AUTO_RESOLUTION_RANGE; 256 without fracture)."""
    res = scn.output.resolution
    if res != "auto":
        return res
    if not scn.fracture.enabled:
        return 256
    low, high = AUTO_RESOLUTION_RANGE
    n = math.ceil(EXPORT_POINTS_PER_S * domain_length / scn.fracture.length_scale - 1e-9)
    return int(min(max(n, low), high))


def export_resolution_note(scn: config.Scenario, domain_length: float) -> str | None:
    """A warning when output.resolution gives fewer than MIN_EXPORT_POINTS_PER_S export points per
    crack width s along the domain's longest side: the snapshots, the pictures and the crack
    statistics computed from them would not resolve the crack bands. None when they do."""
    if not scn.fracture.enabled:
        return None
    res, s = export_resolution(scn, domain_length), scn.fracture.length_scale
    per_s = (res - 1) * s / domain_length
    if per_s >= MIN_EXPORT_POINTS_PER_S:
        return None
    need = int(np.ceil(MIN_EXPORT_POINTS_PER_S * domain_length / s)) + 1
    return (f"output.resolution {res} gives {per_s:.2g} export points per crack width s (longest side "
            f"{domain_length:g}, s = {s:g}): the snapshots and the crack statistics need about "
            f"{MIN_EXPORT_POINTS_PER_S:g}; set output.resolution to at least {need}")
