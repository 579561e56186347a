"""Can the PINN's u-net open the reference's cracks? The displacement half of band_fit.py.

    python3 scripts/u_fit.py REFERENCE_RUN [--snapshot K] [--scales 1 2] [--iterations 200 1000 3000]
                             [--representations global patches] [--points N] [--seed 0]
                             [--threads 1] [--json FILE]

Holds φ at a finished run's last φ (or snapshot K's) (normally the FEM reference's; its export grid becomes the
φ cache, read bilinearly as the PINN reads its previous step) and minimises the energy over the
u-net alone, with the run's own trainer: the scenario's sampling (importance near the cached
cracks), points, learning rate and rate schedule, at the snapshot's time. φ is fixed, so only the
elastic and substrate energies move. Their sum on the export grid (trapezoid rule), after each
budget of --iterations, is compared with the reference's own energy at that snapshot (its
history.csv: an FEM's by its elements, a PINN's by its networks' exact gradients) — the "excess".
The reference's displacement evaluated on the export grid like the fit (its gradient by central
differences) is printed beside it; across sharp bands those differences overstate the elastic
energy by a few per cent, so it is a check, not the baseline.

What it tells: a crack releases elastic energy only as far as the displacement can open it. If
the u-net, given the reference's cracks, stores clearly more elastic energy than the reference's
displacement does, every crack releases less in the PINN than it should and cracking is
penalised: fewer cells, later. The gap, per unit crack length, is set against G (the energy a
unit of crack costs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vefrac.api import open_run  # noqa: E402
from vefrac.config import load_scenario  # noqa: E402
from vefrac.energy import energy_densities  # noqa: E402
from vefrac.geometry import Grid  # noqa: E402
from vefrac.pinn_model import FieldModel, fourier_scale  # noqa: E402
from vefrac.problem import build_problem  # noqa: E402
from vefrac.solve import State, Trainer, evaluate, trapezoid_weights  # noqa: E402


def grid_energy(problem, grid: Grid, weights: np.ndarray, t: float, *, u, grad_u, phi) -> dict:
    """Elastic and substrate energy of fields given on the grid's points, by the trapezoid rule."""
    x = torch.as_tensor(grid.points())
    dens = energy_densities(problem.physics, u=torch.as_tensor(u), grad_u=torch.as_tensor(grad_u),
                            phi=torch.as_tensor(phi), grad_phi=torch.zeros_like(x), G=torch.ones(len(x), dtype=x.dtype),
                            eps_s=problem.shrinkage_strain(x, t))
    return {k: float((weights * dens[k].numpy()).sum()) for k in ("elastic", "substrate")}


