"""Local staggered iterations (vefrac/fem_local.py, fem.local_radius): the region is every node
within the radius of those that moved, across a periodic seam too, and the iterations on it find
the crack network of the global scheme."""

from pathlib import Path

import numpy as np
import pytest
import torch

from vefrac import fem, fem_local
from vefrac.config import load_scenario
from vefrac.runner import Run, build_problem

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")
CRACKING = ["solver.backend=fem", "fem.points_per_length=1", "domain.size=[0.7, 0.7]", "solver.load_steps=5",
            "output.snapshots=2"]


def mesh_of(sets):
    problem = build_problem(load_scenario(SQUARE, CRACKING + sets))
    h = fem.element_size(load_scenario(SQUARE, CRACKING + sets).fem, problem.domain, s=problem.physics.s, fracture=True)
    return fem.build_mesh(problem.domain, h=h), problem.domain


@pytest.mark.parametrize("periodic", [False, True])
def test_the_region_is_every_node_within_the_radius_of_the_moved_ones(periodic):
    mesh, domain = mesh_of(["domain.periodic=[true, true]"] if periodic else [])
    points = fem.dof_points(mesh)
    radius = 0.07
    moved = np.zeros(mesh.n_dofs, bool)
    corner = np.argmin(((points - points.min(0)) ** 2).sum(1))  # a node on the seam's corner (periodic)
    moved[[corner, mesh.n_dofs // 2 + 3]] = True
    local = fem_local.Regions(mesh, radius=radius, periodic=domain.periodic).around(moved)
    span = np.array(domain.bounds[2:]) - np.array(domain.bounds[:2])
    d = np.abs(points[:, None, :] - points[None, moved, :])
    if periodic:  # the nearest image
        d = np.minimum(d, span - d)
    expected = (np.sqrt((d**2).sum(-1)) <= radius + 1e-12).any(1)
    assert np.array_equal(local.dofs, expected)
    assert np.array_equal(local.udofs, np.repeat(expected, 2))
    assert set(local.elements) == set(np.flatnonzero(expected[mesh.elements].any(1)))
    wrapped = points[local.dofs].max(0) > points.min(0) + span - 2 * radius
    assert wrapped.all() == periodic  # the corner's region reaches across both seams only when they wrap
    assert fem_local.Regions(mesh, radius=radius).around(np.zeros(mesh.n_dofs, bool)) is None
    assert fem_local.Regions(mesh, radius=radius).around(np.ones(mesh.n_dofs, bool)) is None  # > MAX_SHARE


def test_local_iterations_find_the_global_schemes_network(tmp_path):
    """A cracking run with local iterations (the default) against the same run with every
    iteration global: the same cells, lengths within a per cent, the same first crack; a third of
    the iterations local; the energy never rises (tests/test_fem.py)."""
    summaries = {}
    for radius in (0.0, 1.0):
        scn = load_scenario(SQUARE, CRACKING + [f"fem.local_radius={radius}"])
        summaries[radius] = Run(scn, tmp_path / str(radius), device=torch.device("cpu"), log=lambda s: None,
                                pictures=False).execute()
    g, loc = summaries[0.0], summaries[1.0]
    assert sum(s["local_iterations"] for s in g["steps"]) == 0
    local_its = sum(s["local_iterations"] for s in loc["steps"])
    # on this small square (0.7 wide, 4 ℓe) a region is often more than half the layer: a third local
    assert local_its > 0.25 * sum(s["iterations"] for s in loc["steps"])
    assert loc["final"]["fragments"] == g["final"]["fragments"] >= 1
    assert loc["final"]["skeleton_length"] == pytest.approx(g["final"]["skeleton_length"], rel=0.01)
    assert loc["final"]["crack_length"] == pytest.approx(g["final"]["crack_length"], rel=0.01)
    assert loc["first_crack_t"] == g["first_crack_t"]


def test_the_region_solver_factors_a_system_its_cg_cannot_finish(monkeypatch):
    """RegionSolver("amg"): CG with the diagonal to the residual asked for; past
    REGION_ITERATIONS it factors the system instead, and counts that."""
    import scipy.sparse as sp

    from vefrac import linsolve

    n = 400
    K = sp.diags([-np.ones(n - 1), 2.0 * np.ones(n) + 1e-6, -np.ones(n - 1)], [-1, 0, 1], format="csr")
    r = np.random.default_rng(0).standard_normal(n)
    exact = sp.linalg.spsolve(K.tocsc(), r)
    solver = linsolve.RegionSolver("amg")
    x = solver.solve(K, r, atol=1e-9 * np.abs(r).max())
    assert np.abs(K @ x - r).max() <= 1e-9 * np.abs(r).max() and solver.counts.setups == 0
    monkeypatch.setattr(linsolve, "REGION_ITERATIONS", 5)
    x = solver.solve(K, r, atol=1e-9 * np.abs(r).max())
    assert solver.counts.setups == 1
    assert np.allclose(x, exact, rtol=1e-8, atol=1e-8 * np.abs(exact).max())
