"""A layer whose thickness varies (material.thickness, vefrac/thickness.py): the factor c = h/h_ref on
λ, μ (so on W+ and W−) and on G, in both backends, against closed forms; a uniform thickness
computes exactly what the per-area scenario computes."""

from pathlib import Path

import numpy as np
import pytest
import torch

from vefrac import fem
from vefrac.config import load_scenario
from vefrac.problem import build_problem
from vefrac.solve import energy_terms
from vefrac.thickness import build_thickness

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")
DISH = str(ROOT / "scenarios" / "dish-thickness.yaml")
SMALL = ["domain.size=[0.5, 0.5]", "fracture.length_scale=0.05", "solver.backend=fem"]


def staggered(scn):
    problem = build_problem(scn)
    h = fem.element_size(scn.fem, problem.domain, s=problem.physics.s, fracture=problem.physics.fracture)
    model = fem.FemModel(fem.build_mesh(problem.domain, h=h), fracture=problem.physics.fracture)
    return fem.Staggered(problem, scn.fem, model, counter=[0]), model


def smooth_state(solver, model, *, seed=0):
    """A smooth, non-trivial (u, φ) on the nodes: the same field for both backends to integrate."""
    m = solver.mesh
    ny, nx = m.shape
    jj, ii = np.meshgrid(np.arange(ny + 1), np.arange(nx + 1), indexing="ij")
    x = m.origin[0] + ii.ravel() * m.spacing[0]
    y = m.origin[1] + jj.ravel() * m.spacing[1]
    rng = np.random.default_rng(seed)
    a = rng.normal(size=6) * 0.02
    u = np.stack([a[0] * np.sin(3 * x + 1) + a[1] * y**2, a[2] * np.cos(2 * y) + a[3] * x * y], 1)
    phi = 0.5 * (1 + np.tanh((x - 0.3 * y) / 0.05)) * 0.9
    on = m.node_dof >= 0
    model.u.copy_(torch.from_numpy(np.where(on[:, None], u, 0.0)))
    model.phi.copy_(torch.from_numpy(np.where(on, phi, 0.0)))
    return m.dofs(model.u.numpy()).ravel(), m.dofs(model.phi.numpy())


def dish(extra=()):
    return load_scenario(SQUARE, SMALL + ["material.thickness={kind: dish, value: 1.0, rise: 1.5, radius: 0.3}",
                                          *extra])


# ----------------------------------------------------------------------------- the fields


def test_the_kinds_give_the_documented_profiles():
    scn = load_scenario(SQUARE)
    from vefrac.geometry import build_domain

    domain = build_domain(scn.domain)
    x = torch.tensor([[0.0, 0.0], [0.2, 0.0], [0.45, 0.45], [-0.5, 0.0], [0.5, 0.0]], dtype=torch.float64)
    spec = load_scenario(SQUARE, ["material.thickness={kind: dish, value: 2.0, rise: 1.0, radius: 0.4}"]).material
    h = build_thickness(spec.thickness, domain, seed=0)(x)
    assert h.tolist() == pytest.approx([4.0, 2.0 * (1 + (1 - 0.25)), 2.0, 2.0, 2.0])
    spec = load_scenario(SQUARE, ["material.thickness={kind: linear, value: 2.0, slope: 1.0, angle: 0.0}"]).material
    h = build_thickness(spec.thickness, domain, seed=0)(x)
    assert h.tolist() == pytest.approx([2.0, 2.4, 2.9, 1.0, 3.0])
    spec = load_scenario(SQUARE, ["material.thickness={kind: lognormal, value: 2.0, cv: 0.3, "
                                  "correlation_length: 0.05}"]).material
    grid = torch.as_tensor(domain.grid(200).points())
    h = build_thickness(spec.thickness, domain, seed=0)(grid).numpy()
    assert h.mean() == pytest.approx(2.0, rel=0.05) and h.std() / h.mean() == pytest.approx(0.3, rel=0.2)


def test_a_random_thickness_is_independent_of_the_toughness_of_the_same_seed():
    scn = load_scenario(SQUARE, ["material.thickness={kind: lognormal, value: 1.0, cv: 0.5, "
                                 "correlation_length: 0.05}"])
    problem = build_problem(scn)
    x = torch.as_tensor(problem.domain.grid(100).points())
    c = problem.stiffness(x).numpy()
    G_alone = build_problem(load_scenario(SQUARE)).toughness(x).numpy()
    assert abs(np.corrcoef(np.log(c), np.log(G_alone))[0, 1]) < 0.2
    assert np.allclose(problem.toughness(x).numpy(), G_alone * c, rtol=1e-12)  # G carries the factor


