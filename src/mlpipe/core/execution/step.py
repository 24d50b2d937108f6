"""Run one step: the single entry point every runner, task, component and pod calls.

``run_step`` serves a step from the cache or calls it, and leaves exactly one record in the
step's directory ``<home>/runs/<pipeline>/<run_id>/<step>/``: ``result.json`` when it succeeded
(next to its outputs), or ``error.json`` when it failed (its outputs removed). That pair is the
one channel through which every runner, in whatever process or pod the step ran, learns what
happened: see :func:`read_step`.

A map step (``Step.map_over``) runs once per shard, each shard exactly like a step of its own in
``<step>/shard-NNNN/`` (its own cache entry, resume and record); :func:`gather_shards` then writes
the step's own ``result.json``, a ``ShardsRef`` of the shards' outputs in order, or the failed
shard's ``error.json``. Runners run a map step as the plan's three tasks (shard list, one task
per shard, gather; see :mod:`.plan`); ``run_step`` without ``shard`` runs every shard here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlpipe.core import progress
from mlpipe.core.artifacts import write_json
from mlpipe.core.cache import KEY_FILE, StepCache, StepKey, build_key
from mlpipe.core.config import PipelineSettings
from mlpipe.core.errors import (
    ConfigError,
    MlpipeError,
    QualityGateError,
    RemoteStepError,
    StepFailedError,
    error_from_record,
    error_record,
)
from mlpipe.core.execution.timings import ImportClock, step_timings, upstream_ended
from mlpipe.core.faults import fault_raise
from mlpipe.core.files import sweep_temp
from mlpipe.core.modeling import passive_thread_waits
from mlpipe.core.paths import run_dir, step_dir
from mlpipe.core.pipeline import Pipeline, Step, StepContext
from mlpipe.core.refs import Ref, ShardsRef, ref_from_json

RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
#: threads a shard's models may use when the config sets none (``modeling.set_threads`` reads it)
THREADS_ENV = "MLPIPE_THREADS"


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
        own = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**own, "timings": dict(self.timings), "ref": self.ref.model_dump(mode="json")}

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


#: ``on_step(step, state, result)``: state is running, done, cached or failed
StepCallback = Callable[[str, str, "StepRun | None"], None]


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
    shard: int | None = None,
    cached_only: bool = False,
) -> StepRun | None:
    """Run one step of ``pipeline``: serve it from cache or call it, record the outcome.

    ``inputs`` maps each of the step's input names to the upstream reference. On failure the
    step's outputs are removed, ``error.json`` records the cause (type, message, exit code,
    traceback) and ``StepFailedError`` names the step. For a map step, ``shard=i`` runs shard
    ``i`` only; without it every shard runs here, one by one, and is gathered.
    ``cached_only=True`` serves the step from the cache (or a resumed run) or returns None
    without calling it: a runner asks this before starting a process for it.
    """
    entered = time.time()
    passive_thread_waits()  # before a step imports torch
    step = pipeline.step(step_name)
    missing = set(step.inputs) - set(inputs)
    if missing:
        raise ConfigError(f"step '{step_name}' needs inputs: {', '.join(sorted(missing))}")
    if step.map_over is not None and shard is None:  # every shard here, one by one (runners
        for i in range(shard_count(step, inputs)):  # fan out with the plan's shard tasks)
            with contextlib.suppress(StepFailedError):
                run_step(pipeline, step_name, config, inputs, home=home, run_id=run_id,
                         use_cache=use_cache, enforce_checks=enforce_checks, tags=tags, shard=i)
        return gather_shards(pipeline, step_name, home=home, run_id=run_id,
                             count=shard_count(step, inputs))
    out_dir = step_dir(home, pipeline.name, run_id, step.name)
    count = 0
    if shard is not None:
        inputs, count = _shard_inputs(step, inputs, shard)
        out_dir = out_dir / shard_name(shard)
    parts: StepKey | None = None  # for every step: resume compares it even when not cached
    try:
        parts = build_key(pipeline.name, step, config, {k: inputs[k] for k in step.inputs},
                          pipeline_obj=pipeline)
    except Exception:  # raised again below, where failures are recorded
        parts = None
    previous = _key_of(out_dir)
    finished = _finished_in_resumed_run(out_dir, run_dir(home, pipeline.name, run_id), parts)
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
    key: str | None = parts.digest if parts is not None and step.cacheable else None
    imports = ImportClock()
    fn_started = fn_ended = 0.0
    try:
        if parts is None:
            parts = build_key(pipeline.name, step, config, {k: inputs[k] for k in step.inputs},
                              pipeline_obj=pipeline)
            key = parts.digest if parts is not None and step.cacheable else None
        ref = cache.get(key) if cache_on and key is not None else None
        cached = ref is not None
        if ref is None and cached_only:
            return None
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
            sink = progress.progress_file(run_dir(home, pipeline.name, run_id), step.name)
            with shard_threads(count), imports, progress.to_file(sink):
                if shard is not None:
                    fault_raise(f"shard:{step.name}:{shard}")
                ref = step.fn(config, ctx, **{k: inputs[k] for k in step.inputs})
            fn_ended = time.time()
        failed = ref.failed_blocking_checks()
        if enforce_checks and failed:
            raise QualityGateError("; ".join(f"check {c.name} failed: {c.message}" for c in failed),
                                   tuple(failed))
    except BaseException as exc:
        shutil.rmtree(out_dir, ignore_errors=True)
        failure = exc
        if isinstance(exc, Exception) and not isinstance(exc, StepFailedError):
            cause: BaseException = exc
            if shard is not None:  # and its shard
                record = error_record(exc)
                record["message"] = f"shard {shard} of {count} ({shard_name(shard)}): {exc}"
                cause = error_from_record(record)
            failure = StepFailedError(step.name, cause)  # every failure names its step
        record_error(out_dir, step.name, run_id, failure, exc, tags,
                     key=None if parts is None else _key_record(parts, False, step.cacheable))
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
    if parts is not None:  # what ``cache explain`` and ``--resume`` compare
        _write_key(out_dir, parts, cached=cached, cacheable=step.cacheable, previous=previous)
    if not cached and key is not None and not ref.failed_blocking_checks():
        # after result.json: the entry lists the step's files
        cache.put(key, ref, run_id=run_id, parts=parts)
    return result


def _key_record(parts: StepKey, cached: bool, cacheable: bool) -> dict[str, Any]:
    return {"digest": parts.digest, "cached": cached, "cacheable": cacheable,
            "pipeline": parts.pipeline, "step": parts.step, "parts": parts.parts()}


def _write_key(out_dir: Path, parts: StepKey, *, cached: bool, cacheable: bool,
               previous: dict[str, Any] | None) -> None:
    """The step's key beside its result: what ``cache explain`` and ``--resume`` compare."""
    record = _key_record(parts, cached, cacheable)
    if previous is not None and previous.get("digest") != parts.digest:
        record["previous"] = previous  # a resumed run reran it: its key changed
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / KEY_FILE, record)
    except OSError:
        return  # only explanations are lost


