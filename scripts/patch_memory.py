"""Parameters and optimiser state of the PINN's networks on large layers, global against patches.

    python scripts/patch_memory.py [--sizes 4 10] [--set KEY=VALUE ...]

large-gpu's networks (256 features, width 128; s = 0.01) on square layers of each side, both
representations: the parameter count of the u-net and φ-net (`FieldModel`) and the memory of
their float32 weights, gradients and Adam's two moments (16 bytes a parameter), which every
rank holds under torchrun (docs/representations.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vefrac.api import load_scenario
from vefrac.pinn_model import FieldModel, patch_layout
from vefrac.problem import build_problem

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=float, nargs="+", default=[4.0, 10.0])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    a = ap.parse_args()
    print("| layer | representation | patches | parameters | weights + gradients + Adam (float32) |")
    print("| --- | --- | --- | --- | --- |")
    for side in a.sizes:
        for rep in ("global", "patches"):
            scn = load_scenario(ROOT / "scenarios" / "large-gpu.yaml",
                                [f"domain.size=[{side}, {side}]", f"network.representation={rep}", *a.overrides])
            problem = build_problem(scn)
            model = FieldModel(problem, scn.network, torch.Generator().manual_seed(0), space_time=False, phi_bias=-6.0)
            n = sum(p.numel() for p in model.parameters())
            grid = "×".join(map(str, patch_layout(scn.network, problem).counts)) if rep == "patches" else "–"
            print(f"| {side:g} × {side:g}, s = {scn.fracture.length_scale:g} | {rep} | {grid} | "
                  f"{n / 1e6:.2f} M | {16 * n / 2**30:.3g} GiB |")


if __name__ == "__main__":
    main()
