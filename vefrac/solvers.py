"""The solver protocol: one shape for every backend and time treatment.

A run (runner.Run) is the same loop for all of them:

    for t in solver.times()[1:]:           # times()[0] = 0: the unloaded state
        record = solver.advance(t, checkpoint=...)   # minimise at load t, warm-started
        solver.commit(t)                    # the step becomes irreversible
        if t is a snapshot time: arrays = solver.fields(grid points, t)   # the committed state
        checkpoint(solver.state_dict())

Implementations: pinn_solvers.LoadStepping (PINN, one minimisation per load step, adaptive steps
and the precision check included), pinn_solvers.SpaceTime (PINN of (x, t), trained on its first
advance), fem_solver.FemStaggered (Q1 finite elements, alternate minimisation). `build_solver`
is the one place that chooses between them.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import numpy as np
import torch

from . import config
from .fem_solver import FemStaggered
from .pinn_solvers import LoadStepping, SpaceTime
from .problem import Problem


@runtime_checkable
class Solver(Protocol):
    """What the run loop needs of a backend. Attributes: `problem`, `device`, `dtype`."""

    problem: Problem
    device: torch.device
    dtype: torch.dtype

    def times(self) -> np.ndarray:
        """(n,) increasing times the run visits, 0 first (the unloaded state, not advanced to);
        every snapshot time is among them."""

    def advance(self, t: float, *, checkpoint: Callable[[], None]) -> dict | None:
        """Minimise at load t, starting from the state at the previous time. Returns the step's
        record for the summary's "steps" (None: nothing to record, e.g. space-time after its
        training). `checkpoint()` may be called inside a long minimisation; the state it saves
        (state_dict) then continues the minimisation where it was."""

    def describe(self, record: dict) -> str:
        """One line for the log about a record advance returned."""

    def fields(self, points: np.ndarray, t: float) -> dict[str, np.ndarray]:
        """Fields at points (M, 2) at time t (the state advance left): 'phi' (M,), 'grad_phi' (M, 2),
        'u' (M, 2), 'G' (M,), 'inside' (M,) bool, the energy densities 'elastic', 'surface',
        'substrate' (M,) and 'crack_density' (M,), the crack-length functional's density."""

    def commit(self, t: float) -> None:
        """After advance(t): make the step irreversible (the PINN's φ cache); `fields` then
        returns the committed state."""

    @property
    def iterations(self) -> int:
        """Iterations (Adam or staggered) done so far, resumed runs included."""

    def report(self) -> dict:
        """Entries for the summary: 'blowups' and, where measured, 'precision'."""

    def state_dict(self) -> dict:
        """Everything a resumed run needs, as plain data (tensors, numbers, strings, lists, dicts)."""

    def load_state_dict(self, state: dict) -> None:
        """The inverse of state_dict."""

    def rewet(self) -> None:
        """Wet–dry cycles (vefrac/cycles.py), after commit at a rewetting: φ restarts from 0 and the
        next step sees problem.toughness as healed (load stepping and fem only)."""

    def rewind(self) -> bool:
        """After an interruption inside advance: back to the last consistent point (the last
        checked iteration, or the start of the step). True if there is something new to save."""


def solver_device(scn: config.Scenario, device: torch.device, log: Callable[[str], None]) -> torch.device:
    """The device the scenario's backend runs on: the fem backend's sparse solvers are scipy's, on the CPU."""
    if scn.solver.backend == "fem" and device.type != "cpu":
        log(f"the fem backend runs on the CPU (scipy sparse solvers), not on {device}")
        return torch.device("cpu")
    return device


def build_solver(scn: config.Scenario, problem: Problem, *, device: torch.device, rank: int = 0,
                 progress: Callable[[int, dict], None] | None = None,
                 log: Callable[[str], None] = print) -> Solver:
    """The scenario's solver (solver.backend, solver.time) for `problem`, on `device` (the CPU for
    fem). rank: this process's rank under torchrun (its own random stream)."""
    device = solver_device(scn, device, log)
    problem.toughness.to(device)
    if scn.solver.backend == "fem":
        return FemStaggered(scn, problem, progress=progress, log=log)
    kind = SpaceTime if scn.solver.time == "space_time" else LoadStepping
    return kind(scn, problem, device=device, rank=rank, progress=progress, log=log)
