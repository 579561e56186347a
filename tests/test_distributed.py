"""Data-parallel training under torchrun: 2 gloo processes on the CPU."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vefrac.config import load_scenario
from vefrac.runner import Run

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")

TINY = ["solver.points=512", "output.resolution=32", "output.snapshots=3", "solver.load_steps=2",
        "solver.iterations=10", "solver.first_step_iterations=10", "network.fourier_features=16",
        "network.width=16", "solver.cache_points_per_length=0.5", "solver.dtype=float64"]


def fixed_points(run):
    gen = torch.Generator().manual_seed(123)
    x = (torch.rand(400, 2, generator=gen, dtype=torch.float64) - 0.5)
    w = torch.full((400,), 1.0 / 400, dtype=torch.float64)
    return x, w, torch.full((400,), 0.05, dtype=torch.float64)


def _rank_gradients(rank, world, init_file, out_file, tmp):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    run = Run(load_scenario(SQUARE, TINY), tmp, device=torch.device("cpu"), log=lambda s: None)
    x, w, t = fixed_points(run)
    # this rank's share of the points, each weighted as its own unbiased estimate
    loss, _ = run.trainer.loss(x[rank::world], w[rank::world] * world, t[rank::world])
    loss.backward()
    if rank == 0:
        torch.save([p.grad for p in run.model.parameters()], out_file)
    dist.barrier()
    del run, loss  # DDP's reducer before its process group: gloo aborted at exit otherwise (1 run in 6)
    dist.destroy_process_group()
    # gloo's threads can still abort in the interpreter's teardown ("terminate called without an
    # active exception", seen on a loaded 2-core machine): the rank's work is done and saved, so
    # leave without running the C++ destructors
    os._exit(0)


def test_two_gloo_processes_give_the_single_process_gradient(tmp_path):
    out_file = tmp_path / "grads.pt"
    mp.spawn(_rank_gradients, args=(2, str(tmp_path / "init"), str(out_file), str(tmp_path / "o")), nprocs=2)
    run = Run(load_scenario(SQUARE, TINY), tmp_path / "single", device=torch.device("cpu"),
              log=lambda s: None)
    loss, _ = run.trainer.loss(*fixed_points(run))
    loss.backward()
    for ddp, single in zip(torch.load(out_file), [p.grad for p in run.model.parameters()]):
        torch.testing.assert_close(ddp, single, rtol=1e-9, atol=1e-12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_runs_a_scenario_and_only_rank_0_writes(tmp_path):
    out = tmp_path / "run"
    sets = [a for kv in TINY for a in ("--set", kv)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "vefrac", "run",
                          SQUARE, "--out", str(out), "--quiet", *sets],
                         capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2
    assert len(list(out.glob("fields_*.vti"))) == 3
    assert res.stdout.count("fragments") == 1  # one report, from rank 0
