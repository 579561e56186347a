"""How far the exported φ of a run falls between consecutive snapshots, and its crack statistics.

    python3 scripts/phi_drops.py OUT [OUT ...]

For each run folder: per pair of snapshots the largest fall of φ and the share of grid points
where it falls by more than 1e-6; then the last snapshot's fragments, skeleton length, AT2
crack length and mean band width (area with φ > 0.5 per unit skeleton length), and the wall time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from vefrac import analysis


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


def main(argv: list[str]) -> None:
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
        for i, (fall, share) in enumerate(d):
            if fall > 1e-6:
                print(f"    {i:2d} -> {i + 1:2d}: fall {fall:.3g} at {share * 100:.2f} % of the points")


if __name__ == "__main__":
    main(sys.argv[1:])
