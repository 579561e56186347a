"""Reading a crack picture onto the model grid (vefrac.observe) and the tolerant crack overlap.

Every picture is drawn at test time with numpy + PIL in tmp_path. Pictures are drawn in the
file's convention (row 0 = TOP); a line of odd width 2k+1 centred on pixel column c lies at
x = x0 + (c + 0.5)·px, and centred on row r (from the top) at y = y1 − (r + 0.5)·py.
"""

import math

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vefrac import analysis, config, plots
from vefrac.errors import InputError
from vefrac.geometry import build_domain
from vefrac.observe import read_observation

SQUARE = str(Path(__file__).resolve().parents[1] / "scenarios" / "square-mud.yaml")

S = 0.02  # phase-field length of every test


def rectangle(w=1.0, h=1.0):
    return build_domain(config.Rectangle(shape="rectangle", size=[w, h]))


def disk(r=0.5):
    return build_domain(config.Disk(shape="disk", radius=r))


def picture(width, height, *, vertical=(), horizontal=(), background=230, ink=20, half=1):
    """uint8 (height, width) light picture with dark lines 2·half+1 pixels wide, centred on the
    given columns (vertical lines) and rows from the top (horizontal lines)."""
    img = np.full((height, width), background, np.uint8)
    for c in vertical:
        img[:, c - half : c + half + 1] = ink
    for r in horizontal:
        img[r - half : r + half + 1, :] = ink
    return img


def save(tmp_path, name, array, **kwargs):
    path = tmp_path / name
    Image.fromarray(array).save(path, **kwargs)
    return str(path)


def observe(path, *, domain=None, resolution=101, **spec):
    domain = rectangle() if domain is None else domain
    grid = domain.grid(resolution)
    obs = read_observation(path, config.Observation(**spec), domain=domain, grid=grid, s=S)
    return obs, grid


def coordinates(grid):
    """(ny,) y and (nx,) x of the grid rows and columns."""
    ny, nx = grid.shape
    return (grid.origin[1] + grid.spacing[1] * np.arange(ny),
            grid.origin[0] + grid.spacing[0] * np.arange(nx))


def distance_from_phi(phi):
    with np.errstate(divide="ignore"):
        return -S * np.log(phi)


# 200 × 200 pixels on the unit square: pixels of 0.005 (a quarter of s), grid spacing 0.01.
COL, ROW = 140, 40  # vertical line at x = -0.5 + 140.5·0.005 = 0.2025; horizontal at y = 0.5 - 40.5·0.005
X_LINE, Y_LINE = -0.5 + (COL + 0.5) * 0.005, 0.5 - (ROW + 0.5) * 0.005


@pytest.fixture
def reference(tmp_path):
    path = save(tmp_path, "lines.png", picture(200, 200, vertical=[COL], horizontal=[ROW]))
    obs, grid = observe(path)
    return obs, grid


# ------------------------------------------------------------------------------ geometry


def test_lines_land_at_their_physical_positions(reference):
    obs, grid = reference
    ys, xs = coordinates(grid)
    assert obs.cracks == "dark" and obs.warnings == ()
    assert obs.pixel_size == pytest.approx((0.005, 0.005))
    assert obs.material.all()
    tol = max(*grid.spacing, *obs.pixel_size)
    # the horizontal crack, drawn near the TOP of the picture, lies at large y (+0.2975)
    rows = np.nonzero(obs.skeleton[:, np.abs(xs - X_LINE) > 5 * S].any(axis=1))[0]
    assert Y_LINE > 0 and np.abs(ys[rows] - Y_LINE).max() <= tol
    cols = np.nonzero(obs.skeleton[np.abs(ys - Y_LINE) > 5 * S, :].any(axis=0))[0]
    assert np.abs(xs[cols] - X_LINE).max() <= tol
    # φ along a row far from the horizontal crack is exp(-|x - X_LINE| / s)
    j = int(np.argmin(np.abs(ys + 0.3)))
    near = np.abs(xs - X_LINE) < 3 * S
    d = distance_from_phi(obs.phi[j, near])
    assert np.abs(d - np.abs(xs[near] - X_LINE)).max() <= 0.5 * obs.pixel_size[0] + 1e-9
    assert obs.phi[j].max() > math.exp(-0.5 * obs.pixel_size[0] / S) - 1e-12  # ~1 on the crack
    i = int(np.argmin(np.abs(xs - (X_LINE + S))))  # one s to the right of the crack
    assert obs.phi[j, i] == pytest.approx(math.exp(-abs(xs[i] - X_LINE) / S), rel=1e-6)
    assert abs(xs[i] - X_LINE - S) <= grid.spacing[0] and obs.phi[j, i] == pytest.approx(math.exp(-1), rel=0.3)
    # far from both cracks φ vanishes; nowhere is it above 1
    assert obs.phi[int(np.argmin(np.abs(ys + 0.3))), int(np.argmin(np.abs(xs + 0.3)))] < 1e-9
    assert obs.phi.max() <= 1.0 and obs.phi.min() >= 0.0


