"""solver.compile: the torch.compile'd loss is the same function as the eager one (slow: compiling
takes tens of seconds on a small CPU)."""

import tempfile
from pathlib import Path

import pytest
import torch

from vefrac.config import load_scenario
from vefrac.runner import Run
from vefrac.solve import refresh_cache

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")

SMALL = ["network.fourier_features=32", "network.width=32", "solver.points=1024"]


@pytest.mark.slow
@pytest.mark.parametrize("cached", [False, True])
def test_compiled_loss_and_gradients_match_eager(cached):
    runs = []
    for flag in ("false", "true"):
        scn = load_scenario(SQUARE, SMALL + [f"solver.compile={flag}", "solver.dtype=float64"])
        with tempfile.TemporaryDirectory() as tmp:
            run = Run(scn, Path(tmp), device=torch.device("cpu"), log=lambda s: None)
        if cached:  # a later load step: the previous φ interpolated from its cache
            with torch.no_grad():
                run.model.phi_net.reset_output(-1.0)
            refresh_cache(run.problem, run.model, 0.06, points_per_length=3.0, device=torch.device("cpu"),
                          dtype=run.dtype)
        runs.append(run)
    x, w, t = runs[0].trainer.draw(0.06)
    results = []
    for run in runs:
        run.model.zero_grad(set_to_none=True)
        loss, terms = run.trainer.backward(x, w, t)
        grads = torch.cat([p.grad.reshape(-1) for p in run.model.parameters() if p.grad is not None])
        results.append((loss, terms, grads))
    (l0, t0, g0), (l1, t1, g1) = results
    assert torch.allclose(l0, l1, rtol=1e-10) and torch.allclose(t0, t1, rtol=1e-10)
    assert g0.shape == g1.shape and torch.allclose(g0, g1, rtol=1e-8, atol=1e-12 * g0.abs().max())
