"""Pattern statistics (vefrac.pattern), the photo-reading steps (vefrac.ridges) and `vefrac analyze`.

Networks with known answers are built at test time: φ = exp(−d/s) of straight lines (a run's field)
and the same lines drawn as a photo (EXIF-rotated, unevenly lit, grainy), in tmp_path.
"""

import json
import math

from pathlib import Path

import numpy as np
import pytest
import pyvista as pv
from PIL import Image

from vefrac import cli, config, export, pattern, ridges

SQUARE = str(Path(__file__).resolve().parents[1] / "scenarios" / "square-mud.yaml")

S = 0.01
N = 201  # grid points along the unit square: spacing s/2
SPACING = (1 / (N - 1), 1 / (N - 1))
A = 0.2  # cell side of the square network: lines at -0.4, -0.2, 0, 0.2, 0.4


def coords(n=N):
    return np.linspace(-0.5, 0.5, n)


def square_network_distance(n=N, a=A):
    x = coords(n)
    t = np.abs((x + 0.5) % a - a / 2)  # distance to the nearest line at -0.4 + k a
    return np.minimum(t[None, :], t[:, None])


def square_phi(n=N):
    return np.exp(-square_network_distance(n) / S)


# ------------------------------------------------------------------------------ closed forms


def test_square_network_closed_forms():
    st = pattern.crack_pattern(square_phi(), spacing=SPACING, origin=(-0.5, -0.5), s=S).statistics
    # 5 + 5 lines of length 1 in a unit area: L/A = 2/a = 10 (skeletons stop ~a band short of the edge)
    assert st["crack_length_per_area"] == pytest.approx(2 / A, rel=0.04)
    assert st["crack_spacing"] == pytest.approx(A, rel=0.04)
    assert st["intercept_x"] == pytest.approx(A, rel=0.04) and st["intercept_y"] == pytest.approx(A, rel=0.04)
    # 6 × 6 cells, the 4 × 4 inner ones whole: side a less the band φ > 0.5 (half-width s ln 2)
    assert st["cells"] == 36 and st["interior_cells"] == 16
    assert st["interior_cell_area"]["mean"] == pytest.approx((A - 2 * S * math.log(2)) ** 2, rel=0.05)
    assert st["interior_cell_area"]["cv"] < 0.02
    assert st["x_junctions"] == 25 and st["t_junctions"] == st["y_junctions"] == 0
    assert st["free_ends"] == 0  # every line runs out of the frame
    assert st["nematic_order"] < 0.05  # as many lines along x as along y
    hist = st["orientation_histogram"]["counts"]
    assert hist[0] + hist[-1] > 0.45 * sum(hist) and hist[9] > 0.45 * sum(hist)


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0, 135.0])
def test_parallel_lines_are_fully_ordered_along_their_direction(angle):
    x = coords()
    xx, yy = np.meshgrid(x, x)
    normal = np.radians(angle + 90.0)
    u = xx * math.cos(normal) + yy * math.sin(normal)
    d = np.abs((u + 0.1) % 0.2 - 0.1)
    st = pattern.crack_pattern(np.exp(-d / S), spacing=SPACING, s=S).statistics
    assert st["nematic_order"] > 0.95
    gap = abs((st["director_degrees"] - angle + 90.0) % 180.0 - 90.0)
    assert gap < 3.0
    # 2A/L is twice the spacing of parallel lines (it is the side of square cells)
    assert st["crack_spacing"] == pytest.approx(2 * 0.2, rel=0.08)
    # a line along x meets lines at angle θ every a / |sin θ|; one along them meets none
    for key, sine in (("intercept_x", math.sin(math.radians(angle))), ("intercept_y", math.cos(math.radians(angle)))):
        if abs(sine) < 1e-6:
            assert st[key] is None
        else:
            assert st[key] == pytest.approx(0.2 / abs(sine), rel=0.06)