def test_anisotropic_pixels_give_physical_distances(tmp_path):
    """200 × 200 pixels stretched over a 1.5 × 1 domain: pixels 0.0075 wide, 0.005 high."""
    path = save(tmp_path, "square.png", picture(200, 200, vertical=[100], horizontal=[50]))
    obs, grid = observe(path, domain=rectangle(1.5, 1.0), resolution=151)
    assert obs.pixel_size == pytest.approx((0.0075, 0.005))
    assert any("stretched" in w and "invert.observation.size" in w for w in obs.warnings)
    ys, xs = coordinates(grid)
    x_line, y_line = -0.75 + 100.5 * 0.0075, 0.5 - 50.5 * 0.005
    j = int(np.argmin(np.abs(ys + 0.3)))
    near = np.abs(xs - x_line) < 3 * S
    assert np.allclose(distance_from_phi(obs.phi[j, near]), np.abs(xs[near] - x_line), atol=1e-9)
    # centre lines are sampled every half pixel: off by at most a quarter pixel along the line
    i = int(np.argmin(np.abs(xs + 0.5)))
    near = np.abs(ys - y_line) < 3 * S
    assert np.allclose(distance_from_phi(obs.phi[near, i]), np.abs(ys[near] - y_line), atol=0.25 * 0.0075)
    # were the pixels taken as square, the distances across the vertical line would be 1.5× off
    j = int(np.argmin(np.abs(ys + 0.3)))
    assert distance_from_phi(obs.phi[j, np.argmin(np.abs(xs - x_line - 2 * S))]) == pytest.approx(
        abs(xs[np.argmin(np.abs(xs - x_line - 2 * S))] - x_line), abs=1e-9)


def test_non_square_picture_on_non_square_domain(tmp_path):
    path = save(tmp_path, "wide.png", picture(300, 150, vertical=[225], horizontal=[30]))
    obs, grid = observe(path, domain=rectangle(2.0, 1.0), resolution=201)
    assert obs.phi.shape == grid.shape == (101, 201)
    assert obs.pixel_size == pytest.approx((2 / 300, 1 / 150)) and obs.warnings == ()
    ys, xs = coordinates(grid)
    x_line, y_line = -1.0 + 225.5 * 2 / 300, 0.5 - 30.5 / 150
    j = int(np.argmin(np.abs(ys + 0.3)))
    assert abs(xs[np.argmax(obs.phi[j])] - x_line) <= grid.spacing[0]
    i = int(np.argmin(np.abs(xs + 0.5)))
    assert abs(ys[np.argmax(obs.phi[:, i])] - y_line) <= grid.spacing[1]


def test_crop_keeps_the_framing(tmp_path, reference):
    """A black border (which would read as cracks) around the reference picture, cropped away."""
    framed = np.zeros((230, 240), np.uint8)
    framed[10:210, 20:220] = picture(200, 200, vertical=[COL], horizontal=[ROW])
    path = save(tmp_path, "framed.png", framed)
    obs, _ = observe(path, crop=[20, 10, 220, 210])
    assert np.allclose(obs.phi, reference[0].phi)
    assert np.array_equal(obs.skeleton, reference[0].skeleton)


def test_size_smaller_than_domain_informs_only_its_footprint(tmp_path):
    path = save(tmp_path, "small.png", picture(100, 100, vertical=[50]))
    obs, grid = observe(path, size=[0.5, 0.5])
    ys, xs = coordinates(grid)
    inside = (np.abs(ys)[:, None] <= 0.25 + 1e-9) & (np.abs(xs)[None, :] <= 0.25 + 1e-9)
    assert np.array_equal(obs.material, inside)
    assert (obs.phi[~inside] == 0).all() and (obs.grey[~inside] == 0).all()
    assert obs.pixel_size == pytest.approx((0.005, 0.005))
    assert abs(xs[np.argmax(obs.phi[50])] - (-0.25 + 50.5 * 0.005)) <= grid.spacing[0]


