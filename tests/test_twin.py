"""Twin experiment (slow): a known G(x) → its crack picture, blurred and noisy → `vefrac invert` → G.

Runs scripts/twin.py on scenarios/twin-mud.yaml with one seed (about 15 minutes on a 2-core CPU).
"""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _twin_module():
    spec = importlib.util.spec_from_file_location("twin", ROOT / "scripts" / "twin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_twin_experiment_recovers_G_near_the_cracks_and_the_pattern(tmp_path):
    result = _twin_module().twin(ROOT / "scenarios" / "twin-mud.yaml", tmp_path, seeds=1, blur=1.0, noise=0.05,
                                 pixels=400, near=3.0, overrides=[])
    # the re-simulated cracks lie on the observed ones (a constant G, the start, overlaps < 0.1)
    assert result["overlap"] >= 0.8
    # log G follows the truth near the cracks: the aim is 0.7, which one final picture
    # cannot support here — the best G that depends only on the distance to the observed cracks
    # reaches about 0.47 within 3 s (see README, "Twin experiment"). The inversion must take up
    # most of what the picture holds: a G that ignores it correlates ~0, a wrong sign negatively.
    ceiling = result["distance_only_ceiling_near_cracks"]
    assert result["correlation_near_cracks"] >= max(0.35, 0.85 * ceiling)
    assert result["correlation_all"] >= 0.35
