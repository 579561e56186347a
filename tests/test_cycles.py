"""Wet–dry cycles (vefrac/cycles.py, runner.Run): the healing law, φ non-decreasing within each
drying phase and restarted at each rewetting, full healing repeating the first cycle, both
backends, and a resumed run equal to an uninterrupted one."""

from pathlib import Path

import numpy as np
import pytest
import torch

from vefrac.cli import main
from vefrac.config import validate_scenario
from vefrac.cycles import HealedToughness, healing_grid
from vefrac.fields import ConstantField
from vefrac.geometry import build_domain
from vefrac.problem import build_problem
from vefrac.runner import Run

ROOT = Path(__file__).resolve().parents[1]
QUIET = dict(device=torch.device("cpu"), log=lambda s: None)


def cycles_scenario(*, fraction=0.5, count=2, backend="fem", **extra):
    base = {"seed": 5, "domain": {"shape": "rectangle", "size": [0.4, 0.4]},
            "material": {"substrate_stiffness": 100.0},
            "fracture": {"length_scale": 0.025,
                         "toughness": {"kind": "lognormal", "mean": 1e-3, "cv": 0.5, "correlation_length": 0.05}},
            "shrinkage": {"t_end": float(count), "cycles": {"count": count, "peak": 0.12},
                          "healing": {"fraction": fraction}},
            "output": {"snapshots": 4 * count + 1, "resolution": 48},
            "solver": {"backend": backend, "load_steps": 8 * count, "iterations": 30, "first_step_iterations": 60,
                       "points": 1024, "cache_points_per_length": 1.0},
            "network": {"fourier_features": 32, "width": 32},
            "fem": {"points_per_length": 1.0, "max_iterations": 60}}
    return validate_scenario(base | extra)


def test_the_healing_law_scars_g_by_the_cycles_cracks():
    domain = build_domain(validate_scenario({}).domain)
    grid = healing_grid(domain, s=0.05)
    G = HealedToughness(ConstantField(2.0), grid)
    pts = grid.points()
    phi1 = np.clip(1 - np.abs(pts[:, 0]) / 0.1, 0, 1)  # a crack along x = 0
    phi2 = np.clip(1 - np.abs(pts[:, 1]) / 0.1, 0, 1)  # then one along y = 0
    G.heal(phi1, fraction=0.25)
    G.heal(phi2, fraction=0.25)
    x = torch.as_tensor(pts)
    want = 2.0 * (1 - 0.75 * phi1) * (1 - 0.75 * phi2)
    assert np.allclose(G(x).numpy(), want, rtol=1e-12)
    assert G(torch.zeros(1, 2, dtype=torch.float64)).item() == pytest.approx(2.0 * 0.25**2)
    assert grid.spacing[0] <= 0.05 / 4


def test_fem_cycles_restart_phi_and_keep_it_non_decreasing_within_each_drying_phase():
    scn = cycles_scenario(fraction=0.3, count=2)
    run = Run(scn, None, **QUIET)
    summary = run.execute()
    snaps = run.outputs.snapshots
    times = np.array([s.t for s in snaps])
    assert len(summary["cycles"]) == 2 and [c["t"] for c in summary["cycles"]] == [1.0, 2.0]
    assert summary["cycles"][0]["cells"] >= 2  # the first drying phase cracked the layer
    phi = [s.arrays["phi"] for s in snaps]
    for k in range(1, len(snaps)):
        if times[k - 1] != 1.0:  # within a drying phase (rewetting at t = 1): φ only grows
            assert (phi[k] >= phi[k - 1] - 1e-9).all(), times[k]
    after = int(np.flatnonzero(times > 1.0)[0])
    assert phi[after].max() < phi[after - 1].max()  # the cracks closed at the rewetting
    # the eps_s column follows the history: 0.12 at the peaks, 0 at the rewettings
    eps = {row["t"]: row["eps_s"] for row in run.rows}
    assert eps[0.5] == pytest.approx(0.12) and eps[1.0] == pytest.approx(0.0) and eps[1.5] == pytest.approx(0.12)
    # G is scarred where the first cycle cracked: down to 0.3 of it at the crack centres
    G0 = build_problem(scn).toughness(torch.as_tensor(run.grid.points())).numpy()
    G1 = run.problem.toughness(torch.as_tensor(run.grid.points())).numpy()
    cracked = phi[after - 1].ravel() > 0.95
    assert cracked.any()
    assert np.allclose(G1[cracked] / G0[cracked], 1 - 0.7 * phi[after - 1].ravel()[cracked], atol=0.05)
    assert np.allclose(G1[phi[after - 1].ravel() < 1e-3], G0[phi[after - 1].ravel() < 1e-3], rtol=1e-3)