# ----------------------------------------------------------------------------- uniform thickness


@pytest.mark.parametrize("spec", ["{kind: constant, value: 3.0}", "{kind: dish, value: 3.0, rise: 0.0}",
                                  "{kind: linear, value: 3.0, slope: 0.0}"])
def test_a_uniform_thickness_reproduces_the_per_area_layer_exactly(spec):
    """Per-area moduli at h_ref = value and a thickness that does not vary: c = 1 exactly, so both
    backends' energies are bit for bit today's (constant: no factor at all)."""
    plain, thick = load_scenario(SQUARE, SMALL), load_scenario(SQUARE, SMALL + [f"material.thickness={spec}"])
    (a, ma), (b, mb) = staggered(plain), staggered(thick)
    Ua, Pa = smooth_state(a, ma)
    Ub, Pb = smooth_state(b, mb)
    assert a.energy(Ua, Pa, 0.05) == b.energy(Ub, Pb, 0.05)
    assert a._u_terms(Ua, 1.0, 0.05, tangent=True)[1].tolist() == b._u_terms(Ub, 1.0, 0.05, tangent=True)[1].tolist()
    qa, qb = a.phi_qp(Ua, 0.05), b.phi_qp(Ub, 0.05)
    assert (qa[0] != qb[0]).nnz == 0 and qa[1].tolist() == qb[1].tolist()
    x = torch.as_tensor(a.mesh.points.reshape(-1, 2))
    t = x.new_full((x.shape[0],), 0.05)
    ea, eb = energy_terms(a.problem, ma, x, t), energy_terms(b.problem, mb, x, t)
    for key in ("elastic", "surface", "substrate"):
        assert torch.equal(ea[key], eb[key])
    assert (b.problem.stiffness is None) == ("constant" in spec)


# ----------------------------------------------------------------------------- closed forms


def test_uniform_shrinkage_energy_scales_with_the_thickness():
    """u = 0, φ = 0: the elastic energy is ∫ c(x) 2K εs² dx, in both backends; c = 2 doubles it."""
    eps, g0 = 0.03, 1 + 1e-6  # g(0) = 1 + k_res
    for spec, factor in (("{kind: constant, value: 1.0}", 1.0), ("{kind: linear, value: 2.0, slope: 0.0}", 1.0)):
        scn = load_scenario(SQUARE, SMALL + [f"material.thickness={spec}"])
        solver, model = staggered(scn)
        K = scn.material.lame_lambda + scn.material.lame_mu
        area = len(solver.mesh.elements) * solver.mesh.spacing[0] * solver.mesh.spacing[1]
        U, P = np.zeros(2 * solver.mesh.n_dofs), np.zeros(solver.mesh.n_dofs)
        assert solver.energy(U, P, eps)["elastic"] == pytest.approx(g0 * factor * 2 * K * eps**2 * area, rel=1e-12)
    # the physical form: the same layer twice as thick stores twice the energy
    energies = []
    for h in (1.0e-3, 2.0e-3):
        scn = load_scenario(DISH, [f"material.thickness={{kind: constant, value: {h}}}", "domain.radius=0.01",
                                   "fracture.length_scale=0.002"])
        solver, model = staggered(scn)
        U, P = np.zeros(2 * solver.mesh.n_dofs), np.zeros(solver.mesh.n_dofs)
        energies.append(solver.energy(U, P, eps)["elastic"])
        m = scn.material
        K = m.young_modulus / (2 * (1 - m.poisson_ratio)) * h
        area = len(solver.mesh.elements) * solver.mesh.spacing[0] * solver.mesh.spacing[1]
        assert energies[-1] == pytest.approx(g0 * 2 * K * eps**2 * area, rel=1e-12)
    assert energies[1] / energies[0] == pytest.approx(2.0, rel=1e-12)
    # a varying thickness: the Gauss-rule integral of c(x) 2K εs²
    solver, model = staggered(dish())
    U, P = np.zeros(2 * solver.mesh.n_dofs), np.zeros(solver.mesh.n_dofs)
    K = 2.0
    expected = solver.w * float((solver.c * g0 * 2 * K * eps**2).sum())
    assert solver.energy(U, P, eps)["elastic"] == pytest.approx(expected, rel=1e-12)
    assert solver.c.max() == pytest.approx(2.5, rel=0.02) and solver.c.min() == 1.0


