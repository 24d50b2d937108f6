"""Run one step: the single entry point every runner, task, component and pod calls.

``run_step`` serves a step from the cache or calls it, and leaves exactly one record in the
step's directory ``<home>/runs/<pipeline>/<run_id>/<step>/``: ``result.json`` when it succeeded
(next to its outputs), or ``error.json`` when it failed (its outputs removed). That pair is the
one channel through which every runner, in whatever process or pod the step ran, learns what
happened: see :func:`read_step`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlpipe.core.artifacts import write_json
from mlpipe.core.cache import StepCache, step_key
from mlpipe.core.config import PipelineSettings, config_from_json
from mlpipe.core.errors import (
    ConfigError,
    MlpipeError,
    QualityGateError,
    StepFailedError,
    error_from_record,
    error_record,
)
from mlpipe.core.execution.timings import ImportClock, step_timings, upstream_ended
from mlpipe.core.files import sweep_temp
from mlpipe.core.paths import resolve_home, step_dir
from mlpipe.core.pipeline import Pipeline, StepContext, resolve_pipeline
from mlpipe.core.refs import Ref, ref_from_json

RESULT_FILE = "result.json"
ERROR_FILE = "error.json"


@dataclass(frozen=True)
class StepRun:
    """What one step produced and how long it took (``started``/``ended``: epoch seconds)."""

    step: str
    ref: Ref
    seconds: float
    cached: bool = False
    started: float = 0.0
    ended: float = 0.0
    pid: int = 0
    #: where the step's time went: epoch marks and phase seconds (see :mod:`.timings`)
    timings: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "seconds": self.seconds,
            "cached": self.cached,
            "started": self.started,
            "ended": self.ended,
            "pid": self.pid,
            "timings": dict(self.timings),
            "ref": self.ref.model_dump(mode="json"),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepRun:
        return cls(
            step=data["step"],
            ref=ref_from_json(data["ref"]),
            seconds=float(data["seconds"]),
            cached=bool(data["cached"]),
            started=float(data.get("started", 0.0)),
            ended=float(data.get("ended", 0.0)),
            pid=int(data.get("pid", 0)),
            timings={k: float(v) for k, v in (data.get("timings") or {}).items()},
        )


def run_step(
    pipeline: Pipeline,
    step_name: str,
    config: PipelineSettings,
    inputs: Mapping[str, Ref],
    *,
    home: Path,
    run_id: str,
    use_cache: bool | None = None,
    enforce_checks: bool = True,
    tags: Mapping[str, str] | None = None,
) -> StepRun:
    """Run one step of ``pipeline``: serve it from cache or call it, record the outcome.

    ``inputs`` maps each of the step's input names to the upstream reference. On failure the
    step's outputs are removed, ``error.json`` records the cause (type, message, exit code,
    traceback) and ``StepFailedError`` names the step.
    """
    entered = time.time()
    step = pipeline.step(step_name)
    missing = set(step.inputs) - set(inputs)
    if missing:
        raise ConfigError(f"step '{step_name}' needs inputs: {', '.join(sorted(missing))}")
    out_dir = step_dir(home, pipeline.name, run_id, step.name)
    finished = _finished_in_resumed_run(out_dir)
    if finished is not None:
        return finished  # ``--resume``: what this run already finished is reused as it is
    if out_dir.exists():
        shutil.rmtree(out_dir)  # a retry starts clean
    sweep_temp(home / "cache")  # temp files that killed writers left
    _sweep_runs_once(home / "runs" / pipeline.name)
    wall_started = time.time()
    started = time.perf_counter()
    cache_on = config.runtime.cache if use_cache is None else use_cache
    cache = StepCache(home / "cache")
    key: str | None = None
    imports = ImportClock()
    fn_started = fn_ended = 0.0
    try:
        if step.cacheable:
            key = step_key(pipeline.name, step, config, {k: inputs[k] for k in step.inputs})
        ref = cache.get(key) if cache_on and key is not None else None
        cached = ref is not None
        if ref is None:
            ctx = StepContext(
                home=home,
                run_id=run_id,
                pipeline=pipeline.name,
                step=step.name,
                out_dir=out_dir,
                tags=dict(tags or {}),
            )
            fn_started = time.time()
            with imports:
                ref = step.fn(config, ctx, **{k: inputs[k] for k in step.inputs})
            fn_ended = time.time()
        failed = ref.failed_blocking_checks()
        if enforce_checks and failed:
            raise QualityGateError("; ".join(f"check {c.name} failed: {c.message}" for c in failed))
    except BaseException as exc:
        shutil.rmtree(out_dir, ignore_errors=True)
        failure = exc
        if isinstance(exc, Exception) and not isinstance(exc, StepFailedError):
            failure = StepFailedError(step.name, exc)  # every failure names its step
        _record_error(out_dir, step.name, run_id, failure, exc, tags)
        if failure is not exc:
            raise failure from exc
        raise
    ended = time.time()
    marks = {"entered": entered, "fn_started": fn_started or ended, "fn_ended": fn_ended or ended,
             "ended": ended, "imports_s": imports.seconds}
    result = StepRun(
        step=step.name,
        ref=ref,
        seconds=time.perf_counter() - started,
        cached=cached,
        started=wall_started,
        ended=ended,
        pid=os.getpid(),
        timings=step_timings(marks, upstream_ended(pipeline.name, step.upstream, home, run_id)),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / RESULT_FILE, result.to_json())
    if not cached and key is not None and not ref.failed_blocking_checks():
        cache.put(key, ref, run_id=run_id)  # after result.json: the entry lists the step's files
    return result


def _finished_in_resumed_run(out_dir: Path) -> StepRun | None:
    """A step that finished earlier in a run being resumed, if its outputs are intact."""
    from mlpipe.core.cache import still_valid

    record, result = out_dir.parent / "run.json", out_dir / RESULT_FILE
    if not result.is_file() or not record.is_file():
        return None
    try:
        if not json.loads(record.read_text()).get("resuming"):
            return None
        done = StepRun.from_json(json.loads(result.read_text()))
    except (OSError, ValueError, MlpipeError):
        return None
    if done.ref.failed_blocking_checks() or not still_valid(done.ref):
        return None
    reused = StepRun(step=done.step, ref=done.ref, seconds=0.0, cached=True,
                     started=time.time(), ended=time.time(), pid=os.getpid())
    write_json(result, reused.to_json())  # this run spent nothing on it: served as cached
    return reused


@functools.cache
def _sweep_runs_once(runs: Path) -> None:
    """Once per process and pipeline: remove the temp files killed writers left in its run
    folders and their step folders (a live writer's, on this host or another, are kept)."""
    try:
        run_dirs = [p for p in runs.iterdir() if p.is_dir()]
    except OSError:
        return
    for run in run_dirs:
        sweep_temp(run)
        with contextlib.suppress(OSError):
            for step in run.iterdir():
                if step.is_dir():
                    sweep_temp(step)


def _record_error(
    out_dir: Path,
    step: str,
    run_id: str,
    exc: BaseException,
    original: BaseException,
    tags: Mapping[str, str] | None,
) -> None:
    """``error.json``: what any runner reads back to raise the same error with the same code."""
    record = error_record(exc)
    if isinstance(exc, KeyboardInterrupt):
        record.update(error_type="KeyboardInterrupt", message="interrupted", exit_code=130)
    record.update(
        step=step,
        run_id=run_id,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        tags=dict(tags or {}),
        traceback="".join(traceback.format_exception(original)),
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / ERROR_FILE, record)
    except OSError:
        pass  # a full or read-only disk: the exception itself still reaches the runner


def execute_step(
    pipeline: str | Pipeline,
    step: str,
    config: str | Mapping[str, Any],
    inputs: Mapping[str, str | Mapping[str, Any]],
    *,
    home: str | Path,
    run_id: str,
    use_cache: bool | None = None,
    enforce_checks: bool = True,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """JSON in, JSON out: the form orchestrator tasks, components and pods call.

    ``pipeline`` is a registered pipeline name or ``module:ATTRIBUTE`` (``Pipeline.ref``).
    """
    pipe = resolve_pipeline(pipeline)
    raw = dict(config) if isinstance(config, Mapping) else config
    cfg = config_from_json(raw, pipe.config_type)
    refs = {k: ref_from_json(v if isinstance(v, str) else dict(v)) for k, v in inputs.items()}
    result = run_step(
        pipe,
        step,
        cfg,
        refs,
        home=resolve_home(home),
        run_id=run_id,
        use_cache=use_cache,
        enforce_checks=enforce_checks,
        tags=tags,
    )
    return result.to_json()


def load_step_result(home: Path, pipeline: str, run_id: str, step: str) -> StepRun:
    """Read back what a step recorded (for runners that pass only run ids between tasks)."""
    path = step_dir(home, pipeline, run_id, step) / RESULT_FILE
    return StepRun.from_json(json.loads(path.read_text()))


def read_step(home: Path, pipeline: str, run_id: str, step: str) -> StepRun | MlpipeError | None:
    """A step's outcome from its directory: its result, its error, or None (did not run).

    A result whose blocking checks failed is an error too (runners whose orchestrator gates on
    checks itself, like Dagster's asset checks, let the step record it).
    """
    directory = step_dir(home, pipeline, run_id, step)
    error = directory / ERROR_FILE
    if error.is_file():
        record = json.loads(error.read_text())
        return StepFailedError(step, error_from_record(record))
    if not (directory / RESULT_FILE).is_file():
        return None
    result = load_step_result(home, pipeline, run_id, step)
    failed = result.ref.failed_blocking_checks()
    if failed:
        message = "; ".join(f"check {c.name} failed: {c.message}" for c in failed)
        return StepFailedError(step, QualityGateError(message))
    return result
