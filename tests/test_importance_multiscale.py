"""Importance sampling near cracks (unbiased, lower variance) and multi-scale Fourier features."""

import math

import numpy as np
import pytest
import torch

from vefrac import config
from vefrac.energy import Physics
from vefrac.geometry import build_domain
from vefrac.nets import FourierMLP
from vefrac.runner import Run
from vefrac.sampling import Sampler
from vefrac.solve import crack_indicator

S = 0.02  # phase-field width
X0 = 0.1  # a straight crack along x = X0
PHYSICS = Physics(lam=1.0, mu=1.0, eta=100.0, split="amor", fracture=True, s=S, k_res=1e-6)


def domain_of(spec):
    return build_domain(config.validate_scenario({"domain": spec}).domain)


def crack_cache(domain):
    """The optimal AT2 profile φ = exp(−|x − X0|/s) and its gradient on the cache grid (s/3)."""
    grid = domain.grid(int(math.ceil(domain.length * 3 / S)) + 1)
    p = torch.as_tensor(grid.points(), dtype=torch.float64)
    phi = torch.exp(-(p[:, 0] - X0).abs() / S)
    cache = torch.stack([phi, -torch.sign(p[:, 0] - X0) * phi / S, torch.zeros_like(phi)], 1)
    return cache.reshape(*grid.shape, 3), grid


def bump(x):
    """(1 + x + y²) times a Gaussian of width s on the crack."""
    return (1 + x[:, 0] + x[:, 1] ** 2) * torch.exp(-((x[:, 0] - X0) ** 2) / (2 * S * S))


def exact_on_rectangle(a, b, c, d):
    g = lambda x: math.exp(-((x - X0) ** 2) / (2 * S * S))  # noqa: E731
    int_g = S * math.sqrt(math.pi / 2) * (math.erf((b - X0) / (math.sqrt(2) * S)) - math.erf((a - X0) / (math.sqrt(2) * S)))
    int_xg = X0 * int_g + S * S * (g(a) - g(b))
    return (d - c) * (int_g + int_xg) + (d**3 - c**3) / 3 * int_g


def exact_on_disk(r):
    # x = r sin θ; the chord at x has half-length c = r cos θ: ∫ (1 + x + y²) dy = 2c(1 + x) + 2c³/3
    theta, weights = np.polynomial.legendre.leggauss(4000)
    theta = theta * np.pi / 2
    x, c = r * np.sin(theta), r * np.cos(theta)
    f = np.exp(-((x - X0) ** 2) / (2 * S * S)) * (2 * c * (1 + x) + 2 * c**3 / 3) * c
    return float((weights * f).sum() * np.pi / 2)


def estimates(sampler, integrand, repeats):
    """(repeats,) independent estimates Σ w f(x); with a list of integrands (repeats, len)."""
    out = []
    for _ in range(repeats):
        x, w = sampler()
        out.append([float((w * f(x)).sum()) for f in integrand] if isinstance(integrand, list)
                   else float((w * integrand(x)).sum()))
    return np.array(out)


def importance_sampler(domain, *, n, seed, fraction=0.5):
    sampler = Sampler(domain, n=n, kind="importance", generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64, fraction=fraction)
    cache, grid = crack_cache(domain)
    sampler.set_density(crack_indicator(cache, physics=PHYSICS), grid)
    return sampler


CASES = [({"shape": "rectangle", "size": [1.2, 0.8]}, exact_on_rectangle(-0.6, 0.6, -0.4, 0.4)),
         ({"shape": "disk", "radius": 0.5}, exact_on_disk(0.5))]


@pytest.mark.parametrize("spec,exact", CASES, ids=["rectangle", "disk"])
def test_importance_estimates_are_unbiased(spec, exact):
    domain = domain_of(spec)
    sampler = importance_sampler(domain, n=4096, seed=0)
    # the bump, and the area: a flat integrand, where the weights alone must add up
    est = estimates(sampler, [bump, lambda x: torch.ones_like(x[:, 0])], 150)
    se = est.std(0, ddof=1) / math.sqrt(len(est))
    assert se[0] < 2e-3 * exact  # the check below is sharp
    assert abs(est[:, 0].mean() - exact) < 4 * se[0]
    assert abs(est[:, 1].mean() - domain.area) < 4 * se[1]


@pytest.mark.parametrize("spec,exact", CASES, ids=["rectangle", "disk"])
def test_importance_has_lower_variance_on_the_crack_band(spec, exact):
    domain = domain_of(spec)
    var = {}
    for kind in ("uniform", "stratified", "importance"):
        if kind == "importance":
            sampler = importance_sampler(domain, n=4096, seed=1)
            n = sampler.n_u + sampler.n_q
        else:
            sampler = Sampler(domain, n=4096, kind=kind, generator=torch.Generator().manual_seed(1),
                              dtype=torch.float64)
            n = sampler.n
        var[kind] = estimates(sampler, bump, 100).var(ddof=1) * n  # per point: N differs slightly
    # measured: about 1/90 of uniform's and 1/2 of stratified's (σ of each estimate ~14 %)
    assert var["importance"] < 0.1 * var["uniform"], var
    assert var["importance"] < 0.9 * var["stratified"], var