# ------------------------------------------------------------------------------ polarity, formats


def test_light_cracks_and_auto_polarity_read_the_same(tmp_path, reference):
    light = 255 - picture(200, 200, vertical=[COL], horizontal=[ROW])
    path = save(tmp_path, "light.png", light)
    for cracks in ("light", "auto"):
        obs, _ = observe(path, cracks=cracks)
        assert obs.cracks == "light"
        assert np.allclose(obs.phi, reference[0].phi)
        assert np.array_equal(obs.skeleton, reference[0].skeleton)


@pytest.mark.parametrize("kind", ["rgb", "rgba", "tiff16", "jpeg"])
def test_picture_formats(tmp_path, reference, kind):
    lines = picture(200, 200, vertical=[COL], horizontal=[ROW]) < 128
    if kind in ("rgb", "rgba"):
        img = np.empty((200, 200, 4 if kind == "rgba" else 3), np.uint8)
        img[...] = (200, 180, 140, 255)[: img.shape[2]]  # beige mud
        img[lines] = (70, 45, 25, 255)[: img.shape[2]]  # dark brown cracks
        path = save(tmp_path, f"{kind}.png", img)
    elif kind == "tiff16":
        img = np.where(lines, 3000, 60000).astype(np.uint16)
        assert Image.fromarray(img).mode.startswith("I;16")
        path = save(tmp_path, "deep.tif", img)
    else:
        path = save(tmp_path, "photo.jpg", picture(200, 200, vertical=[COL], horizontal=[ROW]), quality=85)
    obs, grid = observe(path)
    assert obs.cracks == "dark"
    score = analysis.crack_overlap(obs.skeleton, reference[0].skeleton, spacing=grid.spacing,
                                   tolerance=grid.spacing[0])
    assert score["iou"] > 0.97
    assert np.abs(obs.phi - reference[0].phi).max() < 0.3  # at most a pixel's shift
    if kind != "jpeg":
        assert np.allclose(obs.phi, reference[0].phi)


# ------------------------------------------------------------------------------ material


def test_mask_limits_the_material(tmp_path):
    path = save(tmp_path, "two.png", picture(200, 200, vertical=[50, 150]))
    mask = np.zeros((100, 100), np.uint8)  # another resolution, same framing: light = material
    mask[:, 50:] = 255
    obs, grid = observe(path, mask=save(tmp_path, "mask.png", mask))
    ys, xs = coordinates(grid)
    right = np.broadcast_to(xs[None, :] >= -1e-9, grid.shape)
    assert np.array_equal(obs.material, right)
    assert (obs.phi[~right] == 0).all()
    cols = np.nonzero(obs.skeleton.any(axis=0))[0]
    assert np.abs(xs[cols] - (-0.5 + 150.5 * 0.005)).max() <= grid.spacing[0]


def test_mask_follows_the_crop(tmp_path):
    """A mask framing the whole picture is cropped with it; one of the cropped size is taken as is."""
    framed = np.zeros((230, 240), np.uint8)
    framed[10:210, 20:220] = picture(200, 200, vertical=[50, 150])
    path = save(tmp_path, "framed.png", framed)
    whole = np.zeros((230, 240), np.uint8)
    whole[:, 120:] = 255  # x >= 0 of the cropped picture (its column 100)
    cropped = np.zeros((200, 200), np.uint8)
    cropped[:, 100:] = 255
    for mask in (whole, cropped):
        obs, grid = observe(path, crop=[20, 10, 220, 210], mask=save(tmp_path, "m.png", mask))
        ys, xs = coordinates(grid)
        assert np.array_equal(obs.material, np.broadcast_to(xs[None, :] >= -1e-9, grid.shape))


