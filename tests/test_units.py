"""Non-dimensionalisation: the same layer written in other units trains the same way."""

from pathlib import Path

import numpy as np
import pytest
import pyvista as pv

from vefrac.cli import main

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")

BASE = ["solver.load_steps=2", "solver.iterations=15", "solver.first_step_iterations=15", "solver.points=512",
        "output.resolution=40", "output.snapshots=3", "solver.dtype=float64", "network.fourier_features=16",
        "network.width=16", "solver.cache_points_per_length=1"]


def scaled(a: float, b: float) -> list[str]:
    """square-mud with lengths times a and stresses (moduli, η·length², G/length) times b."""
    return [f"domain.size=[{a},{a}]", f"fracture.length_scale={0.02 * a}",
            f"fracture.toughness.correlation_length={0.05 * a}", f"fracture.toughness.mean={1e-3 * a * b}",
            f"material.lame_lambda={b}", f"material.lame_mu={b}", f"material.substrate_stiffness={100 * b / a**2}"]


@pytest.mark.parametrize("a,b", [(10.0, 1.0), (0.1, 1000.0)])
def test_rescaled_scenario_gives_the_same_fields(tmp_path, a, b):
    runs = {}
    for key, (la, lb) in {"ref": (1.0, 1.0), "scaled": (a, b)}.items():
        out = tmp_path / key
        sets = [x for kv in BASE + scaled(la, lb) for x in ("--set", kv)]
        assert main(["run", SQUARE, "--out", str(out), "--quiet", *sets]) == 0
        runs[key] = pv.read(out / "fields_0002.vti").point_data
    ref, sc = runs["ref"], runs["scaled"]
    assert np.abs(ref["phi"]).max() > 1e-3  # something happened
    np.testing.assert_allclose(sc["phi"], ref["phi"], atol=1e-7)
    np.testing.assert_allclose(sc["u"] / a, ref["u"], atol=1e-7 * np.abs(ref["u"]).max())
    np.testing.assert_allclose(sc["G"] / (a * b), ref["G"], rtol=1e-9)