def test_importance_before_a_cache_is_the_stratified_sampler():
    domain = domain_of({"shape": "disk", "radius": 0.5})
    draw = {kind: Sampler(domain, n=1000, kind=kind, generator=torch.Generator().manual_seed(3))()
            for kind in ("stratified", "importance")}
    assert all(torch.equal(a, b) for a, b in zip(draw["stratified"], draw["importance"]))


def test_importance_points_gather_on_the_crack():
    domain = domain_of({"shape": "rectangle", "size": [1.0, 1.0]})
    sampler = importance_sampler(domain, n=4096, seed=2, fraction=0.5)
    x, _ = sampler()
    near = ((x[:, 0] - X0).abs() < 3 * S).double().mean().item()
    # the band |x − X0| < 3s is 12 % of the box; half the points come from q, mostly there
    assert near > 0.4


def test_load_stepping_with_importance_sampling_trains_and_stays_finite(tmp_path):
    scn = config.validate_scenario({
        "domain": {"shape": "rectangle", "size": [1.0, 1.0]},
        "fracture": {"length_scale": 0.05, "toughness": {"kind": "constant", "mean": 1e-3}},
        "output": {"snapshots": 2, "resolution": 24},
        "network": {"fourier_features": 16, "width": 16, "hidden_layers": 2, "fourier_scales": [1.0, 4.0]},
        "solver": {"sampling": "importance", "importance_fraction": 0.6, "points": 256, "load_steps": 3,
                   "iterations": 6, "first_step_iterations": 6, "cache_points_per_length": 1.0}})
    run = Run(scn, tmp_path / "run", device=torch.device("cpu"), log=lambda s: None, pictures=False)
    summary = run.execute()
    assert run.trainer.sampler.density is not None  # the steps after the first used the crack density
    x, w, _ = run.trainer.draw(0.1)
    assert run.trainer._density_of is run.model.cache  # rebuilt from the last step's cache
    assert x.shape[0] == run.trainer.sampler.n_u + run.trainer.sampler.n_q
    assert torch.isfinite(w).all() and (w >= 0).all()
    losses = [v for step in run.state.history for k, v in step.items() if k.startswith("loss_")]
    assert len(losses) == 3 * 3 and np.isfinite(losses).all()
    assert not summary["blowups"]
    # and it trained: at every load the energy (on the export grid) is below the uniform state's,
    # 2K εs² · area with u = 0 and φ = 0 (measured: 1.1 % below at t_end after 6 iterations a step)
    for row in run.rows[1:]:
        assert 0 < row["total"] < 2 * (1.0 + 1.0) * row["eps_s"] ** 2 * 1.0, row


# ----------------------------------------------------------------------------- multi-scale features


def net(scale, seed=0, features=256, **kw):
    args = dict(out=2, features=features, scale=scale, hidden_layers=2, width=16,
                generator=torch.Generator().manual_seed(seed)) | kw
    return FourierMLP(**args).double()


def test_two_scales_give_two_populations_of_frequencies():
    n = net((2.0, 30.0), features=257)  # odd: the first group takes the extra column
    norms = (n.two_pi_B / (2 * math.pi)).norm(dim=0)
    low, high = norms[:129], norms[129:]
    # |b| of a 2D N(0, σ²) vector is Rayleigh: mean σ·sqrt(π/2), a few % error with 128 columns
    assert low.mean().item() == pytest.approx(2.0 * math.sqrt(math.pi / 2), rel=0.15)
    assert high.mean().item() == pytest.approx(30.0 * math.sqrt(math.pi / 2), rel=0.15)
    assert low.max() < high.median()


def test_one_scale_in_a_list_is_the_single_scale_network():
    a, b = net(4.0, seed=5), net((4.0,), seed=5)
    assert torch.equal(a.two_pi_B, b.two_pi_B)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_multi_scale_features_stay_periodic():
    # (their forward derivatives against autograd: tests/test_nets.py, parametrised over scales)
    n = net((1.0, 8.0, 20.0), features=30, periods=(0.5, None), extra=1)
    x = torch.rand(40, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.rand(40, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    value, _ = n(x, t)
    shifted, _ = n(x + torch.tensor([0.5, 0.0], dtype=torch.float64), t)
    assert torch.allclose(value, shifted, atol=1e-9)


def test_model_uses_the_scales_of_the_scenario():
    from vefrac.runner import build_problem
    from vefrac.solve import FieldModel

    scn = config.validate_scenario({"network": {"fourier_features": 8, "fourier_scales": [1.0, 100.0]}})
    model = FieldModel(build_problem(scn), scn.network, torch.Generator().manual_seed(0), space_time=False,
                       phi_bias=-6.0)
    norms = (model.u_net.two_pi_B / (2 * math.pi)).norm(dim=0)
    assert norms[:4].max() < 10 < norms[4:].min()