def test_brick_network_has_t_junctions_with_a_straight_pair():
    """Rows 0.2 apart, each row's walls offset by half a brick: every junction is a T."""
    x = coords()
    xx, yy = np.meshgrid(x, x)
    d_rows = np.abs((yy + 0.5) % 0.2 - 0.1)
    row = np.floor((yy + 0.4) / 0.2)
    shift = np.where(row % 2 == 0, 0.0, 0.1)
    d_walls = np.abs((xx + 0.5 + shift) % 0.2 - 0.1)
    st = pattern.crack_pattern(np.exp(-np.minimum(d_rows, d_walls) / S), spacing=SPACING, s=S).statistics
    assert st["junctions"] >= 30
    assert st["t_junction_fraction"] > 0.9 and st["x_junctions"] == 0
    big = [max(a) for a in st["junction_angles"]]
    assert np.median(big) == pytest.approx(180.0, abs=10.0)


# ------------------------------------------------------------------------------ ridges steps


def test_prune_spurs_removes_short_whiskers_only():
    skel = np.zeros((60, 80), bool)
    skel[30, 5:75] = True  # the crack
    skel[22:30, 40] = True  # an 8-pixel whisker off it
    skel[30:55, 20] = True  # a 25-pixel branch
    pruned = ridges.prune_spurs(skel, max_length=12)
    assert not pruned[22:29, 40].any()
    assert pruned[30, 5:75].all() and pruned[31:55, 20].all()
    assert ridges.prune_spurs(skel, max_length=0).sum() == skel.sum()


def test_close_gaps_joins_ends_ahead_within_reach():
    skel = np.zeros((60, 120), bool)
    skel[30, 10:50] = True
    skel[30, 56:110] = True  # a gap of 5 pixels between 50 and 55
    skel[5:20, 80] = True  # ends 10 pixels above the crack, pointing at it
    closed = ridges.close_gaps(skel, max_gap=12)
    assert closed[30, 10:110].all()
    assert closed[20:30, 80].all()
    far = np.zeros((60, 120), bool)
    far[30, 10:50] = True
    far[30, 80:110] = True  # 29 pixels apart: left open
    assert not ridges.close_gaps(far, max_gap=12)[30, 50:80].any()


def test_close_gaps_runs_cracks_out_to_the_frame():
    skel = np.zeros((60, 80), bool)
    skel[30, 6:70] = True  # stops 6 pixels short of the left edge and 10 of the right
    closed = ridges.close_gaps(skel, max_gap=8)
    assert closed[30, :70].all() and not closed[30, 71:].any()


# ------------------------------------------------------------------------------ photo and run


