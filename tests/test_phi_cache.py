"""The previous step's φ cache is an upper envelope: the next step never starts below this one.

A unit property over random inputs, then a real (small) cracking run whose exported snapshots
are read back: φ never decreases from one to the next, at any grid point.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vefrac.geometry import Grid
from vefrac.phi_cache import model_interpolation, sub_grid_points, upper_envelope

SQUARE = str(Path(__file__).resolve().parents[1] / "scenarios" / "square-mud.yaml")


def sharp_field(x: torch.Tensor, *, centres: torch.Tensor, s: float) -> torch.Tensor:
    """max over lines x = c of exp(−|x − c|/s): cusps between grid nodes, what bilinear cuts."""
    d = (x[:, 0:1] - centres).abs().min(1).values
    return torch.exp(-d / s)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_envelope_is_above_the_field_at_every_check_point_and_nodes_only_grow(dtype, seed):
    g = torch.Generator().manual_seed(seed)
    n, s = 31, 0.02
    grid = Grid(origin=(-0.5, -0.5), spacing=(1 / (n - 1), 1 / (n - 1)), shape=(n, n))
    interpolate = model_interpolation(grid)
    # a previous cache (random, in [0, 1)) and a field above it with sharp random cusps
    previous = torch.rand((n, n), generator=g, dtype=dtype) * 0.5
    centres = torch.rand(5, generator=g, dtype=torch.float64) - 0.5
    check = torch.cat([sub_grid_points(grid, 2, dtype=previous.dtype),
                       (torch.rand((4000, 2), generator=g, dtype=torch.float64) - 0.5).to(dtype)])

    def field(x):
        base = interpolate(previous, x)
        return base + (1 - base) * sharp_field(x.double(), centres=centres, s=s).to(dtype) * 0.9

    nodes = sub_grid_points(grid, 1, dtype=previous.dtype)
    nodal = field(nodes).reshape(n, n)
    values = field(check)
    plain = interpolate(nodal, check)
    assert float((values - plain).max()) > 0.05, "bilinear interpolation of the nodes should cut the cusps"
    raised, record = upper_envelope(nodal, check, values, grid, interpolate=interpolate)
    assert bool((interpolate(raised, check) >= values).all())  # exactly, in the model's arithmetic
    assert bool((raised >= nodal).all()) and bool((raised >= previous).all()) and float(raised.max()) <= 1
    assert record["largest_deficit"] == pytest.approx(float((values - plain).max()))
    # bilinear interpolation is monotone in the nodal values: the new lower bound is above the old
    # one at every point, not only the check points
    anywhere = (torch.rand((20000, 2), generator=g, dtype=torch.float64) - 0.5).to(dtype)
    assert bool((interpolate(raised, anywhere) >= interpolate(previous, anywhere)).all())


def test_envelope_raises_only_near_the_cusps_and_leaves_a_bilinear_field_alone():
    n = 21
    grid = Grid(origin=(0.0, 0.0), spacing=(0.05, 0.05), shape=(n, n))
    interpolate = model_interpolation(grid)
    g = torch.Generator().manual_seed(3)
    nodal = torch.rand((n, n), generator=g, dtype=torch.float64)
    check = sub_grid_points(grid, 3, dtype=nodal.dtype)
    # a field that is its own bilinear interpolant has no deficit: no widening from step to step
    raised, record = upper_envelope(nodal, check, interpolate(nodal, check), grid, interpolate=interpolate)
    assert torch.equal(raised, nodal) and record["largest_deficit"] == 0.0
    # one cusp inside one column of cells: only the nodes of those cells and their neighbours move
    x = sub_grid_points(grid, 1, dtype=nodal.dtype)
    line = 0.5 + 0.025
    f = lambda p: torch.exp(-(p[:, 0] - line).abs() / 0.02)  # noqa: E731
    raised, record = upper_envelope(f(x).reshape(n, n), check, f(check), grid, interpolate=interpolate)
    moved = (raised > f(x).reshape(n, n) + 1e-12).any(0).nonzero().ravel().tolist()  # rounding aside
    assert moved == [10, 11]  # the nodes of the cusp's cell, nothing further


def read_phi(path) -> tuple[np.ndarray, np.ndarray]:
    import pyvista as pv

    data = pv.read(str(path)).point_data
    return np.asarray(data["phi"]), np.asarray(data["mask"]).astype(bool)


def test_a_cracking_run_never_lowers_phi_between_snapshots(tmp_path):
    """A small square with weak spots localises damage into bands within a few load steps; every
    snapshot's φ is at least the previous one's at every export grid point (read back from
    fields_*.vti)."""
    out = tmp_path / "run"
    sets = ["domain.size=[0.5,0.5]", "fracture.length_scale=0.025",
            "fracture.toughness={kind: lognormal, mean: 1.0e-3, cv: 0.5, correlation_length: 0.05}",
            "shrinkage.t_end=0.1", "output.snapshots=6", "output.resolution=97", "solver.load_steps=5",
            "solver.iterations=60", "solver.first_step_iterations=150", "solver.points=2048", "solver.threads=1"]
    cmd = [sys.executable, "-m", "vefrac", "run", SQUARE, "--out", str(out), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    frames = [read_phi(p) for p in sorted(out.glob("fields_*.vti"))]
    assert len(frames) == 6
    last, mask = frames[-1]
    # damage localises into bands (diffuse at this budget: peak φ about 0.51); with the plain nodal
    # cache this run's φ fell by 1e-3 at 0.5 % of the points between the last snapshots
    assert last[mask].max() > 0.5 and 0.05 < (last[mask] > 0.5).mean() < 0.9, "no crack band: the check proves little"
    for (a, _), (b, _) in zip(frames, frames[1:]):
        assert (b[mask] >= a[mask]).all(), f"φ fell by {float((a - b)[mask].max()):.3g}"


@pytest.mark.parametrize("origin,spacing,shape", [((0.0, 0.0), (0.02, 0.02), (51, 51)),
                                                  ((-0.37, 1.3), (1 / 3 * 0.025, 0.0071), (40, 23))])
def test_every_second_sub_grid_point_is_a_node_with_the_grids_own_coordinates(origin, spacing, shape):
    """refresh_cache takes the cache's nodal φ from the sub-grid's evaluation: that is only the
    nodes' φ if the coordinates are the same to the last bit."""
    grid = Grid(origin, spacing, shape)
    sub = sub_grid_points(grid, 2).numpy().reshape((shape[0] - 1) * 2 + 1, (shape[1] - 1) * 2 + 1, 2)
    assert np.array_equal(sub[::2, ::2].reshape(-1, 2), grid.points())


def test_phase_field_alone_is_the_fields_phi_to_the_last_bit():
    """The cache's refresh evaluates φ without the u-net (FieldModel.phase_field): the same numbers
    as the whole model's φ and ∇φ, or the envelope would hold for a field the training never sees."""
    from vefrac.config import load_scenario
    from vefrac.pinn_model import FieldModel
    from vefrac.problem import build_problem

    scn = load_scenario(Path(SQUARE), ["network.fourier_features=16", "network.width=16"])
    problem = build_problem(scn)
    model = FieldModel(problem, scn.network, torch.Generator().manual_seed(3), space_time=False, phi_bias=-2.0)
    model.float()
    with torch.no_grad():
        for p in model.phi_net.parameters():
            p.normal_(generator=torch.Generator().manual_seed(5)) if p.dim() > 1 else None
    x = torch.rand(777, 2, generator=torch.Generator().manual_seed(1))
    t = torch.full((777,), 0.05)
    with torch.no_grad():
        _, _, phi, grad_phi = model.fields(x, t)
        alone, grad_alone = model.phase_field(x, t)
    assert torch.equal(phi, alone) and torch.equal(grad_phi, grad_alone)
    assert phi.std() > 0.01, "a constant φ would prove nothing"
