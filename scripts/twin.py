"""Twin experiment for `vefrac invert`: a known G(x), its crack picture, and G inferred from the picture.

    python scripts/twin.py [--scenario scenarios/twin-mud.yaml] [--out outputs/twin] [--seeds 3]
                           [--blur 1.0] [--noise 0.05] [--pixels 400] [--set KEY=VALUE ...]
                           [--frames N] [--displacement [--displacement-noise 0.05] [--displacement-weight 1]
                            [--displacement-correlation 0]]

With --frames N > 1 the inversion sees a time-lapse instead of one picture: N frames rendered
from the truth's snapshots, evenly spread from its first cracked snapshot (a tenth of the final
crack length) to the end (the last frame is the one-picture twin's picture, noise included), in
out/frames with times.txt, inverted with `vefrac invert --images` into out/invert-Nframes.
`--analyse-only --frames N` compares that
one; twin.json then also holds the overlap at every frame. `--frames N --compare-picture FILE.png`
draws the true G beside the one-picture and the N-frame inversions already in --out;
`--frames N --uncertainty-picture FILE.png [--crack-noise T]` draws that inversion's error against
its uncertainty map (log_G_sigma), and `--analyse-only --crack-noise T` scores the map at τ = T
(twin.json → uncertainty: coverage of ±2σ near and far from the cracks, and the τ the twin calls for).

With --displacement the inversion also sees the truth's displacement at the last frame's time (its
last snapshot's point data `u`), as out/displacement.npz (ux, uy, origin, spacing; NaN off the
layer) with Gaussian noise of `--displacement-noise` times its rms (white, or correlated over
`--displacement-correlation` grid spacings, as image correlation's errors are), weighted by
`--displacement-weight` (invert.displacement.weight); it inverts into out/invert-displacement (or
out/invert-Nframes-displacement) and writes twin-displacement.json (twin-Nframes-displacement.json),
which holds summary.json's inversion.displacement as well.

With --truth-g weak-lines the truth's toughness is not the scenario's smooth log-normal field but a
sharp one (`weak_lines_toughness`): a mild log-normal background (cv 0.2) crossed by straight weak
lines about 2 s wide where G falls to 0.35× (written as out/truth_G.png, an image toughness); the
inversion is told only its mean (invert.prior.mean).

1. Forward run with the scenario's own (known, heterogeneous) toughness: the truth.
2. Render its final crack pattern as a grey picture (dark cracks on light mud), blur it by
   `--blur` pixels and add Gaussian noise of standard deviation `--noise` (grey levels in [0, 1]).
3. `vefrac invert` from that picture alone (the true G is never read; only its mean is the prior).
4. Compare: the correlation between the true and the inferred log G over the whole layer and
   near the observed cracks (within `--near` s of them), and the overlap (tolerant IoU) of the
   re-simulated and the observed cracks. Also the distance-only ceiling: the correlation that the
   best G depending only on the distance to the nearest observed crack would reach (what one
   final picture can say at most by where the cracks are, not along them). Writes twin.json and
   twin.png in --out; `--analyse-only` redoes this step on the runs already there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vefrac import export  # noqa: E402
from vefrac.config import load_scenario  # noqa: E402


def _vefrac(*args: str) -> None:
    cmd = [sys.executable, "-m", "vefrac", *args]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def _read_vti(path: Path) -> dict:
    import pyvista as pv

    data = pv.read(str(path))
    ny, nx = data.dimensions[1], data.dimensions[0]
    return {k: np.asarray(data.point_data[k]).reshape(ny, nx, -1).squeeze() for k in data.point_data.keys()}


WEAK_LINES = 6  # straight weak lines across the layer
WEAK_FACTOR = 0.35  # G on a line's centre, × the background
WEAK_WIDTH_S = 1.0  # the lines' Gaussian half-width (σ of the profile), in s


def weak_lines_toughness(scn, out: Path, *, seed: int, pixels: int = 400) -> list[str]:
    """A sharp, non-Gaussian truth: out/truth_G.png and the overrides that make it the toughness
    (an image toughness over the domain's box, mean G kept at the scenario's), plus
    invert.prior.mean, the only thing of it the inversion is told."""
    from PIL import Image

    from vefrac.fields import gaussian_random_field

    (xmin, ymin), (xmax, ymax) = _box(scn)
    g_mean, s = scn.fracture.toughness.mean, scn.fracture.length_scale
    rng = np.random.default_rng(seed + 4242)
    h = max(xmax - xmin, ymax - ymin) / (pixels - 1)
    ny, nx = int(round((ymax - ymin) / h)) + 1, int(round((xmax - xmin) / h)) + 1
    y, x = np.meshgrid(ymin + h * np.arange(ny), xmin + h * np.arange(nx), indexing="ij")
    sigma = np.sqrt(np.log1p(0.2**2))
    background = np.exp(sigma * gaussian_random_field((ny, nx), spacing=h, correlation_length=0.1, rng=rng))
    weak = np.zeros((ny, nx))
    for _ in range(WEAK_LINES):  # a line through a random point at a random angle
        px, py = rng.uniform(xmin, xmax), rng.uniform(ymin, ymax)
        angle = rng.uniform(0, np.pi)
        d = np.abs((x - px) * np.sin(angle) - (y - py) * np.cos(angle))
        weak = np.maximum(weak, np.exp(-0.5 * (d / (WEAK_WIDTH_S * s)) ** 2))
    g = background * (1 - (1 - WEAK_FACTOR) * weak)
    g *= g_mean / g.mean()
    lo, hi = float(g.min()), float(g.max())
    path = out / "truth_G.png"
    grey = np.round((g - lo) / (hi - lo) * 65535).astype(np.uint16)[::-1]  # row 0: largest y
    Image.fromarray(grey).save(path)
    return [f"fracture.toughness={{kind: image, image: {path.resolve()}, range: [{lo!r}, {hi!r}]}}",
            f"invert.prior.mean={g_mean!r}"]


def _box(scn) -> tuple[tuple[float, float], tuple[float, float]]:
    from vefrac.geometry import build_domain

    xmin, ymin, xmax, ymax = build_domain(scn.domain).bounds
    return (xmin, ymin), (xmax, ymax)


def render(phi: np.ndarray, mask: np.ndarray, *, pixels: int, blur: float, noise: float, seed: int) -> np.ndarray:
    """A grey picture (row 0 = top = largest y) of the cracks: dark where φ is high, light mud."""
    from scipy import ndimage

    ny, nx = phi.shape
    zoom = pixels / max(ny, nx)
    grey = 0.85 - 0.7 * np.clip(phi, 0, 1)
    grey = np.where(mask, grey, 0.3)
    grey = ndimage.zoom(grey, zoom, order=1)[::-1]
    if blur > 0:
        grey = ndimage.gaussian_filter(grey, blur)
    grey = grey + noise * np.random.default_rng(seed).standard_normal(grey.shape)
    return np.clip(grey, 0, 1)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def render_frames(out: Path, *, frames: int, pixels: int, blur: float, noise: float, seed: int) -> Path:
    """out/frames: `frames` pictures of the truth's snapshots from its first crack to the end, and
    times.txt. The last frame is the one-picture twin's picture (same noise draw)."""
    from PIL import Image

    rows = (out / "truth" / "history.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    table = [dict(zip(header, map(float, r.split(",")))) for r in rows[1:]]
    snaps = sorted((out / "truth").glob("fields_*.vti"))
    # the first frame: the first snapshot with a tenth of the final crack length (younger cracks are
    # faint, diffuse damage; a picture of them shows shading rather than cracks)
    first = next(i for i, r in enumerate(table) if r["skeleton_length"] >= 0.1 * table[-1]["skeleton_length"])
    chosen = np.unique(np.round(np.linspace(first, len(snaps) - 1, frames)).astype(int))
    folder = out / "frames"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, i in enumerate(chosen):
        arrays = _read_vti(snaps[i])
        last = k == len(chosen) - 1
        picture = render(arrays["phi"], arrays["mask"].astype(bool), pixels=pixels, blur=blur, noise=noise,
                         seed=seed if last else seed + 1 + k)
        Image.fromarray((picture * 255).round().astype(np.uint8)).save(folder / f"frame_{k}.png")
        lines.append(f"frame_{k}.png {table[i]['t']!r}")
    (folder / "times.txt").write_text("\n".join(lines) + "\n")
    return folder


def displacement_noise(shape: tuple[int, ...], *, correlation: float, seed: int) -> np.ndarray:
    """Gaussian noise of unit standard deviation per component, (ny, nx, 2): white, or (correlation
    > 0, in grid spacings) white noise smoothed by a Gaussian of that standard deviation and
    rescaled to unit variance, like image correlation's errors, which are shared within a subset."""
    from scipy.ndimage import gaussian_filter

    white = np.random.default_rng(seed + 77).standard_normal(shape)
    if correlation <= 0:
        return white
    smooth = np.stack([gaussian_filter(white[..., k], correlation, mode="wrap") for k in range(shape[-1])], axis=-1)
    return smooth / smooth.std(axis=(0, 1), keepdims=True)


def write_displacement(out: Path, *, noise: float, seed: int, correlation: float = 0.0) -> Path:
    """out/displacement.npz: the truth's u at its last snapshot (the last frame's time), NaN off the
    layer, plus Gaussian noise of `noise` times its rms (white, or correlated over `correlation`
    grid spacings: displacement_noise)."""
    import pyvista as pv

    last = sorted((out / "truth").glob("fields_*.vti"))[-1]
    arrays, image = _read_vti(last), pv.read(str(last))
    u, mask = arrays["u"][..., :2], arrays["mask"].astype(bool)
    rms = float(np.sqrt((u[mask] ** 2).sum(-1).mean()))
    u = u + noise * rms * displacement_noise(u.shape, correlation=correlation, seed=seed)
    u = np.where(mask[..., None], u, np.nan)
    path = out / "displacement.npz"
    np.savez(path, ux=u[..., 0], uy=u[..., 1], origin=np.asarray(image.origin[:2]),
             spacing=np.asarray(image.spacing[:2]))
    return path


def twin(scenario: Path, out: Path, *, seeds: int, blur: float, noise: float, pixels: int, near: float,
         overrides: list[str], reuse_truth: bool = False, frames: int = 1, displacement: float | None = None,
         displacement_weight: float = 1.0, displacement_correlation: float = 0.0) -> dict:
    """displacement: None, or the noise (× rms) of the truth's displacement given to the inversion;
    displacement_correlation: that noise's correlation length in grid spacings (0: white)."""
    from PIL import Image

    scn = load_scenario(scenario, overrides)
    out.mkdir(parents=True, exist_ok=True)
    sets = [a for o in overrides for a in ("--set", o)]
    started = time.perf_counter()
    if not (reuse_truth and (out / "truth" / "summary.json").is_file()):
        _vefrac("run", str(scenario), "--out", str(out / "truth"), "--overwrite", "--quiet", *sets)
    truth_time = time.perf_counter() - started
    truth = _read_vti(sorted((out / "truth").glob("fields_*.vti"))[-1])
    picture = render(truth["phi"], truth["mask"].astype(bool), pixels=pixels, blur=blur, noise=noise, seed=scn.seed)
    image = out / "cracks.png"
    Image.fromarray((picture * 255).round().astype(np.uint8)).save(image)

    started = time.perf_counter()
    name = _invert_name(frames, displacement is not None)
    if displacement is not None:
        path = write_displacement(out, noise=displacement, seed=scn.seed, correlation=displacement_correlation)
        sets += ["--displacement", str(path), "--set", f"invert.displacement.weight={displacement_weight}"]
    if frames > 1:
        folder = render_frames(out, frames=frames, pixels=pixels, blur=blur, noise=noise, seed=scn.seed)
        _vefrac("invert", str(scenario), "--images", str(folder), "--out", str(out / name),
                "--overwrite", *sets, "--set", f"invert.seeds={seeds}")
    else:
        _vefrac("invert", str(scenario), "--image", str(image), "--out", str(out / name), "--overwrite",
                *sets, "--set", f"invert.seeds={seeds}")
    invert_time = time.perf_counter() - started
    return analyse(out, s=scn.fracture.length_scale, near=near, frames=frames, displacement=displacement is not None,
                   extra={"scenario": str(scenario), "overrides": overrides, "seeds": seeds, "blur_px": blur,
                          "noise": noise, "pixels": pixels, "displacement_noise": displacement,
                          "displacement_weight": displacement_weight if displacement is not None else None,
                          "displacement_correlation": displacement_correlation if displacement is not None else None,
                          "truth_wall_s": truth_time, "invert_wall_s": invert_time})


def distance_only_ceiling(true_log: np.ndarray, dist: np.ndarray, region: np.ndarray, *, width: float) -> np.ndarray:
    """The best a G that depends only on the distance to the nearest observed crack can do: the
    mean of the true log G over bins of that distance (bins `width` wide), as a field."""
    bins = np.floor(dist / width).astype(int)
    means = np.zeros(bins.max() + 1)
    for b in np.unique(bins[region]):
        means[b] = true_log[region & (bins == b)].mean()
    return means[bins]


def _invert_name(frames: int, displacement: bool = False) -> str:
    return ("invert" if frames <= 1 else f"invert-{frames}frames") + ("-displacement" if displacement else "")


def analyse(out: Path, *, s: float, near: float, extra: dict | None = None, frames: int = 1,
            displacement: bool = False, crack_noise: float | None = None) -> dict:
    """Compare the truth (out/truth) with the inversion (out/invert, or out/invert-Nframes; with
    displacement, out/invert[-Nframes]-displacement); writes twin.json and twin.png
    (twin-Nframes.json and .png; twin[-Nframes]-displacement.json and .png) in out."""
    from scipy import ndimage

    name = _invert_name(frames, displacement)
    truth = _read_vti(sorted((out / "truth").glob("fields_*.vti"))[-1])
    inferred = _read_vti(out / name / "inferred.vti")
    summary = json.loads((out / name / "summary.json").read_text())
    material = inferred["material"].astype(bool) & truth["mask"].astype(bool)
    spacing = summary_spacing(out / name / "inferred.vti")
    dist = ndimage.distance_transform_edt(~inferred["observed_skeleton"].astype(bool), sampling=spacing[::-1])
    close = material & (dist <= near * s)
    true_log, inferred_log = np.log(truth["G"]), inferred["log_G"]
    ceiling = distance_only_ceiling(true_log, dist, material, width=s / 4)
    result = dict(extra or {}) | {
        "near_s": near,
        "correlation_all": correlation(true_log[material], inferred_log[material]),
        "correlation_near_cracks": correlation(true_log[close], inferred_log[close]),
        "near_fraction": float(close.sum() / material.sum()),
        "distance_only_ceiling_all": correlation(true_log[material], ceiling[material]),
        "distance_only_ceiling_near_cracks": correlation(true_log[close], ceiling[close]),
        "overlap": summary["inversion"]["overlap"], "precision": summary["inversion"]["precision"],
        "recall": summary["inversion"]["recall"], "per_seed": summary["inversion"].get("per_seed"),
        "truth_fragments": json.loads((out / "truth" / "summary.json").read_text())["final"]["fragments"],
        "resimulated_fragments": summary["final"]["fragments"],
        "mean_log_G_std": summary["inversion"]["mean_log_G_std"],
        "invert_wall_time_s": summary["inversion"]["wall_time_s"],
        "frame_times": summary["inversion"].get("times"),
        "overlap_per_frame": summary["inversion"].get("overlap_per_frame"),
        "first_crack_time": summary["inversion"].get("first_crack_time"),
        "displacement": summary["inversion"].get("displacement"),
    }
    unc = summary["inversion"].get("uncertainty")
    if unc is not None:
        result["uncertainty"] = uncertainty_scores(out / name / "inferred.vti", unc, true_log=true_log,
                                                   inferred_log=inferred_log, skeleton=inferred["observed_skeleton"],
                                                   close=close, material=material, s=s, crack_noise=crack_noise)
    if "log_G_std" in inferred:
        std = inferred["log_G_std"]
        result["log_G_std_near_cracks"] = float(std[close].mean())
        result["log_G_std_far"] = float(std[material & ~close].mean())
    stem = ("twin" if frames <= 1 else f"twin-{frames}frames") + ("-displacement" if displacement else "")
    export.write_json(out / f"{stem}.json", result)
    _picture(out / f"{stem}.png", truth=true_log, inferred=inferred_log, std=inferred.get("log_G_std"),
             observed=inferred["phi_observed"], skeleton=inferred["observed_skeleton"].astype(bool),
             model=inferred["phi_model"], material=material,
             extent=_extent(out / name / "inferred.vti"), result=result)
    return result


def uncertainty_scores(path: Path, unc: dict, *, true_log, inferred_log, skeleton, close, material, s: float,
                       crack_noise: float | None) -> dict:
    """How well the posterior std of log G (vefrac/posterior.py) describes the inversion's actual
    error: the share of points whose true log G lies within ±2σ of the inferred one, near the
    cracks and far from them, and the mean σ there, at the crack noise τ the run used (or
    `crack_noise`); and the τ this twin itself calls for (χ² calibration near the cracks)."""
    from vefrac import posterior

    grid = _vti_grid(path)
    tau = crack_noise or unc["crack_noise"]
    kw = {"s": s, "prior_std": unc["prior_std"], "correlation_length": unc["correlation_length"]}
    skeleton = skeleton.astype(bool)
    sigma = posterior.posterior_std(skeleton, grid, error=tau, **kw)
    residual = inferred_log - true_log
    far = material & ~close
    inside = np.abs(residual) <= 2 * sigma
    return {"crack_noise": tau, "prior_std": unc["prior_std"], "correlation_length": unc["correlation_length"],
            "coverage_2sigma_near_cracks": float(inside[close].mean()), "coverage_2sigma_far": float(inside[far].mean()),
            "mean_sigma_near_cracks": float(sigma[close].mean()), "mean_sigma_far": float(sigma[far].mean()),
            "rms_error_near_cracks": float(np.sqrt(np.mean(residual[close] ** 2))),
            "rms_error_far": float(np.sqrt(np.mean(residual[far] ** 2))),
            "calibrated_crack_noise": posterior.calibrate_noise(residual, close, skeleton, grid, **kw)}


def _vti_grid(path: Path):
    """The vefrac Grid of a .vti file's points."""
    import pyvista as pv

    from vefrac.geometry import Grid

    data = pv.read(str(path))
    return Grid(tuple(data.origin[:2]), tuple(data.spacing[:2]), (data.dimensions[1], data.dimensions[0]))


def summary_spacing(path: Path) -> tuple[float, float]:
    import pyvista as pv

    return tuple(pv.read(str(path)).spacing[:2])


def _extent(path: Path):
    import pyvista as pv

    b = pv.read(str(path)).bounds
    return (b[0], b[1], b[2], b[3])


def _picture(path, *, truth, inferred, std, observed, skeleton, model, material, extent, result) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("true log G", truth, "viridis"), ("inferred log G", inferred, "viridis")]
    if std is not None:
        panels.append(("std of log G over seeds", std, "magma"))
    panels += [("observed cracks", observed, "gray_r"), ("re-simulated with inferred G", model, "gray_r")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.6), constrained_layout=True)
    lo, hi = np.percentile(truth[material], [1, 99])
    for ax, (title, values, cmap) in zip(axes, panels):
        shown = np.ma.masked_array(values, mask=~material)
        kw = {"vmin": lo, "vmax": hi} if "log G" in title and "std" not in title else {}
        if cmap == "gray_r":
            kw = {"vmin": 0, "vmax": 1}
        im = ax.imshow(shown, origin="lower", extent=extent, cmap=cmap, **kw)
        if "log G" in title:  # the observed centre lines, thin
            cracks = np.zeros(observed.shape + (4,))
            cracks[..., :3] = 1.0
            cracks[..., 3] = np.where(skeleton, 0.9, 0.0)
            ax.imshow(cracks, origin="lower", extent=extent, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.7)
    fig.suptitle(f"twin experiment: corr(log G) all {result['correlation_all']:.2f}, near cracks "
                 f"{result['correlation_near_cracks']:.2f}; overlap {result['overlap']:.2f}", fontsize=10)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def uncertainty_picture(out: Path, frames: int, path: Path, *, s: float, crack_noise: float | None = None) -> None:
    """The inversion's error against its uncertainty map: true and inferred log G, the posterior
    std σ, and where the truth lies outside ±2σ (red) on the layer, the observed centre lines
    drawn in white."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vefrac import posterior

    name = _invert_name(frames)
    truth = np.log(_read_vti(sorted((out / "truth").glob("fields_*.vti"))[-1])["G"])
    inferred = _read_vti(out / name / "inferred.vti")
    unc = json.loads((out / name / "summary.json").read_text())["inversion"]["uncertainty"]
    grid = _vti_grid(out / name / "inferred.vti")
    skeleton = inferred["observed_skeleton"].astype(bool)
    tau = crack_noise or unc["crack_noise"]
    sigma = posterior.posterior_std(skeleton, grid, s=s, prior_std=unc["prior_std"],
                                    correlation_length=unc["correlation_length"], error=tau)
    material = inferred["material"].astype(bool)
    outside = material & (np.abs(inferred["log_G"] - truth) > 2 * sigma)
    lo, hi = np.percentile(truth[material], [1, 99])
    extent = _extent(out / name / "inferred.vti")
    panels = [("true log G", truth, "viridis", (lo, hi)), ("inferred log G", inferred["log_G"], "viridis", (lo, hi)),
              (f"posterior std σ of log G (τ = {tau:g})", sigma, "magma", (None, None)),
              (f"truth outside ±2σ: {outside[material].mean():.0%} of the layer", outside.astype(float), "Reds", (0, 1))]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.8), constrained_layout=True)
    lines = np.zeros(skeleton.shape + (4,))
    lines[..., :3], lines[..., 3] = 1.0, np.where(skeleton, 0.9, 0.0)
    for ax, (title, values, cmap, (vmin, vmax)) in zip(axes, panels):
        im = ax.imshow(np.ma.masked_array(values, mask=~material), origin="lower", extent=extent, cmap=cmap,
                       vmin=vmin, vmax=vmax)
        ax.imshow(lines if cmap != "Reds" else lines * [0, 0, 0, 1], origin="lower", extent=extent,
                  interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if cmap != "Reds":
            fig.colorbar(im, ax=ax, shrink=0.7)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def compare_picture(out: Path, frames: int, path: Path) -> None:
    """True log G beside the one-picture and the `frames`-frame inversions of the same twin (both
    already analysed in `out`), with their correlations: what the time-lapse adds, in one picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = np.log(_read_vti(sorted((out / "truth").glob("fields_*.vti"))[-1])["G"])
    panels = [("true log G", truth, None)]
    for name, stem, label in (("invert", "twin", "one picture"),
                              (_invert_name(frames), f"twin-{frames}frames", f"{frames} frames")):
        result = json.loads((out / f"{stem}.json").read_text())
        inferred = _read_vti(out / name / "inferred.vti")
        panels.append((f"{label}: corr. {result['correlation_near_cracks']:.2f} near cracks, "
                       f"{result['correlation_all']:.2f} all", inferred["log_G"], inferred["observed_skeleton"]))
    material = _read_vti(out / "invert" / "inferred.vti")["material"].astype(bool)
    lo, hi = np.percentile(truth[material], [1, 99])
    extent = _extent(out / "invert" / "inferred.vti")
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9), constrained_layout=True)
    for ax, (title, values, skeleton) in zip(axes, panels):
        im = ax.imshow(np.ma.masked_array(values, mask=~material), origin="lower", extent=extent,
                       cmap="viridis", vmin=lo, vmax=hi)
        if skeleton is not None:  # the observed (last frame's) centre lines, thin
            lines = np.zeros(skeleton.shape + (4,))
            lines[..., :3], lines[..., 3] = 1.0, np.where(skeleton > 0, 0.9, 0.0)
            ax.imshow(lines, origin="lower", extent=extent, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.75, label="log G")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default=str(ROOT / "scenarios" / "twin-mud.yaml"))
    p.add_argument("--out", default=str(ROOT / "outputs" / "twin"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--blur", type=float, default=1.0, help="Gaussian blur of the picture, in pixels")
    p.add_argument("--noise", type=float, default=0.05, help="noise standard deviation in grey levels")
    p.add_argument("--pixels", type=int, default=400, help="picture size along its longest side")
    p.add_argument("--near", type=float, default=3.0, help="'near the cracks': within this many s")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--analyse-only", action="store_true", help="only compare the runs already in --out")
    p.add_argument("--reuse-truth", action="store_true", help="keep the truth run already in --out")
    p.add_argument("--frames", type=int, default=1, help="invert from a time-lapse of this many frames (1: one picture)")
    p.add_argument("--displacement", action="store_true",
                   help="also give the inversion the truth's displacement at the last frame's time")
    p.add_argument("--displacement-noise", type=float, default=0.05, help="its noise, times its rms")
    p.add_argument("--displacement-weight", type=float, default=1.0, help="invert.displacement.weight")
    p.add_argument("--displacement-correlation", type=float, default=0.0,
                   help="the displacement noise's correlation length in grid spacings (0: white)")
    p.add_argument("--compare-picture", metavar="PNG",
                   help="with --frames N: draw the true G beside the one-picture and the N-frame inversions "
                        "already in --out (both analysed), and stop")
    p.add_argument("--truth-g", choices=["scenario", "weak-lines"], default="scenario",
                   help="the truth's toughness: the scenario's, or straight weak lines on a mild background")
    p.add_argument("--uncertainty-picture", metavar="PNG",
                   help="draw the inversion in --out (--frames N) against its uncertainty map into PNG, and stop")
    p.add_argument("--crack-noise", type=float, default=None,
                   help="--analyse-only: score the uncertainty map at this invert.crack_noise instead of the run's")
    a = p.parse_args()
    if a.truth_g == "weak-lines":
        Path(a.out).mkdir(parents=True, exist_ok=True)
        scn = load_scenario(Path(a.scenario), a.overrides)
        a.overrides = a.overrides + weak_lines_toughness(scn, Path(a.out), seed=scn.seed)
    if a.uncertainty_picture:
        scn = load_scenario(Path(a.scenario), a.overrides)
        uncertainty_picture(Path(a.out), a.frames, Path(a.uncertainty_picture), s=scn.fracture.length_scale,
                            crack_noise=a.crack_noise)
        return
    if a.compare_picture:
        compare_picture(Path(a.out), a.frames, Path(a.compare_picture))
        return
    if a.analyse_only:
        scn = load_scenario(Path(a.scenario), a.overrides)
        result = analyse(Path(a.out), s=scn.fracture.length_scale, near=a.near, frames=a.frames,
                         displacement=a.displacement, crack_noise=a.crack_noise)
        for k, v in result.items():
            print(f"{k:>34}: {v}")
        return
    result = twin(Path(a.scenario), Path(a.out), seeds=a.seeds, blur=a.blur, noise=a.noise, pixels=a.pixels,
                  near=a.near, overrides=a.overrides, reuse_truth=a.reuse_truth, frames=a.frames,
                  displacement=a.displacement_noise if a.displacement else None,
                  displacement_weight=a.displacement_weight, displacement_correlation=a.displacement_correlation)
    for k, v in result.items():
        print(f"{k:>26}: {v}")


if __name__ == "__main__":
    main()