def _key_of(out_dir: Path) -> dict[str, Any] | None:
    """The key a step's earlier run recorded, finished or failed (None if none)."""
    try:
        if (out_dir / KEY_FILE).is_file():
            key = json.loads((out_dir / KEY_FILE).read_text())
        else:
            key = json.loads((out_dir / ERROR_FILE).read_text())["cache_key"]
        return {k: key[k] for k in ("digest", "pipeline", "step", "parts")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _finished_in_resumed_run(out_dir: Path, run: Path, key: StepKey | None) -> StepRun | None:
    """A step (or shard) that finished earlier in a run being resumed, if its outputs are
    intact and its key is unchanged (a resume after a config fix reruns what the fix touches)."""
    from mlpipe.core.cache import still_valid

    earlier = _key_of(out_dir)
    if key is not None and earlier is not None and earlier["digest"] != key.digest:
        return None
    record, result = run / "run.json", out_dir / RESULT_FILE
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
    if earlier is not None and (out_dir / KEY_FILE).is_file():
        kept = {**json.loads((out_dir / KEY_FILE).read_text()), "cached": True}
        kept.pop("previous", None)
        write_json(out_dir / KEY_FILE, kept)
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


def record_error(
    out_dir: Path,
    step: str,
    run_id: str,
    exc: BaseException,
    original: BaseException,
    tags: Mapping[str, str] | None,
    key: dict[str, Any] | None = None,
) -> None:
    """``error.json``: what any runner reads back to raise the same error with the same code,
    and the step's cache key (a resume after a fix says what the fix changed)."""
    record = error_record(exc)
    if key is not None:
        record["cache_key"] = key
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
    outcome = _read_record(directory, step)
    if outcome is None:  # a map step not gathered: the first failed shard says why
        shards = sorted(directory.glob(f"shard-*/{ERROR_FILE}")) if directory.is_dir() else []
        return _read_record(shards[0].parent, step) if shards else None
    return outcome


def _read_record(directory: Path, step: str) -> StepRun | MlpipeError | None:
    error = directory / ERROR_FILE
    if error.is_file():
        record = json.loads(error.read_text())
        return StepFailedError(step, error_from_record(record))
    if not (directory / RESULT_FILE).is_file():
        return None
    result = StepRun.from_json(json.loads((directory / RESULT_FILE).read_text()))
    failed = result.ref.failed_blocking_checks()
    if failed:
        message = "; ".join(f"check {c.name} failed: {c.message}" for c in failed)
        return StepFailedError(step, QualityGateError(message))
    return result


# -- map steps: one execution per shard, then the gather ---------------------------------------


def shard_name(shard: int) -> str:
    """A shard's directory under its step's: ``shard-0003``."""
    return f"shard-{shard:04d}"


def shard_count(step: Step, inputs: Mapping[str, Ref]) -> int:
    """How many shards a map step runs: those of the output it maps over (known at run time)."""
    mapped = inputs[step.mapped_inputs[0]]
    if not isinstance(mapped, ShardsRef):
        raise ConfigError(
            f"step '{step.name}' maps over '{step.map_over}', whose output is a {mapped.kind} "
            "reference, not shards (return ShardsRef.of(...) from that step)"
        )
    if not mapped.shards:
        raise ConfigError(f"step '{step.name}' maps over '{step.map_over}', which made no "
                          "shards (a map step needs at least one)")
    return len(mapped.shards)


def _shard_inputs(step: Step, inputs: Mapping[str, Ref], shard: int) -> tuple[dict[str, Ref], int]:
    """The inputs of shard ``shard``: its own shard of each mapped input, the others whole."""
    count = shard_count(step, inputs)
    if not 0 <= shard < count:
        raise ConfigError(f"step '{step.name}': no shard {shard} (it has {count})")
    picked = dict(inputs)
    for arg in step.mapped_inputs:
        mapped = inputs[arg]
        assert isinstance(mapped, ShardsRef)
        picked[arg] = mapped.refs[shard]
    return picked, count


@contextlib.contextmanager
def shard_threads(count: int) -> Any:
    """A shard's thread budget: this machine's cores split between the ``count`` shards that run
    side by side (at least one; ``1``: a shard alone in its pod gets every core), unless the
    config or the environment already fixes it."""
    if count < 1 or THREADS_ENV in os.environ:
        yield
        return
    os.environ[THREADS_ENV] = str(max(1, (os.cpu_count() or 1) // count))
    try:
        yield
    finally:
        os.environ.pop(THREADS_ENV, None)


def gather_shards(
    pipeline: Pipeline, step_name: str, *, home: Path, run_id: str, count: int
) -> StepRun:
    """The map step's own outcome from its ``count`` shards' records, written as its
    ``result.json`` (a ``ShardsRef`` of their outputs, in shard order) or, when a shard failed or
    never finished, as its ``error.json`` naming that shard. Nothing partial is ever gathered:
    a shard counts only once its ``result.json`` exists, and a failed shard leaves no outputs."""
    directory = step_dir(home, pipeline.name, run_id, step_name)
    for name in (RESULT_FILE, ERROR_FILE):
        (directory / name).unlink(missing_ok=True)  # an earlier try's gather
    runs: list[StepRun] = []
    for shard in range(count):
        where = directory / shard_name(shard)
        outcome = _read_record(where, step_name)
        if isinstance(outcome, StepRun):
            runs.append(outcome)
            continue
        if outcome is None:
            lost = RemoteStepError(
                f"shard {shard} of {count} ({shard_name(shard)}) did not finish: its process "
                "ended without a record", 1)
            record_error(directory, step_name, run_id, StepFailedError(step_name, lost), lost,
                          None)
            raise StepFailedError(step_name, lost)
        shutil.copyfile(where / ERROR_FILE, directory / ERROR_FILE)
        raise outcome
    result = StepRun(
        step=step_name,
        ref=ShardsRef.of([r.ref for r in runs], uri=str(directory)),
        seconds=max(r.ended for r in runs) - min(r.started for r in runs) if runs else 0.0,
        cached=all(r.cached for r in runs),
        started=min((r.started for r in runs), default=time.time()),
        ended=max((r.ended for r in runs), default=time.time()),
        pid=os.getpid(),
        timings=_gathered_timings(runs),
    )
    write_json(directory / RESULT_FILE, result.to_json())
    return result


def _gathered_timings(runs: list[StepRun]) -> dict[str, float]:
    """The map step's timings: those of the shard that ended last (the one the next step waited
    for), with the peak memory of the largest shard."""
    if not runs:
        return {}
    last = max(runs, key=lambda r: r.ended)
    timings = dict(last.timings)
    peaks = [r.timings["peak_rss_mib"] for r in runs if "peak_rss_mib" in r.timings]
    if peaks:
        timings["peak_rss_mib"] = max(peaks)
    return timings
