"""Reduced-precision matrix products for the training step (solver.precision)."""

from __future__ import annotations

import contextlib

import torch


PRECISION_TOLERANCE = 1.0e-2  # reduced precision: largest relative gradient error against float32


@contextlib.contextmanager
def matmul_precision(kind: str, device_type: str):
    """Matrix products inside: float32 (exact), tf32 (TensorFloat-32, CUDA tensor cores) or bf16
    (bfloat16 autocast). Restores the previous setting on exit."""
    if kind == "float32":  # torch's default: nothing to change, nothing to pay per iteration
        yield
        return
    if kind == "bf16":
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)
