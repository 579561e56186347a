"""Observed displacements for `vefrac invert` (vefrac/displacements.py): each format read back with
its framing, missing points, the misfit against its closed form, bad input refused with exit 2, and
tiny inversions: the displacement pulls the assimilated state towards it, and a zero weight leaves
the inversion exactly as it is without one."""

import contextlib
import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import pyvista as pv
import torch
from PIL import Image

from vefrac import cli, config, displacements, inverse
from vefrac.geometry import build_domain
from vefrac.runner import Run
from vefrac.schema import Displacement

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")  # [-0.5, 0.5]², t_end 0.1, ℓe = sqrt(3/100)

TINY = ["solver.points=128", "solver.load_steps=2", "solver.iterations=3", "solver.first_step_iterations=4",
        "output.resolution=32", "output.snapshots=3", "invert.outer_iterations=1",
        "invert.assimilation_iterations=4", "network.fourier_features=8", "network.width=8",
        "network.hidden_layers=1", "solver.threads=1"]


def _sets(items):
    return [a for item in items for a in ("--set", item)]


def _picture(path, size=96):
    grey = np.full((size, size), 215, np.uint8)
    grey[:, size // 2 - 2:size // 2 + 2] = 25  # a vertical crack through the middle
    grey[size // 3:size // 3 + 3, : size // 2] = 25
    Image.fromarray(grey).save(path)
    return path


def _png16(path, levels: np.ndarray) -> Path:
    """A 16-bit PNG of (H, W, C) integer levels, row 0 the top (Pillow cannot write 16-bit colour)."""
    h, w, c = levels.shape
    colour = {2: 4, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + levels[j].astype(">u2").tobytes() for j in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return Path(path)


def _linear(points):
    """A displacement linear in x and y: bilinear interpolation reproduces it exactly."""
    x, y = points[..., 0], points[..., 1]
    return np.stack([1e-3 + 0.02 * x - 0.01 * y, -2e-3 + 0.005 * x + 0.03 * y], -1)


def _setting(resolution=21):
    scn = config.load_scenario(SQUARE)
    domain = build_domain(scn.domain)
    grid = domain.grid(resolution)
    return domain, grid, np.ones(grid.shape, bool)


def _read(path, **keys):
    domain, grid, material = _setting()
    spec = Displacement.model_validate({"file": str(path), **keys})
    u, valid, warnings = displacements.read_displacement(Path(spec.file), spec, domain=domain, grid=grid,
                                                         material=material)
    return grid, u, valid, warnings


def _lattice_points(origin, spacing, shape):
    ny, nx = shape
    xx, yy = np.meshgrid(origin[0] + spacing[0] * np.arange(nx), origin[1] + spacing[1] * np.arange(ny))
    return np.stack([xx, yy], -1)


# ----------------------------------------------------------------------------- reading


def test_npz_with_its_framing_and_stretched_over_the_domain(tmp_path):
    origin, spacing, shape = (-0.62, -0.55), (0.05, 0.04), (29, 27)  # a finer lattice beyond the domain
    u = _linear(_lattice_points(origin, spacing, shape))
    np.savez(tmp_path / "framed.npz", ux=u[..., 0], uy=u[..., 1], origin=np.array(origin), spacing=np.array(spacing))
    grid, got, valid, warnings = _read(tmp_path / "framed.npz")
    assert valid.all() and not warnings
    assert np.allclose(got, _linear(grid.points().reshape(*grid.shape, 2)), rtol=0, atol=1e-14)
    # without origin and spacing: the points span the domain's box, corners included
    box = _lattice_points((-0.5, -0.5), (1 / 12, 1 / 8), (9, 13))
    u = _linear(box)
    np.savez(tmp_path / "box.npz", ux=u[..., 0], uy=u[..., 1])
    grid, got, valid, _ = _read(tmp_path / "box.npz")
    assert valid.all()
    assert np.allclose(got, _linear(grid.points().reshape(*grid.shape, 2)), rtol=0, atol=1e-14)


def test_nan_marks_missing_points(tmp_path):
    domain, grid, _ = _setting()
    pts = grid.points().reshape(*grid.shape, 2)  # the same lattice as the grid
    u = _linear(pts)
    u[5, 7] = np.nan
    np.savez(tmp_path / "holes.npz", ux=u[..., 0], uy=u[..., 1], origin=np.array(grid.origin),
             spacing=np.array(grid.spacing))
    _, got, valid, _ = _read(tmp_path / "holes.npz")
    assert not valid[5, 7] and valid.sum() == valid.size - 1  # on its lattice: only that point is missing
    assert got[5, 7].tolist() == [0.0, 0.0]
    assert np.allclose(got[valid], u[valid], rtol=0, atol=1e-14)
    # on a lattice offset by half a spacing, each missing point takes its four neighbours along
    shifted = (grid.origin[0] - grid.spacing[0] / 2, grid.origin[1] - grid.spacing[1] / 2)
    u = _linear(_lattice_points(shifted, grid.spacing, (grid.shape[0] + 1, grid.shape[1] + 1)))
    u[6, 8, 0] = np.nan
    np.savez(tmp_path / "offset.npz", ux=u[..., 0], uy=u[..., 1], origin=np.array(shifted),
             spacing=np.array(grid.spacing))
    _, got, valid, _ = _read(tmp_path / "offset.npz")
    assert sorted(zip(*np.nonzero(~valid))) == [(5, 7), (5, 8), (6, 7), (6, 8)]


def test_vti_with_its_framing_and_a_vefrac_snapshot(tmp_path):
    origin, spacing, shape = (-0.6, -0.7), (0.1, 0.1), (15, 13)
    u = _linear(_lattice_points(origin, spacing, shape))
    u3 = np.concatenate([u, np.full(shape + (1,), 7.0)], -1)  # the z component is ignored
    u3[0, 0] = np.nan  # outside the domain: no matter
    image = pv.ImageData(dimensions=(shape[1], shape[0], 1), spacing=(*spacing, 1.0), origin=(*origin, 0.0))
    image.point_data["u"] = u3.reshape(-1, 3)
    image.save(tmp_path / "dic.vti")
    grid, got, valid, _ = _read(tmp_path / "dic.vti")
    assert valid.all()
    assert np.allclose(got, _linear(grid.points().reshape(*grid.shape, 2)), rtol=0, atol=1e-14)
    # vefrac's own snapshots carry u as (ny, nx, 3): read back exactly on their grid
    from vefrac import export

    domain, grid, material = _setting()
    field = _linear(grid.points().reshape(*grid.shape, 2))
    export.write_vti(tmp_path / "fields_0001.vti", origin=grid.origin, spacing=grid.spacing,
                     point_data={"phi": np.zeros(grid.shape), "u": field})
    _, got, valid, _ = _read(tmp_path / "fields_0001.vti")
    assert valid.all() and np.allclose(got, field, rtol=0, atol=1e-12)


def _pixel_field(h, w):
    """Integer 16-bit levels linear in the pixel indices (row 0 the top) for R and G."""
    jj, ii = np.mgrid[0:h, 0:w]
    r = 20000 + 300 * ii - 200 * jj
    g = 30000 - 100 * ii + 400 * jj
    return np.stack([r, g, np.zeros_like(r)], -1)


def _expected_from_pixels(points, *, h, w, size, scale, offset):
    """The level of _pixel_field at a physical point (pixel centres at x = -W/2 + (i + 0.5)·W/w)."""
    ii = (points[:, 0] + size[0] / 2) / (size[0] / w) - 0.5
    jj = h - 1 - ((points[:, 1] + size[1] / 2) / (size[1] / h) - 0.5)  # row 0 is the top
    r = 20000 + 300 * ii - 200 * jj
    g = 30000 - 100 * ii + 400 * jj
    return offset + scale * np.stack([r, g], -1) / 65535.0


@pytest.mark.parametrize("kind", ["png", "tif"])
def test_images_are_scaled_and_framed_like_pictures(tmp_path, kind):
    h, w, size = 30, 40, [1.6, 1.2]  # spans more than the domain
    levels = _pixel_field(h, w).astype(np.uint16)
    path = tmp_path / f"dic.{kind}"
    if kind == "png":
        _png16(path, levels)
    else:
        import tifffile

        tifffile.imwrite(path, levels)
    grid, got, valid, _ = _read(path, scale=0.02, offset=-0.01, size=size)
    assert valid.all()
    expected = _expected_from_pixels(grid.points(), h=h, w=w, size=size, scale=0.02, offset=-0.01)
    assert np.allclose(got.reshape(-1, 2), expected, rtol=0, atol=1e-12)


def test_an_alpha_channel_marks_valid_pixels(tmp_path):
    h, w = 20, 20
    levels = np.concatenate([_pixel_field(h, w)[..., :3], np.full((h, w, 1), 65535)], -1).astype(np.uint16)
    levels[:, :5, 3] = 0  # the left quarter has no data
    grid, got, valid, warnings = _read(_png16(tmp_path / "alpha.png", levels), scale=0.01)
    x = grid.points()[:, 0].reshape(grid.shape)
    assert not valid[x < -0.25 - 1e-9].any() and valid[x > -0.2].all()
    assert not warnings and np.all(got[~valid] == 0)


# ----------------------------------------------------------------------------- the misfit


def test_the_misfit_of_a_constant_offset_has_its_closed_form(tmp_path):
    np.savez(tmp_path / "u.npz", ux=np.zeros((3, 3)), uy=np.zeros((3, 3)))
    scn = config.load_scenario(SQUARE, [f"invert.displacement.file={tmp_path / 'u.npz'}",
                                        "invert.displacement.weight=2.5"])
    from vefrac.problem import build_problem

    problem = build_problem(scn)
    domain, grid, material = _setting(25)
    obs = displacements.for_inversion(scn, problem, grid, material, np.array([0.1]), g_mean=1e-3, log=print)
    scale = 0.1 * math.sqrt(3 / 100)  # U = εs(t)·ℓe
    assert obs.scale == pytest.approx(scale, rel=1e-12) and obs.frame == 0 and obs.time == 0.1
    # a field of its own: u_obs linear, u = u_obs + c
    obs = displacements.ObservedDisplacement(
        path=obs.path, u=_linear(grid.points().reshape(*grid.shape, 2)), valid=material, time=0.1, frame=0,
        scale=obs.scale, weight=2.5, factor=obs.factor)
    c = np.array([3e-3, -4e-3])
    closed = 2.5 * 1e-3 / (2 * 0.02) * (c @ c) / scale**2  # w_u·Ḡ/(2s)·|c|²/U², per area
    term = obs.term(grid, device=torch.device("cpu"), dtype=torch.float64)
    x = torch.as_tensor(np.random.default_rng(0).uniform(-0.5, 0.5, (500, 2)))
    density = term(x, {"u": torch.as_tensor(_linear(x.numpy()) + c)})
    assert np.allclose(density.numpy(), closed, rtol=1e-12)
    assert obs.misfit(obs.u + c, grid) == pytest.approx(closed * 1.0, rel=1e-12)  # × the area, 1
    assert obs.rms(obs.u + c, grid) == pytest.approx(0.005, rel=1e-12)


# ----------------------------------------------------------------------------- bad input


def _bad(tmp_path, case):
    ok = tmp_path / "ok.npz"
    np.savez(ok, ux=np.zeros((4, 4)), uy=np.zeros((4, 4)))
    if case == "missing":
        return ["--displacement", str(tmp_path / "gone.npz")], "gone.npz"
    if case == "suffix":
        (tmp_path / "u.csv").write_text("1,2\n")
        return ["--displacement", str(tmp_path / "u.csv")], "invert.displacement.file"
    if case == "corrupt-npz":
        (tmp_path / "bad.npz").write_bytes(b"not a zip")
        return ["--displacement", str(tmp_path / "bad.npz")], "bad.npz"
    if case == "no-uy":
        np.savez(tmp_path / "half.npz", ux=np.zeros((4, 4)))
        return ["--displacement", str(tmp_path / "half.npz")], "uy"
    if case == "shapes":
        np.savez(tmp_path / "shapes.npz", ux=np.zeros((4, 4)), uy=np.zeros((4, 5)))
        return ["--displacement", str(tmp_path / "shapes.npz")], "(ny, nx)"
    if case == "grey":
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "grey.png")
        return ["--displacement", str(tmp_path / "grey.png"), "--set", "invert.displacement.scale=1"], "channel"
    if case == "no-scale":
        _png16(tmp_path / "rgb.png", np.zeros((8, 8, 3), np.uint16))
        return ["--displacement", str(tmp_path / "rgb.png")], "invert.displacement.scale"
    if case == "corrupt-png":
        (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
        return ["--displacement", str(tmp_path / "broken.png"), "--set", "invert.displacement.scale=1"], "broken.png"
    if case == "no-u":
        pv.ImageData(dimensions=(4, 4, 1)).save(tmp_path / "empty.vti")
        return ["--displacement", str(tmp_path / "empty.vti")], "'u'"
    if case == "time":
        return ["--displacement", str(ok), "--displacement-time", "0.05"], "invert.displacement.time"
    if case == "time-only":
        return ["--displacement-time", "0.1"], "invert.displacement.file"
    if case == "weight":
        return ["--displacement", str(ok), "--set", "invert.displacement.weight=-1"], "invert.displacement.weight"
    if case == "framing":
        np.savez(tmp_path / "far.npz", ux=np.zeros((4, 4)), uy=np.zeros((4, 4)), origin=np.array([5.0, 5.0]),
                 spacing=np.array([0.1, 0.1]))
        return ["--displacement", str(tmp_path / "far.npz")], "origin and spacing"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing", "suffix", "corrupt-npz", "no-uy", "shapes", "grey", "no-scale",
                                  "corrupt-png", "no-u", "time", "time-only", "weight",
                                  "framing"])
def test_bad_displacements_exit_2_naming_the_key_or_file(tmp_path, capsys, case):
    args, named = _bad(tmp_path, case)
    picture = _picture(tmp_path / "cracks.png")
    out = tmp_path / "inv"
    code = cli.main(["invert", SQUARE, "--image", str(picture), *args, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert named in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not out.exists()


# ----------------------------------------------------------------------------- tiny inversions


@contextlib.contextmanager
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def test_the_truths_displacement_pulls_the_assimilated_state_towards_it(tmp_path):
    """The assimilated state at the picture's time, with and without the truth's displacement
    (w_u = 100: the tiny truth hardly cracks, so its u differs from the assimilated one's by a few
    per cent of U only): with it, its u is closer to the truth's. The truth has a seed (a G and
    networks) of its own; the networks are wide enough to take up a field they were not drawn for."""
    small = TINY + ["solver.points=512", "invert.assimilation_iterations=60", "network.fourier_features=32",
                    "network.width=32"]
    with _one_thread():
        truth = Run(config.load_scenario(SQUARE, small + ["seed=3"]), None, device=torch.device("cpu"),
                    log=lambda line: None)
        truth.execute()
        u = truth.outputs.snapshots[-1].arrays["u"]
        np.savez(tmp_path / "truth.npz", ux=u[..., 0], uy=u[..., 1], origin=np.array(truth.grid.origin),
                 spacing=np.array(truth.grid.spacing))
        picture = _picture(tmp_path / "cracks.png")
        with_u = small + [f"invert.displacement.file={tmp_path / 'truth.npz'}", "invert.displacement.weight=100"]
        states = {}
        for name, sets in (("without", small), ("with", with_u)):
            work = inverse.Inversion(config.load_scenario(SQUARE, sets), picture, tmp_path / "inv",
                                     device=torch.device("cpu"), log=lambda line: None)
            unknown = inverse.LogToughness(work.scn.invert, grid=work.grid, domain=work.problem.domain,
                                           g0=math.log(work.g_mean), s=work.s, seed=0)
            states[name] = work._assimilate(unknown, 0)
    obs = work.displacement  # the truth's u on the grid, where the picture shows material
    assert obs.valid.all() and obs.rms(grid=work.grid) > 0
    misfits = {name: obs.rms(state["u"], work.grid) for name, state in states.items()}
    assert misfits["with"] < 0.8 * misfits["without"], misfits


def test_a_zero_weight_leaves_the_inversion_as_it_is_and_the_report_is_written(tmp_path):
    picture = _picture(tmp_path / "cracks.png")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "u.npz", ux=1e-3 * rng.standard_normal((9, 9)), uy=1e-3 * rng.standard_normal((9, 9)))
    base = ["invert", SQUARE, "--image", str(picture), "--quiet", *_sets(TINY)]
    assert cli.main(base + ["--out", str(tmp_path / "plain")]) == 0
    assert cli.main(base + ["--out", str(tmp_path / "zero"), "--displacement", str(tmp_path / "u.npz"),
                            "--set", "invert.displacement.weight=0"]) == 0
    plain, zero = (export_rows(tmp_path / d / "inversion.csv") for d in ("plain", "zero"))
    assert [{k: r[k] for k in plain[0]} for r in zero] == plain  # every column of the plain run, bit for bit
    assert set(zero[0]) - set(plain[0]) == set(displacements.HISTORY_COLUMNS)
    a, b = (pv.read(str(tmp_path / d / "inferred.vti")).point_data for d in ("plain", "zero"))
    for name in ("G", "phi_model"):
        assert np.array_equal(np.asarray(a[name]), np.asarray(b[name])), name
    report = json.loads((tmp_path / "zero" / "summary.json").read_text())["inversion"]["displacement"]
    assert report["file"] == str((tmp_path / "u.npz").resolve()) and report["time"] == 0.1 and report["weight"] == 0
    for key in ("rms_observed", "rms_misfit_free_first", "rms_misfit_assimilated_last", "rms_misfit_final"):
        assert np.isfinite(report[key]) and report[key] > 0, key
    assert "displacement" not in json.loads((tmp_path / "plain" / "summary.json").read_text())["inversion"]


def export_rows(path):
    from vefrac import export

    return export.read_csv(path)


def test_a_time_lapse_takes_the_displacement_at_an_earlier_frame(tmp_path):
    """At the first of two frames: that frame's assimilated state takes it, and the final forward
    run's u at that time (its snapshot file, not the last one in memory) is what it is compared with."""
    frames = [_picture(tmp_path / "a.png"), _picture(tmp_path / "b.png")]
    box = _lattice_points((-0.5, -0.5), (1 / 12, 1 / 8), (9, 13))
    u = _linear(box)
    np.savez(tmp_path / "u.npz", ux=u[..., 0], uy=u[..., 1])
    out = tmp_path / "inv"
    assert cli.main(["invert", SQUARE, "--image", str(frames[0]), "--image", str(frames[1]), "--times", "0.05", "0.1",
                     "--displacement", str(tmp_path / "u.npz"), "--displacement-time", "0.05", "--out", str(out),
                     "--quiet", *_sets(TINY)]) == 0
    report = json.loads((out / "summary.json").read_text())["inversion"]["displacement"]
    assert report["time"] == 0.05 and report["frame"] == 0
    assert report["scale_U"] == pytest.approx(0.05 * math.sqrt(3 / 100), rel=1e-12)  # εs(0.05)·ℓe
    snapshot = pv.read(str(out / "fields_0001.vti"))  # snapshots at t = 0, 0.05, 0.1
    model = np.asarray(snapshot.point_data["u"])[:, :2]
    from vefrac.solve import trapezoid_weights

    domain, grid, _ = _setting(32)
    w = trapezoid_weights(grid)
    diff = ((model - _linear(grid.points())) ** 2).sum(-1)
    assert report["rms_misfit_final"] == pytest.approx(math.sqrt((w * diff).sum() / w.sum()), rel=1e-9)

