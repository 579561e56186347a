"""The PINN's two time treatments as solvers of the protocol in solvers.py.

- LoadStepping: one minimisation per load step, warm-started from the previous step; the φ of
  each finished step is cached (commit) and bounds the next from below. With
  solver.step_tolerance, a step gets more Adam blocks while its crack length still changes.
- SpaceTime: networks of (x, t) minimising the time-integrated energy, all trained on the first
  advance; every later time is only evaluated.

Both check solver.precision once, at their first advance (a resumed run keeps the decision).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

from . import config, solve
from .budget import export_resolution
from .checkpoint import grid_from_state, grid_state
from .pinn_model import FieldModel
from .problem import Problem
from .solve import (State, Trainer, committed_state, evaluate, measure_crack_length, refresh_cache,
                    space_time_iterations, step_times)


class PinnSolver:
    """What both time treatments share: networks, trainer, random stream, precision, state."""

    space_time = False

    def __init__(self, scn: config.Scenario, problem: Problem, *, device: torch.device, rank: int = 0,
                 progress: Callable[[int, dict], None] | None = None, log: Callable[[str], None] = print):
        self.scn, self.settings, self.problem, self.device, self.rank, self.log = \
            scn, scn.solver, problem, device, rank, log
        self.dtype = torch.float32 if scn.solver.dtype == "float32" else torch.float64
        self.counter = [0]
        # under torchrun each rank samples its own stream
        self.generator = torch.Generator(device=device).manual_seed(self._seed())
        init = torch.Generator().manual_seed(scn.seed)  # same networks on every device
        self.model = FieldModel(problem, scn.network, init, space_time=self.space_time,
                                phi_bias=scn.solver.phi_bias).to(device, self.dtype)
        self.trainer = Trainer(problem, scn.solver, generator=self.generator, dtype=self.dtype, model=self.model,
                               progress=progress, log=log)
        self.state = State()

    def _seed(self, offset: int = 0) -> int:
        return self.scn.seed + 1 + 1_000_003 * self.rank + offset

    @property
    def iterations(self) -> int:
        return self.counter[0]

    def fields(self, points: np.ndarray, t: float) -> dict[str, np.ndarray]:
        return evaluate(self.problem, self.model, points, t, device=self.device, dtype=self.dtype)

    def describe(self, record: dict) -> str:
        return "  ".join(f"{key}={v:.4g}" for key, v in self.trainer.last_terms.items())

    def report(self) -> dict:
        return {"blowups": self.state.blowups, "points": self.trainer.points, **({"precision": self.state.precision} if self.state.precision else {})}

    def rewind(self) -> bool:
        return self.trainer.rewind(self.state)

    def _use_precision(self, t: float) -> None:
        """solver.precision: checked against float32 once, at the first advance (a resumed run
        keeps the decision, so it repeats the uninterrupted one)."""
        if self.state.precision is None:
            self.state.precision = p = self.trainer.check_precision(t_value=t, seed=self.scn.seed)
            if p["requested"] != "float32":
                verdict = "used" if p["used"] == p["requested"] else "refused, float32 used instead"
                self.log(f"solver.precision {p['requested']}: gradient {p['gradient_error']:.2g} off float32's "
                         f"(tolerance {solve.PRECISION_TOLERANCE:g}): {verdict}")
        self.trainer.precision = self.state.precision["used"]

    def _train(self, t_value: float | None, n_iter: int, checkpoint: Callable[[], None]) -> None:
        """One block of Adam iterations (from state.iteration), then the L-BFGS polish."""
        self.trainer.adam(t_value=t_value, n_iter=n_iter, state=self.state, checkpoint=lambda state: checkpoint(),
                          counter=self.counter)
        self.trainer.lbfgs(t_value=t_value, n_iter=self.settings.lbfgs_iterations)

    def _losses(self) -> dict:
        return {f"loss_{key}": v for key, v in self.trainer.last_terms.items()}

    def state_dict(self) -> dict:
        weights = dict(self.model.state_dict())
        return {"model": weights, "cache_grid": grid_state(self.model.cache_grid),
                "generator": self.generator.get_state(), "trainer": dict(vars(self.state)), "counter": self.counter[0]}

    def load_state_dict(self, state: dict) -> None:
        self.model.cache_grid = grid_from_state(state["cache_grid"])
        weights = dict(state["model"])
        cache = weights.pop("cache", None)  # its shape is set by the run, not by the model
        self.model.load_state_dict(weights)
        self.model.cache = cache
        self.counter[0] = state["counter"]
        self.generator.set_state(state["generator"].cpu())
        if self.rank:  # the checkpoint holds rank 0's stream: other ranks start fresh ones
            self.generator.manual_seed(self._seed(self.counter[0]))
        self.state = State(**state["trainer"])


class LoadStepping(PinnSolver):
    """PINN load stepping: `advance(t)` minimises at load t from the previous step's networks."""

    def __init__(self, scn: config.Scenario, problem: Problem, **kwargs):
        super().__init__(scn, problem, **kwargs)
        self._times = step_times(problem.t_end, scn.solver.load_steps, scn.output.snapshots)
        self.adaptive = scn.solver.step_tolerance is not None and self.model.phi_net is not None
        # adaptive load steps measure the crack length on a grid of two points per s
        self.check_grid = problem.domain.grid(max(16, math.ceil(2 * problem.domain.length / problem.physics.s)))
        self.export_grid = problem.domain.grid(export_resolution(scn, problem.domain.length))
        # warm starts (the inversion's forward runs): networks to start a step from, by its time,
        # instead of the previous step's (the φ increment is reset either way); and the networks
        # each step ended with, when `record_networks` is set
        self.warm_start: dict[float, dict] | None = None
        self.warm_fraction = 1.0  # the share of a warm-started step's Adam iterations it runs
        self.record_networks = False
        self.step_networks: dict[float, dict] = {}

    def times(self) -> np.ndarray:
        return self._times

    def _networks(self) -> dict:
        nets = {"u_net": self.model.u_net}
        if self.model.phi_net is not None:
            nets["phi_net"] = self.model.phi_net
        return nets

    def _start_step(self, t: float) -> None:
        """The networks a step starts from: the warm start's for this time if there is one, else
        the previous step's (with solver.predictor: scaled, its u times the load's growth); either
        way with the φ-net's increment back at phi_bias, so that
        a warm start offers the other run's features but does not impose its damage (imposing it
        was measured worse: docs/inverse.md, warm-started forward runs)."""
        warm = (self.warm_start or {}).get(round(t, 12))
        if warm is not None:
            for name, net in self._networks().items():
                net.load_state_dict(warm[name])
        elif self.settings.predictor == "scaled":
            ratio = self._load_ratio(t)
            if ratio is not None:
                with torch.no_grad():
                    for p in self.model.u_net.output_parameters():
                        p.mul_(ratio)
        if self.model.phi_net is not None:
            self.model.phi_net.reset_output(self.settings.phi_bias)

    def _load_ratio(self, t: float) -> float | None:
        """f(t)/f(t_prev), the shrinkage history's growth since the previous step: the factor that
        carries the previous displacement to this step's load exactly when φ does not move and the
        layer responds linearly. None where εs(x, t) is not f(t) times a fixed field (a drying
        front) or the previous load is zero."""
        shrinkage = self.problem.shrinkage
        if shrinkage is not None and shrinkage.distance is not None:
            return None
        k = int(np.searchsorted(self._times, t - 1e-12 * max(1.0, abs(t))))
        before = self.problem.history(float(self._times[k - 1])) if k > 0 else 0.0
        return None if before <= 0 else self.problem.history(t) / before

    def advance(self, t: float, *, checkpoint: Callable[[], None]) -> dict:
        self._use_precision(float(self._times[1]))
        s, st = self.settings, self.state
        first = t == float(self._times[1])
        warm = (self.warm_start or {}).get(round(t, 12)) is not None
        if st.iteration == 0 and st.block == 0 and not st.started:  # once: the predictor's scaling is not idempotent
            self._start_step(t)
            st.started = True
        started = time.perf_counter()
        change = settled = None
        while True:  # one block of Adam iterations, then (adaptive) more while the cracks still move
            n_iter = (s.first_step_iterations if first else s.iterations) if st.block == 0 \
                else min(s.iterations, s.max_step_iterations - st.step_iterations)
            if warm and st.block == 0:
                n_iter = max(1, round(self.warm_fraction * n_iter))
            self._train(t, n_iter, checkpoint)
            st.step_iterations += n_iter
            if not self.adaptive:
                break
            change, settled = self._measure_block(t)
            if settled or st.step_iterations >= s.max_step_iterations:
                break
        record = {"t": t, "iterations": st.step_iterations,
                  **({"blocks": st.block, "crack_length_change": change, "settled": settled} if self.adaptive else {}),
                  "seconds": time.perf_counter() - started, **self._losses()}
        st.block, st.step_iterations, st.crack_length, st.iteration, st.started = 0, 0, None, 0, False
        if self.record_networks:
            self.step_networks[round(t, 12)] = {name: {k: v.detach().clone() for k, v in net.state_dict().items()}
                                                for name, net in self._networks().items()}
        return record

    def _measure_block(self, t: float) -> tuple[float | None, bool]:
        """Adaptive load steps: the crack length after the block just done, its change since the
        previous block of the step (None after the first) and whether that change is within
        step_tolerance × the domain's length (the step has settled)."""
        st = self.state
        length = measure_crack_length(self.problem, self.model, self.check_grid, t, device=self.device,
                                      dtype=self.dtype)
        before, st.crack_length = st.crack_length, length
        st.block += 1
        st.iteration = 0
        if before is None:
            return None, False
        change = abs(length - before)
        return change, change <= self.settings.step_tolerance * self.problem.domain.length

    def describe(self, record: dict) -> str:
        return (f"iterations={record['iterations']}  " if self.adaptive else "") + super().describe(record)

    def rewet(self) -> None:
        """A rewetting (vefrac/cycles.py): the φ cache is dropped, so the next step's φ starts from 0
        (its φ-net restarts at phi_bias) against the healed problem.toughness."""
        self.model.cache = None

    def commit(self, t: float) -> None:
        """The step's φ becomes the next step's lower bound: the cache, raised to an upper envelope
        of this step's φ on a sub-grid of every cache cell and at the export grid's points."""
        refresh_cache(self.problem, self.model, t, points_per_length=self.settings.cache_points_per_length,
                      device=self.device, dtype=self.dtype, check=self.export_grid)

    def fields(self, points: np.ndarray, t: float) -> dict[str, np.ndarray]:
        """The committed state (after `commit`): φ is the cache's interpolant, which only grows from
        step to step at every point, and is at least the step's own φ at the export grid."""
        with committed_state(self.model):
            return super().fields(points, t)


class SpaceTime(PinnSolver):
    """PINN space-time: the first advance trains the networks of (x, t) on the whole history."""

    space_time = True

    def __init__(self, scn: config.Scenario, problem: Problem, **kwargs):
        super().__init__(scn, problem, **kwargs)
        self.trained = False

    def times(self) -> np.ndarray:
        return np.linspace(0.0, self.problem.t_end, self.scn.output.snapshots)

    def advance(self, t: float, *, checkpoint: Callable[[], None]) -> dict | None:
        if self.trained:
            return None
        self._use_precision(self.problem.t_end)
        total = space_time_iterations(self.settings)
        self._train(None, total, checkpoint)
        self.trained, self.state.iteration = True, 0
        return {"iterations": total, **self._losses()}

    def commit(self, t: float) -> None:
        """Nothing to do: φ is non-decreasing in t by construction."""

    def rewet(self) -> None:
        """Refused before the run starts (runner.Run): a space-time φ cannot restart from 0."""
        raise RuntimeError("wet–dry cycles need solver.time: load_stepping")

    def state_dict(self) -> dict:
        return super().state_dict() | {"trained": self.trained}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.trained = state["trained"]
