"""Files written by vefrac.export read back with independent readers (pyvista/VTK, csv, json)."""

import ast
import json
import math
import os

import numpy as np
import pytest

from vefrac import export, plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def no_temporaries(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".") or ".tmp" in p.name] == []


def snapshot(ny=4, nx=5, t=0.0):
    """Arrays whose values encode their (row, column): a[j, i] = 100 j + i (+ t)."""
    j, i = np.mgrid[0:ny, 0:nx]
    phi = 100.0 * j + i + t
    u = np.stack([i * 1.0, j * 1.0], axis=-1)  # (ny, nx, 2): padded to 3 components
    mask = (i + j) % 2 == 0
    return {"phi": phi, "u": u, "mask": mask, "G": np.full((ny, nx), 1e-3, np.float32)}


# ------------------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "a.txt"
    export.atomic_write_text(target, "first")
    export.atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_failed_write_keeps_old_file_and_removes_temporary(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    export.atomic_write_text(target, "old")

    def broken_replace(src, dst):
        raise OSError("disk went away")

    monkeypatch.setattr(export.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk went away"):
        export.atomic_write_text(target, "new")
    with pytest.raises(OSError):
        export.write_vti(tmp_path / "s.vti", origin=(0, 0), spacing=(1, 1), point_data=snapshot())
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


# ---------------------------------------------------------------------------------- VTK


def test_vti_round_trip_values_and_orientation(tmp_path):
    import pyvista as pv

    ny, nx = 4, 5
    data = snapshot(ny, nx)
    path = export.write_vti(
        tmp_path / "s.vti", origin=(-1.0, 2.0), spacing=(0.5, 0.25), point_data=data
    )
    grid = pv.read(path)
    assert tuple(grid.dimensions) == (nx, ny, 1)
    np.testing.assert_allclose(grid.origin, (-1.0, 2.0, 0.0))
    np.testing.assert_allclose(grid.spacing[:2], (0.5, 0.25))
    phi = np.asarray(grid.point_data["phi"])
    points = np.asarray(grid.points)
    np.testing.assert_allclose(phi.reshape(ny, nx), data["phi"])
    # The point with the smallest x and the LARGEST y is the array's [-1, 0] element.
    x, y = points[:, 0], points[:, 1]
    corner = np.flatnonzero((x == x.min()) & (y == y.max()))
    assert phi[corner[0]] == data["phi"][-1, 0]
    np.testing.assert_allclose(points[corner[0]], (-1.0, 2.0 + 0.25 * (ny - 1), 0.0))
    # Every point: value 100 j + i sits at x = x0 + i hx, y = y0 + j hy.
    i = np.rint((points[:, 0] + 1.0) / 0.5)
    j = np.rint((points[:, 1] - 2.0) / 0.25)
    np.testing.assert_allclose(phi, 100 * j + i)
    u = np.asarray(grid.point_data["u"])
    assert u.shape == (nx * ny, 3)
    np.testing.assert_allclose(u[:, :2], data["u"].reshape(-1, 2))
    assert np.all(u[:, 2] == 0)
    mask = np.asarray(grid.point_data["mask"])
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, data["mask"].reshape(-1))
    assert no_temporaries(tmp_path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_vti_refuses_non_finite_values_naming_the_array(tmp_path, bad):
    data = snapshot()
    data["u"] = data["u"].copy()
    data["u"][1, 2, 0] = bad
    with pytest.raises(ValueError, match="'u'"):
        export.write_vti(tmp_path / "s.vti", origin=(0, 0), spacing=(1, 1), point_data=data)
    assert list(tmp_path.iterdir()) == []


def test_vti_refuses_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="'G'"):
        export.write_vti(tmp_path / "s.vti", origin=(0, 0), spacing=(1, 1),
                         point_data={"phi": np.zeros((3, 4)), "G": np.zeros((4, 3))})


def test_pvd_collection_reads_every_time_step(tmp_path):
    import pyvista as pv

    times = [0.0, 0.05, 0.1]
    entries = []
    for k, t in enumerate(times):
        name = f"fields_{k:04d}.vti"
        export.write_vti(
            tmp_path / name, origin=(0, 0), spacing=(0.1, 0.1), point_data=snapshot(t=t)
        )
        entries.append((t, name))
        export.write_pvd(tmp_path / "fields.pvd", entries)  # rewritten after every snapshot
    reader = pv.PVDReader(str(tmp_path / "fields.pvd"))
    np.testing.assert_allclose(reader.time_values, times)
    for t in times:
        reader.set_active_time_value(t)
        block = reader.read()[0]
        phi = np.asarray(block.point_data["phi"]).reshape(4, 5)
        np.testing.assert_allclose(phi, snapshot(t=t)["phi"])
        assert set(block.point_data.keys()) >= {"phi", "u", "G", "mask"}
    assert no_temporaries(tmp_path)


def test_pvd_makes_absolute_paths_relative(tmp_path):
    export.write_vti(tmp_path / "s.vti", origin=(0, 0), spacing=(1, 1), point_data=snapshot())
    export.write_pvd(tmp_path / "c.pvd", [(0.5, tmp_path / "s.vti")])
    text = (tmp_path / "c.pvd").read_text()
    assert 'file="s.vti"' in text and 'timestep="0.5"' in text
    with pytest.raises(ValueError, match="timestep"):
        export.write_pvd(tmp_path / "c.pvd", [(math.nan, "s.vti")])


# ----------------------------------------------------------------------------- CSV, JSON


def test_csv_round_trip(tmp_path):
    rows = [
        {"t": 0.1 + 0.2, "step": 3, "total": np.float64(1e-17), "note": "a,b", "flag": True},
        {"t": 1.0, "step": np.int64(4), "total": np.float32(2.5)},
    ]
    columns = ["t", "step", "total", "note", "flag"]
    export.write_csv(tmp_path / "h.csv", rows, columns)
    back = export.read_csv(tmp_path / "h.csv")
    assert back[0] == {"t": 0.1 + 0.2, "step": 3, "total": 1e-17, "note": "a,b", "flag": 1}
    assert back[1] == {"t": 1.0, "step": 4, "total": 2.5, "note": None, "flag": None}
    assert isinstance(back[1]["t"], float)
    assert (tmp_path / "h.csv").read_text().splitlines()[0] == "t,step,total,note,flag"


def test_csv_refuses_non_finite(tmp_path):
    with pytest.raises(ValueError, match="'total'"):
        export.write_csv(tmp_path / "h.csv", [{"t": 0.0, "total": math.nan}], ["t", "total"])
    assert list(tmp_path.iterdir()) == []


def test_json_converts_numpy_and_refuses_nan(tmp_path):
    obj = {"n": np.int64(3), "x": np.float32(0.5), "a": np.arange(3), "ok": np.bool_(True)}
    export.write_json(tmp_path / "s.json", obj)
    text = (tmp_path / "s.json").read_text()
    assert json.loads(text) == {"n": 3, "x": 0.5, "a": [0, 1, 2], "ok": True}
    assert text.startswith('{\n  "n"')
    with pytest.raises(ValueError, match=r"\['stats'\]\['crack_length'\]"):
        export.write_json(tmp_path / "bad.json", {"stats": {"crack_length": float("nan")}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


# ------------------------------------------------------------------------------ pictures


def grey(path) -> np.ndarray:
    """The picture as (rows, columns) grey levels 0 (black) .. 255 (white), read back with PIL."""
    from PIL import Image

    assert open(path, "rb").read(8) == PNG_SIGNATURE
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=float)


def assert_picture(path, *, min_side=200) -> np.ndarray:
    """A PNG of a readable size that draws something: not one flat colour."""
    pixels = grey(path)
    assert min(pixels.shape) >= min_side, pixels.shape
    assert pixels.std() > 5 and (pixels < 100).any() and (pixels > 200).any(), path
    return pixels


def darkened(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(rows, columns) where the second picture is much darker than the first (same size)."""
    assert before.shape == after.shape
    return before - after > 100


FRAME = (40, 40)  # (ny, nx) of the φ fields drawn below, extent (0, 1, 0, 1)


def band(*, rows=None, cols=None) -> np.ndarray:
    """φ = 1 on a band of rows (y) or columns (x), 0 elsewhere."""
    y, x = np.mgrid[0 : FRAME[0], 0 : FRAME[1]]
    inside = (y >= rows[0]) & (y < rows[1]) if rows else (x >= cols[0]) & (x < cols[1])
    return inside.astype(float)


def test_crack_series_draws_high_phi_black_where_it_is_with_y_up(tmp_path):
    """φ = 1 is black, φ = 0 white, and the field's last row (largest y) is at the top."""
    mask = np.ones(FRAME, bool)

    def picture(name, phi):
        return grey(plots.plot_crack_series(tmp_path / name, [(0.0, phi, mask)], extent=(0, 1, 0, 1)))

    blank = picture("blank.png", np.zeros(FRAME))
    top = darkened(blank, picture("top.png", band(rows=(30, 36))))  # a horizontal crack high in y
    right = darkened(blank, picture("right.png", band(cols=(30, 36))))  # a vertical one at large x
    for cracked in (top, right):
        assert cracked.sum() > 500  # a band of 6/40 of a panel some hundred pixels wide
    rows, cols = np.nonzero(top)
    assert np.ptp(cols) > 4 * np.ptp(rows)  # a horizontal line ...
    assert rows.mean() < np.nonzero(right)[0].mean()  # ... above the middle of the panel
    rows, cols = np.nonzero(right)
    assert np.ptp(rows) > 4 * np.ptp(cols)  # a vertical line ...
    assert cols.mean() > np.nonzero(top)[1].mean()  # ... right of the middle
    # outside the mask is grey: neither crack (black) nor intact layer (white)
    half = np.ones(FRAME, bool)
    half[:, :20] = False
    greyed = grey(plots.plot_crack_series(tmp_path / "half.png", [(0.0, np.zeros(FRAME), half)],
                                           extent=(0, 1, 0, 1)))
    changed = np.abs(blank - greyed) > 30
    assert changed.sum() > 1000 and 120 < np.median(greyed[changed]) < 220


def test_crack_over_field_blackens_only_phi_above_one_half(tmp_path):
    mask = np.ones(FRAME, bool)
    field = np.linspace(1, 2, FRAME[1])[None, :].repeat(FRAME[0], 0)

    def picture(name, phi):
        return grey(plots.plot_crack_over_field(tmp_path / name, phi=phi, mask=mask, field=field,
                                                 extent=(0, 1, 0, 1), field_label="G"))

    plain = picture("plain.png", np.zeros(FRAME))
    assert_picture(tmp_path / "plain.png")
    # (the band lies where G is large, drawn light by viridis: black over it stands out)
    assert not darkened(plain, picture("faint.png", 0.45 * band(cols=(30, 36)))).any()  # φ ≤ 0.5: no crack
    cracked = darkened(plain, picture("crack.png", band(cols=(30, 36))))
    rows, cols = np.nonzero(cracked)
    assert cracked.sum() > 500 and np.ptp(rows) > 4 * np.ptp(cols)


def test_plots_write_pictures_of_their_data(tmp_path):
    """Every plot is a picture that draws something, and draws other data differently."""
    ny, nx = 40, 50
    y, x = np.mgrid[0:ny, 0:nx]
    mask = (x - 25) ** 2 + (y - 20) ** 2 < 18**2
    frames = [(0.01 * k, np.clip(k / 9 - abs(x - 25) / 5, 0, 1), mask) for k in range(10)]
    extent = (-0.5, 0.5, -0.4, 0.4)

    def rows(scale):
        return [{"t": 0.01 * k, "elastic": scale * k**2, "surface": k, "substrate": 0.1 * k,
                 "total": scale * k**2 + 1.1 * k} for k in range(10)]

    def pictures(tag, scale):
        return [
            plots.plot_crack_series(tmp_path / f"series{tag}.png", [(t, phi ** scale, m) for t, phi, m in frames],
                                     extent=extent, title="mud"),
            plots.plot_history(tmp_path / f"history{tag}.png", rows(scale)),
            plots.plot_crack_density(tmp_path / f"density{tag}.png", [0.0, 0.1, 0.2, 0.4],
                                      [0.0, 1.0, 1.6 * scale, 2.5]),
            plots.plot_histogram(tmp_path / f"angles{tag}.png", [88 * scale, 91, 95, 118, 122, 179],
                                  xlabel="junction angle (deg)", marks=(90, 120)),
        ]

    for a, b in zip(pictures("a", 1.0), pictures("b", 1.6)):
        pa, pb = assert_picture(a), assert_picture(b)
        assert pa.shape == pb.shape and np.abs(pa - pb).max() > 30, (a, b)
    # six panels of ten frames (first and last included) against two panels of two frames
    six = assert_picture(plots.plot_crack_series(tmp_path / "six.png", frames, extent=extent))
    two = assert_picture(plots.plot_crack_series(tmp_path / "two.png", frames[:2], extent=extent))
    assert six.shape[0] * six.shape[1] > 2 * two.shape[0] * two.shape[1]
    assert no_temporaries(tmp_path)


def test_plots_cope_with_empty_data(tmp_path):
    empty = np.zeros((0, 0))
    paths = [
        plots.plot_crack_series(tmp_path / "series.png", [], extent=(0, 1, 0, 1)),
        plots.plot_crack_over_field(tmp_path / "over.png", phi=empty, mask=empty, field=empty,
                                     extent=(0, 1, 0, 1), field_label="G"),
        plots.plot_history(tmp_path / "history.png", []),
        plots.plot_crack_density(tmp_path / "density.png", [], []),
        plots.plot_crack_density(tmp_path / "zeros.png", [0.1, 0.2], [0.0, 0.0]),
        plots.plot_histogram(tmp_path / "hist.png", [], xlabel="area"),
        plots.plot_histogram(tmp_path / "nan.png", [math.nan], xlabel="area"),
    ]
    for p in paths:
        assert_picture(p)  # a "no data" picture, or empty axes: text and lines on white


# the numpy-only modules: no torch, and of vefrac only each other (each checked here too)
PURE = {"export": set(), "plots": {"export"}, "junctions": set(), "analysis": {"junctions"}}


@pytest.mark.parametrize("module", sorted(PURE))
def test_modules_import_no_torch_no_vefrac_and_no_plotting_at_import(module):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tree = ast.parse(open(os.path.join(root, "vefrac", f"{module}.py")).read())

    def imported(nodes):
        for node in nodes:
            if isinstance(node, ast.Import):
                yield from (a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                yield f"vefrac.{node.module}" if node.level else (node.module or "").split(".")[0]

    names = set(imported(ast.walk(tree)))
    assert "torch" not in names
    assert {n for n in names if n.startswith("vefrac")} <= {f"vefrac.{m}" for m in PURE[module]}
    assert not {"matplotlib", "pyvista", "skimage"} & set(imported(tree.body))
