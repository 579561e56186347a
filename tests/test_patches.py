"""network.representation: patches — the partition of unity, forward-mode derivatives across patch
edges, constant cost per point as the layer grows, the φ construction and a run end to end."""

from pathlib import Path

import numpy as np
import pytest
import torch

from vefrac import api
from vefrac.config import load_scenario
from vefrac.errors import InputError
from vefrac.patches import PatchLayout, PatchNet, smooth_step
from vefrac.pinn_model import FieldModel, patch_layout
from vefrac.problem import build_problem

ROOT = Path(__file__).resolve().parents[1]
SQUARE = ROOT / "scenarios" / "square-mud.yaml"
PATCHES = ["network.representation=patches"]
LAYOUTS = {
    "box": PatchLayout.over([-0.5, -0.3], [0.5, 0.3], side=0.3, overlap=0.25),
    "periodic-x": PatchLayout.over([-0.5, -0.5], [0.5, 0.5], side=0.3, overlap=0.4, periodic=(True, False)),
    "one-patch": PatchLayout.over([-0.5, -0.5], [0.5, 0.5], side=2.0, overlap=0.1),
}


def points_across(layout: PatchLayout, n: int, seed: int = 0) -> torch.Tensor:
    """(n, 2) float64: a third uniform over (and a little beyond) the box, a third within δ of a
    cell edge, a third on the box's edges and corners and on the cell edges exactly."""
    g = torch.Generator().manual_seed(seed)
    lo = torch.tensor(layout.origin, dtype=torch.float64)
    span = torch.tensor(layout.spacing, dtype=torch.float64) * torch.tensor(layout.counts)
    uniform = lo - 0.05 + torch.rand(n // 3, 2, generator=g, dtype=torch.float64) * (span + 0.1)
    edges = [torch.tensor(layout.origin[a] + layout.spacing[a] * np.arange(layout.counts[a] + 1)) for a in (0, 1)]
    near = uniform.clone()
    for a in (0, 1):
        pick = edges[a][torch.randint(len(edges[a]), (n // 3,), generator=g)]
        near[:, a] = pick + (torch.rand(n // 3, generator=g, dtype=torch.float64) - 0.5) * layout.spacing[a] * 0.3
    exact = uniform.clone()
    for a in (0, 1):
        exact[:, a] = edges[a][torch.randint(len(edges[a]), (n // 3,), generator=g)]
    return torch.cat([uniform, near, exact])


def test_smooth_step_is_a_symmetric_c1_step():
    t = torch.linspace(-1.5, 1.5, 301, dtype=torch.float64, requires_grad=True)
    h, dh = smooth_step(t)
    assert torch.allclose(h + smooth_step(-t)[0], torch.ones_like(h), atol=1e-15)
    assert h[t <= -1].abs().max() == 0 and (h[t >= 1] == 1).all() and (torch.diff(h) >= 0).all()
    assert torch.allclose(torch.autograd.grad(h.sum(), t)[0], dh, atol=1e-12)


@pytest.mark.parametrize("name", LAYOUTS)
def test_windows_sum_to_one_and_their_gradient_to_zero_everywhere(name):
    layout = LAYOUTS[name]
    x = points_across(layout, 3000)
    point, patch, w, grad, xi = layout.cover(x)
    n = x.shape[0]
    total = torch.zeros(n, dtype=torch.float64).index_add(0, point, w)
    total_grad = torch.zeros(n, 2, dtype=torch.float64).index_add(0, point, grad)
    assert torch.allclose(total, torch.ones(n, dtype=torch.float64), atol=1e-13)
    assert total_grad.abs().max() < 1e-10
    assert (w > 0).all() and (w <= 1 + 1e-15).all()
    per_point = torch.bincount(point, minlength=n)
    assert per_point.min() >= 1 and per_point.max() <= 4
    assert ((point[1:] != point[:-1]) | (patch[1:] != patch[:-1])).all()  # each patch once per point
    inside = ((x >= torch.tensor(layout.origin)) & (x <= torch.tensor(layout.origin)
              + torch.tensor(layout.spacing) * torch.tensor(layout.counts))).all(1)
    assert xi[inside[point]].abs().max() <= 0.5 + 1e-12  # inside the box: within the patch's support


def patch_net(layout: PatchLayout, *, out: int = 3, extra: int = 0, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return PatchNet(layout, out=out, features=16, scale=(1.0, 3.0), hidden_layers=3, width=12, generator=g,
                    extra=extra).to(dtype)


@pytest.mark.parametrize("name", LAYOUTS)
def test_forward_derivatives_match_autograd_across_patch_edges(name):
    layout = LAYOUTS[name]
    net = patch_net(layout, extra=1)
    x = points_across(layout, 600, seed=1).requires_grad_(True)
    t = torch.rand(x.shape[0], 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    value, grad = net(x, t)
    for k in range(3):
        ref = torch.autograd.grad(value[:, k].sum(), x, retain_graph=True)[0]
        assert torch.allclose(ref, grad[:, k], atol=1e-10)


@pytest.mark.parametrize("name", LAYOUTS)
def test_the_field_has_no_jump_where_a_patch_ends(name):
    layout = LAYOUTS[name]
    net = patch_net(layout)
    step = 5e-5
    line = torch.arange(-0.6, 0.6, step, dtype=torch.float64)
    x = torch.stack([line, 0.37 * line + 0.011], 1)  # crosses cell edges and support edges on both axes
    value, grad = net(x)
    jump = torch.diff(value, dim=0).abs().max()
    assert jump <= 1.1 * step * 1.07 * grad.abs().max() * 2  # |Δf| ≤ |Δx| max|∇f| (Δx = 1.07 step)


def test_float32_agrees_with_float64():
    layout = LAYOUTS["box"]
    x = points_across(layout, 300, seed=3)
    v64, g64 = patch_net(layout)(x)
    v32, g32 = patch_net(layout, dtype=torch.float32)(x.float())
    assert v32.dtype == torch.float32
    assert torch.allclose(v32.double(), v64, atol=1e-4) and torch.allclose(g32.double(), g64, atol=2e-3 * float(g64.detach().abs().max()))


def test_a_periodic_axis_is_periodic():
    layout = LAYOUTS["periodic-x"]
    net = patch_net(layout)
    x = points_across(layout, 300, seed=4)
    v0, g0 = net(x)
    v1, g1 = net(x + torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert torch.allclose(v0, v1, atol=1e-10) and torch.allclose(g0, g1, atol=1e-8)


def test_reset_output_gives_the_bias_everywhere():
    layout = LAYOUTS["box"]
    net = patch_net(layout)
    net.reset_output(-6.0)
    value, grad = net(points_across(layout, 300, seed=5))
    assert torch.allclose(value, torch.full_like(value, -6.0), atol=1e-12) and grad.abs().max() < 1e-9


def model(overrides, seed=0, dtype=torch.float64):
    scn = load_scenario(SQUARE, PATCHES + list(overrides))
    return FieldModel(build_problem(scn), scn.network, torch.Generator().manual_seed(seed), space_time=False,
                      phi_bias=-6.0).to(dtype), scn


def test_parameters_grow_with_the_area_at_a_constant_cost_per_point():
    small, _ = model(["domain.size=[1.0, 1.0]"])
    large, _ = model(["domain.size=[2.0, 2.0]"])
    count = [sum(p.numel() for p in m.parameters()) for m in (small, large)]
    assert small.u_net.layout.size >= 4 and count[1] == 4 * count[0]
    pairs = []
    for m, side in ((small, 1.0), (large, 2.0)):
        x = (torch.rand(20000, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64) - 0.5) * side
        point = m.u_net.layout.cover(m.normalise(x))[0]
        per_point = torch.bincount(point, minlength=x.shape[0])
        assert per_point.max() <= 4
        pairs.append(per_point.double().mean().item())
    assert abs(pairs[1] / pairs[0] - 1) < 0.15  # the same local networks per point on both layers
    # the same frequencies per unit length: σ_local / h is 0.1/s on both
    for m in (small, large):
        sigma = m.u_net.two_pi_B.std().item() / (2 * np.pi) / (m.u_net.layout.side * m.length)
        assert sigma == pytest.approx(0.1 / 0.02, rel=0.1)


def test_phi_is_bounded_and_at_least_the_previous_step():
    m, _ = model(["network.fourier_features=16", "network.width=16"])
    m.phi_net.reset_output(0.0)
    with torch.no_grad():
        for p in m.phi_net.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(7), dtype=p.dtype))
    x = torch.rand(2000, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64) - 0.5
    prev = torch.rand(2000, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    m.previous_phi = lambda pts: torch.stack([prev, torch.zeros_like(prev), torch.zeros_like(prev)], 1)
    _, _, phi, _ = m.fields(x, x.new_full((2000,), 0.05))
    assert (phi >= prev).all() and (phi <= 1).all()


def test_checkpoint_state_dict_round_trips():
    a, _ = model(["network.fourier_features=16", "network.width=16"], seed=0)
    b, _ = model(["network.fourier_features=16", "network.width=16"], seed=1)
    x = torch.rand(500, 2, generator=torch.Generator().manual_seed(10), dtype=torch.float64) - 0.5
    t = x.new_full((500,), 0.05)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():  # a trained state: no layer zero, so every parameter shows in the fields
        for p in a.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    assert not torch.equal(a.fields(x, t)[2], b.fields(x, t)[2])
    b.load_state_dict(a.state_dict())
    for fa, fb in zip(a.fields(x, t), b.fields(x, t)):
        assert torch.equal(fa, fb)


def test_patch_keys_are_validated():
    with pytest.raises(InputError, match="patch_overlap"):
        load_scenario(SQUARE, PATCHES + ["network.patch_overlap=0.5"])
    with pytest.raises(InputError, match="representation"):
        load_scenario(SQUARE, ["network.representation=grid"])
    with pytest.raises(InputError, match="solver.compile"):  # refused, not left to recompile without end
        load_scenario(SQUARE, PATCHES + ["solver.compile=true"])


def test_the_patch_size_follows_the_elastic_length():
    _, scn = model([])
    layout = patch_layout(scn.network, build_problem(scn))
    assert layout.counts == (3, 3)  # ℓe ≈ 0.17: 3 ℓe patches, 0.75 of a side apart, tile the unit square in 3
    assert layout.side <= 3 * np.sqrt(3 / 100) + 1e-12


def test_square_mud_runs_with_patches_in_a_tiny_budget():
    scn = load_scenario(SQUARE, PATCHES + ["solver.load_steps=2", "solver.iterations=5",
                                           "solver.first_step_iterations=5", "solver.points=512",
                                           "solver.threads=1", "output.snapshots=3", "output.resolution=32",
                                           "network.fourier_features=32", "network.width=32"])
    result = api.run(scn)
    assert [step["iterations"] for step in result.summary["steps"]] == [5, 5]
    assert all(np.isfinite(step["loss_elastic"]) for step in result.summary["steps"])
    phis = [snap.phi for snap in result.snapshots]
    assert all(np.nanmin(p) >= 0 and np.nanmax(p) <= 1 for p in phis)
    for before, after in zip(phis, phis[1:]):
        assert (np.nan_to_num(after) >= np.nan_to_num(before)).all()
