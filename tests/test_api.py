"""The Python API: the documented example runs, results read as numpy, overrides, open_run."""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from PIL import Image

import vefrac
from vefrac import analysis, api
from vefrac.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SQUARE = ROOT / "scenarios" / "square-mud.yaml"
TINY = {"solver.load_steps": 2, "solver.iterations": 4, "solver.first_step_iterations": 4, "solver.points": 512,
        "output.resolution": 40, "output.snapshots": 3, "solver.cache_points_per_length": 0.25,
        "network.fourier_features": 16, "network.width": 16, "solver.threads": 1}


def env():
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def documented_example() -> str:
    """The first ```python block under '## Python API' in the README, else in docs/api.md."""
    for page in (ROOT / "README.md", ROOT / "docs" / "api.md"):
        text = page.read_text(encoding="utf-8") if page.is_file() else ""
        section = re.search(r"^## Python API\s*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
        if section:
            block = re.search(r"^```python\n(.*?)^```", section.group(1), flags=re.M | re.S)
            assert block, f"{page.name}: '## Python API' has no ```python block"
            return block.group(1)
    pytest.fail("neither README.md nor docs/api.md has a '## Python API' section")


def test_the_documented_example_runs(tmp_path):
    code = documented_example()
    assert len(code.strip().splitlines()) <= 20
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")  # the example's paths are from the root
    (tmp_path / "example.py").write_text(code, encoding="utf-8")
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    line = re.search(r"t = 0\.1: (\d+) fragments, crack length ([0-9.e+-]+)", done.stdout)
    assert line, done.stdout
    assert float(line.group(2)) > 0  # the example's budget is enough to grow some damage
    with Image.open(tmp_path / "phi.png") as picture:
        assert picture.format == "PNG" and min(picture.size) >= 200
        assert len(np.unique(np.asarray(picture.convert("L")))) > 10  # a field, not a blank canvas


def test_import_vefrac_imports_no_torch_and_changes_no_torch_setting():
    script = """
import sys
import vefrac
assert "torch" not in sys.modules, "import vefrac imported torch"
vefrac.load_scenario(sys.argv[1])
assert "torch" not in sys.modules, "load_scenario imported torch"
import torch
torch.set_num_threads(1); torch.set_default_dtype(torch.float64); torch.set_float32_matmul_precision("medium")
before = (torch.get_default_dtype(), torch.get_num_threads(), torch.get_float32_matmul_precision(),
          torch.are_deterministic_algorithms_enabled(), torch.is_grad_enabled())
for name in vefrac.__all__:
    getattr(vefrac, name)
import vefrac.cli, vefrac.runner, vefrac.sweep, vefrac.cluster
after = (torch.get_default_dtype(), torch.get_num_threads(), torch.get_float32_matmul_precision(),
         torch.are_deterministic_algorithms_enabled(), torch.is_grad_enabled())
assert before == after, (before, after)
print("unchanged")
"""
    done = subprocess.run([sys.executable, "-c", script, str(SQUARE)], env=env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "unchanged" in done.stdout, done.stderr


def test_every_export_resolves_and_unknown_names_raise():
    for name in vefrac.__all__:
        assert getattr(vefrac, name) is not None, name
    assert vefrac.crack_statistics is analysis.crack_statistics
    assert set(vefrac.__all__) <= set(dir(vefrac))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vefrac.nope  # noqa: B018


# ----------------------------------------------------------------------------- scenarios


def test_dict_overrides_equal_the_cli_strings():
    as_dict = vefrac.load_scenario(SQUARE, {"material.lame_mu": 2.0, "domain.size": [2, 1],
                                            "material.split": "spectral", "fracture.toughness.mean": 1e-4})
    as_text = vefrac.load_scenario(SQUARE, ["material.lame_mu=2.0", "domain.size=[2, 1]",
                                            "material.split=spectral", "fracture.toughness.mean=1e-4"])
    assert as_dict == as_text
    assert as_dict.material.lame_mu == 2.0 and as_dict.domain.size == [2.0, 1.0]
    assert as_dict != vefrac.load_scenario(SQUARE)


def test_a_dict_scenario_is_validated_and_left_untouched():
    data = yaml.safe_load(SQUARE.read_text())
    copy = yaml.safe_load(SQUARE.read_text())
    scn = vefrac.load_scenario(data, {"seed": np.int64(3)})
    assert data == copy  # the caller's dict is not changed
    assert scn == vefrac.load_scenario(SQUARE, ["seed=3"])
    again = vefrac.load_scenario(scn, {"material.lame_mu": np.float64(1.5)})  # from a Scenario
    assert again.material.lame_mu == 1.5 and again.seed == 3


@pytest.mark.parametrize("overrides, words", [
    ({"material.lame_muu": 2}, ("material.lame_muu", "did you mean 'material.lame_mu'")),
    ({"material.lame_mu": -1}, ("material.lame_mu", "must be a number > 0")),
    ({"material.split": "sideways"}, ("material.split", "amor")),
    ("material.lame_mu=2", ("list of KEY.PATH=VALUE strings or a dict",)),
    ({"material.lame_mu": object()}, ("is not a number, text, list or dict",)),
])
def test_bad_overrides_name_the_key(overrides, words):
    with pytest.raises(InputError) as err:
        vefrac.load_scenario(SQUARE, overrides)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_a_dict_with_a_bad_key_is_refused_naming_it():
    with pytest.raises(InputError, match="materiel"):
        vefrac.load_scenario({"materiel": {"lame_mu": 1.0}})
    with pytest.raises(InputError, match="expected a path, a dict or a Scenario"):
        vefrac.load_scenario(3)


def test_a_dict_finds_its_relative_image_under_base_dir(tmp_path):
    grey = np.full((16, 16), 255, dtype=np.uint8)
    grey[:, :4] = 0
    Image.fromarray(grey).save(tmp_path / "shape.png")
    data = {"domain": {"shape": "mask", "image": "shape.png", "size": [1.0, 1.0]}}
    with pytest.raises(InputError, match="shape.png"):
        vefrac.load_scenario(data, base_dir=tmp_path / "elsewhere")
    scn = vefrac.load_scenario(data, base_dir=tmp_path)
    assert Path(scn.domain.image) == (tmp_path / "shape.png").resolve()


# ----------------------------------------------------------------------------- results


def check_result(result, scn):
    times = np.linspace(0, scn.shrinkage.t_end, scn.output.snapshots)
    assert [s.t for s in result.snapshots] == pytest.approx(times.tolist())
    ny, nx = result.snapshots[0].phi.shape
    assert max(ny, nx) == scn.output.resolution
    for snap in result.snapshots:
        assert snap.x.shape == (nx,) and snap.y.shape == (ny,) and np.all(np.diff(snap.y) > 0)
        assert snap.u.shape == (ny, nx, 2) and snap.G.shape == (ny, nx) and snap.mask.dtype == bool
        assert snap.points.shape == (ny * nx, 2)
        assert np.array_equal(snap.points[nx + 2], [snap.x[2], snap.y[1]])  # x fastest
        assert np.isfinite(snap.phi).all() and 0 <= snap.phi.min() and snap.phi.max() <= 1
        assert snap.G.min() > 0  # square-mud's log-normal toughness
    assert result.snapshots[0].phi.max() == 0  # nothing broken at t = 0
    assert np.abs(result.snapshots[-1].u).max() > 0  # the layer has shrunk
    assert len(result.history) == scn.output.snapshots
    table = result.history_table()
    assert table["t"] == pytest.approx(times.tolist())
    assert np.array_equal(table["fragments"], [r["fragments"] for r in result.history])
    assert table["elastic"][-1] > table["elastic"][1] > 0  # εs grows, so does the elastic energy
    assert result.statistics is result.summary["final"]
    assert result.statistics["fragments"] == result.history[-1]["fragments"]
    assert result.statistics["crack_length"] == pytest.approx(result.history[-1]["crack_length"])


def test_a_run_in_memory_writes_nothing_and_restores_the_thread_count(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a temporary folder would go
    scn = vefrac.load_scenario(SQUARE, TINY)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    counts, lines = [], []
    try:
        result = vefrac.run(scn, device="cpu", progress=lambda count, terms: counts.append(count), log=lines.append)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    assert result.folder is None
    assert counts == sorted(counts) and counts[-1] == result.summary["iterations"] == 8
    assert any(line.startswith("step 2/2") for line in lines)
    assert not list(tmp_path.glob("vefrac-*"))  # no run folder left behind (torch may cache its own files here)
    check_result(result, scn)
    assert "Result('square-mud': 3 snapshots" in repr(result)


def test_a_folder_run_reads_back_as_the_in_memory_one(tmp_path):
    scn = vefrac.load_scenario(SQUARE, TINY)
    out = tmp_path / "run"
    on_disk = vefrac.run(scn, out=out, device="cpu")
    assert on_disk.folder == out and (out / "fields.pvd").is_file() and (out / "cracks.png").is_file()
    check_result(on_disk, scn)
    again = vefrac.open_run(out)
    assert again.summary == on_disk.summary and again.history == on_disk.history
    in_memory = vefrac.run(scn, device="cpu")
    for a, b in zip(in_memory.snapshots, on_disk.snapshots):
        for name in ("phi", "u", "G", "mask"):
            assert np.allclose(a.arrays[name], b.arrays[name], atol=1e-6), name
    assert in_memory.statistics == on_disk.statistics
    with pytest.raises(InputError, match="already holds a run"):
        vefrac.run(scn, out=out, device="cpu")


def test_open_run_refuses_a_folder_without_a_finished_run(tmp_path):
    with pytest.raises(InputError, match="not a finished vefrac run folder: it has no summary.json"):
        vefrac.open_run(tmp_path)
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "history.csv").write_text("t\n0.0\n")
    (tmp_path / "fields.pvd").write_text("<VTKFile><Collection><DataSet timestep='0' file='gone.vti'/>"
                                         "</Collection></VTKFile>")
    with pytest.raises(InputError, match="gone.vti"):
        vefrac.open_run(tmp_path)


def test_result_from_the_runs_in_memory_outputs():
    """The contract's Run(scn, out=None) outputs: snapshots with .t and .arrays, and the grid."""
    grid = SimpleNamespace(origin=(-0.5, -0.25), spacing=(0.25, 0.25), shape=(3, 5))
    u = np.arange(3 * 5 * 3, dtype=float).reshape(3, 5, 3)
    snaps = [SimpleNamespace(t=0.1, arrays={"phi": np.zeros((3, 5)), "u": u, "G": np.ones((3, 5)),
                                            "mask": np.ones((3, 5), np.uint8)})]
    result = api.Result.from_outputs(summary={"name": "x", "final": {"fragments": 1}}, rows=[{"t": 0.1}],
                                     snapshots=snaps, grid=grid)
    snap = result.snapshots[0]
    assert np.allclose(snap.x, [-0.5, -0.25, 0, 0.25, 0.5]) and np.allclose(snap.y, [-0.25, 0, 0.25])
    assert np.array_equal(snap.u, u[..., :2]) and snap.mask.all() and snap.spacing == (0.25, 0.25)
    assert result.statistics == {"fragments": 1} and result.folder is None


def test_history_frame_needs_pandas_only_when_asked():
    result = api.Result(snapshots=[], history=[{"t": 0.0, "x": 1}, {"t": 0.1}], summary={"final": {}})
    table = result.history_table()
    assert table["t"].tolist() == [0.0, 0.1] and np.isnan(table["x"][1])
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            result.history_frame()
    else:
        assert len(result.history_frame()) == 2


def test_resume_without_a_folder_is_refused():
    with pytest.raises(InputError, match="out="):
        vefrac.run(vefrac.load_scenario(SQUARE, TINY), resume=True)
