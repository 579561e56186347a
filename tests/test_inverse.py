"""The inverse mode: the energy-gap gradient it rests on, its update, and `vefrac invert` end to end.

The twin experiment (recovering a known G from its rendered cracks) is tests/test_twin.py (slow).
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import pyvista as pv
import torch
from PIL import Image
from scipy import optimize

from readback import assert_run_outputs
from vefrac import analysis, api, cli, inverse
from vefrac.energy import Physics, crack_length_density, energy_densities
from vefrac.geometry import Grid

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")

SMALL = ["solver.points=256", "solver.load_steps=2", "solver.iterations=4", "solver.first_step_iterations=6",
         "output.resolution=40", "output.snapshots=3", "invert.outer_iterations=2",
         "invert.assimilation_iterations=8", "network.fourier_features=16", "network.width=16"]


def _sets(items):
    return [a for item in items for a in ("--set", item)]


def _crack_picture(path, size=120):
    grey = np.full((size, size), 215, np.uint8)
    grey[:, size // 2 - 2:size // 2 + 2] = 25  # a vertical crack through the middle
    grey[size // 3:size // 3 + 3, : size // 2] = 25  # a T-junction on its left
    Image.fromarray(grey).save(path)
    return path


# ----------------------------------------------------------------------------- the gradient


@pytest.mark.parametrize("eps", [0.02, 0.05, 0.08])
def test_danskin_derivative_of_the_minimum_energy_is_the_crack_density(eps):
    """dE*/dG = c(φ*): the derivative of the minimised energy with respect to G is the crack-length
    density of the minimiser — the identity the G update uses (no derivative through training).
    Checked on the homogeneous uniformly shrunk layer, minimised numerically with vefrac's own
    energy densities, against a central finite difference of the minimum."""
    phys = Physics(lam=1.0, mu=1.0, eta=100.0, split="amor", fracture=True, s=0.02, k_res=1e-6)
    zero = torch.zeros(1, dtype=torch.float64)

    def energy(phi, G):
        d = energy_densities(phys, u=torch.zeros(1, 2, dtype=torch.float64),
                             grad_u=torch.zeros(1, 2, 2, dtype=torch.float64),
                             phi=torch.tensor([phi], dtype=torch.float64), grad_phi=torch.zeros(1, 2, dtype=torch.float64),
                             G=torch.tensor([G], dtype=torch.float64), eps_s=eps)
        return float(d["elastic"] + d["surface"] + d["substrate"])

    def minimum(G):
        r = optimize.minimize_scalar(lambda p: energy(p, G), bounds=(0, 1), method="bounded",
                                     options={"xatol": 1e-12})
        return r.fun, r.x

    G, dG = 1e-3, 1e-6
    _, phi_star = minimum(G)
    assert 0.05 < phi_star < 0.95  # a non-trivial minimiser
    derivative = (minimum(G + dG)[0] - minimum(G - dG)[0]) / (2 * dG)
    c = float(crack_length_density(torch.tensor([phi_star], dtype=torch.float64), zero[None].expand(1, 2),
                                   s=phys.s))
    assert derivative == pytest.approx(c, rel=1e-4)


def _line_fields(n=65):
    grid = Grid((0.0, 0.0), (1 / (n - 1), 1 / (n - 1)), (n, n))
    x = grid.points()[:, 0].reshape(n, n)
    s = 0.03
    crack = np.exp(-np.abs(x - 0.5) / s)
    c_line = crack**2 / s  # (φ² + s²φ'²)/(2s) of the AT2 profile
    return grid, x, s, c_line


def test_gap_step_lowers_G_on_missing_cracks_and_raises_it_on_spurious_ones():
    grid, x, s, c_line = _line_fields()
    material = np.ones_like(x, dtype=bool)
    spurious = np.roll(c_line, 20, axis=1)  # the model cracked elsewhere
    g = np.full_like(x, math.log(1e-3))
    target = inverse.gap_step(g, c_assimilated=c_line, c_free=spurious, material=material, s=s, step=0.3,
                              scale=float((s * c_line).max()), smooth=lambda v: v, mean_weight=0.0, g_mean=1e-3)
    on_obs = np.abs(x - 0.5) < 1e-9  # column 32
    on_model = np.abs(x - 52 / 64) < 1e-9  # column 52
    assert on_obs.any() and on_model.any()
    assert np.all(target[on_obs] < g[on_obs] - 0.29)  # a full step down where the picture has a crack
    assert np.all(target[on_model] > g[on_model] + 0.29)  # and up where only the model has one
    far = (np.abs(x - 0.5) > 0.2) & (np.abs(x - 52 / 64) > 0.2)
    assert np.allclose(target[far], g[far], atol=1e-3)  # no information, no change
    # identical patterns: no change at all (the gap is minimal)
    same = inverse.gap_step(g, c_assimilated=c_line, c_free=c_line, material=material, s=s, step=0.3, scale=1.0,
                            smooth=lambda v: v, mean_weight=0.0, g_mean=1e-3)
    assert np.array_equal(same, g)


def test_gap_step_mean_pull_restores_the_prior_mean():
    grid, x, s, c_line = _line_fields()
    material = np.ones_like(x, dtype=bool)
    g = np.full_like(x, math.log(1e-3))
    target = inverse.gap_step(g, c_assimilated=c_line, c_free=np.zeros_like(x), material=material, s=s, step=0.5,
                              scale=float((s * c_line).max()), smooth=lambda v: v, mean_weight=1.0, g_mean=1e-3)
    assert np.exp(target).mean() == pytest.approx(1e-3, rel=1e-12)
    assert target[np.abs(x - 0.5) < 1e-9].max() < target.max() - 0.4  # the crack stays the weak line


def test_the_free_state_read_like_the_picture_has_no_band_width_bias():
    """A model crack at the picture's place but twice as wide: its own crack density is larger
    there than the picture's, so the energy gap raises G under a crack that is right (the bias
    invert.gradient read_gap removes). Read like the picture, it is the picture's AT2 profile, and
    the step leaves G alone."""
    from vefrac.observe import read_like_picture

    n = 129
    grid, x, s, c_line = _line_fields(n)
    material = np.ones_like(x, dtype=bool)
    dx = grid.spacing[0]

    def density(phi):
        gy, gx = np.gradient(phi, dx)
        return (phi**2 + s**2 * (gx**2 + gy**2)) / (2 * s)

    wide = np.exp(-np.abs(x - 0.5) / (2 * s))
    read = read_like_picture(wide, material=material, spacing=grid.spacing, s=s)
    y = grid.points()[:, 1].reshape(n, n)
    inner = np.abs(y - 0.5) < 0.25  # a skeleton's ends retract by about the band's half width
    assert np.abs(read - np.exp(-np.abs(x - 0.5) / s))[inner].max() < dx / s  # within a pixel of the profile
    g = np.full_like(x, math.log(1e-3))
    crack = np.abs(x - 0.5) < 1e-9
    from scipy import ndimage

    def smooth(v):  # over the prior's default correlation length, 2 s
        return ndimage.gaussian_filter(v, 2 * s / dx, mode="nearest")

    step = dict(material=material, s=s, step=0.3, scale=float(smooth(s * c_line).max()), smooth=smooth,
                mean_weight=0.0, g_mean=1e-3)
    biased = inverse.gap_step(g, c_assimilated=c_line, c_free=density(wide), **step)
    assert np.all(biased[crack & inner] > g[crack & inner] + 0.015)  # the wide band pulls G up on the right crack
    alike = inverse.gap_step(g, c_assimilated=density(np.exp(-np.abs(x - 0.5) / s)), c_free=density(read), **step)
    assert np.abs(alike - g)[inner].max() < 1e-3
    nothing = read_like_picture(0.3 * np.ones_like(x), material=material, spacing=grid.spacing, s=s)
    assert not nothing.any()  # no crack, nothing read


# ----------------------------------------------------------------------------- end to end


def test_invert_writes_every_output(tmp_path):
    image = _crack_picture(tmp_path / "cracks.png")
    out = tmp_path / "inv"
    code = cli.main(["invert", SQUARE, "--image", str(image), "--out", str(out), "--quiet",
                     *_sets(SMALL + ["invert.seeds=2", "invert.crack_noise=0.5"])])
    assert code == 0
    summary = assert_run_outputs(out, t_end=0.1, snapshots=3)  # the forward run with the inferred G
    for name in ("inferred.vti", "inversion.csv", "inversion.png", "observation.png", "G_inferred.png",
                 "G_uncertainty.png", "G_spread.png", "observed_vs_model.png", "config.yaml", "inversion.pt"):
        assert (out / name).is_file(), name
    assert not (out / inverse.WORK).exists()
    inv = summary["inversion"]
    for key in ("final_misfit", "overlap", "precision", "recall", "mean_G", "std_log_G", "mean_log_G_std"):
        assert np.isfinite(inv[key]), key
    assert inv["cracks"] == "dark" and inv["seeds"] == 2
    assert [r["seed"] for r in inv["per_seed"]] == [0, 1] and all(1 <= r["best_iteration"] <= 2 for r in inv["per_seed"])
    vti = pv.read(str(out / "inferred.vti"))
    data = vti.point_data
    for array in ("G", "log_G", "log_G_std", "log_G_sigma", "phi_observed", "observed_skeleton", "material",
                  "phi_model"):
        assert array in data.keys(), array
    # the posterior std: below the prior's on the observed cracks, the prior's far from them
    unc = inv["uncertainty"]
    assert unc["crack_noise"] == 0.5
    assert unc["mean_sigma_near_cracks"] < unc["mean_sigma_far"] <= unc["prior_std"] + 1e-12
    sigma = np.asarray(data["log_G_sigma"])
    assert sigma.min() < 0.8 * unc["prior_std"] and sigma.max() == pytest.approx(unc["prior_std"], rel=1e-6)
    # the picture read the right way up: the vertical crack at x = 0, the T's arm on the left at the
    # height of pixel rows 40-42 of 120 from the top, y = 0.5 - 41.5/120
    nx, ny, _ = vti.dimensions
    x, y = (np.asarray(vti.points)[:, k].reshape(ny, nx) for k in (0, 1))
    seen = np.asarray(data["observed_skeleton"]).reshape(ny, nx).astype(bool)
    near = 1.5 * vti.spacing[0]
    stem, arm = (np.abs(x) < near), (np.abs(y - (0.5 - 41.5 / 120)) < near) & (x < 0)
    assert (stem | arm)[seen].mean() > 0.95  # the skeleton lies on the drawn cracks ...
    assert (seen & stem).any(axis=1).mean() > 0.8 and (seen & arm).any(axis=0)[x[0] < -0.1].mean() > 0.8  # ... along them
    # the scores are those of the forward run's cracks (phi_model) against the observed ones
    material = np.asarray(data["material"]).reshape(ny, nx).astype(bool)
    model = analysis.crack_skeleton(np.asarray(data["phi_model"]).reshape(ny, nx), mask=material)
    score = analysis.crack_overlap(model, seen, spacing=vti.spacing[:2], tolerance=inv["overlap_tolerance"],
                                   mask=material)
    for key in ("overlap", "precision", "recall"):
        assert inv[key] == pytest.approx(score["iou" if key == "overlap" else key], abs=1e-12), key
    assert np.all(np.asarray(data["G"]) > 0)
    assert np.allclose(np.log(data["G"]), data["log_G"])
    rows = (out / "inversion.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * 2  # header + seeds × outer iterations
    # the forward run's snapshots carry the inferred G, not the scenario's random one
    reader = pv.PVDReader(str(out / "fields.pvd"))
    reader.set_active_time_value(reader.time_values[-1])
    assert np.allclose(reader.read()[0].point_data["G"], data["G"], rtol=1e-6)
    assert "invert:" in (out / "config.yaml").read_text()


@pytest.mark.parametrize("warm", [[], ["invert.warm_forward=0.5"], ["invert.gradient=energy_gap"],
                                  ["invert.forward=fem"], ["invert.forward=fem", "invert.assimilation=fem"],
                                  ["invert.forward=fem", "invert.assimilation=fem", "invert.gradient=energy_gap"]],
                         ids=["cold", "warm-forward", "energy-gap", "fem-forward", "fem-both", "fem-both-energy-gap"])
def test_invert_resumed_after_an_interruption_repeats_the_uninterrupted_one(tmp_path, monkeypatch, warm):
    """Every random draw follows the seed (the network unknown's regression points included), and the
    checkpoint holds everything else (the warm start's networks too): interrupted and resumed, the
    inversion is the same, bit for bit."""
    image = _crack_picture(tmp_path / "cracks.png")
    sets = _sets(SMALL + ["invert.unknown=network"] + warm)  # the grid unknown draws nothing
    whole, out = tmp_path / "whole", tmp_path / "inv"
    assert cli.main(["invert", SQUARE, "--image", str(image), "--out", str(whole), "--quiet", *sets]) == 0
    args = ["invert", SQUARE, "--image", str(image), "--out", str(out), "--quiet", *sets]
    calls = {"n": 0}
    original = inverse.Inversion._forward

    def interrupted(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # the second outer iteration's forward run
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(inverse.Inversion, "_forward", interrupted)
    torch.manual_seed(12345)  # the global stream differs from the uninterrupted run's: it must not matter
    assert cli.main(args) == 130
    saved = torch.load(out / inverse.CHECKPOINT, weights_only=False)["state"]
    assert saved["iteration"] == 1 and len(saved["history"]) == 1
    monkeypatch.setattr(inverse.Inversion, "_forward", original)
    torch.rand(7)
    assert cli.main(args + ["--resume"]) == 0
    rows = (out / "inversion.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and rows[1].startswith("0,1,")  # iteration 1 kept, iteration 2 done after resuming
    assert rows == (whole / "inversion.csv").read_text().strip().splitlines()
    a, b = (pv.read(str(d / "inferred.vti")).point_data for d in (out, whole))
    for name in ("G", "phi_model"):
        assert np.array_equal(np.asarray(a[name]), np.asarray(b[name])), name
    assert json.loads((out / "summary.json").read_text())["inversion"]["seeds"] == 1
    # forward runs of 6 + 4 iterations, one per outer iteration (warm after the first: 3 + 2); the
    # final one is the best iterate's, kept (one seed). Assimilated 8 + 8 // 4, and as much again
    # for the free state read like the picture
    summary = json.loads((whole / "summary.json").read_text())
    iterations = summary["inversion"]["iterations"]
    read = "invert.gradient=energy_gap" not in warm
    if "invert.assimilation=fem" in warm:  # staggered iterations throughout, the same number every time
        assert summary["backend"] == summary["inversion"]["assimilation"] == "fem"
        assert iterations == json.loads((out / "summary.json").read_text())["inversion"]["iterations"]
        assert set(saved["assimilated"][0]) == {"u", "phi", "phi_prev"}  # the FEM state, warm start of the next
        return
    if "invert.forward=fem" in warm:  # FEM forward runs: their staggered iterations, the final one's among them
        assert summary["backend"] == "fem"
        assert iterations > (8 + 2) * 2 + summary["iterations"] > (8 + 2) * 2
        assert (saved["assimilated_read"] is not None) and saved["forward_networks"] is None
        return
    forward = 10 + 5 if "invert.warm_forward=0.5" in warm else 2 * 10
    assert iterations == forward + (8 + 2) * (2 if read else 1)
    assert (saved["assimilated_read"] is not None) == read  # its warm start is in the checkpoint


@pytest.mark.parametrize("forward", [["invert.warm_forward=0.5"], ["invert.forward=fem"]], ids=["warm", "fem"])
def test_the_kept_best_forward_run_is_the_one_run_again(tmp_path, monkeypatch, forward):
    """One seed: the final folder is the best iterate's forward run, kept in memory and written
    afterwards. One too large to keep in memory (or a resumed inversion whose best iterate came
    before the interruption) runs it again: the two folders hold the same run, bit for bit, and the
    kept one costs no iteration. Here
    the best iterate is warm-started (its run again must start from the same networks), or an FEM
    run; the resume test above, whose best iterate is the first, covers a cold one."""
    image = _crack_picture(tmp_path / "cracks.png")
    sets = _sets(SMALL + forward)
    kept, again = tmp_path / "kept", tmp_path / "again"
    calls = {"n": 0}

    def later_is_better(self, phi, k=-1):  # neither tiny run cracks: make the last iterate the best,
        calls["n"] += 1                     # so that its run is the updated G's, warm-started with warm
        return 1.0 / calls["n"]

    monkeypatch.setattr(inverse.Inversion, "_misfit", later_is_better)
    assert cli.main(["invert", SQUARE, "--image", str(image), "--out", str(kept), "--quiet", *sets]) == 0
    monkeypatch.setattr(inverse, "KEEP_RUN_BYTES", 0)  # too large to keep: run again
    calls["n"] = 0
    assert cli.main(["invert", SQUARE, "--image", str(image), "--out", str(again), "--quiet", *sets]) == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (kept, again))
    assert a["backend"] == b["backend"] == ("fem" if "invert.forward=fem" in forward else "pinn")
    assert a["inversion"]["per_seed"][0]["best_iteration"] == 2 and a["inversion"]["std_log_G"] > 0
    assert a["inversion"]["iterations"] + a["iterations"] == b["inversion"]["iterations"]
    for key in ("final", "first_crack_t", "fragment_areas", "iterations"):
        assert a[key] == b[key], key
    untimed = [[{k: v for k, v in step.items() if k != "seconds"} for step in run["steps"]] for run in (a, b)]
    assert untimed[0] == untimed[1]
    for key in ("overlap", "final_misfit", "mean_G"):
        assert a["inversion"][key] == b["inversion"][key], key
    assert (kept / "history.csv").read_text() == (again / "history.csv").read_text()
    names = sorted(p.name for p in kept.glob("fields_*.vti"))
    assert names == sorted(p.name for p in again.glob("fields_*.vti")) and len(names) == 3
    for name in names:
        x, y = (pv.read(str(d / name)).point_data for d in (kept, again))
        for array in ("phi", "u", "G"):
            assert np.array_equal(np.asarray(x[array]), np.asarray(y[array])), (name, array)
    for name in ("cracks.png", "checkpoint.pt", "inferred.vti", "observed_vs_model.png"):
        assert (kept / name).is_file(), name


@pytest.mark.parametrize("case, expected", [
    ("missing", "does not exist"),
    ("corrupt", "cannot be read"),
    ("blank", "no crack"),
    ("wide", "invert.observation.size"),
])
def test_invert_bad_images_exit_2_and_leave_no_folder(tmp_path, capsys, case, expected):
    path = tmp_path / "picture.png"
    if case == "corrupt":
        path.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    elif case == "blank":
        Image.fromarray(np.full((80, 80), 200, np.uint8)).save(path)
    elif case == "wide":
        grey = np.full((40, 400), 210, np.uint8)
        grey[:, 200:203] = 20
        Image.fromarray(grey).save(path)
    out = tmp_path / "inv"
    code = cli.main(["invert", SQUARE, "--image", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err.lower() or expected in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("sets, key", [(["solver.backend=fem"], "solver.backend"),
                                       (["invert.forward=fem", "invert.warm_forward=0.5"], "invert.warm_forward"),
                                       (["invert.forward=fem", "invert.gradient=energy_gap"], "invert.gradient"),
                                       (["invert.forward=mesh"], "invert.forward"),
                                       (["invert.assimilation=fem", "invert.gradient=energy_gap"], "invert.gradient"),
                                       (["invert.assimilation=fem", "invert.displacement={file: u.npz, scale: 1}"],
                                        "invert.displacement"),
                                       (["invert.assimilation=mesh"], "invert.assimilation")])
def test_invert_refuses_what_its_assimilations_cannot_compare(tmp_path, capsys, monkeypatch, sets, key):
    """solver.backend stays pinn (invert.forward and invert.assimilation choose the backends); FEM
    forward runs (invert.forward: fem) have no networks to warm-start; backends that differ need
    the read gap; observed displacements are a PINN assimilation's misfit."""
    image = _crack_picture(tmp_path / "cracks.png")
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "u.npz", ux=np.zeros((4, 4)), uy=np.zeros((4, 4)))
    code = cli.main(["invert", SQUARE, "--image", str(image), "--out", str(tmp_path / "o"), *_sets(sets)])
    err = capsys.readouterr().err
    assert code == 2 and key in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_the_forward_backend_key_leaves_older_scenarios_their_hash():
    """invert.forward at its default is left out of the dump, so a checkpoint written before the
    key existed still belongs to its scenario; set to fem, it is in the dump and the hash."""
    from vefrac import config

    plain = config.load_scenario(Path(SQUARE), [])
    pinn = config.load_scenario(Path(SQUARE), ["invert.forward=pinn"])
    fem = config.load_scenario(Path(SQUARE), ["invert.forward=fem"])
    assert "forward" not in config.dump_scenario(plain) and "forward: fem" in config.dump_scenario(fem)
    assert config.scenario_hash(plain) == config.scenario_hash(pinn) != config.scenario_hash(fem)


@pytest.mark.parametrize("kind", ["grid", "network"])
def test_log_toughness_follows_a_smooth_target(kind):
    """Both representations of log G take up a smooth target given on the evaluation grid."""
    from vefrac import config
    from vefrac.geometry import build_domain

    scn = config.load_scenario(SQUARE, [f"invert.unknown={kind}"])
    domain = build_domain(scn.domain)
    grid = domain.grid(32)
    unknown = inverse.LogToughness(scn.invert, grid=grid, domain=domain, g0=math.log(1e-3), s=0.02, seed=0)
    assert np.allclose(unknown.on_grid(), math.log(1e-3))  # starts at the prior mean
    pts = grid.points()
    target = (math.log(1e-3) + 0.4 * np.sin(2 * np.pi * pts[:, 0]) * np.cos(np.pi * pts[:, 1])).reshape(grid.shape)
    material = np.ones(grid.shape, dtype=bool)
    for _ in range(1 if kind == "grid" else 3):
        unknown.update(target, material)
    error = np.abs(unknown.on_grid() - target)
    assert error.max() < (0.01 if kind == "grid" else 0.1) and error.mean() < (0.005 if kind == "grid" else 0.03)
    G = unknown.field()(torch.as_tensor(pts))
    assert torch.all(G > 0) and np.allclose(np.log(G.numpy()), unknown.on_grid().ravel(), atol=1e-6)
    saved = unknown.state()
    other = inverse.LogToughness(scn.invert, grid=grid, domain=domain, g0=math.log(1e-3), s=0.02, seed=1)
    other.load(saved)
    assert np.allclose(other.on_grid(), unknown.on_grid())


def test_warm_forward_starts_each_step_from_the_previous_runs_networks(tmp_path):
    """invert.warm_forward: a load step given networks starts from them (not from the previous step's),
    with the φ increment reset to phi_bias all the same (the inversion's count of the shorter budget:
    the resume test above)."""
    from vefrac.runner import Run

    OUTPUT = {("phi_net", "last"), ("phi_net", "last_bias")}  # the φ-net's output layer
    scn = api.load_scenario(SQUARE, SMALL)
    first = Run(scn, None, device=torch.device("cpu"), log=lambda line: None)
    first.solver.record_networks = True
    first.execute()
    ended = first.solver.step_networks
    assert len(ended) == scn.solver.load_steps
    still = scn.model_copy(update={"solver": scn.solver.model_copy(update={"learning_rate": 1e-12})})
    for warm, same in ((ended, True), (None, False)):
        run = Run(still, None, device=torch.device("cpu"), log=lambda line: None)
        run.solver.warm_start, run.solver.record_networks = warm, True
        run.execute()
        for t, nets in run.solver.step_networks.items():  # a rate of 1e-12 leaves each step where it began
            close = all(torch.allclose(nets[name][key], ended[t][name][key], atol=1e-6)
                        for name in nets for key in nets[name] if (name, key) not in OUTPUT)
            assert close == same, (t, warm is None)
            assert torch.all(nets["phi_net"]["last"].abs() < 1e-6)  # the increment starts afresh
            assert torch.allclose(nets["phi_net"]["last_bias"], torch.tensor(scn.solver.phi_bias), atol=1e-6)


@pytest.mark.parametrize("gradient", ["read_gap", "energy_gap"])
def test_a_first_update_from_the_picture_lowers_G_under_its_cracks_only(tmp_path, monkeypatch, gradient):
    """invert.first_update picture: the first G update of a seed compares the assimilated state with
    nothing (the free state at the prior's G cracks where that G is weak, which says nothing of the
    truth), so it lowers G under the picture's cracks and raises it nowhere but through the pull of
    the mean; the read gap then skips that iteration's reading, and the progress total counts it so."""
    image = _crack_picture(tmp_path / "cracks.png")
    seen = []
    original = inverse.gap_step

    def recorded(g, *, c_assimilated, c_free, **kw):
        unpulled = original(g, c_assimilated=c_assimilated, c_free=c_free, **{**kw, "mean_weight": 0.0})
        seen.append({"c_free": c_free.copy(), "c_assimilated": c_assimilated, "change": unpulled - g})
        return original(g, c_assimilated=c_assimilated, c_free=c_free, **kw)

    monkeypatch.setattr(inverse, "gap_step", recorded)
    planned = []
    plan = inverse.Inversion.planned_iterations
    monkeypatch.setattr(inverse.Inversion, "planned_iterations", lambda self: planned.append(plan(self)) or planned[-1])
    sets = SMALL + [f"invert.gradient={gradient}", "invert.first_update=picture"]
    out = tmp_path / "inv"
    assert cli.main(["invert", SQUARE, "--image", str(image), "--out", str(out), *_sets(sets)]) == 0
    assert len(seen) == 2
    first, second = seen
    assert not first["c_free"].any() and second["c_free"].any()
    assert first["change"].max() <= 0 < -first["change"].min()  # lowered, raised nowhere
    under = first["c_assimilated"] > 0.5 * first["c_assimilated"].max()  # under the picture's cracks
    assert first["change"][under].mean() < 0.5 * first["change"].min()
    # two cold forward runs of 6 + 4; assimilated 8 + 8 // 4; the free state read like the picture
    # in the second outer iteration only (cold there: 8)
    iterations = json.loads((out / "summary.json").read_text())["inversion"]["iterations"]
    assert iterations == planned[0] == 2 * 10 + (8 + 2) + (8 if gradient == "read_gap" else 0)
    from vefrac import config

    dump = config.dump_scenario(config.load_scenario(Path(SQUARE), ["invert.first_update=picture"]))
    assert "first_update: picture" in dump
    assert "first_update" not in config.dump_scenario(config.load_scenario(Path(SQUARE), []))
