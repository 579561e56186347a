"""Energy terms against closed forms (model.md), in float64 (every tensor names its dtype)."""

import math

import numpy as np
import pytest
import torch

from vefrac.energy import (Physics, degradation, elastic_strain, energy_densities, split_energy,
                           surface_density)

F64 = dict(dtype=torch.float64)


def random_strains(n=1000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, generator=g, **F64) * 0.1 for _ in range(3))


def full_energy(strain, lam, mu):
    exx, eyy, exy = strain
    return 0.5 * lam * (exx + eyy) ** 2 + mu * (exx**2 + eyy**2 + 2 * exy**2)


@pytest.mark.parametrize("split", ["amor", "spectral", "none"])
@pytest.mark.parametrize("lam,mu", [(1.0, 1.0), (0.0, 2.0), (3.0, 0.5)])
def test_splits_add_up_to_the_elastic_energy(split, lam, mu):
    strain = random_strains()
    w_pos, w_neg = split_energy(strain, lam=lam, mu=mu, split=split)
    assert torch.allclose(w_pos + w_neg, full_energy(strain, lam, mu), rtol=1e-10, atol=1e-14)
    assert (w_pos >= 0).all() and (w_neg >= 0).all()


def test_uniform_shrinkage_energy_density_is_2K_eps_squared():
    lam, mu, eps = 1.3, 0.7, 0.05
    n = 10
    grad_u = torch.zeros(n, 2, 2, **F64)
    for split in ("amor", "spectral", "none"):
        phys = Physics(lam=lam, mu=mu, eta=400.0, split=split, fracture=True, s=0.01, k_res=0.0)
        d = energy_densities(phys, u=torch.zeros(n, 2, **F64), grad_u=grad_u, phi=torch.zeros(n, **F64),
                             grad_phi=torch.zeros(n, 2, **F64), G=torch.ones(n, **F64), eps_s=eps)
        assert d["elastic"].dtype == torch.float64
        assert torch.allclose(d["elastic"], torch.full((n,), 2 * (lam + mu) * eps**2, **F64), rtol=1e-12)
        assert (d["surface"] == 0).all() and (d["substrate"] == 0).all()


def test_compression_is_not_degraded_by_amor_and_spectral():
    # equibiaxial compression: tr ε < 0 and both principal strains < 0
    strain = (torch.tensor([-0.1], **F64), torch.tensor([-0.1], **F64), torch.tensor([0.0], **F64))
    for split in ("amor", "spectral"):
        w_pos, w_neg = split_energy(strain, lam=1.0, mu=1.0, split=split)
        assert w_pos.item() == 0.0 and w_neg.item() > 0


def test_spectral_uses_principal_strains():
    # pure shear exy = g: principal strains ±g, tr = 0 -> W+ = W- = μ g²
    g = 0.03
    w_pos, w_neg = split_energy((torch.tensor([0.0], **F64), torch.tensor([0.0], **F64), torch.tensor([g], **F64)),
                                lam=2.0, mu=1.5, split="spectral")
    assert math.isclose(w_pos.item(), 1.5 * g**2, rel_tol=1e-9)
    assert math.isclose(w_neg.item(), 1.5 * g**2, rel_tol=1e-9)


def test_rigid_motions_give_zero_strain():
    theta = 0.3  # infinitesimal rotation: ∇u antisymmetric
    grad_u = torch.tensor([[[0.0, -theta], [theta, 0.0]]], **F64)
    exx, eyy, exy = elastic_strain(grad_u, 0.0)
    assert exx.item() == 0 and eyy.item() == 0 and exy.item() == 0


@pytest.mark.parametrize("model,profile", [
    ("at2", lambda x, s: np.exp(-np.abs(x) / s)),
    ("at1", lambda x, s: np.clip(1 - np.abs(x) / (2 * s), 0, None) ** 2),
])
def test_optimal_1d_profile_has_surface_energy_G_per_unit_length(model, profile):
    s, G = 0.02, 3.5e-3
    x = np.linspace(-30 * s, 30 * s, 200001)
    phi = profile(x, s)
    dphi = np.gradient(phi, x)
    dens = surface_density(torch.as_tensor(phi), torch.as_tensor(np.stack([dphi, 0 * dphi], 1)),
                           torch.full((x.size,), G, **F64), s=s, model=model).numpy()
    assert np.trapezoid(dens, x) == pytest.approx(G, rel=1e-3)


def test_degradation_keeps_residual_stiffness():
    phi = torch.tensor([0.0, 0.5, 1.0], **F64)
    assert torch.allclose(degradation(phi, k_res=1e-6), torch.tensor([1 + 1e-6, 0.25 + 1e-6, 1e-6], **F64),
                          rtol=1e-12, atol=0)


def test_elastic_length():
    phys = Physics(lam=1.0, mu=1.0, eta=300.0, split="amor", fracture=False, s=0.01, k_res=0.0)
    assert phys.elastic_length == pytest.approx(0.1)
