"""Benchmark: the training step of the default networks, and the wall time of square-mud.

    python scripts/bench.py [--points 16384 65536 262144] [--iterations 30] [--threads 1]
                            [--no-scenario] [--no-baseline] [--no-compile] [--profile] [--cache]
                            [--refresh] [--set KEY=VALUE ...]
                            [--json FILE]

Prints a table: seconds per training iteration, points·iterations per second and peak memory
at the given point counts, on the CPU and on the GPU when one is present, for vefrac's
forward-mode derivatives next to a plain `torch.autograd.grad(create_graph=True)`
implementation of the same networks (the in-run baseline) and of the same step compiled with
torch.compile (`solver.compile: true`; its compilation is excluded, it happens in the warm-up);
then the wall time of `square-mud`
run as a user runs it. Draws larger than `solver.chunk_points` (65536 by default) are
evaluated in chunks with the gradients accumulated, so 256k points fit in bounded memory.

Each configuration runs in a fresh Python process, so its memory is its own. Peak memory:
on the CPU the rise of the process's peak resident set (getrusage ru_maxrss) over its resident
set just before the first training iteration, i.e. what the training step adds (networks,
cache and torch itself not counted; the buffers torch allocates lazily in the first iteration
are, about 80 MB on the CPU: compare rows, or add --points 64); `peak_rss_mb` is the whole
process. On a GPU: torch.cuda.max_memory_allocated over the iterations less what was
allocated before.

--profile: torch.profiler over one training step (after warm-up) at the first point count on
each device; prints the 15 ops with the most self CPU time and stores them in the JSON, with
the number of scalar reads (`aten::_local_scalar_dense`, what .item() runs) inside the step
(on the CPU these are Adam's per-parameter step counters, host tensors: no device waits) and,
on a GPU, the number of CUDA synchronisations.
--set: scenario overrides for every configuration and for the square-mud run
(e.g. --set solver.sampling=importance --set network.fourier_scales=[2,10]).
--cache: time a load step after the first (the previous φ cached and interpolated; importance
sampling leaves its stratified fallback only once there is a cache); without it, the first
step, as before.
--refresh: instead, the cost of committing a load step (phi_cache.refresh_cache: φ and ∇φ at a
2 × 2 sub-grid of every cache cell and at the export grid, the upper envelope) against evaluating
every field at the same points in chunks of 65536 (what the refresh did until 2026-12-02) and
against one Adam iteration; best of five, square-mud at --points.
Figures are only comparable within one run (machines are shared and noisy): quote ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vefrac.budget import export_resolution  # noqa: E402
from vefrac.config import load_scenario  # noqa: E402
from vefrac.runner import Run  # noqa: E402
from vefrac.solve import State, refresh_cache  # noqa: E402


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


def _build(device: torch.device, points: int, *, autograd: bool, overrides: tuple[str, ...] = (),
           cache: bool = False) -> Run:
    """square-mud's run (networks, trainer) at `points` points per iteration, not started.
    cache: as in a load step after the first, the previous φ cached on its grid (interpolated
    at every point; importance sampling draws from its crack density)."""
    scn = load_scenario(ROOT / "scenarios/square-mud.yaml", [f"solver.points={points}", *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(scn, Path(tmp), device=device, log=lambda s: None)
    if cache:
        refresh_cache(run.problem, run.model, 0.05, points_per_length=run.scn.solver.cache_points_per_length,
                      device=device, dtype=run.dtype)
    if autograd:
        run.model.fields = lambda x, t: autograd_fields(run.model, x, t)
    return run


def _adam(run: Run, device: torch.device, n: int) -> None:
    """n Adam iterations of one load step, as the solver runs them."""
    run.trainer.adam(t_value=0.05, n_iter=n, state=State(), checkpoint=lambda s: None, counter=[0])
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_training(device: torch.device, points: int, iterations: int, *, autograd: bool,
                  overrides: tuple[str, ...] = ()) -> float:
    """Seconds per Adam iteration (energy + first derivatives + backward + step) of square-mud's networks."""
    run = _build(device, points, autograd=autograd, overrides=overrides)
    _adam(run, device, 3)  # warm-up
    start = time.perf_counter()
    _adam(run, device, iterations)
    return (time.perf_counter() - start) / iterations


