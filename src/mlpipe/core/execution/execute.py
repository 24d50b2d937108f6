"""``execute(job)``: the one entry point for every task of a plan, in any process or pod.

A job is :meth:`TaskSpec.job`'s JSON. Whatever the runner (the local runner, an orchestrator's
task, component or op, ``mlpipe step`` in a pod, ``python -m`` with the job on stdin), a task
runs here, so the tags, the shard-count check, the records (``result.json`` /
``error.json``, written by ``run_step``) and the exit code -> retry policy are decided once.
Upstream references come from ``inputs`` when the caller has them, else from the run's records
(pulled from ``cluster.storage_uri`` first when the job says ``sync``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpipe.core.config import PipelineSettings, config_from_json
from mlpipe.core.errors import ConfigError, MlpipeError, StepFailedError
from mlpipe.core.execution.step import (
    StepCallback,
    StepRun,
    gather_shards,
    load_step_result,
    record_error,
    run_step,
    shard_count,
)
from mlpipe.core.paths import resolve_home, step_dir
from mlpipe.core.pipeline import Pipeline, resolve_pipeline
from mlpipe.core.refs import Ref

#: set while a task runs, and inherited by the processes it starts: a pipeline run started there
#: comes from a module that runs its pipeline when imported, which every task process would
#: repeat without end
INSIDE_TASK = "MLPIPE_INSIDE_TASK"

#: exit code of bad input (``ConfigError`` and kin): the same on every try, so never retried
CONFIG_EXIT = 2


@dataclass(frozen=True)
class TaskResult:
    """What one task did: each step's run (a shard's record for a shard task), or the shard
    numbers a ``shard_list`` task found."""

    task: str
    kind: str
    runs: Mapping[str, StepRun] = field(default_factory=dict)
    shards: tuple[int, ...] = ()

    @property
    def run(self) -> StepRun:
        """The run of a single-step task (step, shard, gather)."""
        return next(iter(self.runs.values()))

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "kind": self.kind, "shards": list(self.shards),
                "runs": {k: v.to_json() for k, v in self.runs.items()}}


def retryable(exc: BaseException | int) -> bool:
    """Whether an orchestrator should try a failed task again: not for bad input (exit 2),
    which fails the same way every time."""
    code = exc if isinstance(exc, int) else int(getattr(exc, "exit_code", 1))
    return code != CONFIG_EXIT


def task_tags(job: Mapping[str, Any]) -> dict[str, str]:
    """The tags a task's steps carry (provenance, trackers, error records)."""
    tags = {"runner": str(job.get("runner") or "local")}
    if job.get("orchestrator_run_id"):
        tags["orchestrator_run_id"] = str(job["orchestrator_run_id"])
    if job.get("attempt"):
        tags["attempt"] = str(job["attempt"])
    if job.get("kind") == "group":
        tags["fused_task"] = str(job["task"])
    return tags


def execute(
    job: Mapping[str, Any],
    *,
    pipeline: Pipeline | None = None,
    config: PipelineSettings | None = None,
    inputs: Mapping[str, Ref] | None = None,
    on_step: StepCallback | None = None,
) -> TaskResult:
    """Run the task ``job`` describes. ``pipeline``/``config``: already resolved by the caller
    (else from the job); ``inputs``: step name -> reference of upstream steps the caller holds;
    ``on_step`` hears each step of a step or group task start and end.

    Raises ``StepFailedError`` with the cause's exit code when a step failed, and with a
    ``ConfigError`` (exit 2, recorded in the step's ``error.json``) when a map step's upstream
    made no shards; ``ConfigError`` for a job that is not one.
    """
    before = os.environ.get(INSIDE_TASK)
    os.environ[INSIDE_TASK] = str(job.get("task", "?"))
    try:
        return _execute(job, pipeline, config, inputs, on_step)
    finally:
        if before is None:
            os.environ.pop(INSIDE_TASK, None)
        else:
            os.environ[INSIDE_TASK] = before


