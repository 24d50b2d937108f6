"""The local runner: the plan's tasks in order, in this process. The reference for all others.

A map step's shards run in this process, one after another, when they fit in memory: when the
files they map over total at most ``runtime.in_process_shards_mib`` (small shards spend their
time starting an interpreter and importing torch, not working; one at a time, memory is that of
one shard, like any other step here). A larger map step, whose work outweighs that start-up,
runs each shard the cache (or the run being resumed) does not hold in a fresh interpreter
running ``execute`` on its job (``python -m mlpipe.core.execution.execute``), one per core at a
time, as a pod would: nothing of this process (torch threads, a script's ``__main__``) leaks
into them, each returns its memory when it ends, and they work inside daemonic workers too.
Cached shards are served here either way, without starting anything. Both ways run the same
``execute`` on the same job, so the outputs and their hashes are the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlpipe.core.errors import ConfigError, MlpipeError, StepFailedError
from mlpipe.core.execution.execute import execute
from mlpipe.core.execution.floor import Floor, FloorTask
from mlpipe.core.execution.honours import on_this_machine
from mlpipe.core.execution.plan import TaskSpec
from mlpipe.core.execution.runner import Launch, Runner, RunRequest
from mlpipe.core.execution.step import load_step_result
from mlpipe.core.paths import resolve_home
from mlpipe.core.pipeline import Pipeline, child_env, portable_ref
from mlpipe.core.refs import Ref, ShardsRef


class LocalRunner(Runner):
    """Runs each task of the plan with ``execute``, feeding it its upstream references."""

    name = "local"
    reports_steps = True
    honours = on_this_machine(
        retries=("ignored", "a failed step fails the run; --resume reruns it"),
        timeout=("ignored", "no per-step deadline"),
        side_by_side_shards=("approximated", "a process per shard, side by side; small "
                             "shards (runtime.in_process_shards_mib) one after another"),
    )

    def launch(self, request: RunRequest) -> Launch:
        pipeline, config, on_step = request.pipeline, request.config, request.on_step
        refs: dict[str, Ref] = {}
        shards: tuple[int, ...] = ()
        for task in request.plan:
            job = task.job(request.run_id, home=str(request.home), runner=self.name,
                           use_cache=request.use_cache,
                           shard=0 if task.kind == "shard" else None)
            if task.kind == "shard":
                run_shards(pipeline, task, job, shards, refs)
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
               shards: tuple[int, ...], inputs: Mapping[str, Ref] | None = None) -> None:
    """Every shard of a map step: here, one after another, when they fit in memory (see the
    module docstring) or the pipeline cannot be imported elsewhere; else one process per core
    at a time for those the cache does not hold. A failed shard does not stop the others, so a
    retry or ``--resume`` reruns only it; the gather task reports it."""
    inputs = inputs or {}
    try:
        portable_ref(pipeline)
        workers = min(len(shards), os.cpu_count() or 1)
    except ConfigError:
        workers = 1
    if workers <= 1 or in_process(pipeline, task, job, inputs):
        for shard in shards:  # served from the cache or run, like any step here
            with contextlib.suppress(StepFailedError):
                execute({**job, "shard": shard}, pipeline=pipeline, config=task.config,
                        inputs=inputs)
        return
    shards = tuple(s for s in shards if not _served(pipeline, task, job, s, inputs))
    if not shards:
        return
    env = child_env(pipeline)

    def one(shard: int) -> None:
        subprocess.run([sys.executable, "-m", "mlpipe.core.execution.execute"],
                       input=json.dumps({**job, "shard": shard}), text=True, env=env,
                       stdout=subprocess.DEVNULL, check=False)  # its record says how it went

    with ThreadPoolExecutor(min(workers, len(shards)),
                            thread_name_prefix=f"mlpipe-{task.step}") as pool:
        list(pool.map(one, shards))


def in_process(pipeline: Pipeline, task: TaskSpec, job: Mapping[str, object],
               inputs: Mapping[str, Ref]) -> bool:
    """Whether a map step's shards fit in memory: the files its mapped input points to total at
    most ``runtime.in_process_shards_mib`` (a size that cannot be read: no)."""
    limit = task.config.runtime.in_process_shards_mib * 2**20
    step = pipeline.step(task.step)
    if limit <= 0 or not step.mapped_inputs:
        return False
    source, home = step.inputs[step.mapped_inputs[0]], job.get("home")
    try:  # the caller's reference, else the run's record of it
        mapped = inputs.get(source) or load_step_result(
            resolve_home(str(home) if home else None), pipeline.name, str(job["run_id"]),
            source).ref
        return isinstance(mapped, ShardsRef) and input_bytes(mapped, limit) <= limit
    except (OSError, ValueError, KeyError, MlpipeError):
        return False


def input_bytes(shards: ShardsRef, limit: float = float("inf")) -> int:
    """The bytes of the files the shards' references point to, each file once (shards may share
    a folder); counting stops once past ``limit``."""
    seen: set[Path] = set()
    total = 0
    for ref in shards.refs:
        root = ref.output_path()
        for path in ([root] if root.is_file() else sorted(root.rglob("*"))):
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            total += path.stat().st_size
            if total > limit:
                return total
    return total


def _served(pipeline: Pipeline, task: TaskSpec, job: dict[str, object], shard: int,
            inputs: Mapping[str, Ref]) -> bool:
    """Whether shard ``shard`` was served from the cache or the resumed run, here, in this
    process (a miss, or any failure, leaves it to its own process, which records it)."""
    try:
        probe = execute({**job, "shard": shard, "cached_only": True}, pipeline=pipeline,
                        config=task.config, inputs=inputs)
    except (StepFailedError, ConfigError):
        return False
    return bool(probe.runs)