def _rss_now() -> int:
    """Resident set of this process in bytes (Linux /proc; elsewhere the peak so far)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()
    except OSError:
        return _rss_peak()


def _rss_peak() -> int:
    """Peak resident set of this process in bytes (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def profile_step(run: Run, device: torch.device, *, warmup: int = 3) -> dict:
    """torch.profiler over one training iteration, the body of `Trainer.adam`'s loop: draw,
    chunked energy + forward-mode derivatives + backward, Adam step."""
    from torch.profiler import ProfilerActivity, profile

    params = [p for p in run.model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=run.scn.solver.learning_rate)
    bad = torch.zeros((), dtype=torch.bool, device=device)

    def step():
        x, w, t = run.trainer.draw(0.05)
        opt.zero_grad(set_to_none=True)
        loss, _ = run.trainer.backward(x, w, t)
        bad.logical_or_(~torch.isfinite(loss))
        opt.step()

    for _ in range(warmup):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:  # no explicit synchronize: it would count below
        step()
    events = prof.key_averages()
    table = events.table(sort_by="self_cpu_time_total", row_limit=15)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    ops = [{"name": e.key, "calls": e.count, "self_cpu_us": e.self_cpu_time_total, "cpu_total_us": e.cpu_time_total,
            **({"self_device_us": getattr(e, "self_device_time_total", None)} if device.type == "cuda" else {})}
           for e in top]
    # .item() and friends run aten::_local_scalar_dense; on CPU tensors (Adam's step counters,
    # one per parameter) it reads host memory and does not wait for a device. On a GPU the
    # waits are the CUDA runtime's *Synchronize calls.
    scalar_reads = sum(e.count for e in events if e.key == "aten::_local_scalar_dense")
    out = {"table": table, "top_ops": ops, "scalar_reads": scalar_reads}
    if device.type == "cuda":
        out["device_syncs"] = sum(e.count for e in events if "Synchronize" in e.key)
    return out


def measure(spec: dict) -> dict:
    """One configuration, in this (fresh) process: seconds per iteration and peak memory."""
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    run = _build(device, spec["points"], autograd=spec["autograd"], overrides=tuple(spec["overrides"]),
                 cache=spec.get("cache", False))
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = _rss_now()
    _adam(run, device, 3)  # warm-up
    start = time.perf_counter()
    _adam(run, device, spec["iterations"])
    out = {"s_per_it": (time.perf_counter() - start) / spec["iterations"], "chunk_points": run.scn.solver.chunk_points,
           "drawn_points": int(run.trainer.draw(0.05)[0].shape[0])}
    if device.type == "cuda":
        out["peak_memory_mb"] = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        out["memory_measure"] = "torch.cuda.max_memory_allocated rise over the iterations"
    else:
        out["peak_memory_mb"] = max(0, _rss_peak() - before) / 2**20
        out["peak_rss_mb"] = _rss_peak() / 2**20
        out["memory_measure"] = "peak RSS (ru_maxrss) rise over the RSS before the first iteration"
    if spec.get("profile"):
        out["profile"] = profile_step(run, device)
    return out


def run_fresh(spec: dict) -> dict:
    """`measure(spec)` in a fresh Python process; {'error': ...} when it fails (out of memory, say)."""
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                          text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def time_to_solution(factors: list[float], backends: list[str], overrides: list[str], json_path) -> dict:
    """square-mud with the domain scaled by F (domain/s = 50·F; points and export grid scaled with the
    area, so the resolution per s stays), run as a user runs it, per backend: wall time and crack
    statistics; then the fitted exponent of wall time against domain/s per backend."""
    base = load_scenario(ROOT / "scenarios/square-mud.yaml", overrides)
    rows = []
    for backend in backends:
        for f in factors:
            sets = overrides + [f"domain.size=[{f},{f}]", f"solver.backend={backend}", f"name=square-mud-x{f:g}-{backend}"]
            # "auto" points and export grid follow domain/s by themselves; fixed ones scale here
            if base.solver.points != "auto":
                sets.append(f"solver.points={int(round(base.solver.points * f * f))}")
            if base.output.resolution != "auto":
                sets.append(f"output.resolution={int(round(base.output.resolution * f))}")
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "vefrac", "run", str(ROOT / "scenarios/square-mud.yaml"),
                                "--out", tmp, "--quiet", *[a for kv in sets for a in ("--set", kv)]],
                               check=True, cwd=ROOT)
                wall = time.perf_counter() - start
                summary = json.loads((Path(tmp) / "summary.json").read_text())
            final = summary["final"]
            rows.append({"backend": backend, "factor": f, "domain_over_s": f * base.domain.size[0] / base.fracture.length_scale,
                         "wall_s": wall, "fragments": final["fragments"], "mean_fragment_area": final["mean_fragment_area"],
                         "skeleton_length": final["skeleton_length"], "crack_length": final["crack_length"],
                         "first_crack_t": summary["first_crack_t"], "band_width": final.get("band_width"),
                         "median_phi": final.get("median_phi")})
            print(f"{backend:5} domain/s = {rows[-1]['domain_over_s']:5.0f}: {wall:7.0f} s, {final['fragments']} fragments, "
                  f"skeleton length {final['skeleton_length']:.3g}", flush=True)
            if json_path:  # keep what is done: these runs are long
                Path(json_path).with_suffix(".partial.json").write_text(json.dumps(rows, indent=2))
    exponents = {}
    for backend in backends:
        mine = [r for r in rows if r["backend"] == backend]
        if len(mine) >= 2:
            import numpy as np

            slope = np.polyfit(np.log([r["domain_over_s"] for r in mine]), np.log([r["wall_s"] for r in mine]), 1)[0]
            exponents[backend] = float(slope)
    print("cost exponents (wall time ∝ (domain/s)^p): " + ", ".join(f"{b} p = {p:.2f}" for b, p in exponents.items()))
    print(scaling_table(rows))
    return {"runs": rows, "exponents": exponents}


