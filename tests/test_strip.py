"""The 1D strip (model.md): the elastic answer reached to 1% with fracture off, and the error
shrinking as the training budget grows."""

import numpy as np
import pytest
import pyvista as pv
import torch

from vefrac.config import load_scenario
from vefrac.runner import Run

SCENARIO = "scenarios/strip-elastic.yaml"


def strip_error(tmp_path, overrides=()):
    scn = load_scenario(SCENARIO, list(overrides))
    Run(scn, tmp_path, device=torch.device("cpu"), log=lambda s: None).execute()
    reader = pv.PVDReader(str(tmp_path / "fields.pvd"))
    reader.set_active_time_value(reader.time_values[-1])
    mesh = reader.read()[0]
    x, u = mesh.points[:, 0], mesh.point_data["u"]
    m = scn.material
    lam, mu, eta = m.lame_lambda, m.lame_mu, m.substrate_stiffness
    eps = scn.shrinkage.rate * scn.shrinkage.t_end
    ell = np.sqrt((lam + 2 * mu) / eta)
    half = scn.domain.size[0] / 2
    ux = -(2 * (lam + mu) * eps / (lam + 2 * mu)) * ell * np.sinh(x / ell) / np.cosh(half / ell)
    return np.sqrt(((u[:, 0] - ux) ** 2 + u[:, 1] ** 2 + u[:, 2] ** 2).sum() / (ux**2).sum())


def test_strip_reaches_the_analytic_solution_within_one_percent(tmp_path):
    assert strip_error(tmp_path) <= 0.01


@pytest.mark.slow
def test_strip_error_shrinks_with_the_budget(tmp_path):
    errors = [strip_error(tmp_path / str(n), [f"solver.first_step_iterations={n}"]) for n in (50, 150, 600)]
    assert errors[0] > errors[1] > errors[2]