def _execute(
    job: Mapping[str, Any],
    pipeline: Pipeline | None,
    config: PipelineSettings | None,
    inputs: Mapping[str, Ref] | None,
    on_step: StepCallback | None,
) -> TaskResult:
    from mlpipe.core.storage import RESULT, open_store, pull_for_step, push_for_step

    needed = ("task", "kind", "steps", "run_id", *(() if pipeline else ("pipeline",)),
              *(() if config else ("config",)))
    missing = [k for k in needed if k not in job]
    if missing:
        raise ConfigError(f"job: missing {', '.join(missing)} (make jobs with TaskSpec.job)")
    pipe = pipeline or resolve_pipeline(job["pipeline"])
    cfg = config or config_from_json(job["config"], pipe.config_type)
    home, run_id = resolve_home(job.get("home")), str(job["run_id"])
    kind, name, sync = job["kind"], str(job["task"]), bool(job.get("sync"))
    known: dict[str, Ref] = dict(inputs or {})
    common: dict[str, Any] = {"home": home, "run_id": run_id, "use_cache": job.get("use_cache"),
                              "tags": task_tags(job)}

    def refs(step: str) -> dict[str, Ref]:
        spec = pipe.step(step)
        if sync:
            pull_for_step(cfg, pipe, step, home, run_id)
        return {arg: known[src] if src in known else _recorded(pipe, home, run_id, step, src)
                for arg, src in spec.inputs.items()}

    def count(step: str) -> int:
        spec = pipe.step(step)
        if spec.map_over is None:
            raise ConfigError(f"task {name}: step '{step}' of pipeline {pipe.name} is not a map "
                              "step (only steps with map_over run as shards)")
        try:
            return shard_count(spec, refs(step))
        except ConfigError as exc:  # recorded as the step's error, so every runner reads it
            failure = StepFailedError(step, exc)
            record_error(step_dir(home, pipe.name, run_id, step), step, run_id, failure, exc,
                         common["tags"])
            raise failure from exc

    runs: dict[str, StepRun] = {}
    steps = [str(s) for s in job["steps"]]
    if kind == "shard_list":
        return TaskResult(name, kind, shards=tuple(range(count(steps[0]))))
    if kind == "gather":
        step = steps[0]
        total = count(step)
        store = open_store(cfg, home) if sync else None
        directory = step_dir(home, pipe.name, run_id, step)
        if store is not None:
            store.pull(directory)  # the shards' records and outputs, pushed by their pods
        runs[step] = gather_shards(pipe, step, home=home, run_id=run_id, count=total)
        if store is not None:
            store.push(directory / RESULT)
        return TaskResult(name, kind, runs)
    if kind == "shard":
        count(steps[0])  # a clear exit 2 before the shard's own checks
        on_step = None  # a shard is not its step
    elif kind not in ("step", "group"):
        raise ConfigError(f"task {name}: unknown kind {kind!r}")
    for step in steps:
        if kind == "group":
            print(f"mlpipe: fused task {name}: step {step} running", file=sys.stderr, flush=True)
        if on_step is not None:
            on_step(step, "running", None)
        try:
            run = run_step(pipe, step, cfg, refs(step), shard=job.get("shard"),
                           cached_only=kind == "shard" and bool(job.get("cached_only")),
                           **common)
        except StepFailedError:
            if on_step is not None:
                on_step(step, "failed", None)
            raise
        if run is None:  # ``cached_only``: not in the cache, so not run
            return TaskResult(name, kind)
        if on_step is not None:
            on_step(step, "cached" if run.cached else "done", run)
        if sync:
            push_for_step(cfg, pipe, step, home, run_id, run.ref)
        runs[step], known[step] = run, run.ref
        if kind == "group":
            state = "cached" if run.cached else "done"
            print(f"mlpipe: fused task {name}: step {step} {state} in {run.seconds:.2f}s",
                  file=sys.stderr, flush=True)
    return TaskResult(name, kind, runs)


def _recorded(pipeline: Pipeline, home: Path, run_id: str, step: str, source: str) -> Ref:
    """An upstream step's reference from its ``result.json`` in this run."""
    try:
        return load_step_result(home, pipeline.name, run_id, source).ref
    except FileNotFoundError:
        raise ConfigError(f"step '{step}' needs '{source}' of run {run_id} first (no result "
                          f"under {home})") from None


def main() -> None:
    """``python -m mlpipe.core.execution.execute``: the job as JSON on stdin; the result as
    JSON on stdout; exit code: the failure's (recorded in the step's ``error.json``)."""
    try:
        result = execute(json.load(sys.stdin))
    except MlpipeError as exc:
        print(f"mlpipe: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    sys.stdout.write(json.dumps(result.to_json()) + "\n")


if __name__ == "__main__":
    main()