def test_a_rigid_motion_stores_no_energy_on_a_varying_thickness():
    """εs = 0 and u a translation plus an infinitesimal rotation: no strain, no elastic energy
    (the substrate term is the only one), whatever c(x)."""
    solver, model = staggered(dish())
    m = solver.mesh
    pts = fem.dof_points(m)
    U = np.stack([1e-3 - 2e-3 * pts[:, 1], -5e-4 + 2e-3 * pts[:, 0]], 1).ravel()
    terms = solver.energy(U, np.zeros(m.n_dofs), 0.0)
    assert abs(terms["elastic"]) < 1e-25 and terms["substrate"] > 0
    residual = solver._u_terms(U, 1.0, 0.0, tangent=True)[1]
    substrate_only = np.bincount(solver.udofs.ravel(), weights=(U[solver.udofs] @ solver.substrate).ravel(),
                                 minlength=U.size)
    assert np.allclose(residual, substrate_only, rtol=0, atol=1e-12 * np.abs(substrate_only).max())
    model.u.copy_(torch.from_numpy(m.nodal(U.reshape(-1, 2))))
    x = torch.as_tensor(m.points.reshape(-1, 2))
    dens = energy_terms(solver.problem, model, x, x.new_zeros(x.shape[0]))
    assert dens["elastic"].abs().max() < 1e-25


def assert_backends_agree(solver, model, *, seed: int, eps: float = 0.04):
    """A smooth Q1 state's energy terms by the FEM's numpy energy and by the PINN's torch energy
    (solve.energy_terms at the Gauss points) agree to round-off. Returns (U, P, eps, FEM terms)."""
    U, P = smooth_state(solver, model, seed=seed)
    fem_terms = solver.energy(U, P, eps)
    x = torch.as_tensor(solver.mesh.points.reshape(-1, 2))
    dens = energy_terms(solver.problem, model, x, x.new_full((x.shape[0],), eps))
    for key in ("elastic", "surface", "substrate"):
        assert float(dens[key].sum()) * solver.w == pytest.approx(fem_terms[key], rel=1e-10), key
    return U, P, eps, fem_terms


@pytest.mark.parametrize("split", ["amor", "spectral", "none"])
def test_fem_and_pinn_energy_densities_agree_on_a_given_field_with_varying_thickness(split):
    """The same Q1 field integrated by the FEM's numpy energy and by the PINN's torch energy
    (solve.energy_terms at the Gauss points): equal to round-off, with c(x) ≠ 1."""
    solver, model = staggered(dish([f"material.split={split}",
                                    "fracture.toughness={kind: lognormal, mean: 1.0e-3, cv: 0.5}"]))
    U, P, eps, fem_terms = assert_backends_agree(solver, model, seed=3)
    plain = staggered(load_scenario(SQUARE, SMALL + [f"material.split={split}",
                                                     "fracture.toughness={kind: lognormal, mean: 1.0e-3, cv: 0.5}"]))
    smooth_state(*plain, seed=3)
    assert fem_terms["elastic"] > 1.05 * plain[0].energy(U, P, eps)["elastic"]  # the factor is there


def test_the_fem_stress_and_driving_force_carry_the_factor():
    """The u-step's residual is the derivative of the energy (finite differences), and the φ-step's
    load is 2 c W+: both with c(x) ≠ 1."""
    solver, model = staggered(dish())
    U, P = smooth_state(solver, model, seed=5)
    eps = 0.03
    g = solver._g(P[solver.mesh.elements] @ solver.N.T)
    energy, residual, _ = solver._u_terms(U, g, eps, tangent=True)
    rng = np.random.default_rng(0)
    direction = rng.normal(size=U.size)
    step = 1e-7
    fd = (solver._u_terms(U + step * direction, g, eps, tangent=False)[0]
          - solver._u_terms(U - step * direction, g, eps, tangent=False)[0]) / (2 * step)
    assert np.dot(residual, direction) == pytest.approx(fd, rel=1e-5)
    A, b = solver.phi_qp(U, eps)
    # the φ-step objective ½φᵀAφ − bᵀφ differs from the energy by a constant: compare its gradient
    e0 = solver.energy(U, P, eps)
    d = rng.normal(size=P.size) * 1e-3
    e1 = solver.energy(U, P + d, eps)
    q = lambda f: 0.5 * f @ (A @ f) - b @ f  # noqa: E731
    assert (e1["elastic"] + e1["surface"]) - (e0["elastic"] + e0["surface"]) == pytest.approx(q(P + d) - q(P), rel=1e-8)


