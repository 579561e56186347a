"""The layer given physically (E, ν, h, Gc, substrate; vefrac/layer.py): the reduction to the per-area
model, what `vefrac check` derives from it, and the bad mixtures refused with exit code 2."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vefrac import config, fem, layer
from vefrac.cli import main
from vefrac.problem import build_problem

ROOT = Path(__file__).resolve().parents[1]
DISH = ROOT / "scenarios" / "dish-thickness.yaml"
SQUARE = ROOT / "scenarios" / "square-mud.yaml"
SMALL = ["domain.radius=0.01"]  # 10 × 10 s: a quick mesh


def staggered(scn):
    problem = build_problem(scn)
    h = fem.element_size(scn.fem, problem.domain, s=problem.physics.s, fracture=problem.physics.fracture)
    model = fem.FemModel(fem.build_mesh(problem.domain, h=h), fracture=problem.physics.fracture)
    return fem.Staggered(problem, scn.fem, model, counter=[0]), model


def random_state(solver, seed=0):
    rng = np.random.default_rng(seed)
    U = 1e-4 * rng.normal(size=2 * solver.mesh.n_dofs)
    return U, rng.uniform(0, 1, size=solver.mesh.n_dofs)


# ----------------------------------------------------------------------------- the reduction


def test_plane_stress_moduli_times_thickness():
    lam, mu = layer.plane_stress_per_area(8.0 / 3.0, 1.0 / 3.0, 1.0)
    assert (lam, mu) == (pytest.approx(1.0, rel=1e-15), pytest.approx(1.0, rel=1e-15))
    E, nu, h = 2.0e6, 0.25, 3.0e-3
    lam, mu = layer.plane_stress_per_area(E, nu, h)
    assert lam + 2 * mu == pytest.approx(E * h / (1 - nu**2), rel=1e-14)  # the plane-stress P-wave modulus
    assert lam + mu == pytest.approx(E * h / (2 * (1 - nu)), rel=1e-14)  # the 2D bulk modulus: half the biaxial
    assert mu == pytest.approx(E * h / (2 * (1 + nu)), rel=1e-14)
    assert layer.plane_stress_per_area(E, 0.0, h)[0] == 0.0


def test_substrate_models_give_eta():
    shear = config.load_scenario(DISH, ["material.substrate={kind: shear_lag, shear_modulus: 3.0e4, "
                                        "thickness: 1.0e-3}"])
    assert shear.material.substrate_stiffness == pytest.approx(3.0e7, rel=1e-15)
    assert config.load_scenario(DISH).material.substrate_stiffness == 6.0e7


def test_the_physical_form_computes_exactly_what_its_per_area_form_computes():
    """The per-area scenario written with the derived numbers is the same Problem, and both backends'
    energies agree bit for bit, with a uniform thickness and with the dish."""
    for thickness in ("{kind: constant, value: 2.0e-3}", "{kind: dish, value: 2.0e-3, rise: 2.0}"):
        phys = config.load_scenario(DISH, SMALL + [f"material.thickness={thickness}"])
        m, t = phys.material, phys.fracture.toughness
        h = 2.0e-3
        assert m.lame_lambda == 2.0e6 * 0.25 / (1 - 0.25**2) * h and m.lame_mu == 2.0e6 / 2.5 * h
        assert t.mean == 70.0 * h
        per_area = config.load_scenario(DISH, SMALL + [
            f"material={{lame_lambda: {m.lame_lambda!r}, lame_mu: {m.lame_mu!r}, "
            f"substrate_stiffness: {m.substrate_stiffness!r}, thickness: {thickness}}}",
            f"fracture.toughness.mean={t.mean!r}"])
        a, b = build_problem(phys), build_problem(per_area)
        assert a.physics == b.physics and a.rate == b.rate and a.t_end == b.t_end
        x = torch.as_tensor(a.domain.grid(64).points())
        assert torch.equal(a.toughness(x), b.toughness(x))
        (sa, _), (sb, _) = staggered(phys), staggered(per_area)
        U, P = random_state(sa)
        assert sa.energy(U, P, 0.05) == sb.energy(U, P, 0.05)


def test_the_resolved_physical_scenario_loads_back_and_keeps_its_form(capsys):
    assert main(["check", str(DISH)]) == 0
    out = capsys.readouterr().out
    data = yaml.safe_load(out)
    assert "lame_lambda" not in data["material"] and "mean" not in data["fracture"]["toughness"]
    assert data["material"]["young_modulus"] == 2.0e6
    assert config.validate_scenario(data) == config.load_scenario(DISH)


# ----------------------------------------------------------------------------- what check derives


def test_check_prints_the_derived_lengths_and_strains(capsys):
    assert main(["check", str(DISH)]) == 0
    out = capsys.readouterr().out
    scn = config.load_scenario(DISH)
    m = scn.material
    lam, mu, eta, G, s = m.lame_lambda, m.lame_mu, m.substrate_stiffness, 0.14, 2.0e-3
    ell = math.sqrt((lam + 2 * mu) / eta)
    comments = "\n".join(line for line in out.splitlines() if line.startswith("#"))
    assert f"= {ell:.4g}; elastic length / s = {ell / s:.3g}" in comments
    eps_g = math.sqrt(G * (lam + 2 * mu) / ell) / (2 * (lam + mu))
    assert f"Griffith shrinkage (first straight crack, mean G): eps_s = {eps_g:.4g}" in comments
    assert f"AT2 strength of the uniform layer: eps_s = {math.sqrt(G / (12 * (lam + mu) * s)):.4g}" in comments
    assert "h/h_ref 1 to 3" in comments
    assert main(["check", str(SQUARE)]) == 0
    assert "elastic length / s = 8.66" in capsys.readouterr().out


def test_the_griffith_estimate_is_the_release_of_one_straight_crack():
    """At εG the energy one crack across a long strip releases, σ0² ℓe/(λ+2μ) with σ0 = 2(λ+μ)εs
    (the model's closed form), equals G; and the constant is (λ+2μ)/(2(λ+μ)) = 1/(1+ν)."""
    lam, mu = layer.plane_stress_per_area(2.0e6, 0.25, 2.0e-3)
    eta, G = 3.0e7, 0.14
    eps = layer.griffith_strain(lam=lam, mu=mu, eta=eta, G=G)
    ell = math.sqrt((lam + 2 * mu) / eta)
    assert (2 * (lam + mu) * eps) ** 2 * ell / (lam + 2 * mu) == pytest.approx(G, rel=1e-13)
    assert eps == pytest.approx(math.sqrt(G / ((lam + 2 * mu) * ell)) / 1.25, rel=1e-13)


@pytest.mark.parametrize("model", ["at2", "at1"])
def test_the_strength_estimate_is_the_peak_of_the_homogeneous_response(model):
    """The uniform state's stress along its optimal damage: AT2 peaks at εs = sqrt(G/(12Ks));
    AT1 stays elastic until εs = sqrt(3G/(32Ks)), then softens."""
    lam, mu, G, s = 1.0, 1.0, 1e-3, 0.02
    K = lam + mu
    eps = np.linspace(1e-4, 0.2, 200001)
    w = 2 * K * eps**2
    phi = w / (w + G / (2 * s)) if model == "at2" else np.clip(1 - 3 * G / (16 * s * w), 0, 1)
    stress = (1 - phi) ** 2 * 4 * K * eps
    peak = eps[np.argmax(stress)]
    assert peak == pytest.approx(layer.strength_strain(lam=lam, mu=mu, G=G, s=s, model=model), rel=1e-3)


# ----------------------------------------------------------------------------- bad input


BAD = [
    ("material.lame_mu=2.0", ("material: give the layer per area", "not both", "material.lame_mu",
                              "material.young_modulus")),
    ("fracture.toughness.mean=0.1", ("material.fracture_energy (Gc) or as fracture.toughness.mean", "not both")),
    ("material.substrate=null", ("material.substrate too", "or give the layer per area")),
    ("material.fracture_energy=null", ("material.fracture_energy: missing",)),
    ("fracture.toughness={kind: image, image: x.png, range: [1, 2]}", ("x.png",)),
    ("material.poisson_ratio=0.5", ("material.poisson_ratio: must be a number >= 0 and < 0.5 (got 0.5)",)),
    ("material.thickness={kind: dish, value: 1.0e-3, rise: -1.0}", ("material.thickness.rise: must be a number > -1",)),
    ("material.thickness={kind: linear, value: 1.0e-3, slope: 30.0}", ("material.thickness.slope: 30 makes",
                                                                       "must stay below 20")),
    ("material.thickness={kind: plate}", ("material.thickness.kind: must be one of 'constant', 'dish'",)),
    ("material.substrate={kind: shear_lag, shear_modulus: 1.0}", ("material.substrate.thickness: missing",)),
]


@pytest.mark.parametrize("override, wanted", BAD)
@pytest.mark.parametrize("command", ["run", "check"])
def test_bad_layer_input_is_one_message_and_exit_2(override, wanted, command, tmp_path, capsys):
    out = tmp_path / "out"
    args = [command, str(DISH), "--set", override] + (["--out", str(out)] if command == "run" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("vefrac: error: ") and err.count("vefrac: error") == 1 and "Traceback" not in err
    for text in wanted:
        assert text in err, f"{text!r} not in {err!r}"
    assert not out.exists()


def test_an_image_toughness_with_a_fracture_energy_is_refused(tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8)).save(tmp_path / "g.png")
    image = tmp_path / "g.png"
    args = ["check", str(DISH), "--set", f"fracture.toughness={{kind: image, image: {image}, range: [1, 2]}}"]
    assert main(args) == 2
    assert "an image toughness gives G per area" in capsys.readouterr().err