def scaling_table(rows: list[dict]) -> str:
    """The verdict as a markdown table: per domain/s and backend, wall time, crack statistics (the
    PINN's relative to the FEM's where both ran) and the PINN / FEM time."""
    fem = {r["domain_over_s"]: r for r in rows if r["backend"] == "fem"}

    def cell(r, key, fmt):
        v, ref = r.get(key), fem.get(r["domain_over_s"], {}).get(key)
        if v is None:
            return "–"
        if r["backend"] == "fem" or not ref or key == "first_crack_t":
            return format(v, fmt)
        return f"{format(v, fmt)} ({100 * (v / ref - 1):+.0f} %)"

    lines = ["| domain/s | backend | wall s | fragments | skeleton | AT2 length | first crack t | band width | "
             "median φ | PINN / FEM time |", "|" + " --- |" * 10]
    for r in sorted(rows, key=lambda r: (r["domain_over_s"], r["backend"] != "fem")):
        ref = fem.get(r["domain_over_s"])
        ratio = f"{r['wall_s'] / ref['wall_s']:.2f}" if r["backend"] == "pinn" and ref else ""
        lines.append(f"| {r['domain_over_s']:.0f} | {r['backend']} | {r['wall_s']:.0f} | {cell(r, 'fragments', 'd')} | "
                     f"{cell(r, 'skeleton_length', '.4g')} | {cell(r, 'crack_length', '.4g')} | "
                     f"{cell(r, 'first_crack_t', '.4g')} | {cell(r, 'band_width', '.4g')} | "
                     f"{cell(r, 'median_phi', '.2f')} | {ratio} |")
    return "\n".join(lines)


