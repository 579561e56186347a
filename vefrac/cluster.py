"""Sweeps on a cluster: a sweep's runs as one SLURM job array, submitted through submitit.

submitit (an optional dependency: pip install 'vefrac[cluster]') writes the sbatch script,
submits the array, and on the node runs `execute_command` (vefrac.sweep), which runs the
same `python -m vefrac run ... --quiet` command a local sweep runs. Each run writes its own
folder, so the sweep stays resumable: finished runs are skipped on the next submission.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import InputError
from .sweep import Sweep, child_env, execute_command, pending, run_command, sweep_threads, write_table


def import_submitit():
    """submitit, or an InputError that says how to install it."""
    try:
        import submitit
    except ImportError:
        raise InputError("--executor slurm needs submitit, which is not installed: "
                         "pip install 'vefrac[cluster]' (or pip install submitit)") from None
    return submitit


def make_executor(folder: str | Path, *, cluster: str = "slurm", partition: str | None = None,
                  time_min: int = 60, cpus: int = 1, gpus: int = 0, mem_gb: float | None = None,
                  array_parallelism: int = 64, account: str | None = None, setup: Sequence[str] = ()):
    """A submitit executor for the sweep's job array. cluster: "slurm" on a cluster; "local"
    runs the same jobs as local processes (submitit's LocalExecutor), which the tests use."""
    submitit = import_submitit()
    try:
        executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    except RuntimeError as exc:  # no sbatch/srun on this machine
        raise InputError(f"--executor {cluster}: {exc}") from None
    executor.update_parameters(name="vefrac-sweep", timeout_min=time_min, cpus_per_task=cpus,
                               gpus_per_node=gpus, mem_gb=mem_gb, slurm_partition=partition,
                               slurm_account=account, slurm_array_parallelism=array_parallelism,
                               slurm_setup=list(setup) or None)
    return executor


def run_on_submitit(sweep: Sweep, executor: Any, *, cpus: int = 1, resume: bool = False, device: str = "auto",
                    wait: bool = True, poll_s: float = 5.0, log: Callable[[str], None] = print) -> list[str]:
    """Submit the sweep's unfinished runs as one job array. With wait, follow the jobs and
    rewrite sweep.csv as they finish; returns each run's status (as `run_local`)."""
    todo = pending(sweep, resume=resume)
    statuses = ["skipped" if i not in todo else "pending" for i in range(len(sweep.runs))]
    if not todo:
        write_table(sweep, statuses)
        log(f"sweep: all {len(sweep.runs)} runs finished before; table: {sweep.table}")
        return statuses
    commands, envs = [], []
    for i in todo:
        run = sweep.runs[i]
        threads = sweep_threads(run, jobs=1, cores=cpus)
        commands.append(run_command(sweep, run, resume=resume, device=device, threads=threads))
        envs.append(child_env(threads))
        run.folder.mkdir(parents=True, exist_ok=True)
    jobs = executor.map_array(execute_command, commands, envs)
    for i, job in zip(todo, jobs):
        statuses[i] = f"submitted ({job.job_id})"
    write_table(sweep, statuses)
    log(f"sweep: {len(jobs)} runs submitted as job array {str(jobs[0].job_id).split('_')[0]}; "
        f"logs under {executor.folder}; table: {sweep.table}")
    if not wait:
        return statuses
    waiting = dict(zip(todo, jobs))
    while waiting:
        for i, job in list(waiting.items()):
            if not job.done():
                continue
            del waiting[i]
            try:
                code = job.result()
                statuses[i] = "done" if code == 0 else f"failed (exit {code})"
            except Exception as exc:  # the job itself failed (killed, timed out, node lost)
                statuses[i] = f"failed ({type(exc).__name__})"
            write_table(sweep, statuses)
            log(f"sweep: {sweep.runs[i].folder.name}: {statuses[i]}")
        if waiting:
            time.sleep(poll_s)
    return statuses
