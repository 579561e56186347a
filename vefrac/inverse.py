"""Inverse mode: infer the toughness G(x) from a picture of the cracks.

The unknown is g = log G, on a coarse grid or as a Fourier-feature network. Each outer
iteration compares two states at the observation time t_obs:

- the *free* state: the forward model (load stepping from t = 0, the scenario's solver) with
  the current G — what the model predicts;
- the *assimilated* state: the minimiser of E(u, φ; G) + w·M(φ), the energy plus the misfit
  M = Ḡ/(2s) ∫ (φ − φ_obs)² over the imaged material — the state closest to the picture that
  the physics still accepts.

The objective is the energy gap J(G) = min[E + wM] − min E ≥ 0, zero when the model, left
to itself, already cracks as observed. E is linear in G with coefficient c(φ) = (φ² + s²|∇φ|²)/(2s),
so by Danskin's theorem ∂J/∂G(x) = c_assimilated(x) − c_free(x): lower G where the picture has
a crack the model does not make, raise it where the model cracks and the picture does not.
No derivative through the training is needed.

The picture's φ_obs is the sharp AT2 profile; the model's own bands are wider and carry background
damage, so c_free > c_assimilated even on cracks at the right place, and the gap raises G there.
invert.gradient read_gap (the default) compares alike: the free state's cracks are read the way
the picture is (skeleton → exp(−d/s)) and assimilated the same way, and that state's crack density
replaces c_free. The step then vanishes wherever the model cracks where the picture does.

The step is preconditioned by the prior:
the gradient is smoothed over prior.correlation_length (a Sobolev gradient: G varies smoothly)
and the mean of G is pulled towards prior.mean. The update of log G at most `step` per
iteration; the iterate whose free forward run matches the picture best is kept.

A time-lapse (several pictures, each with its time; vefrac/timelapse.py) sums the gap over the
frames: one forward run to the last frame's time gives the free state at every frame's time, each
frame has its own assimilated state at its own time, and ∂J/∂G = Σ_k (c_assimilated,k − c_free,k).
One picture is the sum of one term: exactly the single-picture inversion. Observed displacements
(vefrac/displacements.py) add a misfit in u, independent of G, to one frame's assimilated state.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy import ndimage

from . import __version__, analysis, config, displacements, export, plots, posterior
from .budget import export_resolution
from .checkpoint import load_checkpoint, save_checkpoint
from .errors import InputError
from .fem_solver import FemStaggered
from .fields import GridField, bilinear
from .geometry import Grid
from .log_toughness import LogToughness, gap_step, prior_cv, prior_draw
from .observe import Observed, read_like_picture, read_observation
from .outputs import SNAPSHOT_BYTES_PER_POINT, check_writable
from .pinn_model import FieldModel
from .problem import build_problem
from .runner import Run
from .solve import TERMS, ExtraTerm, State, Trainer, evaluate, planned_iterations, trapezoid_weights
from .timelapse import Frame, check_frames, snapshot_times, time_lapse_report

__all__ = ["CHECKPOINT", "Inversion", "InversionState", "LogToughness", "gap_step", "misfit_term", "prepare_output"]

CHECKPOINT = "inversion.pt"
WORK = ".work"  # where forward runs of older versions wrote; they run in memory now
# one seed keeps its best iterate's forward run (every snapshot's arrays, in float64) for the final
# output, while the next run records its own: up to this much memory; beyond it, it runs again
KEEP_RUN_BYTES = 1 << 30
HISTORY_COLUMNS = ["seed", "iteration", "overlap", "precision", "recall", "misfit", "assimilated_misfit",
                   "free_energy", "assimilated_energy", "energy_gap", "mean_G", "std_log_G", "step"]


# ----------------------------------------------------------------------------- the assimilated state


def misfit_term(observed: torch.Tensor, *, grid: Grid, weight: float) -> ExtraTerm:
    """The misfit w·Ḡ/(2s)·(φ − φ_obs)² on the imaged material (weight = w·Ḡ/(2s)), as an extra
    energy density for the Trainer. observed: (ny, nx, 2) on grid: φ_obs and the material (0/1)."""

    def density(x: torch.Tensor, dens: dict) -> torch.Tensor:
        obs = bilinear(observed, x, origin=grid.origin, spacing=grid.spacing)
        return weight * (obs[:, 1] * (dens["phi"] - obs[:, 0]) ** 2)

    return density


# ----------------------------------------------------------------------------- the inversion


@dataclass
class InversionState:
    seed_index: int = 0
    iteration: int = 0  # outer iterations done for this seed
    unknown: dict | None = None
    assimilated: list | None = None  # per frame: the assimilated state's model weights (warm start)
    assimilated_read: list | None = None  # invert.gradient read_gap: the same for the free state read
    forward_networks: dict | None = None  # invert.warm_forward: the last forward run's networks per load step
    best: dict | None = None  # {"overlap", "misfit", "iteration", "unknown", "log_G"}
    scale: float | None = None  # the gradient's normalisation, fixed at the seed's first iteration
    results: list = field(default_factory=list)  # per finished seed: its best iterate (log G on the grid)
    history: list = field(default_factory=list)
    wall: float = 0.0


class Inversion:
    """`vefrac invert`: one output folder, `execute()` does the whole job."""

    def __init__(self, scn: config.Scenario, image: Path | list[Frame], out: Path, *, device: torch.device,
                 resume: bool = False, progress: Callable[[int, dict], None] | None = None,
                 log: Callable[[str], None] = print):
        """image: one picture, or the frames of a time-lapse (timelapse.Frame: path and time)."""
        if scn.solver.backend != "pinn" or scn.solver.time != "load_stepping" or not scn.fracture.enabled:
            raise InputError("vefrac invert needs solver.backend: pinn, solver.time: load_stepping and "
                             "fracture.enabled: true (the G update compares load-stepped forward runs; "
                             "the assimilations are PINN minimisations, and invert.forward: fem makes the "
                             "forward runs with the FEM backend)")
        inv = scn.invert
        if inv.forward == "fem" and inv.warm_forward is not None:
            raise InputError("invert.warm_forward warm-starts the PINN's networks: leave it unset with "
                             "invert.forward: fem")
        if inv.forward != inv.assimilation and inv.gradient != "read_gap":
            raise InputError(f"invert.forward: {inv.forward} with invert.assimilation: {inv.assimilation} needs "
                             "invert.gradient: read_gap (energy_gap compares the free state's crack density "
                             "with the assimilated one's, bands of other widths when the backends differ)")
        if inv.assimilation == "fem" and inv.displacement is not None:
            raise InputError("invert.displacement is a misfit of the PINN's assimilation: leave it unset with "
                             "invert.assimilation: fem")
        self.frames = list(image) if isinstance(image, (list, tuple)) else [Frame(Path(image))]
        self.times = check_frames(self.frames, t_end=scn.shrinkage.t_end, load_steps=scn.solver.load_steps,
                                  single_time=inv.observation.time)
        t_obs = float(self.times[-1])
        # the forward model runs to the (last) observation time; its snapshots: the frames' times
        self.forward_scn = scn.model_copy(update={"shrinkage": scn.shrinkage.model_copy(update={"t_end": t_obs})})
        self.scn, self.image, self.out, self.device, self.log = scn, self.frames[-1].path, Path(out), device, log
        self.progress = progress or (lambda count, terms: None)
        self.problem = build_problem(self.forward_scn)
        self.s = self.problem.physics.s
        self.grid = self.problem.domain.grid(export_resolution(scn, self.problem.domain.length))
        self.observations: list[Observed] = []
        spec = inv.observation
        for frame in self.frames[::-1]:  # one framing (check_frames): one material for all of them
            ob = read_observation(frame.path, spec, domain=self.problem.domain, grid=self.grid, s=self.s)
            self.observations.insert(0, ob)
            for warning in ob.warnings:
                log(f"warning: {warning}")
            if spec.method == "threshold" and spec.threshold is None:
                # earlier frames share the last one's threshold and polarity: on the most cracked
                # frame Otsu's split is sound; on a frame of faint, young cracks it splits the shading
                spec = spec.model_copy(update={"threshold": ob.threshold, "cracks": ob.cracks})
        self.observed: Observed = self.observations[-1]
        self.g_mean = inv.prior.mean or getattr(scn.fracture.toughness, "mean", None)
        if self.g_mean is None:  # an image toughness has a range, not a mean
            raise InputError("vefrac invert needs a mean toughness for its prior: set invert.prior.mean "
                             "(> 0), or a fracture.toughness with a mean")
        self.displacement = displacements.for_inversion(scn, self.problem, self.grid, self.observed.material,
                                                        self.times, g_mean=self.g_mean, log=log)
        self.smoothing = inv.prior.correlation_length or 2 * self.s
        self.dtype = torch.float32 if scn.solver.dtype == "float32" else torch.float64
        self.counter = [0]
        self.state = InversionState()
        self.best_run: Run | None = None  # one seed: the best iterate's forward run, in this process
        snaps = len(snapshot_times(t_obs, scn.output.snapshots, self.times))
        self.keep_best = inv.seeds == 1 and 2 * snaps * math.prod(self.grid.shape) * SNAPSHOT_BYTES_PER_POINT <= KEEP_RUN_BYTES
        self.resumed = resume
        if resume:
            self._load_checkpoint()

    # ------------------------------------------------------------------ planning

    def forward_iterations(self, fraction: float | None = None) -> int | None:
        """Adam iterations of one forward run: cold, or warm-started at `fraction` of each step's;
        None for FEM forward runs, whose staggered iterations are not known in advance."""
        return planned_iterations(self._forward_scenario(self.scn.seed, snapshots=2, fraction=fraction))

    def planned_iterations(self) -> int | None:
        """The progress bar's total: the Adam iterations of the assimilations and forward runs;
        None with FEM forward runs or assimilations (the bar then counts their staggered iterations too)."""
        inv = self.scn.invert
        if inv.forward == "fem" or inv.assimilation == "fem":
            return None

        def assimilations(count: int) -> int:  # the first cold, the rest warm at a quarter
            return 0 if count < 1 else inv.assimilation_iterations + (count - 1) * max(1, inv.assimilation_iterations // 4)

        reads = 0 if inv.gradient != "read_gap" else inv.outer_iterations - (inv.first_update == "picture")
        assim = len(self.times) * (assimilations(inv.outer_iterations) + assimilations(reads))
        warm = self.forward_iterations(inv.warm_forward)
        forward = self.forward_iterations() + (inv.outer_iterations - 1) * warm
        # one seed: the final run is its best iterate's, kept (too large to keep: run again, warm
        # but for the first iterate); several: a cold run of their mean G
        final = 0 if self.keep_best else warm if inv.seeds == 1 else self.forward_iterations()
        return inv.seeds * (forward + assim) + final

    def _forward_scenario(self, seed: int, *, snapshots: int | None, fraction: float | None) -> config.Scenario:
        """The forward run's scenario: `snapshots` (None: the scenario's own), and `fraction` of each
        load step's Adam iterations (None: all of them)."""
        scn = self.forward_scn.model_copy(update={"seed": seed})
        if self.scn.invert.forward == "fem":
            scn = scn.model_copy(update={"solver": scn.solver.model_copy(update={"backend": "fem"})})
        if snapshots is not None:
            scn = scn.model_copy(update={"output": scn.output.model_copy(update={"snapshots": snapshots})})
        if fraction is not None:
            solver = scn.solver
            scn = scn.model_copy(update={"solver": solver.model_copy(update={
                "iterations": max(1, round(fraction * solver.iterations)),
                "first_step_iterations": max(1, round(fraction * solver.first_step_iterations))})})
        return scn

    # ------------------------------------------------------------------ pieces

    def _forward(self, unknown: LogToughness, seed: int, *, out: Path | None = None,
                 warm: bool | dict | None = False) -> Run:
        """A forward run with the current G: in memory (out None), or every snapshot and picture
        into the folder `out` (the final run of an ensemble's mean G, or a seed's best iterate run
        again: resumed past it, or too large to keep). In memory it records the final run's
        snapshots when it may become the final run (keep_best), else only the frames' times.

        warm (with invert.warm_forward): True, each load step starts from the networks the seed's
        previous forward run ended that step with, for invert.warm_forward of its Adam iterations
        (the first forward run of a seed has none and runs cold), and the networks are kept for the
        next; or those networks (per step time) to start from, None for none. A step without any
        runs cold, in full."""
        fraction = self.scn.invert.warm_forward if warm is not False else None
        start = (self.state.forward_networks if warm is True else warm) if fraction is not None else None
        final = out is not None or self.keep_best
        scn = self._forward_scenario(seed, snapshots=None if final else 2, fraction=None)
        base = self.counter[0]

        def progress(count, terms):
            self.progress(base + count, terms)

        run = Run(scn, out, device=self.device, progress=progress, log=lambda line: None,
                  toughness=unknown.field().to(self.device))
        if len(self.times) > 1:  # every frame's time is a load step (check_frames)
            run.snapshot_times = snapshot_times(self.problem.t_end, scn.output.snapshots, self.times) if final \
                else self.times
        if fraction is not None:
            run.solver.warm_start, run.solver.warm_fraction, run.solver.record_networks = start, fraction, True
        run.execute()
        if fraction is not None and out is None:
            self.state.forward_networks = run.solver.step_networks
        self.counter[0] = base + run.solver.iterations
        return run

    def _free_states(self, run: Run) -> list[tuple[dict, float]]:
        """Per frame: the forward run's arrays at the frame's time and its total energy then."""
        seen = np.array([snap.t for snap in run.outputs.snapshots])
        snaps = [run.outputs.snapshots[int(np.argmin(np.abs(seen - t)))] for t in self.times]
        return [(snap.arrays, snap.row["total"]) for snap in snaps]

    def _assimilate(self, unknown: LogToughness, seed: int, k: int = 0, read: np.ndarray | None = None) -> dict:
        """Minimise E + wM_k at frame k's time from φ = 0; warm-started from the previous outer
        iteration's state of the same frame. read: a φ to assimilate instead of the picture's
        (invert.gradient read_gap: the free state read like the picture), without displacements."""
        inv, solver = self.scn.invert, self.scn.solver
        t_obs = float(self.times[k])
        ob = self.observations[k]
        # the picture's state, or the free state read like it: its own warm start, stream, no displacements
        slot, target, stream = ("assimilated", ob.phi, 0) if read is None else ("assimilated_read", read, 503)
        disp = self.displacement if read is None and self.displacement and self.displacement.frame == k else None
        saved = getattr(self.state, slot) or [None] * len(self.times)
        weight = inv.misfit_weight * self.g_mean / (2 * self.s)
        if inv.assimilation == "fem":
            return self._assimilate_fem(unknown, k, slot=slot, saved=saved, target=target, weight=weight)
        problem = build_problem(self.forward_scn, toughness=unknown.field().to(self.device))
        init = torch.Generator().manual_seed(seed)
        model = FieldModel(problem, self.scn.network, init, space_time=False,
                           phi_bias=solver.phi_bias).to(self.device, self.dtype)
        first = saved[k] is None
        if not first:
            model.load_state_dict(saved[k])
        observed = torch.as_tensor(np.stack([target, ob.material.astype(float)], -1), device=self.device,
                                   dtype=self.dtype)
        gen = torch.Generator(device=self.device).manual_seed(seed + 7 + 1009 * k + stream)
        base = self.counter[0]
        extra = [misfit_term(observed, grid=self.grid, weight=weight)] + \
            ([disp.term(self.grid, device=self.device, dtype=self.dtype)] if disp else [])
        trainer = Trainer(problem, solver, generator=gen, dtype=self.dtype, model=model,
                          progress=lambda count, terms: self.progress(base + count, terms), extra_terms=extra)
        n_iter = inv.assimilation_iterations if first else max(1, inv.assimilation_iterations // 4)
        counter = [0]
        trainer.adam(t_value=t_obs, n_iter=n_iter, state=State(), checkpoint=lambda st: None,
                     counter=counter)
        self.counter[0] = base + counter[0]
        saved[k] = copy.deepcopy(model.state_dict())
        setattr(self.state, slot, saved)
        f = evaluate(problem, model, self.grid.points(), t_obs, device=self.device, dtype=self.dtype)
        w = trapezoid_weights(self.grid) * f["inside"]
        energy = float(sum((w * f[k]).sum() for k in TERMS))
        misfit = float((w * ob.material.ravel() * (f["phi"] - target.ravel()) ** 2).sum()) * weight
        ny, nx = self.grid.shape
        u = f["u"].reshape(ny, nx, 2)
        misfit += disp.misfit(u, self.grid) if disp else 0.0  # part of the minimised E + wM
        return {"phi": f["phi"].reshape(ny, nx), "c": f["crack_density"].reshape(ny, nx), "energy": energy,
                "misfit": misfit, "u": u}

    def _assimilate_fem(self, unknown: LogToughness, k: int, *, slot: str, saved: list, target: np.ndarray,
                        weight: float) -> dict:
        """_assimilate with invert.assimilation fem: the staggered minimisation of E + wM at frame k's
        time on the FEM backend's mesh (fem.* keys), the misfit one more quadratic term of its φ-step.
        From φ = 0, or from the previous outer iteration's state of the same frame, with φ ≥ 0 as
        its only bound (a minimisation at t, not a load step). Energies are the mesh's Gauss sums."""
        t_obs = float(self.times[k])
        material = self.observations[k].material
        scn = self.forward_scn.model_copy(update={"solver": self.forward_scn.solver.model_copy(
            update={"backend": "fem"})})
        problem = build_problem(scn, toughness=unknown.field().cpu())
        base = self.counter[0]
        fem = FemStaggered(scn, problem, progress=lambda count, terms: self.progress(base + count, terms),
                           log=lambda line: None)
        if saved[k] is not None:
            fem.model.load_state_dict(saved[k])
        observed = torch.as_tensor(np.stack([target, material.astype(float)], -1))
        fem.trainer.set_misfit(observed, origin=self.grid.origin, spacing=self.grid.spacing, weight=weight)
        fem.trainer.solve_step(t_obs, irreversible=False)
        self.counter[0] = base + fem.iterations
        saved[k] = copy.deepcopy(dict(fem.model.state_dict()))
        setattr(self.state, slot, saved)
        mesh = fem.model.mesh
        U = mesh.dofs(fem.model.u.numpy()).ravel()
        terms = fem.trainer.energy(U, mesh.dofs(fem.model.phi.numpy()), fem.trainer.shrinkage_at(t_obs))
        misfit = terms.pop("misfit")
        f = evaluate(problem, fem.model, self.grid.points(), t_obs, device=torch.device("cpu"), dtype=torch.float64)
        ny, nx = self.grid.shape
        return {"phi": f["phi"].reshape(ny, nx), "c": f["crack_density"].reshape(ny, nx),
                "energy": sum(terms.values()), "misfit": misfit, "u": f["u"].reshape(ny, nx, 2)}

    def plot_observation(self) -> None:
        """observation.png: what was read from the (last) picture; a time-lapse: observation_K.png too."""
        named = [("observation.png", self.frames[-1], self.observed)]
        if len(self.frames) > 1:
            named += [(f"observation_{k}.png", f, ob) for k, (f, ob) in enumerate(zip(self.frames, self.observations))]
        for name, frame, ob in named:
            when = "" if frame.time is None else f" at t = {frame.time:g}"
            plots.plot_observation(self.out / name, grey=ob.grey, phi=ob.phi, material=ob.material,
                                   extent=self.grid.extent,
                                   title=f"what was read from {frame.path.name}{when} ({ob.cracks} cracks)")

    def _smooth(self, values: np.ndarray) -> np.ndarray:
        """Gaussian smoothing over the prior's correlation length, normalised on the material."""
        m = self.observed.material.astype(float)
        sigma = [self.smoothing / self.grid.spacing[1], self.smoothing / self.grid.spacing[0]]
        num = ndimage.gaussian_filter(values * m, sigma, mode="constant")
        den = ndimage.gaussian_filter(m, sigma, mode="constant")
        return np.where(m > 0, num / np.maximum(den, 1e-12), 0.0)

    def _overlap(self, phi: np.ndarray, k: int = -1) -> dict:
        skel = analysis.crack_skeleton(phi, mask=self.observed.material)
        return analysis.crack_overlap(skel, self.observations[k].skeleton, spacing=self.grid.spacing,
                                      tolerance=self.scn.invert.overlap_tolerance * self.s,
                                      mask=self.observed.material)

    def _misfit(self, phi: np.ndarray, k: int = -1) -> float:
        m = self.observed.material
        return float(np.mean((phi[m] - self.observations[k].phi[m]) ** 2))

    # ------------------------------------------------------------------ one seed

    def _one_seed(self, index: int) -> None:
        inv, st = self.scn.invert, self.state
        seed = self.scn.seed + 1000 * index
        unknown = LogToughness(inv, grid=self.grid, domain=self.problem.domain, g0=math.log(self.g_mean),
                               s=self.s, seed=seed)
        if st.unknown is not None:
            unknown.load(st.unknown)
        elif inv.seeds > 1:  # an ensemble: each seed starts from its own draw of the prior
            unknown.update(prior_draw(self.scn, g_mean=self.g_mean, smoothing=self.smoothing,
                                      domain=self.problem.domain, grid=self.grid, seed=seed), self.observed.material)
        material = self.observed.material
        while st.iteration < inv.outer_iterations:
            k = st.iteration + 1
            start = st.forward_networks  # what a warm-started forward run starts from
            run = self._forward(unknown, seed, warm=True)
            free = self._free_states(run)
            assims = [self._assimilate(unknown, seed, j) for j in range(len(self.times))]
            overlaps = [self._overlap(arrays["phi"], j) for j, (arrays, _) in enumerate(free)]
            g = unknown.on_grid()
            row = {"seed": index, "iteration": k, **{key: _mean([o[name] for o in overlaps]) for key, name in
                                                      (("overlap", "iou"), ("precision", "precision"),
                                                       ("recall", "recall"))},
                   "misfit": _mean([self._misfit(arrays["phi"], j) for j, (arrays, _) in enumerate(free)]),
                   "assimilated_misfit": sum(a["misfit"] for a in assims),
                   "free_energy": sum(total for _, total in free),
                   "assimilated_energy": sum(a["energy"] for a in assims),
                   "energy_gap": sum(a["energy"] + a["misfit"] for a in assims) - sum(total for _, total in free),
                   "mean_G": float(np.exp(g[material]).mean()), "std_log_G": float(g[material].std()),
                   "step": inv.step,
                   **({f"overlap_{j}": o["iou"] for j, o in enumerate(overlaps)} if len(overlaps) > 1 else {})}
            row |= self.displacement.row(free, assims, self.grid) if self.displacement else {}
            better = st.best is None or (row["overlap"], -row["misfit"]) > (st.best["overlap"], -st.best["misfit"])
            if better:
                st.best = {"overlap": row["overlap"], "misfit": row["misfit"], "iteration": k,
                           "unknown": unknown.state(), "log_G": g, "start_networks": start}
                self.best_run = run if self.keep_best else None  # the final run, unless resumed
            c_assimilated = sum(a["c"] for a in assims)  # the gap's gradient sums over the frames
            if k == 1 and inv.first_update == "picture":  # the prior's own cracks say nothing of G
                c_free = np.zeros_like(c_assimilated)
            elif inv.gradient == "read_gap":  # compared alike: the free state's cracks read like the picture
                reads = [self._assimilate(unknown, seed, j, read=read_like_picture(
                    arrays["phi"], material=material, spacing=self.grid.spacing, s=self.s))
                    for j, (arrays, _) in enumerate(free)]
                c_free = sum(a["c"] for a in reads)
            else:
                c_free = sum(arrays["crack_length_density"] for arrays, _ in free)
            if st.scale is None:  # a full step where the picture's cracks are, once smoothed
                st.scale = max(float(np.percentile(self._smooth(self.s * c_assimilated)[material], 99)), 1e-12)
            target = gap_step(g, c_assimilated=c_assimilated, c_free=c_free, material=material,
                              s=self.s, step=inv.step, scale=st.scale, smooth=self._smooth,
                              mean_weight=inv.prior.mean_weight, g_mean=self.g_mean)
            unknown.update(target, material)
            st.history.append(row)
            st.iteration, st.unknown = k, unknown.state()
            self.log(f"seed {index + 1}/{inv.seeds}, iteration {k}/{inv.outer_iterations}: overlap "
                     f"{row['overlap']:.3f} (precision {row['precision']:.2f}, recall {row['recall']:.2f}), "
                     f"misfit {row['misfit']:.4f}, mean G {row['mean_G']:.3g}, std log G {row['std_log_G']:.3f}")
            self._checkpoint()
        st.results.append({k: st.best.get(k) for k in ("log_G", "overlap", "misfit", "iteration", "start_networks")})
        st.seed_index, st.iteration, st.unknown, st.assimilated, st.best, st.scale = index + 1, 0, None, None, None, None
        st.assimilated_read = None
        st.forward_networks = None
        self._checkpoint()

    # ------------------------------------------------------------------ the whole job

    def execute(self) -> dict:
        self.t0 = time.perf_counter()
        if not self.resumed:
            self._prepare_folder()
        self.plot_observation()
        for index in range(self.state.seed_index, self.scn.invert.seeds):
            self._one_seed(index)
        logs = np.stack([r["log_G"] for r in self.state.results])
        log_g = logs.mean(0)
        log_std = logs.std(0, ddof=1) if len(logs) > 1 else None
        g_field = GridField(np.exp(log_g), origin=self.grid.origin, spacing=self.grid.spacing)

        class Fixed:  # the inferred G as an unknown that no longer moves
            def field(self_inner):
                return g_field

        if self.best_run is not None:  # one seed: its best iterate's forward run is the final one
            self.log("writing the forward run with the inferred G (the best iterate's)")
            run = self.best_run
            run.write_to(self.out)
        elif len(self.state.results) == 1:  # resumed past the best iterate, or too large: its run again
            self.log("forward run with the inferred G (the best iterate's, again)")
            start = self.state.results[0].get("start_networks")
            run = self._forward(Fixed(), self.scn.seed, out=self.out,
                                warm=start if self.scn.invert.warm_forward is not None else False)
        else:  # several seeds average their G: a cold run of it
            self.log("forward run with the inferred G")
            run = self._forward(Fixed(), self.scn.seed, out=self.out)
        return self._finish(run, log_g, log_std)

    def _finish(self, run: Run, log_g: np.ndarray, log_std: np.ndarray | None) -> dict:
        ob, grid = self.observed, self.grid
        phi = run.outputs.snapshots[-1].arrays["phi"]
        # the forward run wrote its own config and pictures into the folder: put the inversion's back
        export.atomic_write_text(self.out / "config.yaml", config.dump_scenario(self.scn))
        self.plot_observation()
        overlap = self._overlap(phi)
        mask = ob.material
        arrays = {"G": np.exp(log_g), "log_G": log_g, "phi_observed": ob.phi,
                  "observed_skeleton": ob.skeleton.astype(np.uint8), "material": mask.astype(np.uint8),
                  "phi_model": phi}
        if log_std is not None:
            arrays["log_G_std"] = log_std
        uncertainty = self._uncertainty()
        arrays["log_G_sigma"] = uncertainty.pop("sigma")
        export.write_vti(self.out / "inferred.vti", origin=grid.origin, spacing=grid.spacing, point_data=arrays)
        columns = HISTORY_COLUMNS + ([f"overlap_{k}" for k in range(len(self.times))] if len(self.times) > 1 else [])
        columns += displacements.HISTORY_COLUMNS if self.displacement else []
        export.write_csv(self.out / "inversion.csv", self.state.history, columns)
        plots.plot_inversion_history(self.out / "inversion.png", self.state.history)
        plots.plot_crack_over_field(self.out / "G_inferred.png", phi=ob.phi, mask=mask, field=np.exp(log_g),
                                     extent=grid.extent, field_label="inferred G, observed cracks")
        plots.plot_crack_over_field(self.out / "G_uncertainty.png", phi=ob.phi, mask=mask, field=arrays["log_G_sigma"],
                                     extent=grid.extent, field_label="posterior std of log G")
        if log_std is not None:
            plots.plot_crack_over_field(self.out / "G_spread.png", phi=ob.phi, mask=mask, field=log_std,
                                         extent=grid.extent, field_label="std of log G over seeds")
        plots.plot_side_by_side(self.out / "observed_vs_model.png",
                                 [("observed", ob.phi, mask, grid.extent),
                                  (f"forward run with inferred G (overlap {overlap['iou']:.2f})", phi, mask,
                                   grid.extent)])
        summary = json.loads((self.out / "summary.json").read_text())
        summary["inversion"] = {
            "image": str(self.image.resolve()), "observation_time": self.problem.t_end,
            "cracks": ob.cracks, "threshold": ob.threshold, "pixel_size": list(ob.pixel_size),
            "warnings": list(ob.warnings), "unknown": self.scn.invert.unknown, "seeds": self.scn.invert.seeds,
            "forward": self.scn.invert.forward, "assimilation": self.scn.invert.assimilation,
            "first_update": self.scn.invert.first_update, "final_misfit": self._misfit(phi),
            "overlap": overlap["iou"], "precision": overlap["precision"], "recall": overlap["recall"],
            "overlap_tolerance": self.scn.invert.overlap_tolerance * self.s,
            "mean_G": float(np.exp(log_g[mask]).mean()), "std_log_G": float(log_g[mask].std()),
            "mean_log_G_std": float(log_std[mask].mean()) if log_std is not None else None,
            "uncertainty": uncertainty,
            "per_seed": [{"seed": i, "best_iteration": r["iteration"], "overlap": r["overlap"], "misfit": r["misfit"]}
                         for i, r in enumerate(self.state.results)],
            "iterations": self.counter[0], "wall_time_s": self.state.wall + time.perf_counter() - self.t0,
        }
        if len(self.times) > 1:
            summary["inversion"] |= self._time_lapse(run, summary.get("first_crack_t"))
        if self.displacement:
            summary["inversion"]["displacement"] = displacements.report(
                self.displacement, grid=grid, history=self.state.history,
                final_u=displacements.run_displacement(run, self.displacement.time))
        export.write_json(self.out / "summary.json", summary)
        shutil.rmtree(self.out / WORK, ignore_errors=True)
        return summary

    def _uncertainty(self) -> dict:
        """The posterior std of log G given the observed cracks (vefrac/posterior.py): its map
        ("sigma") and what it was made of, with its mean near (within 3 s of) and far from the cracks."""
        inv, ob = self.scn.invert, self.observed
        skeleton = ob.skeleton  # the last picture: it holds every earlier frame's cracks too
        tau = inv.crack_noise or posterior.default_crack_noise(len(self.times))
        prior_std = math.sqrt(math.log1p(prior_cv(self.scn) ** 2))
        sigma = posterior.posterior_std(skeleton, self.grid, s=self.s, prior_std=prior_std,
                                        correlation_length=self.smoothing, error=tau)
        near = ob.material & (ndimage.distance_transform_edt(~skeleton, sampling=self.grid.spacing[::-1])
                              <= 3 * self.s)
        far = ob.material & ~near
        return {"sigma": sigma, "crack_noise": tau, "prior_std": prior_std, "correlation_length": self.smoothing,
                "mean_sigma_near_cracks": float(sigma[near].mean()) if near.any() else None,
                "mean_sigma_far": float(sigma[far].mean()) if far.any() else None}

    def _time_lapse(self, run: Run, first_crack: float | None) -> dict:
        return time_lapse_report(self.out, run, frames=self.frames, times=self.times,
                                 observations=self.observations, material=self.observed.material,
                                 grid=self.grid, overlap=self._overlap, first_crack=first_crack)

    # ------------------------------------------------------------------ folder and checkpoints

    def _source(self) -> str | list:
        """What the checkpoint remembers of the pictures: the path, or a time-lapse's [path, t] pairs."""
        if len(self.frames) == 1:
            return str(self.image.resolve())
        return [[str(f.path.resolve()), float(t)] for f, t in zip(self.frames, self.times)]

    def _prepare_folder(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        check_writable(self.out, needed_bytes=100_000_000)
        for name in (CHECKPOINT, "inferred.vti", "inversion.csv"):
            (self.out / name).unlink(missing_ok=True)
        export.atomic_write_text(self.out / "config.yaml", config.dump_scenario(self.scn))

    def _checkpoint(self) -> None:
        payload = {"hash": config.scenario_hash(self.scn), "image": self._source(),
                   "version": __version__, "state": self.state.__dict__ | {
                       "wall": self.state.wall + time.perf_counter() - self.t0}, "counter": self.counter[0]}
        save_checkpoint(self.out / CHECKPOINT, payload)

    def _load_checkpoint(self) -> None:
        path = self.out / CHECKPOINT
        payload = load_checkpoint(path, device="cpu")
        if payload.get("hash") != config.scenario_hash(self.scn) or payload.get("image") != self._source():
            raise InputError(f"--resume: checkpoint {str(path)!r} belongs to another scenario or image; resume "
                             f"with the scenario, --image (--times, --images) and --set options it was started with")
        state = dict(payload["state"])
        if isinstance(state.get("assimilated"), dict):  # written before time-lapses: one frame's state
            state["assimilated"] = [state["assimilated"]]
        for key in ("best", "unknown"):  # numpy arrays were saved as tensors
            state[key] = _arrays(state[key])
        state["results"] = [_arrays(r) for r in state["results"]]
        self.state = InversionState(**state)
        self.counter[0] = payload["counter"]
        self.log(f"resuming the inversion at seed {self.state.seed_index + 1}, outer iteration "
                 f"{self.state.iteration + 1}")


def prepare_output(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an earlier result; --resume needs the inversion's checkpoint."""
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise InputError(f"--resume: no inversion checkpoint {str(out / CHECKPOINT)!r} to continue from")
        return
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {str(out)!r} exists and is not a folder")
    if out.exists() and any((out / f).exists() for f in (CHECKPOINT, "summary.json", "fields.pvd")) and not overwrite:
        raise InputError(f"output folder {str(out)!r} already holds a result; use --resume to continue it, "
                         f"--overwrite to start afresh, or --out for another folder")


def _mean(values: list[float]) -> float:
    """The mean over the frames (one frame: that value, exactly)."""
    return float(sum(values) / len(values))


def _arrays(entry: dict | None) -> dict | None:
    """A checkpointed dict with its CPU tensors of log G and grid values back as numpy arrays
    (the network's weights, under 'net' or 'unknown', stay tensors)."""
    if entry is None:
        return None
    out = dict(entry)
    for key in ("log_G", "values"):
        if key in out:
            out[key] = np.asarray(out[key].cpu())
    if isinstance(out.get("unknown"), dict):
        out["unknown"] = _arrays(out["unknown"])
    return out
