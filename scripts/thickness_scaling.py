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
from vefrac.analysis import crack_skeleton, fragments  # noqa: E402
from vefrac.api import open_run  # noqa: E402
from vefrac.geometry import build_domain  # noqa: E402
from vefrac.thickness import build_thickness  # noqa: E402

ANCHORS = {"Groisman & Kaplan 1994": 2.0, "Ma et al. 2019": 4.0 / 3.0, "model, fixed Griffith number": 1.0,
           "model, dense cracking": 2.0 / 3.0}


def cells_of_run(folder: Path, *, profile: str | None = None) -> dict:
    """Per-cell area, mean thickness and whether it touches the edge, for a finished run.
    profile: a material.thickness (YAML) to measure h with instead of the run's own (the control:
    a uniform layer measured against the dish's profile shows what the rim alone does)."""
    res = open_run(folder)
    scn = config.load_scenario(folder / "config.yaml")
    snap = res.snapshots[-1]
    s = scn.fracture.length_scale
    frag = fragments(snap.phi, mask=snap.mask, spacing=snap.spacing, min_area=(4 * s) ** 2)
    domain = build_domain(scn.domain)
    spec = scn.material.thickness
    if profile is not None:
        spec = config.load_scenario(folder / "config.yaml", [f"material.thickness={profile}"]).material.thickness
    h = build_thickness(spec, domain, seed=scn.seed)(torch.as_tensor(snap.points)).numpy()
    h = h.reshape(snap.phi.shape)
    index = np.arange(1, frag.count + 1)
    mean_h = ndimage.mean(h, labels=frag.labels, index=index)
    rim = ndimage.binary_dilation(~snap.mask, iterations=max(1, int(round(2 * s / snap.spacing[0]))))
    touches = ndimage.maximum(rim, labels=frag.labels, index=index).astype(bool)
    skeleton = crack_skeleton(snap.phi, mask=snap.mask)
    return {"folder": str(folder), "backend": scn.solver.backend, "areas": frag.areas.tolist(),
            "skeleton": skeleton,
            "mean_h": np.asarray(mean_h).tolist(), "edge": touches.tolist(), "s": s,
            "h_ref": layer.reference_thickness(spec),
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


def crack_spacing_by_thickness(runs: list[dict], *, bins: int = 4) -> dict:
    """A cross-check that counts no cells: in bins of h/h_ref (over the domain's pixels), the crack
    spacing d = 2 A / L (A the bin's area, L its skeleton length, pixels × spacing, plus half the
    free rim), and the
    exponent q of d ∝ h^q fitted over the bins (area ∝ h^(2q))."""
    c = np.concatenate([(r["h"] / r["h_ref"])[r["mask"]] for r in runs])
    # the free rim counts as half a crack (as d_len in docs/validation.md): it bounds cells like one
    sk = np.concatenate([(r["skeleton"] + 0.5 * (r["mask"] & ~ndimage.binary_erosion(r["mask"])))[r["mask"]]
                         for r in runs])
    pixel = runs[0]["extent"][1] - runs[0]["extent"][0]
    pixel /= runs[0]["phi"].shape[1] - 1
    edges = np.quantile(c, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, c, side="right") - 1, 0, bins - 1)
    mean_c = np.array([c[which == b].mean() for b in range(bins)])
    spacing = np.array([2 * (which == b).sum() * pixel**2 / max(sk[which == b].sum() * pixel, 1e-300)
                        for b in range(bins)])
    q = fit(mean_c, spacing)
    return {"mean_h": mean_c.tolist(), "spacing": spacing.tolist(), "exponent": q["exponent"], "se": q["se"],
            "area_exponent": 2 * q["exponent"], "area_se": 2 * q["se"]}


def pooled(runs: list[dict], backend: str) -> dict:
    """The cells of every run of one backend, and the fits over them (interior cells, all cells)."""
    mine = [r for r in runs if r["backend"] == backend]
    h = np.concatenate([np.asarray(r["mean_h"]) / r["h_ref"] for r in mine])
    a = np.concatenate([np.asarray(r["areas"]) for r in mine])
    edge = np.concatenate([np.asarray(r["edge"], dtype=bool) for r in mine])
    return {"backend": backend, "runs": len(mine), "h": h, "area": a, "edge": edge,
            "fit": fit(h[~edge], a[~edge]), "fit_all": fit(h, a), "spacing": crack_spacing_by_thickness(mine)}