def test_full_healing_repeats_the_first_cycle():
    """fraction = 1: G is unchanged and the rewetted layer (u = 0 at εs = 0) is the initial one."""
    run = Run(cycles_scenario(fraction=1.0, count=2), None, **QUIET)
    run.execute()
    first, second = (c["phi"].numpy() for c in run.state.cycles)
    assert first.max() > 0.9
    assert np.abs(first - second).max() < 1e-4
    a, b = run.state.cycles
    assert (a["cells"], a["junctions"]) == (b["cells"], b["junctions"])


def test_a_resumed_cycles_run_matches_an_uninterrupted_one(tmp_path):
    scn = cycles_scenario(fraction=0.3, count=2)
    a = Run(scn, tmp_path / "a", pictures=False, **QUIET)
    a.execute()
    def stop(count, terms):  # in the second cycle, after the rewetting
        if count >= 0.75 * a.solver.iterations:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Run(scn, tmp_path / "b", progress=stop, pictures=False, **QUIET).execute()
    b = Run(scn, tmp_path / "b", resume=True, pictures=False, **QUIET)
    assert b.state.cycles and len(b.state.cycles) == 1  # stopped after the first rewetting
    b.execute()
    for ca, cb in zip(a.state.cycles, b.state.cycles):
        assert np.allclose(ca["phi"].numpy(), cb["phi"].numpy(), atol=1e-6)
    assert np.allclose(a.problem.toughness.factor.numpy(), b.problem.toughness.factor.numpy(), atol=1e-9)
    assert (tmp_path / "b" / "cycles.npz").is_file()
    saved = np.load(tmp_path / "a" / "cycles.npz")
    assert saved["phi"].shape[0] == 2 and list(saved["t"]) == [1.0, 2.0]


def test_pinn_load_stepping_runs_the_cycles():
    scn = cycles_scenario(fraction=0.5, count=2, backend="pinn")
    scn = scn.model_copy(update={
        "solver": scn.solver.model_copy(update={"load_steps": 8, "iterations": 15, "first_step_iterations": 30,
                                                "points": 512, "cache_points_per_length": 0.5}),
        "output": scn.output.model_copy(update={"resolution": 32})})
    run = Run(scn, None, **QUIET)
    summary = run.execute()
    assert [c["t"] for c in summary["cycles"]] == [1.0, 2.0]
    assert run.model.cache is not None  # the second cycle committed its own φ again
    snaps = run.outputs.snapshots
    times = [s.t for s in snaps]
    k = times.index(1.25)
    assert snaps[k].arrays["phi"].max() <= snaps[k - 1].arrays["phi"].max() + 1e-6 or \
        run.state.cycles[0]["phi"].max() < 0.5  # φ restarted at t = 1 (unless nothing had cracked)


def test_space_time_refuses_healing(tmp_path, capsys):
    path = tmp_path / "cycles.yaml"
    path.write_text("solver: {time: space_time}\nshrinkage: {t_end: 2.0, cycles: {count: 2, peak: 0.1}, "
                    "healing: {fraction: 0.5}}\n")
    rc = main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "shrinkage.healing" in err and "load_stepping" in err, err
    assert not (tmp_path / "out").exists()
