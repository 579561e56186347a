"""A real photograph of drying mud (tests/data/mud_patrignani.jpg, see tests/data/README.md) read by
`vefrac analyze`: upright, a network whose cells close, statistics within ranges found by hand,
stable when the photo is rescaled.

The ranges come from looking at the upright picture (612 × 816 pixels, taken as 0.75 × 1 here),
not from vefrac:
- cells: the cells bounded by the wide (primary) cracks were counted by eye in two of the four
  quadrants, 16 (upper left) and about 21 (lower right): about 75 in the frame, cells cut by the
  frame included. Narrow cracks split some of them further; counting every visible narrow crack
  would give several hundred. A reading that closes the primary network has at least 60 cells
  (75 less 20 % for the uncertainty of counting by eye), and one that reads little texture as
  cracks at most 200.
- crossings: along three horizontal lines at 1/4, 1/2 and 3/4 of the height, 22 wide cracks were
  crossed (a mean intercept of 3 × 0.75 / 22 = 0.10) and 33 counting the clearly visible narrow
  ones as well (0.068). The mean intercept along x must lie between 0.8 × 0.068 and 1.1 × 0.10.
Rescaling: the photo resized by 0.5 and 2 (Lanczos) and read over the same physical size; the
crack length per area and the crack spacing stay within 15 %, the cell count within 25 %, the T
fraction within 0.1 of the photo's own (measured at 0.5 / 1 / 2: L/A 24.7 / 26.5 / 23.2, cells 112 /
134 / 106, T fraction 0.66 / 0.66 / 0.68).
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vefrac import pattern_sources
from vefrac.imageio import picture_size, read_grey

PHOTO = Path(__file__).parent / "data" / "mud_patrignani.jpg"
SIZE = [0.75, 1.0]


def statistics(path):
    source = pattern_sources.load_source(path, size=SIZE)
    return pattern_sources.analyse(source).statistics


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    """Statistics of the photo at scales 0.5, 1 and 2 (the resized copies keep its EXIF tag)."""
    folder = tmp_path_factory.mktemp("scaled")
    out = {1.0: statistics(PHOTO)}
    for factor in (0.5, 2.0):
        with Image.open(PHOTO) as img:
            exif = img.getexif()
            resized = img.resize((round(img.size[0] * factor), round(img.size[1] * factor)), Image.LANCZOS)
        path = folder / f"mud_{factor}.png"
        resized.save(path, exif=exif)
        out[factor] = statistics(path)
    return out


def test_the_phone_photo_reads_upright():
    with Image.open(PHOTO) as img:
        assert img.size == (816, 612) and img.getexif()[0x0112] == 6  # stored sideways
        stored = np.asarray(img.convert("L"), dtype=float) / 255.0
    grey = read_grey(PHOTO)
    assert grey.shape == (816, 612) and picture_size(PHOTO) == (612, 816)
    # orientation 6: the stored picture turned a quarter clockwise
    assert np.abs(grey - np.rot90(stored, -1)).max() < 1e-12


def test_the_crack_network_closes_into_cells(scaled):
    st = scaled[1.0]
    assert 60 <= st["cells"] <= 200
    assert 0.8 * 0.068 <= st["intercept_x"] <= 1.1 * 0.10
    assert 0.8 * 0.068 <= st["intercept_y"] <= 1.1 * 0.10 * 1.5  # not counted by hand: looser
    # a closed network: few cracks end in a cell, compared with the junctions where they meet
    assert st["free_ends"] < 0.3 * st["junctions"]
    assert 0.4 <= st["t_junction_fraction"] <= 0.9  # mud: mostly T, some Y (both seen in the picture)
    assert st["nematic_order"] < 0.3  # no preferred direction in a mud flat


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_statistics_are_stable_under_rescaling(scaled, factor):
    base, other = scaled[1.0], scaled[factor]
    assert other["crack_length_per_area"] == pytest.approx(base["crack_length_per_area"], rel=0.15)
    assert other["crack_spacing"] == pytest.approx(base["crack_spacing"], rel=0.15)
    assert other["cells"] == pytest.approx(base["cells"], rel=0.25)
    assert other["t_junction_fraction"] == pytest.approx(base["t_junction_fraction"], abs=0.1)