def test_disk_domain_ignores_the_background_outside(tmp_path):
    """Black outside the dish would read as a crack if the domain did not bound the material."""
    img = picture(200, 200, horizontal=[100])
    c = (np.arange(200) + 0.5) / 200 - 0.5
    img[np.hypot(c[None, :], c[:, None]) > 0.5] = 0
    obs, grid = observe(save(tmp_path, "dish.png", img), domain=disk(0.5))
    ys, xs = coordinates(grid)
    r = np.hypot(xs[None, :], ys[:, None])
    assert obs.material[r < 0.5 - 1e-9].all() and not obs.material[r > 0.5 + 1e-9].any()
    assert (obs.phi[r > 0.5] == 0).all()
    assert obs.phi[(r < 0.5) & (np.abs(ys)[:, None] > 0.3)].max() < 1e-3
    rows = np.nonzero(obs.skeleton.any(axis=1))[0]
    assert np.abs(ys[rows] - (0.5 - 100.5 * 0.005)).max() <= grid.spacing[1]


def test_specks_shorter_than_min_crack_length_are_dropped(tmp_path):
    img = picture(200, 200, horizontal=[40])
    img[150:153, 20:23] = 20  # a 3 × 3 speck: no length
    img[150:153, 100:112] = 20  # a dash of about 9 pixels (0.045 < 4 s = 0.08)
    path = save(tmp_path, "specks.png", img)
    obs, grid = observe(path)
    ys, xs = coordinates(grid)
    low = ys < 0
    assert not obs.skeleton[low].any() and obs.phi[low].max() < 1e-6
    kept, _ = observe(path, min_crack_length=0.0)
    j, i = int(np.argmin(np.abs(ys + 0.2575))), int(np.argmin(np.abs(xs - 0.03)))
    assert kept.phi[j, i] > 0.5 and obs.phi[j, i] < 1e-6
    assert kept.skeleton[low].any()


# ------------------------------------------------------------------------------ bad input


def error_of(path, **kwargs):
    with pytest.raises(InputError) as info:
        observe(path, **kwargs)
    return str(info.value)


