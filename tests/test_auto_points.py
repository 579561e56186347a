"""solver.points and output.resolution: auto follows the layer's size against s; an explicit number
is used as given."""

from pathlib import Path

import pytest

from vefrac import api
from vefrac.errors import InputError
from vefrac.problem import build_problem
from vefrac.solve import sampled_points

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")


def points(**sets) -> int:
    scn = api.load_scenario(SQUARE, {"solver.points": "auto", **sets})
    return sampled_points(scn.solver, build_problem(scn))


def test_auto_is_square_mud_density():
    assert points() == 4096  # 1 × 1, s = 0.02


@pytest.mark.parametrize("sets, factor", [({"fracture.length_scale": 0.01}, 4),
                                          ({"domain.size": [2.0, 2.0]}, 4),
                                          ({"domain.size": [2.0, 1.0]}, 2)])
def test_auto_grows_with_area_over_s_squared(sets, factor):
    assert points(**sets) == factor * 4096


def test_auto_is_clamped_and_fracture_off_takes_8192():
    assert points(**{"fracture.length_scale": 0.2}) == 2048
    assert points(**{"fracture.enabled": False}) == 8192


def test_explicit_number_and_bad_text():
    scn = api.load_scenario(SQUARE, {"solver.points": 1000})
    assert sampled_points(scn.solver, build_problem(scn)) == 1000
    with pytest.raises(InputError, match="solver.points"):
        api.load_scenario(SQUARE, {"solver.points": "many"})


def test_an_export_grid_too_coarse_for_the_bands_is_named_with_the_resolution_that_resolves_them():
    from vefrac.budget import export_resolution_note
    from vefrac.thickness import derived_lines

    assert export_resolution_note(api.load_scenario(SQUARE), 1.0) is None  # 200 points, s = 0.02: 4 per s
    big = api.load_scenario(SQUARE, {"domain.size": [4.0, 4.0], "output.resolution": 200})
    note = export_resolution_note(big, 4.0)
    assert "output.resolution 200" in note and "at least 601" in note
    assert any("at least 601" in line for line in derived_lines(big))  # what `vefrac check` prints
    resolved = api.load_scenario(SQUARE, {"domain.size": [4.0, 4.0], "output.resolution": 601})
    assert export_resolution_note(resolved, 4.0) is None
    assert export_resolution_note(api.load_scenario(SQUARE, {"domain.size": [4.0, 4.0], "fracture.enabled": False}),
                                  4.0) is None


def resolution(**sets) -> int:
    from vefrac.budget import export_resolution

    scn = api.load_scenario(SQUARE, sets)
    return export_resolution(scn, build_problem(scn).domain.length)


def test_auto_export_grid_keeps_four_points_per_s():
    assert api.load_scenario(SQUARE).output.resolution == "auto"
    assert resolution() == 200  # square-mud: 1 × 1, s = 0.02
    assert resolution(**{"fracture.length_scale": 0.01}) == 400
    assert resolution(**{"domain.size": [3.0, 1.0]}) == 600  # along the longest side
    assert resolution(**{"fracture.length_scale": 0.5}) == 64  # clamped below
    assert resolution(**{"fracture.enabled": False}) == 256
    assert resolution(**{"output.resolution": 123}) == 123
    from vefrac.thickness import derived_lines  # what `vefrac check` prints

    lines = derived_lines(api.load_scenario(SQUARE, {"fracture.length_scale": 0.01}))
    assert any("export grid: 400 points" in line and "auto" in line for line in lines)
    with pytest.raises(InputError, match="output.resolution"):
        api.load_scenario(SQUARE, {"output.resolution": "fine"})
    with pytest.raises(InputError, match="output.resolution"):
        api.load_scenario(SQUARE, {"output.resolution": 8})


def test_a_run_at_auto_resolution_exports_that_grid(tmp_path):
    scn = api.load_scenario(SQUARE, {"fracture.length_scale": 0.05, "solver.points": 256, "solver.load_steps": 1,
                                     "solver.first_step_iterations": 2, "output.snapshots": 2, "solver.threads": 1})
    result = api.run(scn, out=tmp_path / "run")
    assert max(result.snapshots[0].phi.shape) == 80  # 4 × 1 / 0.05
