"""solver.points: auto follows the layer's size against s; an explicit number is used as given."""

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
    assert points() == 8192  # 1 × 1, s = 0.02


@pytest.mark.parametrize("sets, factor", [({"fracture.length_scale": 0.01}, 4),
                                          ({"domain.size": [2.0, 2.0]}, 4),
                                          ({"domain.size": [2.0, 1.0]}, 2)])
def test_auto_grows_with_area_over_s_squared(sets, factor):
    assert points(**sets) == factor * 8192


def test_auto_is_clamped_and_fracture_off_takes_8192():
    assert points(**{"fracture.length_scale": 0.2}) == 2048
    assert points(**{"fracture.enabled": False}) == 8192


def test_explicit_number_and_bad_text():
    scn = api.load_scenario(SQUARE, {"solver.points": 1000})
    assert sampled_points(scn.solver, build_problem(scn)) == 1000
    with pytest.raises(InputError, match="solver.points"):
        api.load_scenario(SQUARE, {"solver.points": "many"})
