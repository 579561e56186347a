"""The solver protocol (vefrac/solvers.py): every backend and time treatment implements it, its
state survives a plain-data checkpoint, runs in memory write nothing, and checkpoints that hold
a pickled object are refused before anything in them runs."""

import builtins
import csv
import io
from pathlib import Path

import numpy as np
import pytest
import pyvista as pv
import torch

from vefrac.checkpoint import plain
from vefrac.cli import main
from vefrac.config import load_scenario
from vefrac.problem import build_problem
from vefrac.runner import Run
from vefrac.solve import Trainer
from vefrac.solvers import Solver, build_solver

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")
TINY = ["solver.load_steps=2", "solver.iterations=6", "solver.first_step_iterations=6", "solver.points=256",
        "output.resolution=30", "output.snapshots=3", "solver.checkpoint_every=3", "solver.threads=1",
        "solver.cache_points_per_length=0.25", "network.fourier_features=8", "network.width=8",
        "fem.points_per_length=0.25"]
KINDS = {"pinn-load-stepping": [], "pinn-space-time": ["solver.time=space_time"], "fem": ["solver.backend=fem"]}
CPU = torch.device("cpu")


def _solver(sets):
    scn = load_scenario(SQUARE, TINY + sets)
    return scn, build_solver(scn, build_problem(scn), device=CPU, log=lambda line: None)


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(plain(state), buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("sets", KINDS.values(), ids=KINDS.keys())
def test_every_solver_implements_the_protocol_and_resumes_from_plain_data(sets):
    scn, solver = _solver(sets)
    assert isinstance(solver, Solver)
    times = solver.times()
    assert times[0] == 0 and np.all(np.diff(times) > 0) and times[-1] == pytest.approx(scn.shrinkage.t_end)
    for ts in np.linspace(0, scn.shrinkage.t_end, scn.output.snapshots):  # every snapshot time is visited
        assert np.min(np.abs(times - ts)) < 1e-12
    t = float(times[1])
    record = solver.advance(t, checkpoint=lambda: None)
    assert record["iterations"] > 0 and solver.iterations >= record["iterations"]
    assert isinstance(solver.describe(record), str)
    points = solver.problem.domain.grid(12).points()
    before = solver.fields(points, t)
    assert {"phi", "grad_phi", "u", "G", "inside", "elastic", "surface", "substrate", "crack_density"} <= set(before)
    assert before["u"].shape == (len(points), 2) and before["grad_phi"].shape == (len(points), 2)
    assert np.abs(before["u"]).max() > 0  # it did minimise something
    saved = _roundtrip(solver.state_dict())  # refuses anything but tensors, numbers, strings, lists, dicts
    solver.commit(t)
    _, fresh = _solver(sets)
    fresh.load_state_dict(saved)
    after = fresh.fields(points, t)
    for name in ("phi", "u", "elastic"):
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert fresh.iterations == solver.iterations
    assert fresh.rewind() is False  # not interrupted inside a step: nothing to go back to
    assert set(solver.report()) >= {"blowups"}


def test_a_run_in_memory_writes_nothing_and_matches_the_folder_run(tmp_path, monkeypatch):
    scn = load_scenario(SQUARE, TINY)
    folder = tmp_path / "folder"
    Run(scn, folder, device=CPU, log=lambda line: None).execute()
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    run = Run(scn, None, device=CPU, log=lambda line: None)
    summary = run.execute()
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "folder"]
    snaps = run.outputs.snapshots
    assert [s.t for s in snaps] == pytest.approx([0.0, 0.05, 0.1])
    ny, nx = run.grid.shape
    assert run.grid.points().shape == (ny * nx, 2)
    assert snaps[-1].arrays["phi"].shape == (ny, nx) and snaps[-1].arrays["u"].shape == (ny, nx, 3)
    assert snaps[-1].arrays["mask"].dtype == np.uint8
    with open(folder / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(run.outputs.rows) == 3
    for written, kept in zip(rows, run.outputs.rows):
        assert set(written) == set(kept)
        assert float(written["total"]) == pytest.approx(kept["total"], rel=1e-9)
    for i, snap in enumerate(snaps):
        on_disk = pv.read(folder / f"fields_{i:04d}.vti").point_data
        np.testing.assert_array_equal(on_disk["phi"], snap.arrays["phi"].ravel())
    assert summary["final"]["fragments"] == snaps[-1].stats["fragments"]


class _Marker:
    """Unpickling this writes a file: what a malicious checkpoint could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return builtins.open, (self.path, "w")


def test_a_checkpoint_carrying_a_pickled_object_is_refused_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    sets = [a for kv in TINY for a in ("--set", kv)]
    assert main(["run", SQUARE, "--out", str(out), "--quiet", *sets]) == 0
    good = torch.load(out / "checkpoint.pt", weights_only=True)  # what vefrac writes loads safely
    marker = tmp_path / "marker"
    good["outputs"]["rows"].append(_Marker(marker))
    torch.save(good, out / "checkpoint.pt")
    code = main(["run", SQUARE, "--out", str(out), "--resume", "--quiet", *sets])
    err = capsys.readouterr().err
    assert code == 2
    assert "pickled object" in err and "refused" in err and "checkpoint.pt" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not marker.exists()


def test_an_extra_term_adds_its_weighted_integral_to_the_loss():
    scn, solver = _solver(["solver.dtype=float64"])
    x, w = torch.rand(64, 2, dtype=torch.float64) - 0.5, torch.full((64,), 1 / 64, dtype=torch.float64)
    t = torch.full((64,), 0.05, dtype=torch.float64)
    base, terms = solver.trainer.loss(x, w, t)
    with_term = Trainer(solver.problem, scn.solver, generator=torch.Generator().manual_seed(0), dtype=torch.float64,
                        model=solver.model, extra_terms=[lambda x, dens: 3.0 + dens["phi"] * 0])
    loss, terms_extra = with_term.loss(x, w, t)
    assert (loss - base).item() == pytest.approx(3.0 / solver.problem.energy_scale, rel=1e-12)
    torch.testing.assert_close(terms, terms_extra)  # the three energy terms stay the energy's own


def test_the_scaled_predictor_carries_the_displacement_to_the_next_load():
    """solver.predictor: scaled starts a step from the previous u times f(t)/f(t_prev): exactly
    that field, nearer the next load's minimiser than the unscaled one (fracture off: linear);
    a drying front leaves u as it is; the default (scaled) is left out of the dump, none is written."""
    sets = ["fracture.enabled=false", "solver.first_step_iterations=150", "solver.dtype=float64"]
    fields = {}
    for predictor in ("none", "scaled"):
        scn, solver = _solver(sets + [f"solver.predictor={predictor}"])
        t1, t2 = (float(t) for t in solver.times()[1:3])
        solver.advance(t1, checkpoint=lambda: None)
        # the energy by the midpoint rule on a 64 × 64 grid of the unit square: no sampling noise
        mid = (torch.arange(64, dtype=torch.float64) + 0.5) / 64 - 0.5
        x = torch.cartesian_prod(mid, mid)
        n = len(x)
        before = solver.model.fields(x, torch.full((n,), t2, dtype=torch.float64))[0].detach()
        solver._start_step(t2)
        after = solver.model.fields(x, torch.full((n,), t2, dtype=torch.float64))[0].detach()
        fields[predictor] = (before, after, solver.trainer.loss(x, torch.full((n,), 1 / n, dtype=torch.float64),
                                                              torch.full((n,), t2, dtype=torch.float64))[0].item())
    ratio = t2 / t1  # square-mud's plain history: f = rate·t
    torch.testing.assert_close(fields["scaled"][1], ratio * fields["scaled"][0])
    torch.testing.assert_close(fields["none"][1], fields["none"][0])
    assert fields["scaled"][2] < fields["none"][2]
    _, front = _solver(sets + ["solver.predictor=scaled", "shrinkage.front.edge=left", "shrinkage.front.speed=3"])
    assert front._load_ratio(float(front.times()[2])) is None
    assert "predictor" not in load_scenario(SQUARE, TINY).model_dump()["solver"]  # the default, scaled
    assert load_scenario(SQUARE, TINY).solver.predictor == "scaled"
    off = load_scenario(SQUARE, TINY + ["solver.predictor=none"])
    assert off.model_dump()["solver"]["predictor"] == "none"  # an explicit none survives a dump and reload
