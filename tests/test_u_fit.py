"""scripts/u_fit.py, the study that rules out the u-net (docs/benchmarks.md, "Nor the u-net"): with φ
held at a finished FEM run's, a fresh u-net minimised by the run's trainer must approach the FEM's own
elastic + substrate energy from above, and φ must not move while it does.

Why this could fail: a fit whose φ were not held (the φ-net trained too) could lower the energy below
the reference's by cracking more; a wrong eigenstrain, time or quadrature would settle at another
energy; an evaluation of the reference on the export grid that disagreed with its own history would
make the study's check row meaningless."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import u_fit  # noqa: E402

from vefrac.config import load_scenario  # noqa: E402
from vefrac.runner import Run  # noqa: E402


@pytest.fixture(scope="module")
def fem_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("u-fit-fem")
    scn = load_scenario(ROOT / "scenarios/square-mud.yaml", [
        "solver.backend=fem", "domain.size=[0.4,0.4]", "solver.load_steps=6", "output.snapshots=3",
        "solver.threads=1"])
    Run(scn, out, device=torch.device("cpu"), log=lambda line: None, pictures=False).execute()
    return out


def test_a_fresh_u_net_reaches_the_fem_energy_of_held_cracks(fem_run):
    rows = u_fit.measure(fem_run, scales=[1.0], iterations=[20, 200], log=lambda line: None)
    grid, own, early, late = rows
    assert own["total"] > 0
    # the reference evaluated on the export grid by differences agrees with its own quadrature
    assert grid["substrate"] == pytest.approx(own["substrate"], rel=1e-6)
    assert grid["elastic"] == pytest.approx(own["elastic"], rel=0.10)
    # the fit descends towards the reference's energy and ends close to it, from above
    assert early["excess"] > late["excess"]
    assert -0.01 < late["excess"] / own["total"] < 0.05
    assert late["excess_per_G_length"] < 0.1
