"""Domains, sampling weights and toughness fields against closed forms."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from vefrac import config
from vefrac.fields import build_toughness, gaussian_random_field
from vefrac.geometry import build_domain
from vefrac.sampling import Sampler


def domain_of(spec):
    return build_domain(config.validate_scenario({"domain": spec}).domain)


@pytest.fixture
def ring_png(tmp_path):
    """A 200 x 100 picture: light ellipse (material) on black."""
    h, w = 100, 200
    yy, xx = np.mgrid[0:h, 0:w]
    light = ((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2 <= 1
    path = tmp_path / "ellipse.png"
    Image.fromarray((light * 255).astype(np.uint8)).save(path)
    return path


CASES = [
    ({"shape": "rectangle", "size": [2.0, 0.5]}, 1.0),
    ({"shape": "disk", "radius": 0.4}, math.pi * 0.16),
    ({"shape": "polygon", "vertices": [[0, 0], [2, 0], [2, 1], [1, 0.5], [0, 1]]}, 1.5),  # non-convex
]


@pytest.mark.parametrize("spec,area", CASES)
@pytest.mark.parametrize("kind", ["stratified", "sobol", "uniform"])
def test_weighted_points_integrate_without_bias(spec, area, kind):
    dom = domain_of(spec)
    assert dom.area == pytest.approx(area, rel=1e-12)
    sampler = Sampler(dom, n=4096, kind=kind, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # ∫ 1 = area and ∫ x² over many independent draws: the mean of the estimates converges
    est_area = [sampler()[1].sum().item() for _ in range(50)]
    assert np.mean(est_area) == pytest.approx(area, rel=5e-3)


def test_second_moment_of_a_disk():
    r = 0.5
    dom = domain_of({"shape": "disk", "radius": r})
    sampler = Sampler(dom, n=8192, kind="sobol", generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    vals = []
    for _ in range(40):
        x, w = sampler()
        vals.append((w * (x**2).sum(-1)).sum().item())
    assert np.mean(vals) == pytest.approx(math.pi * r**4 / 2, rel=3e-3)  # polar moment πr⁴/2


def test_mask_image_is_read_with_top_row_at_largest_y(tmp_path, ring_png):
    dom = domain_of({"shape": "mask", "image": str(ring_png), "size": [2.0, 1.0]})
    assert dom.area == pytest.approx(math.pi * 1.0 * 0.5, rel=0.02)
    # an L-shaped picture: only the top-left quarter is material
    img = np.zeros((10, 10), np.uint8)
    img[:5, :5] = 255
    path = tmp_path / "corner.png"
    Image.fromarray(img).save(path)
    dom = domain_of({"shape": "mask", "image": str(path), "size": [1.0, 1.0]})
    inside = dom.inside(torch.tensor([[-0.25, 0.25], [0.25, 0.25], [-0.25, -0.25], [0.25, -0.25]]))
    assert inside.tolist() == [True, False, False, False]


def test_export_grid_spans_the_box():
    dom = domain_of({"shape": "rectangle", "size": [2.0, 1.0]})
    grid = dom.grid(101)
    assert grid.shape == (51, 101)
    pts = grid.points()
    assert pts[0].tolist() == [-1.0, -0.5] and np.allclose(pts[-1], [1.0, 0.5])


def test_mesh_domain(tmp_path):
    meshio = pytest.importorskip("meshio")
    pts = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [2, 0]], float)
    cells = [("triangle", np.array([[0, 1, 2], [0, 2, 3], [1, 4, 2]]))]
    path = tmp_path / "m.vtk"
    meshio.write_points_cells(path, np.c_[pts, np.zeros(5)], cells)
    dom = domain_of({"shape": "mesh", "file": str(path)})
    assert dom.area == pytest.approx(1.5)
    assert dom.inside(torch.tensor([[0.5, 0.5], [1.8, 0.8]])).tolist() == [True, False]


def test_lognormal_field_has_the_requested_mean_cv_and_correlation():
    rng = np.random.default_rng(0)
    h, ell = 0.01, 0.05
    z = np.stack([gaussian_random_field((256, 256), spacing=h, correlation_length=ell, rng=rng) for _ in range(8)])
    assert z.mean() == pytest.approx(0.0, abs=0.05)
    assert z.var() == pytest.approx(1.0, rel=0.1)
    lag = int(ell / h)  # correlation at r = ℓ is exp(-1/2)
    corr = np.mean(z[:, :, :-lag] * z[:, :, lag:]) / z.var()
    assert corr == pytest.approx(math.exp(-0.5), abs=0.06)
    dom = domain_of({"shape": "rectangle", "size": [2.0, 2.0]})
    spec = config.LogNormalToughness(kind="lognormal", mean=2e-3, cv=0.3, correlation_length=0.05)
    G = build_toughness(spec, dom, seed=0).values.numpy()
    assert G.min() > 0
    assert G.mean() == pytest.approx(2e-3, rel=0.05)
    assert G.std() / G.mean() == pytest.approx(0.3, rel=0.15)


def test_network_field_is_smooth_positive_and_reproducible():
    dom = domain_of({"shape": "rectangle", "size": [1.0, 1.0]})
    spec = config.NetworkToughness(kind="network", mean=1e-3, cv=0.2, correlation_length=0.1, features=512)
    x = torch.rand(5000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5
    G1 = build_toughness(spec, dom, seed=5)(x)
    G2 = build_toughness(spec, dom, seed=5)(x)
    G3 = build_toughness(spec, dom, seed=6)(x)
    assert torch.equal(G1, G2) and not torch.equal(G1, G3)
    assert (G1 > 0).all()
    # over many seeds the mean is the requested one
    means = [build_toughness(spec, dom, seed=k)(x).mean().item() for k in range(30)]
    assert np.mean(means) == pytest.approx(1e-3, rel=0.03)


@pytest.mark.parametrize("kind", ["lognormal", "network"])
def test_a_toughness_seed_fixes_the_field_whatever_the_scenario_seed(kind):
    """fracture.toughness.seed: other network seeds over the same material (the PINN's seed spread)."""
    from vefrac.problem import build_problem

    x = torch.rand(4000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 0.5

    def g(seed, toughness_seed=None):
        tough = {"kind": kind, "cv": 0.3} | ({} if toughness_seed is None else {"seed": toughness_seed})
        scn = config.validate_scenario({"seed": seed, "fracture": {"toughness": tough}})
        return build_problem(scn).toughness(x)

    def same(a, b):  # to rounding: a matmul's summation order may differ between calls
        return torch.allclose(a, b, rtol=1e-12, atol=0)

    assert same(g(0), g(0, toughness_seed=0))  # no seed of its own: the scenario's
    assert same(g(3, toughness_seed=0), g(0))
    assert same(g(3, toughness_seed=9), g(4, toughness_seed=9))
    assert not same(g(3), g(0))
    assert not same(g(0, toughness_seed=9), g(0))


def test_image_toughness_maps_black_to_gmin_and_top_row_to_largest_y(tmp_path):
    img = np.zeros((4, 8), np.uint8)
    img[:2] = 255  # top half white
    path = tmp_path / "g.png"
    Image.fromarray(img).save(path)
    dom = domain_of({"shape": "rectangle", "size": [2.0, 1.0]})
    spec = config.validate_scenario({"fracture": {"toughness": {"kind": "image", "image": str(path),
                                                               "range": [1e-3, 3e-3]}}}).fracture.toughness
    G = build_toughness(spec, dom, seed=0)
    vals = G(torch.tensor([[0.0, 0.45], [0.0, -0.45]], dtype=torch.float64))
    assert vals.tolist() == pytest.approx([3e-3, 1e-3])
