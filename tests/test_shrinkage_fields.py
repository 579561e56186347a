"""Shrinkage in space and time (vefrac/drying.py, vefrac/shrinkage.py): the fields against closed
forms, the plain form unchanged, both backends' energies the same, and bad input refused."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vefrac import drying, fem
from vefrac.cli import main
from vefrac.config import load_scenario, validate_scenario
from vefrac.energy import elastic_strain, energy_densities
from vefrac.problem import build_problem
from vefrac.solve import energy_terms

ROOT = Path(__file__).resolve().parents[1]
SQUARE = ROOT / "scenarios" / "square-mud.yaml"
DRYING = [ROOT / "scenarios" / f"{name}.yaml" for name in
          ("directional-drying", "rim-drying", "oriented-paste", "wet-dry-cycles")]


def scenario(shrinkage: dict, **parts):
    base = {"domain": {"shape": "rectangle", "size": [0.5, 0.5]},
            "material": {"lame_lambda": 0.7, "lame_mu": 1.3, "substrate_stiffness": 100.0},
            "fracture": {"enabled": False}, "fem": {"elements_per_length": 40},
            "solver": {"backend": "fem"}, "shrinkage": shrinkage}
    return validate_scenario(base | parts)


def staggered(scn):
    problem = build_problem(scn)
    h = fem.element_size(scn.fem, problem.domain, s=problem.physics.s, fracture=problem.physics.fracture)
    model = fem.FemModel(fem.build_mesh(problem.domain, h=h), fracture=problem.physics.fracture)
    return fem.Staggered(problem, scn.fem, model, counter=[0]), problem


def solve_elastic(scn, t):
    """The FEM's equilibrium at t (fracture off): (energy terms, nodal U, the problem)."""
    st, problem = staggered(scn)
    U = np.zeros(2 * st.mesh.n_dofs)
    eps = st.shrinkage_at(t)
    U, _, ok = st.u_step(U, None, eps)
    assert ok
    return st.energy(U, None, eps), U, st, problem


