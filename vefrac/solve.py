"""The PINN minimisation: the sampled energy, its trainer (Adam, L-BFGS, roll-back on blow-ups),
evaluation on grids and the previous-φ cache. The networks are in pinn_model.py; the time
treatments that drive the trainer (pinn_solvers.py) implement the solver protocol (solvers.py).

Two time treatments share the same pieces:
- load stepping: one minimisation per load step, warm-started from the previous step; the
  previous φ is cached on a fine grid and each step's φ-net can only add damage to it;
- space-time: networks of (x, t) minimising the time-integrated energy, φ non-decreasing in t.

Non-dimensional inside: networks see x̂ = (x − centre)/L, the u-net returns u/(ε_ref L) with
ε_ref = max |εs| over the history (εs(t_end) for εs = rate·t), and the loss is the energy divided by the uniform-state energy at t_end.
So the same scenario written in other units trains the same way.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from . import config, phi_cache
from .energy import Physics, crack_length_density, energy_densities
from .geometry import Grid
# the budget and the precision live in their own modules; imported here for older callers too
from .budget import (AUTO_POINTS_RANGE, POINTS_PER_S2, planned_iterations, sampled_points,  # noqa: F401
                     space_time_iterations, step_times)
from .precision import PRECISION_TOLERANCE, matmul_precision  # noqa: F401
from .phi_cache import committed_state, phase_field_at, refresh_cache  # noqa: F401
from .pinn_model import FieldModel
from .problem import Problem
from .sampling import Sampler

TERMS = ("elastic", "surface", "substrate")

GUARD_EVERY = 10  # iterations between checks for a non-finite energy
MAX_BLOWUPS = 3


class BlowUp(RuntimeError):
    """Training kept producing non-finite energies: the run gives up (exit code 1)."""


@torch.no_grad()
def measure_crack_length(problem: Problem, model: FieldModel, grid: Grid, t: float, *, device, dtype) -> float:
    """The crack-length functional ∫ (φ² + s²|∇φ|²)/(2s) dA (AT2; AT1's for AT1) at time t, by
    the trapezoid rule on grid, masked to the domain."""
    f = evaluate(problem, model, grid.points(), t, device=device, dtype=dtype)
    return float((trapezoid_weights(grid) * f["inside"] * f["crack_density"]).sum())


def energy_terms(problem: Problem, model, x: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
    """Energy densities at (x, t): 'elastic', 'surface', 'substrate' (N,) and the fields.

    model: anything with `fields(x, t)`, or a module whose forward is that (a DDP wrapper)."""
    u, grad_u, phi, grad_phi = (model.fields if hasattr(model, "fields") else model)(x, t)
    G = problem.toughness(x) if phi is not None else None
    stiffness = problem.stiffness(x) if problem.stiffness is not None else None
    factor = problem.substrate_factor(x) if problem.substrate_factor is not None else None
    dens = energy_densities(problem.physics, u=u, grad_u=grad_u, phi=phi, grad_phi=grad_phi,
                            G=G, eps_s=problem.shrinkage_strain(x, t), stiffness=stiffness,
                            substrate_factor=factor)
    return dens | {"u": u, "grad_u": grad_u, "phi": phi, "grad_phi": grad_phi, "G": G}


# ----------------------------------------------------------------------------- training


@dataclass
class State:
    """Where a minimisation is: the iteration inside the current step (or block), the optimiser
    mid-step, and what the step's adaptive rule, the blow-up guard and the precision check know."""

    iteration: int = 0
    optimizer: dict | None = None
    lr_scale: float = 1.0  # lowered after each blow-up
    blowups: list = field(default_factory=list)
    block: int = 0  # adaptive load steps: blocks of Adam iterations done in this step
    step_iterations: int = 0  # ... and their iterations
    crack_length: float | None = None  # ... and the crack length after the last block
    precision: dict | None = None  # solver.precision: what was requested, used and measured
    started: bool = False  # load stepping: the step's start (warm start, predictor, φ reset) is done


# An extra energy density added to the loss: (x (N, 2), energy_terms' dict) -> (N,), in the
# energy's units (the inverse mode's misfit to a picture is one).
ExtraTerm = Callable[[torch.Tensor, dict], torch.Tensor]


class Trainer:
    """Runs Adam (then optional L-BFGS) on the sampled energy, plus any `extra_terms`, with
    callbacks for progress, snapshots and checkpoints. All randomness comes from `generator`."""

    def __init__(self, problem: Problem, solver: config.Solver, *, generator: torch.Generator, dtype: torch.dtype,
                 model: FieldModel, progress: Callable[[int, dict], None] | None = None,
                 log: Callable[[str], None] = lambda line: None, extra_terms: Sequence[ExtraTerm] = ()):
        self.problem, self.solver, self.generator, self.dtype = problem, solver, generator, dtype
        self.model = model
        self.extra_terms = tuple(extra_terms)
        # under torchrun: every rank draws its share of the points from its own stream, and
        # DistributedDataParallel averages the gradients (the mean of unbiased estimates)
        self.world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.net = model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
        self.points = sampled_points(solver, problem)
        self.sampler = Sampler(problem.domain, n=max(1, self.points // self.world), kind=solver.sampling,
                               generator=generator, dtype=dtype, fraction=solver.importance_fraction)
        self._density_of = None  # importance sampling: the cache its density was built from
        self.progress = progress or (lambda it, terms: None)
        self.log = log
        # first derivatives are carried forward by hand, so the loss needs one backward only and
        # torch.compile applies (a one-off compilation per graph: the first step, then the cached φ)
        self.precision = "float32"  # until check_precision has passed another
        self._loss = torch.compile(self.loss) if solver.compile else self.loss
        self.good: dict | None = None  # the last state known to be finite, while inside adam
        self.last_terms: dict[str, float] = {}

    def loss(self, x: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised energy (with the extra terms) and its three energy terms (3,) detached.
        x: (N, 2) points, w: (N,) their quadrature weights, t: (N,) times."""
        dens = energy_terms(self.problem, self.net, x, t)
        parts = torch.stack([(w * dens[k].to(w.dtype)).sum() for k in TERMS]) / self.problem.energy_scale
        loss = parts.sum()
        for term in self.extra_terms:
            loss = loss + (w * term(x, dens)).sum() / self.problem.energy_scale
        return loss, parts.detach()

    def check_precision(self, *, t_value: float, points: int = 4096, seed: int = 0) -> dict:
        """`solver.precision` other than float32: the loss gradient on one batch of points (drawn
        from a stream of its own, so the run's is untouched) with reduced-precision matmuls
        against float32's. The reduced precision is used only if the relative error of the
        gradient is at most PRECISION_TOLERANCE. Returns what was requested, used and measured."""
        kind = self.solver.precision
        if kind == "float32":
            return {"requested": kind, "used": kind}
        device = self.generator.device
        g = torch.Generator(device).manual_seed(seed)
        x, w = Sampler(self.problem.domain, n=points, kind="uniform", generator=g, dtype=self.dtype)()
        t = x.new_full((points,), t_value)
        params = [p for p in self.model.parameters() if p.requires_grad]

        def gradient(precision: str) -> torch.Tensor:
            with matmul_precision(precision, device.type):
                grads = torch.autograd.grad(self.loss(x, w, t)[0], params, allow_unused=True)
            return torch.cat([(gr if gr is not None else torch.zeros_like(p)).reshape(-1)
                              for gr, p in zip(grads, params)]).double()

        exact, reduced = gradient("float32"), gradient(kind)
        error = float((reduced - exact).norm() / exact.norm().clamp_min(1e-300))
        self.precision = kind if error <= PRECISION_TOLERANCE else "float32"
        return {"requested": kind, "used": self.precision, "gradient_error": error}

    def backward(self, x: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Accumulate the gradient of the loss over chunks of `solver.chunk_points` points, so the
        point count is limited by time, not memory. Returns the loss and its terms, detached."""
        with matmul_precision(self.precision, x.device.type):  # outside the compiled loss
            return self._backward(x, w, t)

    def _backward(self, x: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.solver.chunk_points
        if x.shape[0] <= size:
            loss, terms = self._loss(x, w, t)
            loss.backward()
            return loss.detach(), terms
        terms = x.new_zeros(3)
        starts = range(0, x.shape[0], size)
        for start in starts:
            last = start + size >= x.shape[0]
            # under DDP, all-reduce the gradients once, after the last chunk
            sync = contextlib.nullcontext() if last or self.world == 1 else self.net.no_sync()
            with sync:
                loss, part = self._loss(x[start:start + size], w[start:start + size], t[start:start + size])
                loss.backward()
            terms += part
        return terms.sum(), terms

    def draw(self, t_value: float | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.sampler.kind == "importance":
            self._follow_cache()
        x, w = self.sampler()
        if t_value is None:  # space-time: a uniform time per point
            t = torch.rand(x.shape[0], generator=self.generator, device=x.device, dtype=x.dtype) * self.problem.t_end
        else:
            t = x.new_full((x.shape[0],), t_value)
        return x, w, t

    def _follow_cache(self) -> None:
        """Rebuild the importance density when the cache of the previous step has changed
        (once per load step, and after a resume); no cache yet: stratified points."""
        cache = getattr(self.model, "cache", None)
        if cache is self._density_of:
            return
        self._density_of = cache
        indicator = None if cache is None else crack_indicator(cache, physics=self.problem.physics)
        self.sampler.set_density(indicator, self.model.cache_grid)

    def adam(self, *, t_value: float | None, n_iter: int, state: State,
             checkpoint: Callable[[State], None], counter: list[int]) -> None:
        """Adam from state.iteration to n_iter, the rate falling along a cosine to
        solver.final_lr_fraction of solver.learning_rate (1: constant).

        A non-finite energy is caught within `GUARD_EVERY` iterations (the check costs one host
        sync per window, not one per iteration): the run rolls back to the last good state,
        halves the learning rate and goes on; after `MAX_BLOWUPS` such events it gives up.
        """
        s = self.solver
        opt = torch.optim.Adam(self.param_groups(), lr=s.learning_rate)
        if state.optimizer is not None:
            opt.load_state_dict(state.optimizer)
        device = self.generator.device
        terms = torch.zeros(3, dtype=self.dtype, device=device)
        bad = torch.zeros((), dtype=torch.bool, device=device)
        self.good = good = self._remember(opt, state.iteration)
        it = state.iteration
        while it < n_iter:
            frac = s.final_lr_fraction + (1 - s.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * it / n_iter))
            for group in opt.param_groups:
                group["lr"] = s.learning_rate * frac * state.lr_scale * group["scale"]
            x, w, t = self.draw(t_value)
            opt.zero_grad(set_to_none=True)
            loss, terms = self.backward(x, w, t)
            bad |= ~torch.isfinite(loss)
            opt.step()
            it += 1
            if it % GUARD_EVERY and it != n_iter:
                continue
            if self._any_rank(bool(bad.item())):  # every rank must take the same branch
                it = self._roll_back(opt, good, state, t_value)
                bad.zero_()
                continue
            previous = good["iteration"]
            counter[0] += it - previous
            state.iteration = it
            self.good = good = self._remember(opt, it)
            self.last_terms = dict(zip(TERMS, terms.tolist()))
            self.progress(counter[0], self.last_terms)
            if it // s.checkpoint_every > previous // s.checkpoint_every and it < n_iter:
                state.optimizer = good["optimizer"]
                checkpoint(state)
        state.optimizer = None
        self.good = None

    def param_groups(self) -> list[dict]:
        """Adam's parameter groups, each with its learning-rate `scale`: the φ-net's output layer
        takes solver.phi_output_lr_scale (Adam's step is bounded by its rate in every parameter, and
        that layer's logit has to climb from phi_bias to a crack's within one load step)."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        phi_net = getattr(self.model, "phi_net", None)
        scale = self.solver.phi_output_lr_scale
        if phi_net is None or scale == 1.0:
            return [{"params": params, "scale": 1.0}]
        chosen = {id(p) for p in phi_net.output_parameters()}
        return [{"params": [p for p in params if id(p) not in chosen], "scale": 1.0},
                {"params": [p for p in params if id(p) in chosen], "scale": scale}]

    def rewind(self, state: State) -> bool:
        """After an interruption inside `adam`: put the model, sampler and state back to the last
        checked iteration, so that a checkpoint written now is consistent. False if not in adam."""
        if self.good is None:
            return False
        self.model.load_state_dict(self.good["model"])
        self.generator.set_state(self.good["generator"])
        state.iteration, state.optimizer = self.good["iteration"], self.good["optimizer"]
        return True

    def _any_rank(self, flag: bool) -> bool:
        """True if `flag` is true on any rank (one small all-reduce under torchrun)."""
        if self.world == 1:
            return flag
        value = torch.tensor([int(flag)], device=self.generator.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def _remember(self, opt: torch.optim.Optimizer, iteration: int) -> dict:
        """A copy of everything a rollback restores."""
        return {"iteration": iteration, "model": copy.deepcopy(self.model.state_dict()),
                "optimizer": copy.deepcopy(opt.state_dict()), "generator": self.generator.get_state()}

    def _roll_back(self, opt: torch.optim.Optimizer, good: dict, state: State, t_value) -> int:
        state.lr_scale *= 0.5
        event = {"t": t_value, "iteration": good["iteration"], "lr_scale": state.lr_scale}
        state.blowups.append(event)
        if len(state.blowups) > MAX_BLOWUPS:
            raise BlowUp(f"the energy became non-finite {len(state.blowups)} times (last near t = {t_value}, "
                         f"iteration {good['iteration']} of the step) even after lowering the learning rate "
                         f"to {state.lr_scale:.3g} of its value; lower solver.learning_rate or check the scenario")
        self.model.load_state_dict(good["model"])
        opt.load_state_dict(good["optimizer"])
        self.generator.set_state(good["generator"])
        self.log(f"non-finite energy near t = {t_value}: rolled back to iteration {good['iteration']} "
                 f"of the step, learning rate now {state.lr_scale:.3g} of its value")
        return good["iteration"]

    def lbfgs(self, *, t_value: float | None, n_iter: int) -> None:
        """L-BFGS polish on one fixed draw of points (a deterministic objective)."""
        if n_iter <= 0:
            return
        x, w, t = self.draw(t_value)
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=n_iter, history_size=50,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-14)

        def closure():
            opt.zero_grad(set_to_none=True)
            loss, _ = self.backward(x, w, t)
            if self.world > 1:  # the same loss on every rank, so every rank takes the same step
                loss = loss.detach().clone()
                dist.all_reduce(loss)
                loss /= self.world
            return loss

        opt.step(closure)


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(problem: Problem, model: FieldModel, points: np.ndarray, t: float, *, device, dtype,
             chunk: int | None = None) -> dict[str, np.ndarray]:
    """Fields and energy densities at points (M, 2) at time t, in chunks. Returns numpy arrays."""
    out: dict[str, list] = {}
    chunk = chunk or phi_cache.evaluation_chunk(device)
    for start in range(0, points.shape[0], chunk):
        x = torch.as_tensor(points[start:start + chunk], device=device, dtype=dtype)
        tt = x.new_full((x.shape[0],), t)
        if t == 0.0:  # the unloaded state is exactly u = 0, φ = 0
            d = {"u": torch.zeros_like(x), "grad_u": x.new_zeros((x.shape[0], 2, 2)),
                 "phi": x.new_zeros(x.shape[0]) if model.fracture else None,
                 "grad_phi": torch.zeros_like(x) if model.fracture else None}
            d |= {k: x.new_zeros(x.shape[0]) for k in TERMS}
        else:
            d = energy_terms(problem, model, x, tt)
        if d["phi"] is None:
            d["phi"], d["grad_phi"] = x.new_zeros(x.shape[0]), torch.zeros_like(x)
        d["G"] = problem.toughness(x)
        d["crack_density"] = crack_length_density(d["phi"], d["grad_phi"], s=problem.physics.s,
                                                  model=problem.physics.model)
        d["inside"] = problem.domain.inside(x)
        for k, v in d.items():
            out.setdefault(k, []).append(v.detach().cpu().double().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def trapezoid_weights(grid: Grid) -> np.ndarray:
    """(ny*nx,) trapezoid-rule weights of the grid's points (before masking)."""
    ny, nx = grid.shape
    wx = np.full(nx, grid.spacing[0]); wx[[0, -1]] *= 0.5
    wy = np.full(ny, grid.spacing[1]); wy[[0, -1]] *= 0.5
    return np.outer(wy, wx).ravel()


def crack_indicator(cache: torch.Tensor, *, physics: Physics) -> torch.Tensor:
    """Where importance sampling puts its points: the crack-length density of the cached φ,
    (φ² + s²|∇φ|²)/(2s) for AT2 (AT1's for AT1). cache: (ny, nx, 3) channels φ, ∂φ/∂x, ∂φ/∂y.
    Returns (ny, nx). It is largest on the crack band, and its |∇φ|² part marks the band's
    flanks, where φ, and with it the stress, changes fastest."""
    flat = cache.reshape(-1, 3)
    density = crack_length_density(flat[:, 0], flat[:, 1:], s=physics.s, model=physics.model)
    return density.reshape(cache.shape[:2])
