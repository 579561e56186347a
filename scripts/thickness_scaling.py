"""Cell area against local thickness in a finished run of a layer whose thickness varies
(scenarios/dish-thickness.yaml): the fitted exponent p of area ∝ h^p, against the anchors.

    python3 scripts/thickness_scaling.py RUN_FOLDER [RUN_FOLDER ...] [--picture docs/dish-thickness.png]

Cells are the fragments of the final φ (vefrac.analysis.fragments, φ ≤ 0.5, 4-connected, at least
(4s)²); each gets the mean of h(x) over its pixels (h from the run's resolved scenario). The fit is
least squares of log area on log h, over the cells that do not touch the domain's edge (the edge
cuts them short) and, for comparison, over all cells. Anchors: Groisman & Kaplan 1994 (spacing ∝ h,
area ∝ h²), Ma et al. 2019 (area ∝ h^(4/3)), this per-area model (ℓe ∝ h^(1/2): area ∝ h at a fixed
Griffith number, ∝ h^(2/3) in the dense-cracking limit at fixed Gc; docs/physical-inputs.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vefrac import config, layer  # noqa: E402
from vefrac.analysis import fragments  # noqa: E402
from vefrac.api import open_run  # noqa: E402
from vefrac.geometry import build_domain  # noqa: E402
from vefrac.thickness import build_thickness  # noqa: E402

ANCHORS = {"Groisman & Kaplan 1994": 2.0, "Ma et al. 2019": 4.0 / 3.0, "model, fixed Griffith number": 1.0,
           "model, dense cracking": 2.0 / 3.0}


def cells_of_run(folder: Path) -> dict:
    """Per-cell area, mean thickness and whether it touches the edge, for a finished run."""
    res = open_run(folder)
    scn = config.load_scenario(folder / "config.yaml")
    snap = res.snapshots[-1]
    s = scn.fracture.length_scale
    frag = fragments(snap.phi, mask=snap.mask, spacing=snap.spacing, min_area=(4 * s) ** 2)
    domain = build_domain(scn.domain)
    h = build_thickness(scn.material.thickness, domain, seed=scn.seed)(torch.as_tensor(snap.points)).numpy()
    h = h.reshape(snap.phi.shape)
    index = np.arange(1, frag.count + 1)
    mean_h = ndimage.mean(h, labels=frag.labels, index=index)
    rim = ndimage.binary_dilation(~snap.mask, iterations=max(1, int(round(2 * s / snap.spacing[0]))))
    touches = ndimage.maximum(rim, labels=frag.labels, index=index).astype(bool)
    return {"folder": str(folder), "backend": scn.solver.backend, "areas": frag.areas.tolist(),
            "mean_h": np.asarray(mean_h).tolist(), "edge": touches.tolist(), "s": s,
            "h_ref": layer.reference_thickness(scn.material.thickness),
            "wall_time_s": res.summary.get("wall_time_s"), "phi": snap.phi, "mask": snap.mask, "h": h,
            "labels": frag.labels, "extent": (snap.x[0], snap.x[-1], snap.y[0], snap.y[-1])}


def fit(h, area) -> dict:
    """Least squares log area = p log h + b: p, its standard error, n."""
    x, y = np.log(np.asarray(h)), np.log(np.asarray(area))
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        return {"exponent": float("nan"), "se": float("nan"), "n": n}
    A = np.stack([x, np.ones(n)], 1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    se = np.sqrt(resid @ resid / (n - 2) / ((x - x.mean()) ** 2).sum())
    return {"exponent": float(coef[0]), "se": float(se), "n": n, "intercept": float(coef[1])}


def picture(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs) + 1, figsize=(4.2 * (len(runs) + 1), 4.2))
    for ax, run in zip(axes, runs):
        phi = np.where(run["mask"], run["phi"], np.nan)
        ax.imshow(phi, origin="lower", extent=run["extent"], cmap="gray_r", vmin=0, vmax=1)
        cs = ax.contour(np.where(run["mask"], run["h"], np.nan), levels=5, origin="lower", extent=run["extent"],
                        cmap="viridis", linewidths=0.8)
        ax.clabel(cs, fmt=lambda v: f"{v * 1e3:.1f} mm" if run["h_ref"] < 0.1 else f"{v:.2g}", fontsize=7)
        ax.set_title(f"{run['backend'].upper()}: φ and h(x) contours\n{len(run['areas'])} cells", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    ax = axes[-1]
    for run, marker in zip(runs, "os^"):
        h, a, edge = (np.asarray(run[k]) for k in ("mean_h", "areas", "edge"))
        ax.loglog(h[~edge] / run["h_ref"], a[~edge], marker, color="C0" if run["backend"] == "fem" else "C3",
                  label=f"{run['backend']} interior cells (p = {run['fit']['exponent']:.2f} ± {run['fit']['se']:.2f})")
        ax.loglog(h[edge] / run["h_ref"], a[edge], marker, mfc="none",
                  color="C0" if run["backend"] == "fem" else "C3", label=f"{run['backend']} cells on the rim")
    ref = runs[0]
    interior = ~np.asarray(ref["edge"])
    c = np.linspace(1, max(np.asarray(ref["mean_h"]) / ref["h_ref"]), 20)
    a0 = np.exp(np.mean(np.log(np.asarray(ref["areas"])[interior]))) if interior.any() else np.mean(ref["areas"])
    c0 = np.exp(np.mean(np.log(np.asarray(ref["mean_h"])[interior] / ref["h_ref"]))) if interior.any() else 1.0
    for (name, p), style in zip(ANCHORS.items(), ["--", "-.", ":", (0, (1, 3))]):
        ax.loglog(c, a0 * (c / c0) ** p, linestyle=style, color="grey", lw=1, label=f"{name}: h^{p:.2g}")
    ax.set_xlabel("mean thickness of the cell / h_ref")
    ax.set_ylabel("cell area")
    ax.legend(fontsize=6.5)
    ax.set_title("cell area against local thickness", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--picture", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    runs = [cells_of_run(folder) for folder in args.runs]
    report = []
    for run in runs:
        h, a, edge = (np.asarray(run[k]) for k in ("mean_h", "areas", "edge"))
        run["fit"] = fit(h[~edge], a[~edge])
        run["fit_all"] = fit(h, a)
        print(f"{run['folder']} ({run['backend']}, {run['wall_time_s']:.0f} s): {len(a)} cells, "
              f"{int((~edge).sum())} interior; interior p = {run['fit']['exponent']:.2f} ± {run['fit']['se']:.2f}, "
              f"all p = {run['fit_all']['exponent']:.2f} ± {run['fit_all']['se']:.2f}")
        for hi, ai, ei in sorted(zip(h / run["h_ref"], a, edge)):
            print(f"   h/h_ref {hi:5.2f}  area {ai:.4g}{'  (rim)' if ei else ''}")
        report.append({k: run[k] for k in ("folder", "backend", "areas", "mean_h", "edge", "h_ref", "s", "fit",
                                           "fit_all", "wall_time_s")})
    if args.picture:
        picture(runs, args.picture)
        print(f"picture: {args.picture}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
