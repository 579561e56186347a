"""scripts/accuracy_per_second.py: variants, error arithmetic, and one small study end to end."""

import importlib.util
import json
from pathlib import Path

import pytest
from readback import assert_picture

from vefrac.config import load_scenario

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "accuracy_per_second.py"
spec = importlib.util.spec_from_file_location("accuracy_per_second", SCRIPT)
aps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(aps)

# a 0.5 × 0.5 square, s = 0.04: domain/s = 12.5, so the FEM reference takes seconds and cracks form
SMALL = ["domain.size=[0.5,0.5]", "fracture.length_scale=0.04", "solver.points=1024", "solver.load_steps=5",
         "output.resolution=50", "output.snapshots=6", "solver.iterations=60", "solver.first_step_iterations=120"]


def test_variants_are_valid_scenarios_that_change_what_they_say():
    scale = aps.default_scale(aps.ROOT / "scenarios/square-mud.yaml", [])
    assert scale == pytest.approx(0.1 * 1.0 / 0.02)  # the single default scale, 0.1·L/s
    for variant in aps.VARIANTS:
        sets = aps.variant_overrides(variant, scale=scale) + aps.budget_overrides(
            0.5, iterations=100, first_step_iterations=300, variant=variant)
        scn = load_scenario(aps.ROOT / "scenarios/square-mud.yaml", sets)
        assert (scn.solver.sampling == "importance") == (variant in ("importance", "both"))
        assert scn.network.fourier_scales == ([2.5, 10.0] if variant in ("multiscale", "both") else None)
        if variant == "adaptive":
            assert scn.solver.step_tolerance == aps.ADAPTIVE_TOLERANCE
            assert (scn.solver.iterations, scn.solver.first_step_iterations, scn.solver.max_step_iterations) == (
                25, 150, 200)
        else:
            assert scn.solver.step_tolerance is None
            assert (scn.solver.iterations, scn.solver.first_step_iterations) == (50, 150)
    with pytest.raises(ValueError, match="unknown variant"):
        aps.variant_overrides("sobol", scale=5.0)


def test_relative_errors_are_signed_and_undefined_without_reference_cracks():
    ref = {"final": {"skeleton_length": 2.0, "crack_length": 4.0, "mean_fragment_area": 0.0}}
    run = {"final": {"skeleton_length": 1.5, "crack_length": 5.0, "mean_fragment_area": 0.1}}
    assert aps.relative_errors(run, ref) == {"skeleton_length": -0.25, "crack_length": 0.25,
                                             "mean_fragment_area": None}


def test_a_small_study_end_to_end(tmp_path):
    sets = [a for kv in SMALL for a in ("--set", kv)]
    result = aps.main(["--out", str(tmp_path), "--budgets", "1", "--variants", "baseline", "both", "--jobs", "2",
                       *sets])
    ref = json.loads((tmp_path / "fem" / "summary.json").read_text())
    assert ref["backend"] == "fem" and ref["final"]["fragments"] >= 1  # the reference cracks
    assert [(r["variant"], r["budget"]) for r in result["runs"]] == [("baseline", 1.0), ("both", 1.0)]
    for row in result["runs"]:
        summary = json.loads((tmp_path / f"{row['variant']}-x1" / "summary.json").read_text())
        assert summary["backend"] == "pinn" and summary["iterations"] == 120 + 4 * 60
        for k in aps.STATISTICS:  # the errors are those of the two summaries
            want = (summary["final"][k] - ref["final"][k]) / ref["final"][k]
            assert row["errors"][k] == pytest.approx(want)
    assert json.loads((tmp_path / "accuracy_per_second.json").read_text())["runs"] == result["runs"]
    assert_picture(tmp_path / "accuracy_per_second.png")
    # a second invocation with another variant re-runs nothing finished and keeps the earlier runs
    stamp = (tmp_path / "baseline-x1" / "summary.json").stat().st_mtime_ns
    again = aps.main(["--out", str(tmp_path), "--budgets", "1", "--variants", "importance", *sets])
    assert {r["variant"] for r in again["runs"]} == {"baseline", "both", "importance"}
    assert (tmp_path / "baseline-x1" / "summary.json").stat().st_mtime_ns == stamp
