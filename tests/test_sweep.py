"""vefrac sweep: the grid, its validation, a 2 × 2 sweep end to end, skipping and resuming, submitit."""

import json
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml

import vefrac
from vefrac import sweep as sw
from vefrac.cli import main
from vefrac.config import load_scenario
from vefrac.errors import InputError
from vefrac.export import read_csv
from vefrac.runner import Run

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")
# seconds per run, yet enough training for the damage to follow the load and the toughness
TINY = ["solver.load_steps=2", "solver.iterations=60", "solver.first_step_iterations=60", "solver.points=512",
        "solver.learning_rate=1e-2", "output.resolution=40", "output.snapshots=3", "solver.checkpoint_every=5",
        "solver.cache_points_per_length=0.25", "network.fourier_features=16", "network.width=16",
        "solver.final_lr_fraction=0.1", "solver.phi_output_lr_scale=1"]  # the schedule the resume tolerance was set for
SETS = [a for item in TINY for a in ("--set", item)]
GRID = ["--grid", "fracture.toughness.mean=1e-4,1e-3", "--grid", "shrinkage.rate=1,3"]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_runs_import_the_vefrac_the_sweep_runs_with_and_get_their_threads(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = sw.child_env(3)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(ROOT), "/elsewhere"]
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    run = sw.SweepRun({}, ROOT / "nowhere", ())
    assert sw.sweep_threads(run, jobs=2, cores=8) == 4 and sw.sweep_threads(run, jobs=16, cores=8) == 1
    assert sw.sweep_threads(run, jobs=2, threads=3) == 3


# ----------------------------------------------------------------------------- the grid


def test_grid_values_split_at_top_level_commas():
    grid = sw.parse_grid(["domain.size=[1, 1],[2,1]", "material.split=amor, spectral", "seed=0"])
    assert grid == {"domain.size": ["[1, 1]", "[2,1]"], "material.split": ["amor", "spectral"], "seed": ["0"]}


@pytest.mark.parametrize("items, words", [
    (["material.lame_mu"], "expected KEY.PATH=V1,V2"),
    (["=1,2"], "expected KEY.PATH=V1,V2"),
    (["material.lame_mu="], "--grid material.lame_mu: no values"),
    (["material.lame_mu=1,,2"], "an empty value"),
    (["seed=1,2", "seed=3"], "--grid seed: given twice"),
    (["seed=1,1"], "listed twice"),
])
def test_a_malformed_grid_is_refused(items, words):
    with pytest.raises(InputError, match=words):
        sw.parse_grid(items)


def test_folder_names_are_safe_and_distinct(tmp_path):
    plan = sw.plan_sweep(SQUARE, {"domain.size": ["[1,1]", "[1, 1]", "[2, 1]"], "name": ["a.b"]}, out=tmp_path)
    names = [r.folder.name for r in plan.runs]
    assert len(set(names)) == 3
    assert names[2] == "domain.size=2-1__name=a.b"
    for name in names:
        assert all(c.isalnum() or c in "._=+-" for c in name), name
    long = sw.folder_name({"solver.points": "9" * 300})
    assert len(long) <= 120 and long != sw.folder_name({"solver.points": "9" * 299})


