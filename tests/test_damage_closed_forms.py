"""Homogeneous damage of a layer with no free edge (periodic in x and y) against closed forms.

With u = 0 the strain is εs I and W+ = 2K εs² (amor, K = λ + μ). Minimising over a uniform φ:
  AT2: φ = W+ / (W+ + G/(2s))           (model.md: AT2 has no elastic stage)
  AT1: φ = 0 while W+ ≤ 3G/(16s), then φ = 1 − 3G/(16 s W+)
Both hold until the homogeneous state loses stability; the loads below stay before that.
"""

import csv
from pathlib import Path

import numpy as np
import pytest
import pyvista as pv

from vefrac.cli import main

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")

G, S, K = 1e-3, 0.05, 2.0
BASE = ["domain={shape: rectangle, size: [0.5, 0.5], periodic: [true, true]}",
        f"fracture.toughness={{kind: constant, mean: {G}}}", f"fracture.length_scale={S}",
        "material.substrate_stiffness=100", "output.resolution=32", "output.snapshots=5",
        "solver.load_steps=4", "solver.iterations=300", "solver.first_step_iterations=300",
        "solver.points=1024", "network.fourier_features=16", "network.width=16", "solver.threads=1",
        "solver.learning_rate=1e-2"]


def run(tmp_path, extra):
    out = tmp_path / "run"
    sets = [a for kv in BASE + extra for a in ("--set", kv)]
    assert main(["run", SQUARE, "--out", str(out), "--quiet", *sets]) == 0
    rows = list(csv.DictReader(open(out / "history.csv")))
    phis = []
    for i in range(len(rows)):
        data = pv.read(out / f"fields_{i:04d}.vti").point_data
        phis.append(np.asarray(data["phi"]))
        # by symmetry u = 0: small against the natural scale εs·size (0.5)
        assert np.abs(data["u"]).max() <= 0.01 * float(rows[i]["eps_s"]) * 0.5
    return np.array([float(r["eps_s"]) for r in rows]), phis


def test_at2_homogeneous_damage(tmp_path):
    eps_end = 0.7 * np.sqrt(G / (6 * S) / (2 * K))  # W+ at 0.7² of the AT2 peak-stress level G/(6s)
    eps, phis = run(tmp_path, ["fracture.model=at2", f"shrinkage.t_end={eps_end}"])
    for e, phi in zip(eps[1:], phis[1:]):
        w = 2 * K * e**2
        expected = w / (w + G / (2 * S))
        assert np.median(phi) == pytest.approx(expected, rel=0.05, abs=2e-3)
        assert phi.std() < 0.02  # uniform


def test_at1_elastic_stage_then_homogeneous_damage(tmp_path):
    eps_threshold = np.sqrt(3 * G / (16 * S) / (2 * K))
    eps, phis = run(tmp_path, ["fracture.model=at1", f"shrinkage.t_end={1.2 * eps_threshold}"])
    for e, phi in zip(eps[1:], phis[1:]):
        w = 2 * K * e**2
        expected = max(0.0, 1 - 3 * G / (16 * S * w))
        assert np.median(phi) == pytest.approx(expected, abs=0.02)
