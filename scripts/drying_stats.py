"""Statistics and gallery pictures of the drying scenarios (docs/drying.md), from run folders.

    python scripts/drying_stats.py directional RUN_DIR [--band Y0 Y1] [--out docs/directional-drying.png]
    python scripts/drying_stats.py rim RUN_DIR [--out ...]
    python scripts/drying_stats.py oriented RUN_DIR [--angle 30] [--out ...]
    python scripts/drying_stats.py cycles RUN_DIR [--out ...]

Prints one JSON document: the statistic of the scenario (crack_pattern's, vefrac/pattern.py)
measured on the last snapshot (cycles: on each cycle's φ, cycles.npz), and writes the picture.
- directional: spacing of the cracks crossing a band of rows (mean intercept along x), / ℓe;
  nematic order and director of the band's centre lines (90° = along the drying direction y).
- rim: radial order ⟨cos 2(θ − θr)⟩ of the centre lines (1 all radial, −1 all hoop, 0 neither),
  in three rings (r > 0.8R, 0.5R–0.8R, r < 0.5R; near the centre any line is nearly radial).
- oriented: nematic order and director (expected perpendicular to the shrinkage axis).
- cycles: per cycle the cells, T/Y counts, T fraction, mean junction angle.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyvista as pv  # noqa: E402
import yaml  # noqa: E402

from vefrac import pattern  # noqa: E402
from vefrac.cycles import cycle_statistics  # noqa: E402


def last_snapshot(run: Path):
    """(φ (ny, nx), mask, spacing, origin) of the run's last .vti."""
    vti = sorted(run.glob("fields_*.vti"))[-1]
    grid = pv.read(vti)
    nx, ny, _ = grid.dimensions
    phi = np.asarray(grid.point_data["phi"]).reshape(ny, nx)
    mask = np.asarray(grid.point_data["mask"]).reshape(ny, nx).astype(bool)
    return phi, mask, tuple(grid.spacing[:2]), tuple(grid.origin[:2])


def scenario(run: Path) -> dict:
    return yaml.safe_load(open(run / "config.yaml"))


def elastic_length(scn: dict) -> float:
    m = scn["material"]
    return math.sqrt((m["lame_lambda"] + 2 * m["lame_mu"]) / m["substrate_stiffness"])


def directional(run: Path, band: tuple[float, float]):
    phi, mask, spacing, origin = last_snapshot(run)
    scn = scenario(run)
    s, le = scn["fracture"]["length_scale"], elastic_length(scn)
    y = origin[1] + spacing[1] * np.arange(phi.shape[0])
    rows = (y >= band[0]) & (y <= band[1])
    sub = pattern.crack_pattern(phi[rows], mask=mask[rows], spacing=spacing, s=s).statistics
    full = pattern.crack_pattern(phi, mask=mask, spacing=spacing, s=s).statistics
    out = {"band_y": list(band), "spacing_x": sub["intercept_x"], "elastic_length": le,
           "spacing_over_le": sub["intercept_x"] / le if sub["intercept_x"] else None,
           "band_nematic_order": sub["nematic_order"], "band_director_degrees": sub["director_degrees"],
           "nematic_order": full["nematic_order"], "director_degrees": full["director_degrees"],
           "cells": full["cells"], "t_junction_fraction": full["t_junction_fraction"]}
    title = (f"directional drying (front from the bottom): spacing {out['spacing_x']:.3f} = "
             f"{out['spacing_over_le']:.2f} ℓe,\nS = {out['band_nematic_order']:.2f} at "
             f"{out['band_director_degrees']:.0f}° in y ∈ [{band[0]}, {band[1]}]")
    return out, phi, mask, spacing, origin, title, band


def rim(run: Path):
    phi, mask, spacing, origin = last_snapshot(run)
    scn = scenario(run)
    s, R = scn["fracture"]["length_scale"], scn["domain"]["radius"]
    pat = pattern.crack_pattern(phi, mask=mask, spacing=spacing, s=s)
    theta = np.radians(pat.orientation)
    jj, ii = np.nonzero(np.isfinite(theta))
    x, y = origin[0] + ii * spacing[0], origin[1] + jj * spacing[1]
    r, radial = np.hypot(x, y), np.arctan2(y, x)
    c = np.cos(2 * (theta[jj, ii] - radial))
    rings = {"rim_ring": r > 0.8 * R, "middle_ring": (r > 0.5 * R) & (r <= 0.8 * R), "inner": r <= 0.5 * R}
    out = {**{f"radial_order_{k}": float(c[m].mean()) for k, m in rings.items()},
           "cells": pat.statistics["cells"], "t_junction_fraction": pat.statistics["t_junction_fraction"],
           "junction_angle_mean": pat.statistics["junction_angle"]["mean"]}
    title = (f"{scn['name']}: radial order ⟨cos 2(θ − θr)⟩ of the centre lines = "
             f"{out['radial_order_rim_ring']:.2f} (r > 0.8R),\n{out['radial_order_middle_ring']:.2f} "
             f"(0.5R–0.8R), {out['radial_order_inner']:.2f} (r < 0.5R); {out['cells']} cells")
    return out, phi, mask, spacing, origin, title, None


