"""Shared check: a finished run's outputs are all there, read back as ParaView would, and agree
with each other (history.csv and summary.json are the integrals and statistics of the fields
written, not numbers from elsewhere)."""

import csv
import json

import numpy as np
import pytest
import pyvista as pv
import yaml
from PIL import Image

from vefrac import analysis

RUN_FILES = ("fields.pvd", "history.csv", "summary.json", "config.yaml", "checkpoint.pt", "cracks.png",
             "cracks_over_G.png", "energy.png", "crack_density.png", "fragment_areas.png", "junction_angles.png")
TERMS = ("elastic", "surface", "substrate")


def trapezoid(values: np.ndarray, spacing) -> float:
    """∫ over the export grid by the trapezoid rule; values (ny, nx)."""
    return float(np.trapezoid(np.trapezoid(values, dx=spacing[0], axis=1), dx=spacing[1]))


def assert_picture(path) -> np.ndarray:
    """A PNG of a readable size that draws something (not one flat colour); grey levels back."""
    with Image.open(path) as image:
        assert image.format == "PNG", path
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert min(pixels.shape) >= 200 and pixels.std() > 5 and (pixels < 100).any(), path
    return pixels


def assert_run_outputs(out, *, t_end: float, snapshots: int) -> dict:
    """Every output file exists; fields.pvd lists each snapshot time with finite phi ∈ [0, 1] (0
    off the layer), u (3 components), G > 0 on the layer and mask; history.csv has one row per
    snapshot whose energies and crack length are the integrals of the densities in that
    snapshot; summary.json's final statistics are those of the last snapshot's φ; the pictures
    are pictures. Returns summary.json."""
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    s = yaml.safe_load((out / "config.yaml").read_text())["fracture"]["length_scale"]
    rows = list(csv.DictReader(open(out / "history.csv")))
    reader = pv.PVDReader(str(out / "fields.pvd"))
    assert reader.time_values == pytest.approx(np.linspace(0, t_end, snapshots).tolist())
    assert [float(r["t"]) for r in rows] == pytest.approx(reader.time_values)
    for t, row in zip(reader.time_values, rows):
        reader.set_active_time_value(t)
        block = reader.read()[0]
        data = block.point_data
        for array in ("phi", "u", "G", "mask"):
            assert array in data.keys(), array
        nx, ny, _ = block.dimensions
        spacing = block.spacing[:2]
        phi, u = np.asarray(data["phi"]).reshape(ny, nx), np.asarray(data["u"])
        mask = np.asarray(data["mask"]).reshape(ny, nx).astype(bool)
        assert mask.any() and np.isfinite(phi).all() and phi.min() >= 0 and phi.max() <= 1
        assert np.all(phi[~mask] == 0) and np.all(np.asarray(data["G"]).reshape(ny, nx)[mask] > 0)
        assert np.isfinite(u).all() and u.shape == (nx * ny, 3)
        for term in TERMS:
            density = np.asarray(data[f"{term}_energy_density"]).reshape(ny, nx)
            assert float(row[term]) == pytest.approx(trapezoid(density, spacing), rel=1e-6, abs=1e-12), (t, term)
        assert float(row["total"]) == pytest.approx(sum(float(row[k]) for k in TERMS), rel=1e-9, abs=1e-15)
        crack = trapezoid(np.asarray(data["crack_length_density"]).reshape(ny, nx), spacing)
        assert float(row["crack_length"]) == pytest.approx(crack, rel=1e-6, abs=1e-12), t
    final = summary["final"]
    assert final["crack_length"] == pytest.approx(float(rows[-1]["crack_length"]), rel=1e-9, abs=1e-15)
    stats = analysis.crack_statistics(phi, mask=mask, spacing=spacing, s=s)
    for key in ("skeleton_length", "fragments", "mean_fragment_area", "cracked_fraction", "band_width", "median_phi",
                "junctions"):
        assert final[key] == pytest.approx(stats[key], rel=1e-6, abs=1e-9), key
    assert_picture(out / "cracks.png")
    return summary
