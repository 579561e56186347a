"""PNG pictures of runs and inversions, numpy in, files out (written atomically by export).

Grid convention as in export: a field is (ny, nx), row 0 at the smallest y; ``extent`` is
(xmin, xmax, ymin, ymax) as in matplotlib's imshow. matplotlib is imported inside the functions
and used through Figure + FigureCanvasAgg (no pyplot): no global state is touched.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from .export import atomic_write_bytes


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig, path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return atomic_write_bytes(path, buf.getvalue())


def _no_data(path, title: str | None) -> Path:
    fig = _new_figure(4.0, 3.0)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=14, transform=ax.transAxes)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return _save_figure(fig, path)


def _greyed_outside(cmap_name: str):
    import matplotlib

    return matplotlib.colormaps[cmap_name].with_extremes(bad="0.8")


def _series_indices(n: int, n_panels: int = 6) -> list[int]:
    """Up to n_panels indices evenly spread over range(n), first and last included."""
    return sorted({int(round(k)) for k in np.linspace(0, n - 1, min(n, n_panels))})


def plot_crack_series(path, frames, *, extent, title=None) -> Path:
    """PNG of the crack pattern over time: up to 6 panels of φ (0 white, 1 black), evenly
    chosen among frames = [(t, phi (ny, nx), mask (ny, nx)), ...], always the last one.
    Outside the mask is grey; y grows upward.
    """
    frames = list(frames)
    if not frames:
        return _no_data(path, title)
    picks = [frames[k] for k in _series_indices(len(frames))]
    return _phi_panels(path, [(f"t = {float(t):.4g}", phi, mask, extent) for t, phi, mask in picks], title)


def plot_side_by_side(path, panels, *, title=None) -> Path:
    """PNG of crack patterns next to each other: panels = [(label, phi, mask, extent), ...]."""
    panels = list(panels)
    if not panels:
        return _no_data(path, title)
    return _phi_panels(path, panels, title, ncols=len(panels))


def _phi_panels(path, panels, title, *, ncols=3) -> Path:
    """φ maps (0 white, 1 black, grey outside the mask) in a grid of panels with one colour bar."""
    ncols = min(len(panels), ncols)
    nrows = math.ceil(len(panels) / ncols)
    fig = _new_figure(3.2 * ncols + 0.8, 3.2 * nrows + (0.4 if title else 0.0))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    cmap = _greyed_outside("gray_r")
    image = None
    for ax in axes.ravel()[len(panels) :]:
        ax.set_axis_off()
    for ax, (label, phi, mask, extent) in zip(axes.ravel(), panels):
        shown = np.ma.masked_array(np.asarray(phi, dtype=float), mask=~np.asarray(mask, dtype=bool))
        image = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0, origin="lower", extent=extent)
        ax.set_aspect("equal")
        ax.set_title(label, fontsize=9)
    fig.colorbar(image, ax=axes, label="φ", shrink=0.8)
    if title:
        fig.suptitle(title)
    return _save_figure(fig, path)


def plot_crack_over_field(path, *, phi, mask, field, extent, field_label) -> Path:
    """Final cracks (φ > 0.5, black) drawn over a field such as G(x); all (ny, nx)."""
    phi = np.asarray(phi, dtype=float)
    if phi.size == 0:
        return _no_data(path, field_label)
    mask = np.asarray(mask, dtype=bool)
    fig = _new_figure(6.0, 5.0)
    ax = fig.add_subplot()
    shown = np.ma.masked_array(np.asarray(field, dtype=float), mask=~mask)
    image = ax.imshow(shown, cmap=_greyed_outside("viridis"), origin="lower", extent=extent)
    fig.colorbar(image, ax=ax, label=field_label)
    cracks = np.zeros(phi.shape + (4,))
    cracks[..., 3] = np.where((phi > 0.5) & mask, 0.85, 0.0)  # black, opaque where cracked
    ax.imshow(cracks, origin="lower", extent=extent)
    ax.set_aspect("equal")
    ax.set_title(f"cracks (φ > 0.5) over {field_label}")
    return _save_figure(fig, path)


def plot_observation(path, *, grey, phi, material, extent, title=None) -> Path:
    """What was read from a crack picture: the picture in grey, the observed φ over it in red
    (opaque in proportion to φ, where φ > 0.05) and the non-material region washed out and
    hatched. grey, phi: (ny, nx) floats; material: (ny, nx) bool.
    """
    grey = np.asarray(grey, dtype=float)
    if grey.size == 0:
        return _no_data(path, title)
    phi = np.clip(np.nan_to_num(np.asarray(phi, dtype=float)), 0.0, 1.0)
    material = np.asarray(material, dtype=bool)
    ny, nx = grey.shape
    fig = _new_figure(6.0, 0.8 + 5.0 * min(2.0, max(0.5, ny / max(nx, 1))))
    ax = fig.add_subplot()
    ax.imshow(np.nan_to_num(grey), cmap="gray", vmin=0.0, vmax=1.0, origin="lower", extent=extent)
    red = np.zeros(phi.shape + (4,))
    red[..., 0] = 0.9
    red[..., 3] = np.where((phi > 0.05) & material, 0.85 * phi, 0.0)
    ax.imshow(red, origin="lower", extent=extent)
    if not material.all():
        wash = np.zeros(phi.shape + (4,))
        wash[..., :3] = 0.8
        wash[..., 3] = np.where(material, 0.0, 0.7)
        ax.imshow(wash, origin="lower", extent=extent)
        xs = np.linspace(extent[0], extent[1], nx)
        ys = np.linspace(extent[2], extent[3], ny)
        ax.contourf(xs, ys, (~material).astype(float), levels=[0.5, 1.5], colors="none",
                    hatches=["///"])
    ax.set_aspect("equal")
    ax.set_title(title or "observed cracks (red: φ) on the picture; hatched: not material")
    return _save_figure(fig, path)


def plot_history(path, rows) -> Path:
    """Energy terms (elastic, surface, substrate, total) against t from history rows."""
    rows = list(rows)
    keys = [k for k in ("elastic", "surface", "substrate", "total") if rows and k in rows[0]]
    if not rows or "t" not in rows[0] or not keys:
        return _no_data(path, "energies")
    fig = _new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    t = [float(r["t"]) for r in rows]
    for k in keys:
        ax.plot(t, [np.nan if r.get(k) is None else float(r[k]) for r in rows], label=k,
                linestyle="--" if k == "total" else "-")
    ax.set_xlabel("t")
    ax.set_ylabel("energy")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save_figure(fig, path)


def plot_crack_density(path, t, density) -> Path:
    """Crack length density against t, log-log over the positive points, with a dashed
    t^(2/3) guide through the last one (the 1D sharp-crack scaling).
    """
    t = np.asarray(t, dtype=float).ravel()
    density = np.asarray(density, dtype=float).ravel()
    keep = (t > 0) & (density > 0) & np.isfinite(t) & np.isfinite(density)
    if not keep.any():
        return _no_data(path, "crack density")
    t, density = t[keep], density[keep]
    fig = _new_figure(5.0, 4.0)
    ax = fig.add_subplot()
    ax.loglog(t, density, "o-", label="crack length / area")
    guide_t = np.geomspace(t.min(), t.max(), 50) if t.min() < t.max() else t
    ax.loglog(guide_t, density[-1] * (guide_t / t[-1]) ** (2.0 / 3.0), "k--", label="∝ t^(2/3)")
    ax.set_xlabel("t")
    ax.set_ylabel("crack length density")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    return _save_figure(fig, path)


def plot_histogram(path, values, *, xlabel, bins=30, marks=()) -> Path:
    """Histogram of values (non-finite ones dropped), with dashed vertical lines at marks,
    e.g. marks=(90, 120) for junction angles in degrees.
    """
    values = np.asarray(values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return _no_data(path, xlabel)
    fig = _new_figure(5.0, 4.0)
    ax = fig.add_subplot()
    ax.hist(values, bins=bins, color="0.4")
    for k, x in enumerate(marks):
        ax.axvline(x, color=f"C{k + 1}", linestyle="--", label=f"{x:g}")
    if len(marks):
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(f"n = {values.size}")
    return _save_figure(fig, path)


def plot_inversion_history(path, rows) -> Path:
    """The inversion's progress per outer iteration: crack overlap and misfit of the free forward
    run, and the energy gap between the assimilated and the free state (one line per seed)."""
    rows = list(rows)
    if not rows:
        return _no_data(path, "inversion")
    fig = _new_figure(11.0, 3.4)
    axes = fig.subplots(1, 3)
    panels = (("overlap", "crack overlap (IoU)"), ("misfit", "misfit ⟨(φ − φ_obs)²⟩"),
              ("energy_gap", "energy gap (assimilated − free)"))
    for ax, (key, label) in zip(axes, panels):
        for seed in sorted({r["seed"] for r in rows}):
            mine = [r for r in rows if r["seed"] == seed]
            ax.plot([r["iteration"] for r in mine], [r[key] for r in mine], marker="o", ms=3,
                    label=f"seed {seed + 1}")
        ax.set_xlabel("outer iteration")
        ax.set_title(label, fontsize=9)
    if len({r["seed"] for r in rows}) > 1:
        axes[0].legend(fontsize=8)
    return _save_figure(fig, path)
