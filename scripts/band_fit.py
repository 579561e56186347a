"""Can the PINN's φ-net draw the reference's crack bands? A regression on a finished run, not a solve.

    python3 scripts/band_fit.py REFERENCE_RUN [--scales 1 2] [--iterations 3000] [--points 8192]
                                [--representations global patches] [--dtype float64]
                                [--seed 0] [--threads 1] [--json FILE]

Reads a finished run's last φ (normally the FEM reference's) on its export grid and fits what one
load step of the PINN would have to represent, φ = σ(z(x̂)), with z the φ-net of the run's own
scenario (its features, layers, width and Fourier scale, times each factor of --scales; a global
FourierMLP, or with --representations patches the partition of unity of local networks of
`network.representation: patches` at the scenario's patch size), by least squares on points drawn
uniformly in the domain each iteration (the target interpolated bilinearly), Adam at the scenario's
learning rate. Each fitted φ is then evaluated on the same export grid and measured like the
target: band width (area φ > 0.5 per unit skeleton length), skeleton and AT2 crack length,
fragments, median φ, RMS error.

What it tells: the PINN's bands are wider than the FEM's (docs/benchmarks.md). If the network,
told the answer, reproduces the FEM's band width, the representation is not what widens them and
the energy minimisation is; if it cannot, the representation is a cause, and the factor of
--scales at which it can says how much finer the features must be.
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

from vefrac import analysis  # noqa: E402
from vefrac.config import load_scenario  # noqa: E402
from vefrac.pinn_model import fourier_scale, representation  # noqa: E402
from vefrac.problem import build_problem  # noqa: E402


def last_phi(run: Path):
    """(φ (ny, nx), mask, x (ny·nx, 2), spacing, origin) of a run's last snapshot."""
    import pyvista as pv

    grid = pv.read(str(sorted(run.glob("fields_*.vti"))[-1]))
    nx, ny, _ = grid.dimensions
    phi = np.asarray(grid.point_data["phi"], dtype=np.float64).reshape(ny, nx)
    mask = np.asarray(grid.point_data["mask"]).reshape(ny, nx).astype(bool)
    return phi, mask, np.asarray(grid.points)[:, :2], tuple(grid.spacing[:2]), tuple(grid.origin[:2])


def statistics(phi: np.ndarray, mask: np.ndarray, spacing, s: float) -> dict:
    stats = analysis.crack_statistics(np.where(mask, phi, 0.0), mask=mask, spacing=spacing, s=s)
    return {key: stats[key] for key in ("fragments", "skeleton_length", "crack_length", "band_width", "median_phi")}


def fit(run: Path, factor: float, *, iterations: int, points: int, seed: int, kind: str = "global",
        dtype: torch.dtype = torch.float64) -> dict:
    from scipy.interpolate import RegularGridInterpolator

    scn = load_scenario(run / "config.yaml")
    problem = build_problem(scn)
    dom, net = problem.domain, scn.network
    target, mask, x_grid, spacing, origin = last_phi(run)
    ny, nx = target.shape
    axes = (origin[1] + spacing[1] * np.arange(ny), origin[0] + spacing[0] * np.arange(nx))
    interp = RegularGridInterpolator(axes, np.where(mask, target, 0.0))
    gen = torch.Generator().manual_seed(seed)
    scale = factor * fourier_scale(net, problem)
    net = net.model_copy(update={"fourier_scale": scale, "fourier_scales": None, "representation": kind})
    z = representation(net, problem)(out=1, generator=gen).to(dtype)
    z.reset_output(0.0)
    opt = torch.optim.Adam(z.parameters(), lr=scn.solver.learning_rate)
    centre = torch.tensor(dom.center, dtype=torch.float64)
    lo, hi = np.asarray(dom.bounds[:2]), np.asarray(dom.bounds[2:])
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(iterations):
        x = lo + (hi - lo) * rng.random((points, 2))
        x = x[dom.inside(torch.as_tensor(x)).numpy()]
        y = torch.as_tensor(interp(x[:, ::-1]))
        value, _ = z(((torch.as_tensor(x) - centre) / dom.length).to(dtype))
        loss = ((torch.sigmoid(value[:, 0]) - y.to(dtype)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        xg = torch.as_tensor(x_grid, dtype=torch.float64)
        fitted = torch.cat([torch.sigmoid(z(((c - centre) / dom.length).to(dtype))[0][:, 0]) for c in xg.split(4096)])
    fitted = fitted.double().numpy().reshape(ny, nx)
    rms = float(np.sqrt(np.mean((fitted - target)[mask] ** 2)))
    return {"factor": factor, "representation": kind, "parameters": sum(q.numel() for q in z.parameters()),
            "fourier_scale": scale, "seconds": seconds, "rms_error": rms,
            **statistics(fitted, mask, spacing, scn.fracture.length_scale)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0])
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--points", type=int, default=8192)
    ap.add_argument("--representations", nargs="+", default=["global"], choices=["global", "patches"])
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                    help="of the fitted network (the PINN trains in float32; the 2026-12-02 table was float64)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    target, mask, _, spacing, _ = last_phi(a.run)
    s = load_scenario(a.run / "config.yaml").fracture.length_scale
    rows = [{"factor": "target", **statistics(target, mask, spacing, s)}]
    rows += [fit(a.run, f, iterations=a.iterations, points=a.points, seed=a.seed, kind=k,
                 dtype=getattr(torch, a.dtype))
             for k in a.representations for f in a.scales]
    print("| φ | fragments | skeleton | AT2 length | band width | median φ | RMS error | fit s |")
    print("|" + " --- |" * 8)
    for r in rows:
        label = "target" if r["factor"] == "target" else (
            f"σ(z), {r['representation']} ({r['parameters']} parameters), Fourier scale × {r['factor']:g} "
            f"({r['fourier_scale']:g})")
        print(f"| {label} | {r['fragments']} | {r['skeleton_length']:.3f} | {r['crack_length']:.3f} | "
              f"{r['band_width']:.4f} | {r['median_phi']:.2f} | {r.get('rms_error', 0):.3f} | {r.get('seconds', 0):.0f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
