"""Benchmark: the training step of the default networks, and the wall time of square-mud.

    python scripts/bench.py [--points 16384] [--iterations 30] [--threads 1] [--no-scenario] [--json FILE]

Prints a table: seconds per training iteration and points·iterations per second at the given
point counts, on the CPU and on the GPU when one is present, for vefrac's forward-mode
derivatives next to a plain `torch.autograd.grad(create_graph=True)` implementation of the
same networks (the in-run baseline); then the wall time of `square-mud` run as a user runs it.
Figures are only comparable within one run (machines are shared and noisy): quote ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vefrac.config import load_scenario  # noqa: E402
from vefrac.runner import Run  # noqa: E402
from vefrac.solve import State  # noqa: E402


def autograd_fields(model, x, t):
    """The same networks, derivatives by autograd with create_graph=True (double backward)."""
    x = x.detach().requires_grad_(True)
    xh = model.normalise(x)

    def value(net, inp):
        z = inp @ net.two_pi_B
        h = torch.tanh(torch.cat([torch.cos(z), torch.sin(z)], 1) @ net.first.T + net.first_bias)
        for w, b in zip(net.hidden, net.hidden_bias):
            h = torch.tanh(h @ w.T + b)
        return h @ net.last.T + net.last_bias

    u = value(model.u_net, xh) * (model.eps_ref * model.length)
    grad_u = torch.stack([torch.autograd.grad(u[:, i].sum(), x, create_graph=True)[0] for i in range(2)], 1)
    from vefrac.nets import incremental_phase_field
    z = value(model.phi_net, xh)[:, 0]
    grad_z = torch.autograd.grad(z.sum(), x, create_graph=True)[0]
    prev = model.previous_phi(x)
    phi, grad_phi = incremental_phase_field(prev[:, 0], prev[:, 1:], z, grad_z)
    return u, grad_u, phi, grad_phi


def time_training(device: torch.device, points: int, iterations: int, *, autograd: bool) -> float:
    """Seconds per Adam iteration (energy + first derivatives + backward + step) of square-mud's networks."""
    scn = load_scenario(ROOT / "scenarios/square-mud.yaml", [f"solver.points={points}"])
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(scn, Path(tmp), device=device, log=lambda s: None)
    if autograd:
        run.model.fields = lambda x, t: autograd_fields(run.model, x, t)
    state = State()

    def go(n):
        state.iteration = 0
        run.trainer.adam(t_value=0.05, n_iter=n, state=state, checkpoint=lambda s: None, counter=[0])
        if device.type == "cuda":
            torch.cuda.synchronize()

    go(3)  # warm-up
    start = time.perf_counter()
    go(iterations)
    return (time.perf_counter() - start) / iterations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, nargs="+", default=[16384])
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-scenario", action="store_true", help="skip the square-mud wall time")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for n in args.points:
            fwd = time_training(device, n, args.iterations, autograd=False)
            ref = time_training(device, n, args.iterations, autograd=True)
            rows.append({"device": str(device), "points": n, "s_per_it": fwd, "points_it_per_s": n / fwd,
                         "autograd_s_per_it": ref, "speedup_vs_autograd": ref / fwd})
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"
    print(f"\nvefrac training step ({machine})")
    print(f"{'device':8} {'points':>8} {'s/it':>9} {'points·it/s':>13} {'autograd s/it':>14} {'speed-up':>9}")
    for r in rows:
        print(f"{r['device']:8} {r['points']:8d} {r['s_per_it']:9.4f} {r['points_it_per_s']:13.3g} "
              f"{r['autograd_s_per_it']:14.4f} {r['speedup_vs_autograd']:8.2f}x")
    result = {"machine": machine, "training_step": rows}
    if not args.no_scenario:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "vefrac", "run", str(ROOT / "scenarios/square-mud.yaml"),
                            "--out", tmp, "--quiet"], check=True, cwd=ROOT)
            wall = time.perf_counter() - start
            summary = json.loads((Path(tmp) / "summary.json").read_text())
        result["square_mud"] = {"wall_s": wall, "fragments": summary["final"]["fragments"],
                                "iterations": summary["iterations"]}
        print(f"\nsquare-mud: {wall:.0f} s wall (process start to exit), {summary['iterations']} iterations, "
              f"{summary['final']['fragments']} fragments")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
