"""The local runner: the plan's tasks in order, in this process. The reference for all others.

A map step's shards that the cache (or the run being resumed) already holds are served here,
without starting anything; the others run side by side, each a fresh interpreter running
``execute`` on its job (``python -m mlpipe.core.execution.execute``), as a pod would: nothing of
this process (torch threads, a script's ``__main__``) leaks into them, and they work inside
daemonic workers too.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlpipe.core.errors import ConfigError, StepFailedError
from mlpipe.core.execution.execute import execute
from mlpipe.core.execution.floor import Floor, FloorTask
from mlpipe.core.execution.plan import TaskSpec
from mlpipe.core.execution.runner import Launch, Runner, RunRequest
from mlpipe.core.pipeline import Pipeline, child_env, portable_ref
from mlpipe.core.refs import Ref


class LocalRunner(Runner):
    """Runs each task of the plan with ``execute``, feeding it its upstream references."""

    name = "local"
    reports_steps = True

    def launch(self, request: RunRequest) -> Launch:
        pipeline, config, on_step = request.pipeline, request.config, request.on_step
        refs: dict[str, Ref] = {}
        shards: tuple[int, ...] = ()
        for task in request.plan:
            job = task.job(request.run_id, home=str(request.home), runner=self.name,
                           use_cache=request.use_cache,
                           shard=0 if task.kind == "shard" else None)
            if task.kind == "shard":
                run_shards(pipeline, task, job, shards)
                continue
            if task.kind == "shard_list" and on_step:
                on_step(task.step, "running", None)
            try:
                result = execute(job, pipeline=pipeline, config=config, inputs=refs,
                                 on_step=on_step)
            except (StepFailedError, ConfigError):
                if on_step and task.kind in ("shard_list", "gather"):
                    on_step(task.step, "failed", None)
                raise
            shards = result.shards
            refs.update({step: run.ref for step, run in result.runs.items()})
            if task.kind == "gather" and on_step:
                on_step(task.step, "cached" if result.run.cached else "done", result.run)
        return Launch(orchestrator_run_id=request.run_id)

    def floor(self, tasks: list[FloorTask], name: str, work_dir: Path) -> Floor:
        """A no-op function call per task, in plan order; a shard task's once per shard."""
        def noop(*_: object) -> int:
            return 1

        started = time.perf_counter()
        calls = sum(noop(task.name, shard) for task in tasks
                    for shard in range(task.shards if task.kind == "shard" else 1))
        return Floor(time.perf_counter() - started, calls)


def run_shards(pipeline: Pipeline, task: TaskSpec, job: dict[str, object],
               shards: tuple[int, ...]) -> None:
    """Every shard of a map step, one process per core at a time (in this process when the
    pipeline cannot be imported elsewhere). A failed shard does not stop the others, so a retry
    or ``--resume`` reruns only it; the gather task reports it."""
    shards = tuple(s for s in shards if not _served(pipeline, task, job, s))
    if not shards:
        return
    try:
        portable_ref(pipeline)
        workers = min(len(shards), os.cpu_count() or 1)
    except ConfigError:
        workers = 1
    if workers <= 1:
        for shard in shards:
            with contextlib.suppress(StepFailedError):
                execute({**job, "shard": shard}, pipeline=pipeline, config=task.config)
        return
    env = child_env(pipeline)

    def one(shard: int) -> None:
        subprocess.run([sys.executable, "-m", "mlpipe.core.execution.execute"],
                       input=json.dumps({**job, "shard": shard}), text=True, env=env,
                       stdout=subprocess.DEVNULL, check=False)  # its record says how it went

    with ThreadPoolExecutor(workers, thread_name_prefix=f"mlpipe-{task.step}") as pool:
        list(pool.map(one, shards))


def _served(pipeline: Pipeline, task: TaskSpec, job: dict[str, object], shard: int) -> bool:
    """Whether shard ``shard`` was served from the cache or the resumed run, here, in this
    process (a miss, or any failure, leaves it to its own process, which records it)."""
    try:
        probe = execute({**job, "shard": shard, "cached_only": True}, pipeline=pipeline,
                        config=task.config)
    except (StepFailedError, ConfigError):
        return False
    return bool(probe.runs)
