"""The default demo as a user runs it (slow: about 4 minutes on a 2-core CPU)."""

import json
from pathlib import Path

import pytest

from vefrac.cli import main

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")


@pytest.mark.slow
def test_square_mud_leaves_a_crisp_polygonal_network(tmp_path):
    out = tmp_path / "square-mud"
    assert main(["run", SQUARE, "--out", str(out), "--quiet"]) == 0
    final = json.loads((out / "summary.json").read_text())["final"]
    assert final["fragments"] >= 8  # a closed network of cells
    assert final["median_phi"] < 0.4  # crack lines on a light layer, not a grey layer
    # the cracks are lines: the band {φ > 0.5} is a small part of the layer, yet the skeleton is long
    assert final["cracked_fraction"] < 0.4 and final["skeleton_length"] > 3.0
    assert final["junctions"] >= 4