def mud_photo(path, *, n=400, seed=0):
    """The square network drawn as a phone photo: dark cracks 4 px wide on light mud whose light
    falls off by half across the frame, grain noise, stored sideways with EXIF orientation 6."""
    rng = np.random.default_rng(seed)
    c = (np.arange(n) + 0.5) / n - 0.5  # pixel centres, row 0 = top = largest y
    xx, yy = np.meshgrid(c, -c)
    light = 0.55 + 0.45 * (xx + 0.5) * (0.8 + 0.2 * np.cos(3 * yy))
    t = lambda v: np.abs((v + 0.5) % A - A / 2)  # noqa: E731
    crack = np.minimum(t(xx), t(yy)) < 2.0 / n
    grey = light * np.where(crack, 0.3, 0.85) + rng.normal(0, 0.04, (n, n))
    upright = np.clip(255 * grey, 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(path, quality=90, exif=exif)
    return path


def fake_run(folder, phi):
    """A finished run's folder as vefrac writes it: fields.pvd → fields_0001.vti, summary, config."""
    folder.mkdir()
    scn = config.Scenario.model_validate({
        "name": "grid", "fracture": {"length_scale": S}, "output": {"resolution": N},
        "invert": {"observation": {"method": "ridge", "crack_width": 0.01}}})
    export.atomic_write_text(folder / "config.yaml", config.dump_scenario(scn))
    mask = np.ones(phi.shape, np.uint8)
    export.write_vti(folder / "fields_0001.vti", origin=(-0.5, -0.5), spacing=SPACING,
                     point_data={"phi": phi, "mask": mask, "G": np.full(phi.shape, 1e-3)})
    export.write_pvd(folder / "fields.pvd", [(0.1, "fields_0001.vti")])
    export.write_json(folder / "summary.json", {"name": "grid", "backend": "fem", "final": {"fragments": 36}})
    return folder


def analysis_of(out):
    return json.loads((out / "analysis.json").read_text())["statistics"]


def test_analyze_a_photo_and_a_run_alike(tmp_path, capsys):
    run = fake_run(tmp_path / "run", square_phi())
    photo = mud_photo(tmp_path / "mud.jpg")
    assert cli.main(["analyze", str(run), "--out", str(tmp_path / "a_run")]) == 0
    assert cli.main(["analyze", str(photo), "--scenario", str(run / "config.yaml"),
                     "--out", str(tmp_path / "a_photo")]) == 0
    assert cli.main(["analyze", str(photo), "--size", "1", "1", "--out", str(tmp_path / "a_default")]) == 0
    of_run, of_photo, default = (analysis_of(tmp_path / k) for k in ("a_run", "a_photo", "a_default"))
    for st in (of_photo, default):
        assert st["interior_cells"] == of_run["interior_cells"] == 16
        assert st["crack_length_per_area"] == pytest.approx(of_run["crack_length_per_area"], rel=0.06)
        assert st["intercept_x"] == pytest.approx(of_run["intercept_x"], rel=0.06)
        assert st["nematic_order"] < 0.1 and st["free_ends"] <= 2
    assert of_photo["x_junctions"] >= 20
    for name in ("analysis.json", "analysis.vti", "cells.png", "statistics.png"):
        assert (tmp_path / "a_photo" / name).is_file()
    mesh = pv.read(tmp_path / "a_photo" / "analysis.vti")
    assert mesh.dimensions[:2] == (N, N)
    for array in ("phi", "skeleton", "cells", "material", "orientation", "grey"):
        assert array in mesh.point_data.keys(), array
    cells = np.asarray(mesh.point_data["cells"])
    assert cells.max() == json.loads((tmp_path / "a_photo" / "analysis.json").read_text())["statistics"]["cells"]
    # upright: the photo's light falls off towards small x (the left of the picture as seen)
    grey = np.asarray(mesh.point_data["grey"]).reshape(N, N)
    assert grey[:, : N // 4].mean() < grey[:, -N // 4 :].mean() - 0.15
    assert "interior_cells" in capsys.readouterr().out


def test_analyze_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    run = fake_run(tmp_path / "run", square_phi())
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not a jpeg")
    cases = [(["analyze", str(tmp_path / "missing.png")], "missing.png"),
             (["analyze", str(corrupt)], "corrupt.jpg"),
             (["analyze", str(run), "--size", "1", "1"], "--size"),
             (["analyze", str(tmp_path)], "no finished run")]
    for args, expected in cases:
        assert cli.main([*args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err
        assert not out.exists()


def test_compare_a_photo_with_a_run(tmp_path, capsys):
    run = fake_run(tmp_path / "run", square_phi())
    photo = mud_photo(tmp_path / "mud.jpg")
    picture = tmp_path / "side.png"
    assert cli.main(["compare", str(photo), str(run), "--picture", str(picture)]) == 0
    text = capsys.readouterr().out
    assert "mud.jpg (picture)" in text and picture.is_file()
    row = next(line for line in text.splitlines() if line.startswith("interior_cells"))
    assert row.split()[1:3] == ["16", "16"]


def test_observe_only_writes_the_observed_field_and_its_statistics(tmp_path, capsys):
    photo = mud_photo(tmp_path / "mud.jpg", n=200)
    out = tmp_path / "obs"
    code = cli.main(["invert", SQUARE, "--image", str(photo), "--out", str(out),
                     "--observe-only", "--set", "output.resolution=101",
                     "--set", "invert.observation.method=ridge", "--set", "invert.observation.crack_width=0.02"])
    assert code == 0, capsys.readouterr().err
    for name in ("observation.png", "observation.vti", "analysis.json"):
        assert (out / name).is_file(), name
    mesh = pv.read(out / "observation.vti")
    for array in ("phi_observed", "observed_skeleton", "material", "grey"):
        assert array in mesh.point_data.keys(), array
    st = analysis_of(out)
    assert st["interior_cells"] == 16


# ------------------------------------------------------------------------------ primary / secondary by width


def two_width_photo(path, *, n=400, wide=8, thin=3, seed=0):
    """Primary cracks 8 px wide (x = ±0.25, y = 0) and secondary ones 3 px wide (x = 0, y = ±0.25)
    on the unit square drawn n px wide: 3 lines of each, each of length 1."""
    rng = np.random.default_rng(seed)
    c = (np.arange(n) + 0.5) / n - 0.5
    xx, yy = np.meshgrid(c, -c)
    band = lambda v, w: np.abs(v) < w / (2 * n)  # noqa: E731
    crack = band(xx + 0.25, wide) | band(xx - 0.25, wide) | band(yy, wide)
    crack |= band(xx, thin) | band(yy + 0.25, thin) | band(yy - 0.25, thin)
    grey = np.where(crack, 0.25, 0.8) + rng.normal(0, 0.03, (n, n))
    Image.fromarray(np.clip(255 * grey, 0, 255).astype(np.uint8)).save(path)
    return path


def test_wide_and_thin_cracks_are_told_apart(tmp_path):
    photo = two_width_photo(tmp_path / "two.png")
    out = tmp_path / "a"
    assert cli.main(["analyze", str(photo), "--size", "1", "1", "--out", str(out)]) == 0
    cc = analysis_of(out)["crack_classes"]
    assert cc["split"] == "auto" and 0.0075 < cc["split_width"] < 0.02
    # each class: 3 lines of length 1, cut into 12 segments by the crossings
    assert cc["primary"]["segments"] == cc["secondary"]["segments"] == 12
    assert cc["primary"]["length"] == pytest.approx(3.0, rel=0.06)
    assert cc["secondary"]["length"] == pytest.approx(3.0, rel=0.06)
    assert cc["primary"]["mean_width"] == pytest.approx(8 / 400, rel=0.1)
    assert cc["secondary"]["mean_width"] == pytest.approx(3 / 400, rel=0.25)
    assert cc["separation"] > 0.9 and cc["width_ratio"] > 2.5
    mesh = pv.read(out / "analysis.vti")
    classes = np.asarray(mesh.point_data["crack_class"])
    assert set(np.unique(classes)) == {0, 1, 2}
    # a given split width: every crack at least 0.001 wide is primary
    assert cli.main(["analyze", str(photo), "--size", "1", "1", "--primary-width", "0.001",
                     "--out", str(tmp_path / "b")]) == 0
    given = analysis_of(tmp_path / "b")["crack_classes"]
    assert given["split"] == "given" and given["secondary"]["segments"] == 0


def test_one_width_is_one_class_and_runs_have_none(tmp_path):
    photo = mud_photo(tmp_path / "mud.jpg")  # every crack 4 px wide
    assert cli.main(["analyze", str(photo), "--size", "1", "1", "--out", str(tmp_path / "a")]) == 0
    cc = analysis_of(tmp_path / "a")["crack_classes"]
    assert cc["split_width"] is None and cc["secondary"]["segments"] == 0 and cc["primary"]["segments"] > 20
    run = fake_run(tmp_path / "run", square_phi())
    assert cli.main(["analyze", str(run), "--out", str(tmp_path / "r")]) == 0
    assert analysis_of(tmp_path / "r")["crack_classes"] is None


def testweighted_otsu_share_of_a_gaussian_and_of_two_peaks():
    from vefrac.pattern_widths import weighted_otsu

    v = np.random.default_rng(0).normal(size=20000)
    assert weighted_otsu(v, np.ones_like(v))[1] == pytest.approx(2 / math.pi, abs=0.02)
    low, share = weighted_otsu(np.array([1.0, 1.1, 3.0, 3.2]), np.ones(4))
    assert low.tolist() == [True, True, False, False] and share > 0.95


@pytest.mark.parametrize("value", ["0", "-1", "wide", "nan"])
def test_bad_primary_width_exits_2(tmp_path, capsys, value):
    photo = mud_photo(tmp_path / "mud.jpg", n=100)
    assert cli.main(["analyze", str(photo), "--primary-width", value, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--primary-width" in err and "Traceback" not in err and not (tmp_path / "o").exists()
