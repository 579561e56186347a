"""How far the exported φ of a run falls between consecutive snapshots, and its crack statistics.

    python3 scripts/phi_drops.py [--as-cache] OUT [OUT ...]

For each run folder: per pair of snapshots the largest fall of φ and the share of grid points
where it falls by more than 1e-6; then the last snapshot's fragments, skeleton length, AT2
crack length and mean band width (area with φ > 0.5 per unit skeleton length), and the wall time.
--as-cache: the same statistics of the last step's φ cache (checkpoint.pt) interpolated
bilinearly onto the export grid: what a run that exports its cached grid function (the
committed state) instead of the network's φ would show.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from vefrac import analysis
from vefrac.config import load_scenario


def snapshots(out: Path) -> list[tuple[np.ndarray, np.ndarray, tuple[float, float]]]:
    """(φ, mask, spacing) of every fields_*.vti of a run, in order."""
    import pyvista as pv

    frames = []
    for path in sorted(out.glob("fields_*.vti")):
        grid = pv.read(str(path))
        nx, ny, _ = grid.dimensions
        phi = np.asarray(grid.point_data["phi"]).reshape(ny, nx)
        mask = np.asarray(grid.point_data["mask"]).reshape(ny, nx).astype(bool)
        frames.append((phi, mask, tuple(grid.spacing[:2])))
    return frames


def drops(frames) -> list[tuple[float, float]]:
    """Per consecutive pair: (largest fall of φ, share of points falling by more than 1e-6)."""
    out = []
    for (a, mask, _), (b, _, _) in zip(frames, frames[1:]):
        fall = np.where(mask, a - b, 0.0)
        out.append((float(fall.max()), float((fall > 1e-6).sum() / mask.sum())))
    return out


def band_width(phi, mask, spacing) -> float:
    """Area with φ > 0.5 per unit skeleton length."""
    hx, hy = spacing
    area = float(((phi > 0.5) & mask).sum() * hx * hy)
    length = analysis.skeleton_length(phi, mask=mask, spacing=spacing)
    return area / length if length > 0 else float("nan")


def cache_on_export_grid(out: Path, like: np.ndarray) -> np.ndarray:
    """The last φ cache of a run (checkpoint.pt) on the export grid of its fields_*.vti."""
    import pyvista as pv
    import torch

    from vefrac.fields import bilinear

    payload = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    g = payload["cache_grid"]
    cache = payload["model"]["cache"].double()
    grid = pv.read(str(sorted(out.glob("fields_*.vti"))[-1]))
    nx, ny, _ = grid.dimensions
    x = torch.as_tensor(np.asarray(grid.points)[:, :2], dtype=torch.float64)
    phi = bilinear(cache[..., 0], x, origin=tuple(g["origin"]), spacing=tuple(g["spacing"]))
    return phi.numpy().reshape(ny, nx)


def main(argv: list[str]) -> None:
    as_cache = "--as-cache" in argv
    argv = [a for a in argv if a != "--as-cache"]
    for name in argv:
        out = Path(name)
        frames = snapshots(out)
        d = drops(frames)
        worst = max(d, key=lambda p: p[0]) if d else (0.0, 0.0)
        phi, mask, spacing = frames[-1]
        summary = json.loads((out / "summary.json").read_text())
        final = summary["final"]
        print(f"{out}: snapshots {len(frames)}  largest fall {worst[0]:.3g}  worst share falling "
              f"{max(p[1] for p in d) * 100 if d else 0:.2f} %  fragments {final['fragments']}  "
              f"skeleton {final['skeleton_length']:.3f}  AT2 {final['crack_length']:.3f}  band width "
              f"{band_width(phi, mask, spacing):.4f}  wall {summary['wall_time_s']:.0f} s")
        if as_cache:
            cached = np.where(mask, cache_on_export_grid(out, phi), 0.0)
            s = load_scenario(out / "config.yaml").fracture.length_scale
            stats = analysis.crack_statistics(cached, mask=mask, spacing=spacing, s=s)
            print(f"    as cache: fragments {stats['fragments']}  skeleton {stats['skeleton_length']:.3f}  "
                  f"band width {band_width(cached, mask, spacing):.4f}  largest φ {cached.max():.4f} "
                  f"(exported {phi.max():.4f})")
        for i, (fall, share) in enumerate(d):
            if fall > 1e-6:
                print(f"    {i:2d} -> {i + 1:2d}: fall {fall:.3g} at {share * 100:.2f} % of the points")


if __name__ == "__main__":
    main(sys.argv[1:])