def oriented(run: Path, angle: float):
    phi, mask, spacing, origin = last_snapshot(run)
    scn = scenario(run)
    s = scn["fracture"]["length_scale"]
    st = pattern.crack_pattern(phi, mask=mask, spacing=spacing, s=s).statistics
    expected = (angle + 90.0) % 180.0
    off = abs((st["director_degrees"] - expected + 90) % 180 - 90)
    out = {"nematic_order": st["nematic_order"], "director_degrees": st["director_degrees"],
           "expected_director_degrees": expected, "director_error_degrees": off, "cells": st["cells"],
           "orientation_histogram": st["orientation_histogram"]}
    title = (f"oriented paste (shrinks most along {angle:.0f}°): S = {st['nematic_order']:.2f}, "
             f"director {st['director_degrees']:.0f}° (expected {expected:.0f}°)")
    return out, phi, mask, spacing, origin, title, None


def cycles(run: Path, out_png: Path):
    data = np.load(run / "cycles.npz")
    summary = json.load(open(run / "summary.json"))
    s = scenario(run)["fracture"]["length_scale"]
    vti = pv.read(sorted(run.glob("fields_*.vti"))[-1])
    spacing = tuple(vti.spacing[:2])
    records = [{"cycle": r["cycle"], "t": r["t"], **cycle_statistics(
        pattern.crack_pattern(phi, mask=data["mask"], spacing=spacing, s=s).statistics)}
        for r, phi in zip(summary["cycles"], data["phi"])]
    n = len(records)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.4), gridspec_kw={"height_ratios": [3, 2]})
    for k, (phi, rec) in enumerate(zip(data["phi"], records)):
        ax = axes[0, k]
        ax.imshow(np.where(data["mask"], phi, np.nan), origin="lower", cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"cycle {rec['cycle']}: {rec['cells']} cells\nT {rec['t_junctions']} Y {rec['y_junctions']}, "
                     f"⟨angle⟩ {rec['junction_angle_mean']:.0f}°", fontsize=8)
        ax.set_axis_off()
        ax = axes[1, k]
        h = np.asarray(rec["junction_angle_histogram"])
        ax.bar(np.arange(5, 185, 10), h, width=9, color="0.4")
        ax.axvline(90, ls=":", c="k"), ax.axvline(120, ls="--", c="k")
        ax.set_xlim(0, 180), ax.set_xticks([0, 90, 120, 180])
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{summary['name']}: junction angles per wet–dry cycle (dotted 90°, dashed 120°)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    keep = ("cycle", "t", "cells", "interior_cells", "junctions", "t_junctions", "y_junctions", "x_junctions",
            "t_junction_fraction", "junction_angle_mean", "junction_angle_median", "crack_spacing",
            "three_arm_junctions", "three_arm_angle_std", "three_arm_largest_angle_mean")
    return [{k: r[k] for k in keep} for r in records]


def picture(out_png: Path, phi, mask, spacing, origin, title, band):
    ny, nx = phi.shape
    extent = (origin[0], origin[0] + spacing[0] * (nx - 1), origin[1], origin[1] + spacing[1] * (ny - 1))
    fig, ax = plt.subplots(figsize=(6, 6 * (extent[3] - extent[2]) / (extent[1] - extent[0]) + 0.8))
    ax.imshow(np.where(mask, phi, np.nan), origin="lower", extent=extent, cmap="gray_r", vmin=0, vmax=1)
    if band is not None:
        for yb in band:
            ax.axhline(yb, ls="--", c="tab:red", lw=1)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=["directional", "rim", "oriented", "cycles"])
    p.add_argument("run", type=Path)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--band", type=float, nargs=2, default=(-0.3, -0.1))
    p.add_argument("--angle", type=float, default=30.0)
    a = p.parse_args()
    out_png = a.out or Path("docs") / f"{scenario(a.run)['name']}.png"
    if a.kind == "cycles":
        print(json.dumps(cycles(a.run, out_png), indent=1))
        return
    stats, *pic = {"directional": lambda: directional(a.run, tuple(a.band)), "rim": lambda: rim(a.run),
                   "oriented": lambda: oriented(a.run, a.angle)}[a.kind]()
    picture(out_png, *pic)
    print(json.dumps(stats, indent=1))


if __name__ == "__main__":
    main()
