"""The trainer's Adam parameter groups: the φ-net's output layer may take its own learning rate."""

from pathlib import Path

import torch

from vefrac import api
from vefrac.runner import Run

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")
SMALL = {"solver.points": 256, "solver.load_steps": 2, "solver.threads": 1, "output.resolution": 24,
         "solver.phi_output_lr_scale": 1.0}


def first_step_changes(scale: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """|Δ| of the φ-net's output weights and of the u-net's first layer after one Adam iteration."""
    scn = api.load_scenario(SQUARE, SMALL | {"solver.phi_output_lr_scale": scale,
                                             "solver.final_lr_fraction": 1.0})
    run = Run(scn, None, device=torch.device("cpu"), log=lambda line: None)
    model = run.model
    with torch.no_grad():  # a non-zero output layer, so the hidden layers get gradients too
        model.phi_net.last.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(1))
    before_out, before_u = model.phi_net.last.detach().clone(), model.u_net.first.detach().clone()
    run.trainer.adam(t_value=0.05, n_iter=1, state=run.solver.state, checkpoint=lambda state: None, counter=[0])
    return ((model.phi_net.last.detach() - before_out).abs(), (model.u_net.first.detach() - before_u).abs(),
            scn.solver.learning_rate)


def test_default_is_one_group_in_model_order():
    scn = api.load_scenario(SQUARE, SMALL)
    run = Run(scn, None, device=torch.device("cpu"), log=lambda line: None)
    groups = run.trainer.param_groups()
    assert len(groups) == 1 and groups[0]["scale"] == 1.0
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in run.model.parameters()]


def test_output_layer_takes_its_own_rate():
    # Adam's first step moves a parameter by its rate times g/(|g| + eps): exactly the rate
    # wherever the gradient is well above eps
    out5, u5, lr = first_step_changes(5.0)
    out1, u1, _ = first_step_changes(1.0)
    clear = out1 > 0.9 * lr
    assert clear.float().mean() > 0.5
    assert float(out1.max()) <= lr * (1 + 1e-5)
    torch.testing.assert_close(out5[clear], 5 * out1[clear], rtol=1e-3, atol=0)
    torch.testing.assert_close(u5, u1)  # the other parameters are untouched by the scale


def test_auto_step_settings_follow_the_time_mode_and_fracture():
    from vefrac.schema import STEP_SETTINGS

    plain = {"solver.points": 256}
    load = api.load_scenario(SQUARE, plain).solver
    space = api.load_scenario(SQUARE, plain | {"solver.time": "space_time"}).solver
    assert (load.final_lr_fraction, load.phi_output_lr_scale) == (1.0, 5.0)
    assert (space.final_lr_fraction, space.phi_output_lr_scale) == (0.1, 1.0)
    elastic = api.load_scenario(SQUARE, plain | {"fracture.enabled": False}).solver  # decays to a precise minimum
    assert (elastic.final_lr_fraction, elastic.phi_output_lr_scale) == (0.1, 1.0)
    assert STEP_SETTINGS["localising"] == {"final_lr_fraction": 1.0, "phi_output_lr_scale": 5.0}
    given = api.load_scenario(SQUARE, plain | {"solver.time": "space_time", "solver.final_lr_fraction": 0.5}).solver
    assert (given.final_lr_fraction, given.phi_output_lr_scale) == (0.5, 1.0)  # a given value wins
    # with load stepping the output layer is a group of its own at 5× the rate
    run = Run(api.load_scenario(SQUARE, SMALL | {"solver.phi_output_lr_scale": "auto"}), None,
              device=torch.device("cpu"), log=lambda line: None)
    assert sorted(g["scale"] for g in run.trainer.param_groups()) == [1.0, 5.0]


def test_bad_step_settings_name_the_key(tmp_path):
    import pytest
    from vefrac.errors import InputError

    for key, value in (("final_lr_fraction", 0), ("final_lr_fraction", 1.5), ("phi_output_lr_scale", "fast")):
        with pytest.raises(InputError, match=f"solver.{key}.*'auto'"):
            api.load_scenario(SQUARE, {f"solver.{key}": value})