def test_a_held_layer_of_varying_thickness_carries_the_uniform_damage():
    """η huge, constant Gc: W+ and G both scale with c, so the homogeneous AT2 damage
    φ = W+/(W+ + G/(2s)) is the same everywhere however h varies, and the energy follows c."""
    G, s, eps = 1e-3, 0.05, 0.05
    scn = dish(["material.substrate_stiffness=1.0e+9", f"fracture.toughness={{kind: constant, mean: {G}}}",
                f"shrinkage.t_end={eps}", "fem.tolerance=1.0e-9"])
    solver, model = staggered(scn)
    assert solver.solve_step(eps).converged
    w_pos = 2 * 2.0 * eps**2
    phi = model.phi.numpy()[solver.mesh.node_dof >= 0]
    assert np.allclose(phi, w_pos / (w_pos + G / (2 * s)), atol=1e-6)
    assert np.ptp(solver.c) > 1.0


# ----------------------------------------------------------------------------- η following h


def sheared_dish(extra=()):
    """The physical dish with its bond 100× stiffer and the layer's own shear in series: η(x) falls
    from the rim (h = h_ref) to the centre (h = 3 h_ref)."""
    return load_scenario(DISH, ["solver.backend=fem", "material.substrate={kind: interface, stiffness: 6.0e9, "
                                "layer_shear: true}", *extra])


def test_the_substrate_factor_follows_the_thickness_as_the_series_law_says():
    from vefrac import layer

    scn = sheared_dish()
    problem = build_problem(scn)
    E, nu, h_ref = 2.0e6, 0.25, 2.0e-3
    own = 3 * E / (2 * (1 + nu)) / h_ref
    assert scn.material.substrate_stiffness == pytest.approx(1 / (1 / 6.0e9 + 1 / own), rel=1e-14)
    a = 6.0e9 / own
    x = torch.tensor([[0.0, 0.0], [0.05, 0.0]], dtype=torch.float64)  # centre (h = 3 h_ref), rim (h_ref)
    q = problem.substrate_factor(x)
    assert float(q[0]) == pytest.approx((1 + a) / (1 + 3 * a), rel=1e-12) and float(q[1]) == pytest.approx(1.0, rel=1e-12)
    # η(x) itself: the series law at the local thickness
    assert float(q[0]) * scn.material.substrate_stiffness == pytest.approx(
        layer.coupled_stiffness(6.0e9, own / 3), rel=1e-12)
    assert build_problem(load_scenario(DISH)).substrate_factor is None  # the bond alone: η uniform
    uniform = load_scenario(DISH, ["material.thickness={kind: constant, value: 2.0e-3}",
                                   "material.substrate={kind: interface, stiffness: 6.0e9, layer_shear: true}"])
    assert build_problem(uniform).substrate_factor is None  # uniform h: one η, no factor


def test_fem_and_pinn_substrate_energies_agree_where_eta_follows_the_thickness():
    solver, model = staggered(sheared_dish())
    U, P, eps, fem_terms = assert_backends_agree(solver, model, seed=4)
    assert solver.q.min() < 0.5 and solver.q.max() == pytest.approx(1.0, abs=0.05)
    plain, _ = staggered(load_scenario(DISH, ["solver.backend=fem", "material.substrate={kind: interface, "
                                              "stiffness: 6.0e9, layer_shear: false}"]))
    # the same η at the rim; smaller inside, so the weighted term is smaller than the bond's alone
    assert fem_terms["substrate"] < plain.energy(U, P, eps)["substrate"] * (
        solver.ph.eta / plain.ph.eta)
    # the u-step's residual is the derivative of the energy with q(x) ≠ 1
    g = solver._g(P[solver.mesh.elements] @ solver.N.T)
    energy, residual, _ = solver._u_terms(U, g, eps, tangent=True)
    direction = np.random.default_rng(1).normal(size=U.size)
    step = 1e-9
    fd = (solver._u_terms(U + step * direction, g, eps, tangent=False)[0]
          - solver._u_terms(U - step * direction, g, eps, tangent=False)[0]) / (2 * step)
    assert np.dot(residual, direction) == pytest.approx(fd, rel=1e-5)


def test_the_u_step_converges_with_the_per_element_substrate_blocks():
    """Newton with the assembled tangent (per-element substrate blocks) converges as fast as with a
    uniform η: the tangent is the energy's."""
    for scn in (sheared_dish(), load_scenario(DISH, ["solver.backend=fem"])):
        solver, _ = staggered(scn)
        n = solver.mesh.n_dofs
        U, iterations, ok = solver.u_step(np.zeros(2 * n), np.zeros(n), 0.03)
        assert ok and iterations <= 6, iterations
        assert np.abs(U).max() > 0  # the free rim pulls in