def time_refresh(points: int, overrides: list[str], repeats: int = 5) -> dict:
    """Seconds of one cache refresh, of evaluating all fields at its points, of one Adam iteration."""
    from vefrac import phi_cache
    from vefrac.solve import evaluate

    device = torch.device("cpu")
    run = _build(device, points, autograd=False, overrides=tuple(overrides), cache=True)
    model, problem = run.model, run.problem
    check = problem.domain.grid(export_resolution(run.scn, problem.domain.length))
    sub = phi_cache.sub_grid_points(model.cache_grid, phi_cache.SUBDIVISIONS).numpy()

    def refresh():
        phi_cache.refresh_cache(problem, model, 0.05, points_per_length=run.scn.solver.cache_points_per_length,
                                device=device, dtype=run.dtype, check=check)

    def everything():
        for p in (model.cache_grid.points(), sub, check.points()):
            evaluate(problem, model, p, 0.05, device=device, dtype=run.dtype, chunk=65536)

    def adam():
        _adam(run, device, 10)

    best = {}
    for _ in range(repeats):  # interleaved, so a change in the machine's load hits all three alike
        for name, f in (("refresh_s", refresh), ("all_fields_s", everything), ("adam_10_s", adam)):
            start = time.perf_counter()
            f()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    result = {"points": points, "cache_grid": list(model.cache_grid.shape), "check_points": len(sub) + len(check.points()),
              "refresh_s": best["refresh_s"], "all_fields_s": best["all_fields_s"],
              "adam_s_per_it": best["adam_10_s"] / 10}
    print(f"cache refresh, square-mud at {points} points, cache grid {result['cache_grid']}, "
          f"{result['check_points']} check points: refresh {result['refresh_s']:.3f} s, all fields at the same "
          f"points as before {result['all_fields_s']:.3f} s ({result['all_fields_s'] / result['refresh_s']:.2f}x), "
          f"one Adam iteration {result['adam_s_per_it']:.4f} s (refresh = "
          f"{result['refresh_s'] / result['adam_s_per_it']:.1f} iterations)")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, nargs="+", default=[16384, 65536, 262144])
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-scenario", action="store_true", help="skip the square-mud wall time")
    ap.add_argument("--no-baseline", action="store_true", help="skip the autograd baseline")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile'd step (solver.compile)")
    ap.add_argument("--profile", action="store_true",
                    help="torch.profiler's top 15 ops (self CPU time) of one step at the first point count")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="scenario override for every configuration and the square-mud run (repeatable)")
    ap.add_argument("--cache", action="store_true",
                    help="time a load step after the first: previous φ cached (needed to see importance sampling)")
    ap.add_argument("--refresh", action="store_true",
                    help="only time the load step's cache refresh against all fields and an Adam iteration")
    ap.add_argument("--scaling", type=float, nargs="*", metavar="F",
                    help="only the time to solution of square-mud with its domain (and points, export grid) "
                         "scaled by each F, so domain/s = 50·F, for the PINN and the FEM backend; fits the cost "
                         "exponents")
    ap.add_argument("--backends", nargs="+", default=["pinn", "fem"], help="backends for --scaling")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # one configuration, in a fresh process
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return
    torch.set_num_threads(args.threads)
    if args.refresh:
        result = time_refresh(args.points[0], args.overrides)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        return
    if args.scaling:  # the time to solution alone: its runs are long enough to be a study of their own
        result = {"machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
                  "overrides": args.overrides,
                  "time_to_solution": time_to_solution(args.scaling, args.backends, args.overrides, args.json)}
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        return
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows, profiles = [], {}
    for device in devices:
        for n in args.points:
            spec = {"device": str(device), "points": n, "iterations": args.iterations, "threads": args.threads,
                    "overrides": args.overrides, "cache": args.cache, "autograd": False, "profile": args.profile and n == args.points[0]}
            fwd = run_fresh(spec)
            ref = {} if args.no_baseline else run_fresh(spec | {"autograd": True, "profile": False})
            comp = {} if args.no_compile else run_fresh(spec | {"profile": False,
                                                               "overrides": args.overrides + ["solver.compile=true"]})
            row = {"device": str(device), "points": n}
            if "error" in fwd:
                rows.append(row | {"error": fwd["error"]})
                continue
            if "profile" in fwd:
                profiles[str(device)] = {"points": n} | fwd.pop("profile")
            row |= {"s_per_it": fwd["s_per_it"], "points_it_per_s": n / fwd["s_per_it"],
                    "peak_memory_mb": fwd["peak_memory_mb"]}
            if "s_per_it" in ref:
                row |= {"autograd_s_per_it": ref["s_per_it"], "speedup_vs_autograd": ref["s_per_it"] / fwd["s_per_it"],
                        "autograd_peak_memory_mb": ref["peak_memory_mb"]}
            elif "error" in ref:
                row["autograd_error"] = ref["error"]
            if "s_per_it" in comp:
                row |= {"compiled_s_per_it": comp["s_per_it"], "compiled_peak_memory_mb": comp["peak_memory_mb"]}
                if "autograd_s_per_it" in row:
                    row["compiled_speedup_vs_autograd"] = row["autograd_s_per_it"] / comp["s_per_it"]
            elif "error" in comp:
                row["compiled_error"] = comp["error"]
            row |= {k: fwd[k] for k in ("chunk_points", "drawn_points", "peak_rss_mb", "memory_measure") if k in fwd}
            rows.append(row)
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"
    print(f"\nvefrac training step ({machine})" + (f", {' '.join(args.overrides)}" if args.overrides else ""))
    print(f"{'device':8} {'points':>8} {'s/it':>9} {'points·it/s':>13} {'peak MB':>9} "
          f"{'autograd s/it':>14} {'autograd MB':>12} {'speed-up':>9} {'compiled s/it':>14} {'speed-up':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['device']:8} {r['points']:8d}  failed: {r['error']}")
            continue
        ref = (f"{r['autograd_s_per_it']:14.4f} {r['autograd_peak_memory_mb']:12.1f} {r['speedup_vs_autograd']:8.2f}x"
               if "autograd_s_per_it" in r else f"{'-':>14} {'-':>12} {'-':>9}")
        comp = (f" {r['compiled_s_per_it']:14.4f}" + (f" {r['compiled_speedup_vs_autograd']:8.2f}x"
                if "compiled_speedup_vs_autograd" in r else f" {'-':>9}")) if "compiled_s_per_it" in r else ""
        print(f"{r['device']:8} {r['points']:8d} {r['s_per_it']:9.4f} {r['points_it_per_s']:13.3g} "
              f"{r['peak_memory_mb']:9.1f} {ref}{comp}")
    if rows and "memory_measure" in rows[0]:
        print("peak MB: " + "; ".join(sorted({f"{r['device']}: {r['memory_measure']}" for r in rows
                                              if "memory_measure" in r})))
    result = {"machine": machine, "overrides": args.overrides, "cache": args.cache, "training_step": rows}
    for device, prof in profiles.items():
        syncs = f", {prof['device_syncs']} device synchronisations" if "device_syncs" in prof else ""
        print(f"\nprofile of one training step, {device}, {prof['points']} points "
              f"({prof['scalar_reads']} scalar reads (.item()){syncs}):\n{prof['table']}")
    if profiles:
        result["profile"] = profiles
    if not args.no_scenario:
        sets = [a for kv in args.overrides for a in ("--set", kv)]
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "vefrac", "run", str(ROOT / "scenarios/square-mud.yaml"),
                            "--out", tmp, "--quiet", *sets], check=True, cwd=ROOT)
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