def picture(runs: list[dict], pools: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [next(r for r in runs if r["backend"] == p["backend"]) for p in pools]
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(4.2 * (len(shown) + 1), 4.2))
    for ax, run in zip(axes, shown):
        ax.imshow(np.where(run["mask"], run["phi"], np.nan), origin="lower", extent=run["extent"], cmap="gray_r",
                  vmin=0, vmax=1)
        cs = ax.contour(np.where(run["mask"], run["h"], np.nan), levels=5, origin="lower", extent=run["extent"],
                        cmap="viridis", linewidths=0.8)
        ax.clabel(cs, fmt=lambda v: f"{v * 1e3:.1f} mm" if run["h_ref"] < 0.1 else f"{v:.2g}", fontsize=7)
        ax.set_title(f"{run['backend'].upper()} ({Path(run['folder']).name}): φ, h(x) contours\n"
                     f"{len(run['areas'])} cells", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    ax = axes[-1]
    for pool, colour in zip(pools, ("C0", "C3")):
        h, a, edge = pool["h"], pool["area"], pool["edge"]
        f, fa = pool["fit"], pool["fit_all"]
        ax.loglog(h[~edge], a[~edge], "o", color=colour,
                  label=f"{pool['backend']}, interior ({pool['runs']} runs): p = {f['exponent']:.2f} ± {f['se']:.2f}")
        ax.loglog(h[edge], a[edge], "o", mfc="none", color=colour,
                  label=f"{pool['backend']}, touching the rim; all: p = {fa['exponent']:.2f} ± {fa['se']:.2f}")
        c = np.linspace(h.min(), h.max(), 20)
        ax.loglog(c, np.exp(fa["intercept"]) * c ** fa["exponent"], "-", color=colour, lw=1)
    h, a = pools[0]["h"], pools[0]["area"]
    c = np.linspace(h.min(), h.max(), 20)
    a0, c0 = np.exp(np.mean(np.log(a))), np.exp(np.mean(np.log(h)))
    for (name, p), style in zip(ANCHORS.items(), ["--", "-.", ":", (0, (1, 3))]):
        ax.loglog(c, a0 * (c / c0) ** p, linestyle=style, color="grey", lw=1, label=f"{name}: h^{p:.2g}")
    ax.set_xlabel("mean thickness of the cell / h_ref")
    ax.set_ylabel("cell area")
    ax.legend(fontsize=6)
    ax.set_title("cell area against local thickness", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--picture", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--profile", help="measure h with this material.thickness (YAML), e.g. the dish's on a flat run")
    args = p.parse_args(argv)
    runs = [cells_of_run(folder, profile=args.profile) for folder in args.runs]
    for run in runs:
        h, a, edge = (np.asarray(run[k]) for k in ("mean_h", "areas", "edge"))
        run["fit"], run["fit_all"] = fit(h[~edge], a[~edge]), fit(h, a)
        print(f"{run['folder']} ({run['backend']}, {run['wall_time_s']:.0f} s): {len(a)} cells, "
              f"{int((~edge).sum())} interior, h/h_ref {h.min() / run['h_ref']:.2f}-{h.max() / run['h_ref']:.2f}; "
              f"interior p = {run['fit']['exponent']:.2f} ± {run['fit']['se']:.2f}, "
              f"all p = {run['fit_all']['exponent']:.2f} ± {run['fit_all']['se']:.2f}")
    pools = [pooled(runs, b) for b in dict.fromkeys(r["backend"] for r in runs)]
    for pool in pools:
        f, fa = pool["fit"], pool["fit_all"]
        print(f"pooled {pool['backend']} ({pool['runs']} runs, {len(pool['area'])} cells, "
              f"{int((~pool['edge']).sum())} interior): interior p = {f['exponent']:.2f} ± {f['se']:.2f}, "
              f"all p = {fa['exponent']:.2f} ± {fa['se']:.2f}")
        sp = pool["spacing"]
        print("   crack spacing 2A/L by thickness bin: " + ", ".join(
            f"h/h_ref {c:.2f}: {d:.3g}" for c, d in zip(sp["mean_h"], sp["spacing"]))
            + f"; d ∝ h^{sp['exponent']:.2f} ± {sp['se']:.2f}, "
            f"so area ∝ h^{sp['area_exponent']:.2f} ± {sp['area_se']:.2f}")
    if args.picture:
        picture(runs, pools, args.picture)
        print(f"picture: {args.picture}")
    if args.json:
        keep = ("folder", "backend", "areas", "mean_h", "edge", "h_ref", "s", "fit", "fit_all", "wall_time_s")
        pools_out = [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in pool.items()} for pool in pools]
        args.json.write_text(json.dumps({"runs": [{k: r[k] for k in keep} for r in runs], "pooled": pools_out},
                                        indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
