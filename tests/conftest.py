"""What every test may rely on: the process-wide settings it starts with are the ones the next
test gets. A test that changes torch's default dtype, its thread count, the float32 matmul
precision, autograd's mode or the working directory, and does not put it back, fails here (and
the setting is restored, so that the failure stays with the test that caused it).

Tests find their files from the repository root (ROOT = Path(__file__).resolve().parents[1] in
each module), never from the working directory: the suite runs from the root and from tests/.
"""

import os

import pytest
import torch


def _global_state() -> dict:
    return {
        "torch default dtype": torch.get_default_dtype(),
        "torch threads": torch.get_num_threads(),
        "float32 matmul precision": torch.get_float32_matmul_precision(),
        "autograd enabled": torch.is_grad_enabled(),
        "working directory": os.getcwd(),
    }


def _restore(state: dict) -> None:
    torch.set_default_dtype(state["torch default dtype"])
    torch.set_num_threads(state["torch threads"])
    torch.set_float32_matmul_precision(state["float32 matmul precision"])
    torch.set_grad_enabled(state["autograd enabled"])
    os.chdir(state["working directory"])


@pytest.fixture(autouse=True)
def _leaves_no_global_state_behind():
    before = _global_state()
    yield
    after = _global_state()
    changed = {k: (before[k], after[k]) for k in before if after[k] != before[k]}
    if changed:
        _restore(before)
        pytest.fail("the test left process-wide settings changed (now restored): "
                    + "; ".join(f"{k}: {was!r} -> {now!r}" for k, (was, now) in changed.items()), pytrace=False)