def test_unreadable_and_empty_files_are_refused(tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for path in (corrupt, empty, tmp_path / "missing.png"):
        assert path.name in error_of(str(path))


def test_picture_without_cracks_is_refused(tmp_path):
    message = error_of(save(tmp_path, "blank.png", np.full((50, 60), 200, np.uint8)))
    assert "blank.png" in message and "uniform" in message
    specks = np.full((200, 200), 230, np.uint8)
    for k in range(5):
        specks[30 * k + 10 : 30 * k + 13, 40:43] = 20
    message = error_of(save(tmp_path, "specks.png", specks))
    assert "invert.observation.min_crack_length" in message and "invert.observation.threshold" in message
    lines = save(tmp_path, "lines.png", picture(200, 200, vertical=[COL]))
    message = error_of(lines, cracks="dark", threshold=0.01)
    assert "invert.observation.threshold" in message and "invert.observation.cracks" in message


def test_bad_framing_is_refused(tmp_path):
    lines = save(tmp_path, "lines.png", picture(200, 200, vertical=[COL]))
    message = error_of(lines, crop=[0, 0, 201, 200])
    assert "invert.observation.crop" in message and "200 × 200" in message
    wide = save(tmp_path, "wide.png", picture(420, 100, vertical=[100]))
    message = error_of(wide)
    assert "invert.observation.size" in message and "invert.observation.crop" in message
    obs, _ = observe(wide, size=[1.0, 0.4])  # 4.2 against 2.5: within a factor 2
    assert any("stretched" in w for w in obs.warnings)
    message = error_of(lines, size=[0.05, 0.05])
    assert "invert.observation.size" in message and "covers" in message
    dark = save(tmp_path, "dark.png", np.zeros((20, 20), np.uint8))
    message = error_of(lines, mask=dark)
    assert "invert.observation.mask" in message and "dark.png" in message


def test_doubtful_pictures_give_warnings(tmp_path):
    coarse = save(tmp_path, "coarse.png", picture(20, 20, vertical=[10], half=0))
    obs, _ = observe(coarse)
    assert any("within a pixel" in w for w in obs.warnings)
    half = np.full((200, 200), 230, np.uint8)
    half[:, :80] = 20  # 40% dark: auto takes it as cracks, but it is a guess
    obs, _ = observe(save(tmp_path, "half.png", half))
    assert obs.cracks == "dark"
    assert any("invert.observation.cracks" in w and "shaky" in w for w in obs.warnings)


# ------------------------------------------------------------------------------ overlap


def lines_skeleton(shape, *, rows=(), cols=()):
    skel = np.zeros(shape, bool)
    for r in rows:
        skel[r, 5:-5] = True
    for c in cols:
        skel[5:-5, c] = True
    return skel


def test_crack_overlap_known_cases():
    a = lines_skeleton((60, 80), rows=[20], cols=[30])
    same = analysis.crack_overlap(a, a, spacing=(0.01, 0.01), tolerance=0.02)
    assert same == {"iou": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    near = lines_skeleton((60, 80), rows=[22], cols=[32])  # 2 cells = 0.02 away: within tolerance
    assert analysis.crack_overlap(a, near, spacing=(0.01, 0.01), tolerance=0.02)["iou"] == 1.0
    far = lines_skeleton((60, 80), rows=[25], cols=[35])  # 0.05 away, except where they cross
    score = analysis.crack_overlap(a, far, spacing=(0.01, 0.01), tolerance=0.02)
    assert score["iou"] < 0.05
    apart = lines_skeleton((60, 80), rows=[45])
    assert analysis.crack_overlap(lines_skeleton((60, 80), rows=[20]), apart,
                                  spacing=(0.01, 0.01), tolerance=0.02)["iou"] == 0.0


def test_crack_overlap_half_missing():
    both = lines_skeleton((60, 80), rows=[15, 45])
    one = lines_skeleton((60, 80), rows=[15])
    score = analysis.crack_overlap(both, one, spacing=(0.01, 0.01), tolerance=0.03)
    assert score["precision"] == pytest.approx(0.5)
    assert score["recall"] == 1.0
    assert score["iou"] == pytest.approx(0.5)  # matched (n + n)/2 over n + n unmatched + 0
    assert score["f1"] == pytest.approx(2 / 3)
    reverse = analysis.crack_overlap(one, both, spacing=(0.01, 0.01), tolerance=0.03)
    assert (reverse["precision"], reverse["recall"]) == (1.0, pytest.approx(0.5))
    top = np.zeros((60, 80), bool)
    top[:30] = True  # inside this mask the two patterns agree
    assert analysis.crack_overlap(both, one, spacing=(0.01, 0.01), tolerance=0.03, mask=top)["iou"] == 1.0


def test_crack_overlap_uses_physical_spacing_and_empty_cases():
    a = lines_skeleton((60, 80), rows=[20])
    b = lines_skeleton((60, 80), rows=[22])  # 2 rows of hy = 0.01 apart: 0.02
    assert analysis.crack_overlap(a, b, spacing=(0.05, 0.01), tolerance=0.03)["iou"] == 1.0
    a, b = lines_skeleton((60, 80), cols=[20]), lines_skeleton((60, 80), cols=[22])  # 2 hx = 0.1
    assert analysis.crack_overlap(a, b, spacing=(0.05, 0.01), tolerance=0.03)["iou"] == 0.0
    empty = np.zeros((60, 80), bool)
    assert analysis.crack_overlap(empty, empty, spacing=(0.01, 0.01), tolerance=0.02)["iou"] == 1.0
    assert analysis.crack_overlap(a, empty, spacing=(0.01, 0.01), tolerance=0.02)["iou"] == 0.0
    assert analysis.crack_overlap(empty, a, spacing=(0.01, 0.01), tolerance=0.02)["recall"] == 0.0


# ------------------------------------------------------------------------------ picture


def test_plot_observation_writes_a_png(tmp_path):
    img = picture(200, 200, horizontal=[100], vertical=[60])
    obs, grid = observe(save(tmp_path, "dish.png", img), domain=disk(0.5))
    out = plots.plot_observation(tmp_path / "observed.png", grey=obs.grey, phi=obs.phi,
                                  material=obs.material, extent=grid.extent, title="read")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as png:
        assert png.size[0] > 300 and png.size[1] > 300


# ------------------------------------------------------------------------------ EXIF orientation


def stored_for(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores for an `upright` picture under EXIF orientation 1–8 (the tag says
    how the stored pixels must be turned for display; from the EXIF 2.3 table, not from Pillow)."""
    return {1: upright, 2: upright[:, ::-1], 3: upright[::-1, ::-1], 4: upright[::-1, :], 5: upright.T,
            6: np.rot90(upright, 1), 7: np.rot90(upright, 2).T, 8: np.rot90(upright, -1)}[orientation]


def upright_test_picture() -> np.ndarray:
    """64 × 96 (H × W) blocks of 16 pixels with distinct grey levels: no symmetry, JPEG-proof."""
    levels = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10 + 10
    return np.kron(levels, np.ones((16, 16), np.uint8))


@pytest.mark.parametrize("fmt", ["jpg", "png"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_reads_upright(tmp_path, fmt, orientation):
    from PIL import ImageOps

    from vefrac.imageio import picture_size, read_grey

    upright = upright_test_picture()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.{fmt}"
    Image.fromarray(np.ascontiguousarray(stored_for(upright, orientation))).save(
        path, exif=exif, **({"quality": 95} if fmt == "jpg" else {}))
    grey = read_grey(path)
    assert grey.shape == upright.shape and picture_size(path) == (96, 64)
    tol = 3 / 255 if fmt == "jpg" else 1e-12
    assert np.abs(grey - upright / 255.0).max() <= tol
    with Image.open(path) as img:  # what every viewer shows
        assert np.abs(grey - np.asarray(ImageOps.exif_transpose(img).convert("L")) / 255.0).max() <= 1e-12
    small = read_grey(path, shrink=4, dtype=np.float32)  # JPEG: decoded at 1/4 scale directly
    assert small.dtype == np.float32 and small.shape == (16, 24)
    blocks = upright.reshape(16, 4, 24, 4).mean(axis=(1, 3)) / 255.0
    assert np.abs(small - blocks).max() <= tol + 1e-6


def test_shrink_by_a_factor_without_a_jpeg_scale(tmp_path):
    """shrink 3 on a PNG of 64 × 96: block means, the last partial block over what it holds."""
    from vefrac.imageio import read_grey

    upright = upright_test_picture()
    path = save(tmp_path, "p.png", upright)
    small = read_grey(path, shrink=3)
    assert small.shape == (22, 32)
    assert small[0, 0] == pytest.approx(upright[:3, :3].mean() / 255.0, abs=1 / 255)
    assert small[-1, 0] == pytest.approx(upright[63:, :3].mean() / 255.0, abs=1 / 255)
    with pytest.raises(ValueError):
        read_grey(path, shrink=0)


# ------------------------------------------------------------------------------ uneven light


def test_flattening_the_light_lets_a_threshold_read_a_shaded_picture(tmp_path, reference):
    """The reference lines on mud whose light falls from 1 to 0.3 across the picture: a global
    threshold takes the shade for cracks; divided by its background first, it reads the lines."""
    lines = picture(200, 200, vertical=[COL], horizontal=[ROW]).astype(float)
    light = np.linspace(1.0, 0.3, 200)[None, :]
    path = save(tmp_path, "shaded.png", np.clip(lines * light, 0, 255).astype(np.uint8))
    plain, grid = observe(path, cracks="dark")
    flat, _ = observe(path, cracks="dark", illumination="flatten", crack_width=0.01)
    score = lambda obs: analysis.crack_overlap(obs.skeleton, reference[0].skeleton, spacing=grid.spacing,  # noqa: E731
                                               tolerance=2 * grid.spacing[0])["iou"]
    assert score(plain) < 0.5 < 0.9 < score(flat)


def test_ridge_reading_of_the_reference_lines(tmp_path, reference):
    """method: ridge on the clean reference picture finds the same two lines."""
    path = save(tmp_path, "lines.png", picture(200, 200, vertical=[COL], horizontal=[ROW]))
    obs, grid = observe(path, method="ridge", crack_width=0.015)
    score = analysis.crack_overlap(obs.skeleton, reference[0].skeleton, spacing=grid.spacing,
                                   tolerance=2 * grid.spacing[0])
    assert score["iou"] > 0.9 and obs.cracks == "dark"


def test_bad_reading_keys_are_refused_naming_the_key(tmp_path):
    from vefrac.config import load_scenario

    for override, key in (("invert.observation.hysteresis=[0.2, 0.1]", "hysteresis"),
                          ("invert.observation.method=otsu", "method"),
                          ("invert.observation.close_gaps=-1", "close_gaps"),
                          ("invert.observation.illumination=sun", "illumination")):
        with pytest.raises(InputError) as info:
            load_scenario(SQUARE, [override])
        assert f"invert.observation.{key}" in str(info.value)
