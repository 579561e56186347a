"""Every shipped scenario validates and runs in a tiny budget; its outputs read back."""

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import pyvista as pv
import torch
import yaml
from readback import assert_picture, assert_run_outputs

from vefrac.cli import main
from vefrac.config import load_scenario, validate_scenario
from vefrac.runner import Run

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")
STRIP = str(ROOT / "scenarios" / "strip-elastic.yaml")

SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
TINY = ["solver.load_steps=2", "solver.iterations=4", "solver.first_step_iterations=4", "solver.points=512",
        "output.resolution=40", "output.snapshots=3", "solver.checkpoint_every=3",
        "solver.cache_points_per_length=0.25", "network.fourier_features=16", "network.width=16",
        "fem.points_per_length=0.5"]  # the fem scenarios on a mesh of h = 2s: seconds, not minutes


def test_there_are_scenarios():
    names = {p.stem for p in SCENARIOS}
    assert {"square-mud", "dish-paste", "strip-elastic", "large-gpu"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_validates_and_check_prints_it_resolved(path, capsys):
    assert main(["check", str(path)]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert validate_scenario(printed) == load_scenario(path)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_runs_in_a_tiny_budget_and_outputs_read_back(path, tmp_path):
    out = tmp_path / "run"
    sets = [a for kv in TINY for a in ("--set", kv)]
    assert main(["run", str(path), "--out", str(out), "--device", "cpu", "--quiet", *sets]) == 0
    summary = assert_run_outputs(out, t_end=load_scenario(path).shrinkage.t_end, snapshots=3)
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert len(rows) == 3
    assert {"t", "eps_s", "elastic", "surface", "substrate", "total", "crack_length"} <= set(rows[0])
    for key in ("wall_time_s", "device", "iterations", "vefrac_version"):
        assert key in summary
    for key in ("crack_length", "fragments", "mean_fragment_area"):
        assert key in summary["final"]
    # the resolved config reproduces the scenario it was run with
    again = load_scenario(out / "config.yaml")
    assert again == load_scenario(path, TINY).model_copy(update={"name": again.name})


def test_resume_after_an_interruption_matches_an_uninterrupted_run(tmp_path):
    scn = load_scenario(SQUARE, TINY + ["solver.load_steps=3", "solver.iterations=25",
                                                             "solver.checkpoint_every=10"])
    quiet = dict(device=torch.device("cpu"), log=lambda s: None)
    Run(scn, tmp_path / "a", **quiet).execute()

    def stop_at(count, terms):
        if count >= 4 + 20:  # step 2, iteration 20: Ctrl-C checkpoints here, mid-step
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Run(scn, tmp_path / "b", progress=stop_at, **quiet).execute()
    Run(scn, tmp_path / "b", resume=True, **quiet).execute()
    a = pv.read(tmp_path / "a" / "fields_0002.vti").point_data
    b = pv.read(tmp_path / "b" / "fields_0002.vti").point_data
    for name in ("phi", "u"):
        assert np.array_equal(a[name], b[name]), name
    sa = json.loads((tmp_path / "a" / "summary.json").read_text())
    sb = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert sa["final"] == sb["final"] and sa["iterations"] == sb["iterations"]


def test_resume_refuses_a_checkpoint_of_another_scenario(tmp_path, capsys):
    out = tmp_path / "run"
    sets = [a for kv in TINY for a in ("--set", kv)]
    assert main(["run", STRIP, "--out", str(out), "--quiet", *sets]) == 0
    code = main(["run", STRIP, "--out", str(out), "--resume", "--quiet", *sets,
                 "--set", "material.lame_mu=2.0"])
    assert code == 2 and "different scenario" in capsys.readouterr().err


def test_a_finished_run_is_not_overwritten_without_asking(tmp_path, capsys):
    out = tmp_path / "run"
    sets = [a for kv in TINY for a in ("--set", kv)]
    assert main(["run", STRIP, "--out", str(out), "--quiet", *sets]) == 0
    assert main(["run", STRIP, "--out", str(out), "--quiet", *sets]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["run", STRIP, "--out", str(out), "--quiet", "--overwrite", *sets]) == 0


@pytest.mark.skipif(shutil.which("pvpython") is None, reason="ParaView (pvpython) is not installed")
def test_paraview_opens_the_time_series(tmp_path):
    out = tmp_path / "run"
    sets = [a for kv in TINY for a in ("--set", kv)]
    assert main(["run", SQUARE, "--out", str(out), "--quiet", *sets]) == 0
    script = tmp_path / "open.py"
    script.write_text(
        "from paraview.simple import OpenDataFile, UpdatePipeline\n"
        f"r = OpenDataFile({str(out / 'fields.pvd')!r})\n"
        "print('TIMES', list(r.TimestepValues))\n"
        "UpdatePipeline(time=r.TimestepValues[-1], proxy=r)\n"
        "print('ARRAYS', sorted(r.PointData.keys()))\n")
    res = subprocess.run(["pvpython", "--force-offscreen-rendering", str(script)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    times = eval(res.stdout.split("TIMES", 1)[1].splitlines()[0])
    assert len(times) == 3
    assert all(a in res.stdout for a in ("'phi'", "'u'", "'G'", "'mask'"))


def test_compare_prints_both_runs_and_writes_the_picture(tmp_path, capsys):
    sets = [a for kv in TINY for a in ("--set", kv)]
    for name, seed in (("a", 0), ("b", 1)):
        assert main(["run", SQUARE, "--out", str(tmp_path / name), "--quiet", *sets,
                     "--set", f"seed={seed}"]) == 0
    capsys.readouterr()
    picture = tmp_path / "ab.png"
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--picture", str(picture)]) == 0
    out = capsys.readouterr().out
    for stat in ("crack_length", "skeleton_length", "fragments", "mean_fragment_area", "first_crack_t", "wall_time_s"):
        assert stat in out
    pixels = assert_picture(picture)
    assert pixels.shape[1] > 1.5 * pixels.shape[0]  # two panels side by side
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
