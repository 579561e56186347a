"""The finite-element reference as a solver of the protocol in solvers.py: one staggered solve
(fem.Staggered) per load step, on the CPU in float64."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from . import config
from .fem import Staggered
from .fem_mesh import FemModel, build_mesh, element_size
from .problem import Problem
from .solve import evaluate, step_times


class FemStaggered:
    """Q1 elements, alternate minimisation at each load step; irreversibility is the φ-step's
    bound, so `commit` has nothing to do."""

    def __init__(self, scn: config.Scenario, problem: Problem, *,
                 progress: Callable[[int, dict], None] | None = None, log: Callable[[str], None] = print):
        self.scn, self.problem = scn, problem
        self.device, self.dtype = torch.device("cpu"), torch.float64  # scipy's sparse solvers
        ph = problem.physics
        h = element_size(scn.fem, problem.domain, s=ph.s, fracture=ph.fracture)
        self.model = FemModel(build_mesh(problem.domain, h=h), fracture=ph.fracture)
        self.counter = [0]
        self.trainer = Staggered(problem, scn.fem, self.model, counter=self.counter, progress=progress, log=log)
        self._times = step_times(problem.t_end, scn.solver.load_steps, scn.output.snapshots)

    def times(self) -> np.ndarray:
        return self._times

    @property
    def iterations(self) -> int:
        return self.counter[0]

    def advance(self, t: float, *, checkpoint: Callable[[], None]) -> dict:
        r = self.trainer.solve_step(t)
        return {"t": r.t, "iterations": r.iterations, "converged": r.converged, "residual": r.residual,
                "seconds": r.seconds, "energy": r.energies[-1], "newton_iterations": r.newton_iterations,
                "local_iterations": r.local_iterations, "qp_fallbacks": r.qp_fallbacks}

    def describe(self, record: dict) -> str:
        fem = self.scn.fem
        return (f"staggered iterations={record['iterations']}  max|dphi|={record['residual']:.2g}  "
                f"energy={record['energy']:.6g}"
                + ("" if record["converged"] else f"  NOT CONVERGED (fem.max_iterations={fem.max_iterations}, "
                                                  f"fem.tolerance={fem.tolerance})"))

    def fields(self, points: np.ndarray, t: float) -> dict[str, np.ndarray]:
        return evaluate(self.problem, self.model, points, t, device=self.device, dtype=self.dtype)

    def commit(self, t: float) -> None:
        """Nothing to do: the next step's φ-step is bounded below by this step's φ."""

    def report(self) -> dict:
        return {"blowups": []}

    def state_dict(self) -> dict:
        return {"model": dict(self.model.state_dict()), "counter": self.counter[0]}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.counter[0] = state["counter"]
        if self.model.fracture:  # G may have been healed by wet–dry cycles (vefrac/cycles.py)
            self.trainer.refresh_toughness()

    def rewet(self) -> None:
        """A rewetting (vefrac/cycles.py): φ restarts from 0, G is the healed problem.toughness."""
        if self.model.fracture:
            self.model.phi.zero_()
            self.model.phi_prev.zero_()
            self.trainer.refresh_toughness()

    def rewind(self) -> bool:
        return self.trainer.rewind(None)