def measure(run: Path, *, scales=(1.0,), iterations=(200, 1000, 3000), representations=("global",),
            points: int | None = None, snapshot_index: int = -1, seed: int = 0, log=print) -> list[dict]:
    """Rows: the reference on the export grid, the reference's own energy, then per representation,
    Fourier-scale factor and budget the fresh u-net's energies and excess over the reference's own."""
    scn = load_scenario(run / "config.yaml")
    if points:
        scn = scn.model_copy(update={"solver": scn.solver.model_copy(update={"points": points})})
    problem = build_problem(scn)
    result = open_run(run)
    snap, own = result.snapshots[snapshot_index], result.history[snapshot_index]
    phi = np.where(snap.mask, snap.phi, 0.0)
    grid = Grid(origin=(float(snap.x[0]), float(snap.y[0])), spacing=snap.spacing, shape=phi.shape)
    t = snap.t
    inside = problem.domain.inside(torch.as_tensor(grid.points())).numpy()
    weights = trapezoid_weights(grid) * inside
    (hx, hy) = grid.spacing
    ny, nx = phi.shape
    # the reference's displacement: ∂u_i/∂x_j by central differences on the export grid
    du_dy, du_dx = np.gradient(snap.u, hy, hx, axis=(0, 1))
    grad_u = np.stack([du_dx, du_dy], axis=-1).reshape(ny * nx, 2, 2)  # [:, i, j] = ∂u_i/∂x_j
    reference = grid_energy(problem, grid, weights, t, u=snap.u.reshape(-1, 2), grad_u=grad_u, phi=phi.ravel())
    crack = float((weights * phi.ravel() ** 2).sum()) / (2 * problem.physics.s)  # AT2 length, φ² part
    g_mean = float(problem.toughness(torch.as_tensor(grid.points())).mean())
    dphi_dy, dphi_dx = np.gradient(phi, hy, hx)
    cache = torch.as_tensor(np.stack([phi, dphi_dx, dphi_dy], -1))
    # own: the reference's history row, by its own quadrature (an FEM: its elements): the baseline
    rows = [{"run": "reference displacement, on the export grid", **reference, "total": sum(reference.values())},
            {"run": "reference's own energy (history.csv)", "elastic": own["elastic"],
             "substrate": own["substrate"], "total": own["elastic"] + own["substrate"]}]
    base = rows[1]["total"]
    log(f"reference at t = {t:g}: elastic {reference['elastic']:.6g}, substrate {reference['substrate']:.6g} "
        f"on the export grid ({own['elastic']:.6g}, {own['substrate']:.6g} in its history.csv); AT2 length "
        f"(φ² part) {crack:.3f}, mean G {g_mean:.3g}")
    for kind in representations:
        for factor in scales:
            net = scn.network.model_copy(update={"fourier_scale": factor * fourier_scale(scn.network, problem),
                                                 "fourier_scales": None, "representation": kind})
            gen = torch.Generator().manual_seed(seed)
            model = FieldModel(problem, net, gen, space_time=False, phi_bias=scn.solver.phi_bias).float()
            model.cache_grid, model.cache, model.committed_only = grid, cache.float(), True
            trainer = Trainer(problem, scn.solver, generator=torch.Generator().manual_seed(seed + 1),
                              dtype=torch.float32, model=model)
            state, done, start = State(), [0], time.perf_counter()
            for budget in sorted(iterations):  # Adam restarts (fresh moments) at each budget
                trainer.adam(t_value=t, n_iter=budget, state=state, checkpoint=lambda st: None, counter=done)
                f = evaluate(problem, model, grid.points(), t, device=torch.device("cpu"), dtype=torch.float32)
                got = {k: float((weights * f[k]).sum()) for k in ("elastic", "substrate")}
                excess = sum(got.values()) - base
                row = {"run": f"{kind} u-net, Fourier scale × {factor:g}", "iterations": budget, **got,
                       "total": sum(got.values()), "excess": excess,
                       "excess_per_G_length": excess / (g_mean * crack) if crack > 0 else None,
                       "seconds": time.perf_counter() - start}
                rows.append(row)
                per = "" if row["excess_per_G_length"] is None else f", {row['excess_per_G_length']:.3f} of G × crack length"
                log(f"{row['run']}, {budget} iterations: elastic {got['elastic']:.6g}, substrate "
                    f"{got['substrate']:.6g}, excess {excess:+.4g} ({100 * excess / base:+.1f} %{per}), "
                    f"{row['seconds']:.0f} s")
                state = State(iteration=budget)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0])
    ap.add_argument("--iterations", type=int, nargs="+", default=[200, 1000, 3000],
                    help="cumulative Adam budgets at which the energy is measured")
    ap.add_argument("--representations", nargs="+", default=["global"], choices=["global", "patches"])
    ap.add_argument("--points", type=int, help="points per iteration (default: the scenario's)")
    ap.add_argument("--snapshot", type=int, default=-1, help="which snapshot (index; default the last)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = measure(a.run, scales=a.scales, iterations=a.iterations, representations=a.representations,
                   points=a.points, snapshot_index=a.snapshot, seed=a.seed, log=lambda line: print(line, flush=True))
    base = rows[1]["total"]
    print("\n| u | Adam iterations | elastic | substrate | elastic + substrate | excess | excess / (G · crack length) |")
    print("|" + " --- |" * 7)
    for r in rows:
        excess = "" if "excess" not in r else f"{r['excess']:+.4g} ({100 * r['excess'] / base:+.1f} %)"
        per = "" if r.get("excess_per_G_length") is None else f"{r['excess_per_G_length']:.3f}"
        print(f"| {r['run']} | {r.get('iterations', '–')} | {r['elastic']:.5g} | {r['substrate']:.5g} | "
              f"{r['total']:.5g} | {excess} | {per} |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
