"""Shared check: a finished run's outputs are all there and read back as ParaView would."""

import json

import numpy as np
import pytest
import pyvista as pv

RUN_FILES = ("fields.pvd", "history.csv", "summary.json", "config.yaml", "checkpoint.pt", "cracks.png",
             "cracks_over_G.png", "energy.png", "crack_density.png", "fragment_areas.png", "junction_angles.png")


def assert_run_outputs(out, *, t_end: float, snapshots: int) -> dict:
    """Every output file exists; fields.pvd lists each snapshot time with finite phi ∈ [0, 1], u (3
    components), G and mask. Returns summary.json."""
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    reader = pv.PVDReader(str(out / "fields.pvd"))
    assert reader.time_values == pytest.approx(np.linspace(0, t_end, snapshots).tolist())
    for t in reader.time_values:
        reader.set_active_time_value(t)
        data = reader.read()[0].point_data
        for array in ("phi", "u", "G", "mask"):
            assert array in data.keys(), array
        phi, u = data["phi"], data["u"]
        assert np.isfinite(phi).all() and phi.min() >= 0 and phi.max() <= 1
        assert np.isfinite(u).all() and u.shape[1] == 3
    return json.loads((out / "summary.json").read_text())