POINTS = torch.rand(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5


# ----------------------------------------------------------------------------- the plain form


def test_the_plain_form_is_rate_times_t_bit_for_bit():
    problem = build_problem(load_scenario(SQUARE))
    t = torch.rand(500, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.1
    assert torch.equal(problem.shrinkage_strain(POINTS, t), problem.rate * t)
    assert problem.eps_ref == problem.rate * problem.t_end
    e = problem.eigenstrain(POINTS, t)
    assert torch.equal(e[:, 0], problem.rate * t) and torch.equal(e[:, 2], torch.zeros_like(t))
    # a (N, 3) isotropic tensor gives the same strain as the (N,) value, bit for bit
    grad_u = torch.randn(500, 2, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for a, b in zip(elastic_strain(grad_u, e), elastic_strain(grad_u, problem.rate * t)):
        assert torch.equal(a, b)


def test_a_tabulated_history_equal_to_rate_t_reproduces_the_plain_form():
    plain = scenario({"rate": 0.5, "t_end": 0.2})
    table = scenario({"history": {"times": [0.0, 0.2], "strains": [0.0, 0.1]}})
    assert table.shrinkage.t_end == 0.2  # from the table's last time
    e_plain, U_plain, _, _ = solve_elastic(plain, 0.13)
    e_table, U_table, _, p = solve_elastic(table, 0.13)
    assert p.eps_ref == pytest.approx(0.1, rel=1e-15)
    for key in e_plain:
        assert e_table[key] == pytest.approx(e_plain[key], rel=1e-10, abs=1e-300)
    assert np.allclose(U_table, U_plain, rtol=1e-9, atol=1e-16)


def test_history_pauses_plateaus_and_falls_piecewise_linearly():
    scn = scenario({"history": {"times": [0.0, 1.0, 2.0, 3.0, 4.0], "strains": [0.0, 0.1, 0.1, 0.05, 0.05]}})
    problem = build_problem(scn)
    for t, want in [(0.5, 0.05), (1.5, 0.1), (2.5, 0.075), (3.5, 0.05), (4.0, 0.05)]:
        assert problem.history(t) == pytest.approx(want, rel=1e-14)
        assert torch.allclose(problem.shrinkage_strain(POINTS, t), torch.full((500,), want, dtype=torch.float64))
    assert problem.eps_ref == pytest.approx(0.1)


def test_cycles_rise_and_fall_and_end_at_the_rewettings():
    shr = validate_scenario({"shrinkage": {"t_end": 3.0, "cycles": {"count": 3, "peak": 0.1, "trough": 0.02},
                                           "healing": {"threshold": 0.02}}}).shrinkage
    times, strains = drying.knots(shr)
    assert times == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0] and strains == [0.0, 0.1, 0.02, 0.1, 0.02, 0.1, 0.02]
    assert drying.rewet_times(shr) == [1.0, 2.0, 3.0]
    higher = shr.model_copy(update={"healing": drying.Healing(threshold=0.06)})
    assert drying.rewet_times(higher) == pytest.approx([0.75, 1.75, 2.75])


# ----------------------------------------------------------------------------- fronts


def test_a_front_that_has_covered_the_layer_gives_the_uniform_solution():
    """Plateau 0.05 from t = 0.05; a front from the left at speed 10 crosses 0.5 by t = 0.05: at
    t = 0.2 every point has dried longer than 0.05, so εs = 0.05 everywhere, as the plain form
    at t = 0.05 — and with u = 0 the energy is the uniform state's 2Kεs²·area."""
    hist = {"times": [0.0, 0.05, 1.0], "strains": [0.0, 0.05, 0.05]}
    front = scenario({"history": hist, "t_end": 1.0, "front": {"edge": "left", "speed": 10.0}})
    plain = scenario({"rate": 1.0, "t_end": 0.1})
    p_front, p_plain = build_problem(front), build_problem(plain)
    assert torch.allclose(p_front.eigenstrain(POINTS * 0.5, 0.2), p_plain.eigenstrain(POINTS * 0.5, 0.05),
                          rtol=1e-14, atol=0)
    e_front, U_front, st, _ = solve_elastic(front, 0.2)
    e_plain, U_plain, _, _ = solve_elastic(plain, 0.05)
    for key in e_plain:
        assert e_front[key] == pytest.approx(e_plain[key], rel=1e-9)
    assert np.allclose(U_front, U_plain, rtol=1e-8, atol=1e-15)
    K = 0.7 + 1.3
    bonded = st.energy(np.zeros_like(U_front), None, st.shrinkage_at(0.2))
    assert bonded["elastic"] == pytest.approx(2 * K * 0.05**2 * 0.25, rel=1e-12)


@pytest.mark.parametrize("edge, axis, sign", [("left", 0, 1), ("right", 0, -1), ("bottom", 1, 1), ("top", 1, -1)])
def test_a_front_dries_the_layer_behind_it_only(edge, axis, sign):
    """εs = rate · max(0, t − d/v): at t = 0.03 with v = 10 the front is 0.3 from its edge."""
    problem = build_problem(scenario({"history": {"times": [0.0, 1.0], "strains": [0.0, 1.0]},
                                      "front": {"edge": edge, "speed": 10.0}}))
    x = POINTS * 0.5  # in the 0.5 × 0.5 square
    d = sign * x[:, axis] + 0.25
    want = torch.relu(0.03 - d / 10.0)
    assert torch.allclose(problem.shrinkage_strain(x, 0.03), want, rtol=1e-12, atol=1e-15)
    assert (want == 0).any() and (want > 0).any()


def test_drying_from_the_rim_uses_the_distance_to_the_boundary():
    problem = build_problem(scenario({"history": {"times": [0.0, 1.0], "strains": [0.0, 1.0]},
                                      "front": {"edge": "rim", "speed": 1.0}},
                                     domain={"shape": "disk", "radius": 0.5}))
    r = torch.linspace(0.0, 0.49, 50, dtype=torch.float64)
    x = torch.stack([r * math.cos(0.7), r * math.sin(0.7)], 1)
    t = 0.6  # local drying time t − (R − r)
    assert torch.allclose(problem.shrinkage_strain(x, t), t - (0.5 - r), atol=2e-3)


# ----------------------------------------------------------------------------- anisotropy


@pytest.mark.parametrize("split", ["amor", "none", "spectral"])
def test_anisotropic_bonded_state_energy_is_the_closed_form(split):
    """u = 0: εe = f (I + a (n⊗n − I/2)), W = 2K f² + μ a² f²/2 (no negative part in tension)."""
    a, f = 0.6, 0.04
    scn = scenario({"history": {"times": [0.0, 0.1], "strains": [0.0, 0.1]},
                    "anisotropy": {"amplitude": a, "angle": 35.0}},
                   material={"lame_lambda": 0.7, "lame_mu": 1.3, "substrate_stiffness": 100.0, "split": split})
    st, problem = staggered(scn)
    want = (2 * (0.7 + 1.3) * f**2 + 1.3 * a**2 * f**2 / 2) * 0.25
    bonded = st.energy(np.zeros(2 * st.mesh.n_dofs), None, st.shrinkage_at(0.04))
    assert bonded["elastic"] == pytest.approx(want, rel=1e-12)
    e = problem.eigenstrain(POINTS, 0.04)
    n = (math.cos(math.radians(35)), math.sin(math.radians(35)))
    along = e[:, 0] * n[0] ** 2 + 2 * e[:, 2] * n[0] * n[1] + e[:, 1] * n[1] ** 2
    assert torch.allclose(along, torch.full_like(along, f * (1 + a / 2)))
    assert problem.eps_ref == pytest.approx(0.1 * (1 + a / 2))


def test_anisotropic_free_layer_relaxes_to_zero_elastic_energy():
    """η → 0: a uniform shrinkage tensor is compatible, u = −εs (x − c) relaxes it fully."""
    scn = scenario({"history": {"times": [0.0, 0.1], "strains": [0.0, 0.1]},
                    "anisotropy": {"amplitude": 0.8, "angle": 60.0}},
                   material={"lame_lambda": 0.7, "lame_mu": 1.3, "substrate_stiffness": 1e-9})
    terms, U, st, problem = solve_elastic(scn, 0.05)
    bonded = st.energy(np.zeros_like(U), None, st.shrinkage_at(0.05))["elastic"]
    assert terms["elastic"] < 1e-9 * bonded
    exx, eyy, exy = problem.eigenstrain(torch.zeros(1, 2, dtype=torch.float64), 0.05)[0].tolist()
    nodes = fem.dof_points(st.mesh)
    u = U.reshape(-1, 2)
    want = -np.stack([exx * nodes[:, 0] + exy * nodes[:, 1], exy * nodes[:, 0] + eyy * nodes[:, 1]], 1)
    # up to a rigid motion that η = 1e-9 barely pins
    assert np.abs(u - want).max() < 1e-3 * np.abs(want).max()


# ----------------------------------------------------------------------------- both backends


@pytest.mark.parametrize("split", ["amor", "spectral"])
def test_pinn_and_fem_energy_densities_agree_for_a_given_field(split):
    """The torch energy (solve.energy_terms, the PINN's) of the FEM's field at its Gauss points,
    integrated with the Gauss weights, is the FEM's own discrete energy: same εs(x, t), same
    shear convention, with a front and anisotropy."""
    scn = scenario({"history": {"times": [0.0, 0.1], "strains": [0.0, 0.1]},
                    "front": {"edge": "bottom", "speed": 5.0}, "anisotropy": {"amplitude": 0.5, "angle": 20.0}},
                   material={"lame_lambda": 0.7, "lame_mu": 1.3, "substrate_stiffness": 100.0, "split": split},
                   fracture={"enabled": True, "length_scale": 0.05, "toughness": {"kind": "constant", "mean": 1e-3}},
                   fem={"points_per_length": 1.0})
    st, problem = staggered(scn)
    gen = np.random.default_rng(3)
    U = gen.normal(scale=0.01, size=2 * st.mesh.n_dofs)
    Phi = gen.uniform(0, 0.5, size=st.mesh.n_dofs)
    t = 0.08
    want = st.energy(U, Phi, st.shrinkage_at(t))
    model = fem.FemModel(st.mesh, fracture=True)
    model.u.copy_(torch.from_numpy(st.mesh.nodal(U.reshape(-1, 2))))
    model.phi.copy_(torch.from_numpy(st.mesh.nodal(Phi)))
    # just inside the elements: the Q1 interpolation of the element the Gauss point is in
    x = st.gauss_points
    d = energy_terms(problem, model, x, torch.full((x.shape[0],), t, dtype=torch.float64))
    for key in ("elastic", "surface", "substrate"):
        assert float(d[key].sum()) * st.w == pytest.approx(want[key], rel=1e-10)
    assert energy_densities  # the same densities the PINN's loss integrates


# ----------------------------------------------------------------------------- scenarios and bad input


@pytest.mark.parametrize("path", DRYING, ids=lambda p: p.stem)
def test_the_drying_scenarios_validate(path):
    scn = load_scenario(path)
    assert scn.solver.backend == "fem"
    problem = build_problem(scn)
    assert problem.eps_ref > 0


BAD = [
    ("history: {times: [0, 2, 1], strains: [0, 0.1, 0.2]}", ("shrinkage.history.times", "increase strictly")),
    ("history: {times: [0, 1], strains: [0, 0.1, 0.2]}", ("shrinkage.history.strains", "one strain per time")),
    ("history: {times: [0.5, 1], strains: [0, 0.1]}", ("shrinkage.history.times", "start at 0")),
    ("front: {edge: left, speed: -1}", ("shrinkage.front.speed", "> 0")),
    ("front: {edge: middle, speed: 1}", ("shrinkage.front.edge", "'rim'")),
    ("anisotropy: {amplitude: 3}", ("shrinkage.anisotropy.amplitude", "from -2 to 2")),
    ("rate: 2.0\n  cycles: {count: 2, peak: 0.1}", ("shrinkage", "give one of shrinkage.rate")),
    ("cycles: {count: 2, peak: 0.1, trough: 0.2}", ("shrinkage.cycles.trough", "below peak")),
    ("cycles: {count: 2, peak: 0.1}\n  healing: {threshold: 0.2}", ("shrinkage.healing.threshold", "never exceeded")),
    ("healing: {fraction: 1.5}", ("shrinkage.healing.fraction", "from 0 to 1")),
]


@pytest.mark.parametrize("body, wanted", BAD, ids=[b[1][0] + str(i) for i, b in enumerate(BAD)])
def test_bad_shrinkage_input_exits_2_naming_the_key(body, wanted, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(f"shrinkage:\n  {body}\n")
    out = tmp_path / "out"
    rc = main(["run", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert all(w in err for w in wanted), err
    assert "Traceback" not in err and not out.exists()


def test_set_reaches_the_optional_shrinkage_sections(capsys):
    """--set into a section the file leaves out (None by default) and into one it gives."""
    assert main(["check", str(SQUARE), "--set", "shrinkage.front.edge=rim", "--set", "shrinkage.front.speed=3"]) == 0
    assert "edge: rim" in capsys.readouterr().out
    assert main(["check", str(DRYING[2]), "--set", "shrinkage.anisotropy.amplitude=0.0"]) == 0
    assert "amplitude: 0.0" in capsys.readouterr().out
    assert main(["check", str(SQUARE), "--set", "shrinkage.front.sped=3"]) == 2
    assert "did you mean 'shrinkage.front.speed'" in capsys.readouterr().err
