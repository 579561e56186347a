"""Networks: analytic derivatives, periodicity, φ bounds and monotonicity by construction."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from vefrac.nets import FourierMLP, incremental_phase_field, space_time_phase_field


def net(seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    args = dict(out=3, features=32, scale=4.0, hidden_layers=3, width=16, generator=g) | kw
    return FourierMLP(**args).double()


@pytest.mark.parametrize("scale", [4.0, (1.0, 8.0, 20.0)])
def test_forward_derivatives_match_autograd(scale):
    n = net(extra=1, scale=scale)  # one scale, or multi-scale features (network.fourier_scales)
    x = torch.rand(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64, requires_grad=True)
    t = torch.rand(50, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    value, grad = n(x, t)
    for k in range(3):
        ref = torch.autograd.grad(value[:, k].sum(), x, retain_graph=True)[0]
        assert torch.allclose(ref, grad[:, k], atol=1e-12)


def test_value_alone_is_forwards_value():
    n = net(extra=1)
    x = torch.rand(40, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t = torch.rand(40, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert torch.allclose(n.value(x, t), n(x, t)[0], atol=1e-13)


def test_periodic_axis_is_periodic_by_construction():
    n = net(periods=(None, 0.7))
    x = torch.rand(20, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    v0, g0 = n(x)
    v1, g1 = n(x + torch.tensor([0.0, 0.7], dtype=torch.float64))
    assert torch.allclose(v0, v1, atol=1e-10) and torch.allclose(g0, g1, atol=1e-9)


def test_same_generator_seed_gives_same_network():
    x = torch.rand(10, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.equal(net(seed=3)(x)[0], net(seed=3)(x)[0])
    assert not torch.equal(net(seed=3)(x)[0], net(seed=4)(x)[0])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-3, 50.0))
def test_incremental_phase_field_is_bounded_and_never_decreases(seed, scale):
    g = torch.Generator().manual_seed(seed)
    phi = torch.zeros(200, dtype=torch.float64)
    grad = torch.zeros(200, 2, dtype=torch.float64)
    for _ in range(5):  # five load steps with arbitrary network outputs
        z = torch.randn(200, generator=g, dtype=torch.float64) * scale
        gz = torch.randn(200, 2, generator=g, dtype=torch.float64) * scale
        new, grad = incremental_phase_field(phi, grad, z, gz)
        assert (new >= phi).all() and (new <= 1).all() and (new >= 0).all()
        phi = new


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-3, 50.0))
def test_space_time_phase_field_is_bounded_and_non_decreasing_in_time(seed, scale):
    g = torch.Generator().manual_seed(seed)
    k, n = 8, 100
    a = torch.randn(n, k, generator=g, dtype=torch.float64) * scale
    ga = torch.randn(n, k, 2, generator=g, dtype=torch.float64)
    knots = (torch.arange(k, dtype=torch.float64) + 0.5) / k
    ts = torch.linspace(0, 1, 11, dtype=torch.float64)
    phis = [space_time_phase_field(a, ga, t.expand(n), knots=knots, width=0.5 / k)[0] for t in ts]
    for before, after in zip(phis, phis[1:]):
        assert (after >= before).all()
    assert all(((p >= 0) & (p <= 1)).all() for p in phis)


def test_incremental_phase_field_gradient_matches_autograd():
    x = torch.rand(30, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64, requires_grad=True)
    prev = net(seed=1, out=1)
    inc = net(seed=2, out=1)
    pv, pg = prev(x)
    phi_prev, grad_prev = torch.sigmoid(pv[:, 0]), (torch.sigmoid(pv) * (1 - torch.sigmoid(pv)))[:, :, None].mul(pg)[:, 0]
    z, gz = inc(x)
    phi, grad = incremental_phase_field(phi_prev, grad_prev, z[:, 0], gz[:, 0])
    ref = torch.autograd.grad(phi.sum(), x)[0]
    assert torch.allclose(ref, grad, atol=1e-12)