@pytest.mark.parametrize("args, words", [
    (["--grid", "material.lame_muu=1,2"], ["material.lame_muu", "did you mean 'material.lame_mu'"]),
    (["--grid", "material.split=amor,sideways"], ["material.split=sideways", "amor"]),
    (["--grid", "solver.points=1024,8"], ["solver.points=8"]),
    (["--grid", "seed=1,2", "--set", "material.lame_mu=-1"], ["material.lame_mu", "> 0"]),
    ([], ["the grid is empty"]),
    (["--grid", "seed="], ["--grid seed: no values"]),
    (["--grid", "seed=1", "--jobs", "0"], ["--jobs 0"]),
])
def test_bad_input_exits_2_naming_the_key_before_anything_runs(args, words, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", SQUARE, "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, (word, err)
    assert "Traceback" not in err and not out.exists()


def test_a_sweep_file_plans_what_the_options_plan(tmp_path):
    spec = {"scenario": SQUARE, "grid": {"fracture.toughness.mean": [1e-4, 1e-3], "shrinkage.rate": [1, 3]},
            "set": {"solver.points": 512}, "out": "there"}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    read = sw.read_sweep_file(tmp_path / "sweep.yaml")
    from_file = sw.plan_sweep(read["scenario"], read["grid"], overrides=read["overrides"], out=read["out"])
    from_options = sw.plan_sweep(SQUARE, sw.parse_grid(["fracture.toughness.mean=0.0001,0.001",
                                                        "shrinkage.rate=1,3"]),
                                 overrides=["solver.points=512"], out=tmp_path / "there")
    assert [r.folder for r in from_file.runs] == [r.folder for r in from_options.runs]
    assert [r.overrides for r in from_file.runs] == [r.overrides for r in from_options.runs]
    assert len(from_file.runs) == 4
    (tmp_path / "bad.yaml").write_text("grid: {seed: [1]}\nsets: {}\n")
    with pytest.raises(InputError, match="unknown key 'sets'"):
        sw.read_sweep_file(tmp_path / "bad.yaml")


# ----------------------------------------------------------------------------- running


def test_a_2x2_sweep_runs_end_to_end_skips_finished_runs_and_resumes_an_interrupted_one(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", SQUARE, *GRID, *SETS, "--out", str(out), "--jobs", "2", "--device", "cpu"]) == 0
    rows = read_csv(out / "sweep.csv")
    assert len(rows) == 4
    assert list(rows[0])[:2] == ["fracture.toughness.mean", "shrinkage.rate"]
    assert {r["status"] for r in rows} == {"done"}
    by = {(r["fracture.toughness.mean"], r["shrinkage.rate"]): r for r in rows}
    assert set(by) == {(1e-4, 1), (1e-4, 3), (1e-3, 1), (1e-3, 3)}
    lengths = [r["crack_length"] for r in rows]
    assert len(set(lengths)) == 4 and min(lengths) > 0
    assert by[1e-3, 3]["crack_length"] > by[1e-3, 1]["crack_length"]  # more shrinkage, more damage
    assert by[1e-4, 1]["crack_length"] > by[1e-3, 1]["crack_length"]  # weaker layer, more damage
    for r in rows:
        summary = json.loads((out / r["folder"] / "summary.json").read_text())
        assert r["fragments"] == summary["final"]["fragments"] and r["wall_time_s"] == summary["wall_time_s"]
        assert r["mean_fragment_area"] is not None and r["skeleton_length"] is not None
        assert summary["threads"] == sw.sweep_threads(sw.SweepRun({}, tmp_path / "new", ()), jobs=2)
        assert 0 < r["first_crack_t"] <= 0.1

    # again: every run is skipped, nothing is rewritten
    stamps = {r["folder"]: (out / r["folder"] / "summary.json").stat().st_mtime_ns for r in rows}
    capsys.readouterr()
    assert main(["sweep", SQUARE, *GRID, *SETS, "--out", str(out), "--jobs", "2", "--device", "cpu"]) == 0
    assert "4 runs: 4 skipped" in capsys.readouterr().out
    assert [r["status"] for r in read_csv(out / "sweep.csv")] == ["skipped"] * 4
    assert {f: (out / f / "summary.json").stat().st_mtime_ns for f in stamps} == stamps

    # one run interrupted mid-way (Ctrl-C checkpoints it): refused without --resume, resumed with it
    victim = by[1e-3, 3]
    folder = out / victim["folder"]
    items = [*TINY, "fracture.toughness.mean=1e-3", "shrinkage.rate=3", "solver.threads=1"]
    scn = load_scenario(SQUARE, items)
    for old in folder.iterdir():
        old.unlink()

    def stop(count, terms):
        if count >= 60 + 22:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Run(scn, folder, device=torch.device("cpu"), progress=stop, log=lambda line: None).execute()
    assert (folder / "checkpoint.pt").is_file() and not (folder / "summary.json").exists()
    assert main(["sweep", SQUARE, *GRID, *SETS, "--out", str(out), "--jobs", "2", "--device", "cpu"]) == 2
    assert "interrupted" in capsys.readouterr().err and not (folder / "summary.json").exists()
    statuses = [r["status"] for r in vefrac.run_sweep(
        SQUARE, {"fracture.toughness.mean": [1e-4, 1e-3], "shrinkage.rate": [1, 3]}, overrides=TINY, out=out,
        jobs=2, resume=True, device="cpu")]
    assert statuses == ["skipped", "skipped", "skipped", "done"]
    resumed = read_csv(out / "sweep.csv")[3]
    assert resumed["fragments"] == victim["fragments"]
    assert resumed["crack_length"] == pytest.approx(victim["crack_length"], rel=1e-6)


def test_a_failed_run_is_reported_in_the_table_and_its_log(tmp_path, monkeypatch):
    plan = sw.plan_sweep(SQUARE, {"seed": ["1", "2"]}, overrides=TINY, out=tmp_path / "sweep")
    failing = tmp_path / "python"  # stands in for the interpreter: every run fails while running
    failing.write_text("#!/bin/sh\necho \"vefrac: run failed: boom\" >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(failing))
    statuses = sw.run_local(plan, jobs=2, device="cpu", log=lambda line: None)
    assert statuses == ["failed (exit 1)"] * 2
    rows = read_csv(plan.table)
    assert [r["status"] for r in rows] == statuses and rows[0]["fragments"] is None and rows[1]["seed"] == 2
    assert "boom" in (plan.out / "seed=1" / "vefrac.log").read_text()


# ----------------------------------------------------------------------------- clusters


def test_the_slurm_executor_without_submitit_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    code = main(["sweep", SQUARE, "--grid", "seed=1,2", "--out", str(tmp_path / "s"), "--executor", "slurm",
                 "--partition", "debug"])
    assert code == 2
    assert "pip install 'vefrac[cluster]'" in capsys.readouterr().err


def test_a_sweep_through_submitit_runs_its_job_array(tmp_path):
    pytest.importorskip("submitit")
    from vefrac.cluster import make_executor, run_on_submitit

    plan = sw.plan_sweep(SQUARE, {"shrinkage.rate": ["1", "3"]}, overrides=TINY, out=tmp_path / "sweep")
    # submitit's LocalExecutor runs the very job array (and checks the slurm_* parameter names)
    executor = make_executor(plan.out / ".submitit", cluster="local", partition="debug", time_min=10, cpus=1,
                             array_parallelism=2, account="lab", setup=["module load python"])
    statuses = run_on_submitit(plan, executor, cpus=1, device="cpu", poll_s=0.5, log=lambda line: None)
    assert statuses == ["done", "done"]
    rows = read_csv(plan.table)
    assert [r["status"] for r in rows] == ["done", "done"] and rows[1]["crack_length"] > rows[0]["crack_length"]
    assert run_on_submitit(plan, executor, cpus=1, device="cpu", log=lambda line: None) == ["skipped"] * 2


def test_the_slurm_executor_off_a_cluster_exits_2_before_writing_anything(tmp_path, capsys):
    pytest.importorskip("submitit")
    out = tmp_path / "s"
    assert main(["sweep", SQUARE, "--grid", "seed=1,2", "--out", str(out), "--executor", "slurm"]) == 2
    assert "srun" in capsys.readouterr().err and not out.exists()
