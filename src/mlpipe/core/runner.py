"""Run one step (the single entry point every orchestrator calls) and the local reference runner.

Layout: ``<home>/runs/<pipeline>/<run_id>/<step>/`` holds a step's outputs and its ``result.json``.
A step that fails leaves nothing behind; a failed blocking check stops the run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlpipe.core.artifacts import write_json
from mlpipe.core.cache import StepCache, step_key
from mlpipe.core.config import InferenceConfig, PipelineConfig, config_from_json
from mlpipe.core.errors import ConfigError, QualityGateError, StepFailedError
from mlpipe.core.pipeline import Pipeline, StepContext
from mlpipe.core.refs import Ref, ref_from_json


def resolve_home(home: str | Path | None = None) -> Path:
    """``--home``, else ``$MLPIPE_HOME``, else ``./.mlpipe``; everything mlpipe writes goes here."""
    return Path(home or os.environ.get("MLPIPE_HOME") or ".mlpipe").expanduser().resolve()


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def safe_run_id(raw: str) -> str:
    """Orchestrator run ids (``manual__2026-01-01T00:00:00+00:00``) made safe as directory names."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("_") or new_run_id()


def run_dir(home: Path, pipeline: str, run_id: str) -> Path:
    return home / "runs" / pipeline / run_id


@dataclass(frozen=True)
class StepRun:
    """What one step produced and how long it took."""

    step: str
    ref: Ref
    seconds: float
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "seconds": self.seconds,
            "cached": self.cached,
            "ref": self.ref.model_dump(mode="json"),
        }


@dataclass
class PipelineRun:
    """A whole run: each step's result, in order."""

    pipeline: str
    run_id: str
    run_dir: Path
    steps: list[StepRun] = field(default_factory=list)
    seconds: float = 0.0
    runner: str = "local"
    extra: dict[str, Any] = field(default_factory=dict)  # runner-specific facts (its own run id...)

    @property
    def outputs(self) -> dict[str, Ref]:
        return {s.step: s.ref for s in self.steps}

    @property
    def final(self) -> Ref:
        return self.steps[-1].ref

    def write_record(self, config: PipelineConfig) -> Path:
        """``run.json``: what ran, through which runner, how long, and every step's reference."""
        path = self.run_dir / "run.json"
        write_json(
            path,
            {
                "pipeline": self.pipeline,
                "run_id": self.run_id,
                "runner": self.runner,
                "seconds": self.seconds,
                "config": config.model_dump(mode="json"),
                "steps": [s.to_json() for s in self.steps],
                "extra": self.extra,
            },
        )
        return path


def preflight(config: PipelineConfig, home: Path | None = None) -> None:
    """Checks that need no work done: input files exist, credentials are there. Runs before
    anything is written, so a bad config fails in seconds and leaves nothing behind."""
    data = config.data
    if data.source == "files":
        for label, path in (("data.path", data.path), ("data.eval_path", data.eval_path)):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{label}: file not found: {path}")
    if isinstance(config, InferenceConfig) and config.registry.backend == "local" and home:
        from mlpipe.core.registry import open_registry

        open_registry(config.registry, home).resolve(config.inference.model)
    if config.tracking.backend == "wandb" or config.registry.backend == "wandb":
        from mlpipe.integrations.wandb import require_key, resolve_mode

        if config.tracking.backend == "wandb":
            require_key(resolve_mode(config.tracking.mode), "tracking.backend: wandb")
        if config.registry.backend == "wandb":
            require_key(resolve_mode(config.registry.wandb_mode), "registry.backend: wandb")


def run_step(
    pipeline: Pipeline,
    step_name: str,
    config: PipelineConfig,
    inputs: Mapping[str, Ref],
    *,
    home: Path,
    run_id: str,
    use_cache: bool | None = None,
    enforce_checks: bool = True,
    tags: Mapping[str, str] | None = None,
) -> StepRun:
    """Run one step of ``pipeline``: serve it from cache or call it, record ``result.json``.

    ``inputs`` maps each of the step's input names to the upstream reference. On failure the
    step's directory is removed and ``StepFailedError`` names the step.
    """
    step = pipeline.step(step_name)
    missing = set(step.inputs) - set(inputs)
    if missing:
        raise ConfigError(f"step '{step_name}' needs inputs: {', '.join(sorted(missing))}")
    out_dir = run_dir(home, pipeline.name, run_id) / step.name
    if out_dir.exists():
        shutil.rmtree(out_dir)  # a retry starts clean
    started = time.perf_counter()
    cache_on = config.runtime.cache if use_cache is None else use_cache
    cache = StepCache(home / "cache")
    key: str | None = None
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
            ref = step.fn(config, ctx, **{k: inputs[k] for k in step.inputs})
        failed = ref.failed_blocking_checks()
        if enforce_checks and failed:
            raise QualityGateError("; ".join(f"check {c.name} failed: {c.message}" for c in failed))
    except BaseException as exc:
        shutil.rmtree(out_dir, ignore_errors=True)
        if isinstance(exc, Exception) and not isinstance(exc, StepFailedError):
            raise StepFailedError(step.name, exc) from exc  # every failure names its step
        raise
    result = StepRun(step=step.name, ref=ref, seconds=time.perf_counter() - started, cached=cached)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "result.json", result.to_json())
    if not cached and key is not None and not ref.failed_blocking_checks():
        cache.put(key, ref, run_id=run_id)
    return result


def execute_step(
    pipeline: str,
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
    """JSON in, JSON out: the form orchestrator tasks, components and pods call."""
    from mlpipe.core.pipelines import get_pipeline

    cfg = config_from_json(dict(config) if isinstance(config, Mapping) else config)
    refs = {k: ref_from_json(v if isinstance(v, str) else dict(v)) for k, v in inputs.items()}
    result = run_step(
        get_pipeline(pipeline),
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
    path = run_dir(home, pipeline, run_id) / step / "result.json"
    data = json.loads(path.read_text())
    return StepRun(
        step=data["step"],
        ref=ref_from_json(data["ref"]),
        seconds=data["seconds"],
        cached=data["cached"],
    )


StepCallback = Callable[[str, str, StepRun | None], None]


def run_pipeline(
    pipeline: Pipeline,
    config: PipelineConfig,
    *,
    home: Path,
    run_id: str | None = None,
    use_cache: bool | None = None,
    on_step: StepCallback | None = None,
) -> PipelineRun:
    """The local runner: every step in order, in this process. The reference for all others."""
    preflight(config, home)
    run_id = run_id or new_run_id()
    run = PipelineRun(
        pipeline=pipeline.name, run_id=run_id, run_dir=run_dir(home, pipeline.name, run_id)
    )
    fresh = [d for d in (home, home / "runs", run.run_dir.parent, run.run_dir) if not d.exists()]
    started = time.perf_counter()
    try:
        for step in pipeline.steps:
            if on_step:
                on_step(step.name, "running", None)
            inputs = {arg: run.outputs[src] for arg, src in step.inputs.items()}
            result = run_step(
                pipeline,
                step.name,
                config,
                inputs,
                home=home,
                run_id=run_id,
                use_cache=use_cache,
                tags={"runner": "local"},
            )
            run.steps.append(result)
            if on_step:
                on_step(step.name, "cached" if result.cached else "done", result)
    except BaseException:
        for directory in reversed(
            fresh
        ):  # a run that failed before writing anything leaves no trace
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        raise
    run.seconds = time.perf_counter() - started
    run.write_record(config)
    return run
