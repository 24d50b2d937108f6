"""Run an mlpipe pipeline on Kubeflow Pipelines' local runner (``kfp.local``), offline.

The same compiled pipeline a cluster would get runs here with ``SubprocessRunner``: every
component is its own Python process running the generated body (``execute_step``), artifacts
land under ``<home>/kfp/<kfp run name>/<task>/<output>`` and hold reference JSON, while the steps'
real outputs go to ``<home>/runs/<pipeline>/<run_id>/`` as with every other runner.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from kfp import local
from kfp.local import config as local_config

from mlpipe.adapters.kubeflow.compiler import ComponentPlan, build_pipeline, plan
from mlpipe.adapters.kubeflow.task import ERROR_FILE
from mlpipe.core.cluster import refuse_local_run
from mlpipe.core.config import PipelineConfig
from mlpipe.core.errors import StepFailedError, error_from_record
from mlpipe.core.pipeline import Pipeline
from mlpipe.core.refs import ref_from_json
from mlpipe.core.runner import PipelineRun, StepRun, preflight, run_dir

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"^Executing task '([^']+)'")
_FINISHED = re.compile(r"^Task '([^']+)' finished with status (\w+)")
_FAILED_TASK = re.compile(r"Inner task failed: '([^']+)'")


class _TaskEvents(logging.Filter):
    """Collects kfp.local's own task start/finish log records: the orchestrator's timings.

    kfp.local swaps the root logger's handlers around each task but leaves its filters alone,
    so a filter on the root logger sees every record it emits (and lets all of them through).
    """

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, float] = {}
        self.finished: dict[str, tuple[float, str]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = _ANSI.sub("", record.getMessage())
        if m := _STARTED.match(message):
            self.started.setdefault(m.group(1), record.created)  # first attempt, if retried
        elif m := _FINISHED.match(message):
            self.finished[m.group(1)] = (record.created, m.group(2))
        return True

    def seconds(self, task: str) -> float | None:
        if task in self.started and task in self.finished:
            return self.finished[task][0] - self.started[task]
        return None

    def state(self, task: str) -> str:
        if task in self.finished:
            return self.finished[task][1]
        return "RUNNING" if task in self.started else "NOT_RUN"


def run_pipeline(
    pipeline: Pipeline,
    config: PipelineConfig,
    *,
    home: Path,
    run_id: str | None = None,
    use_cache: bool | None = None,
) -> PipelineRun:
    """Run ``pipeline`` with kfp.local; the steps' run id is kfp's run name unless ``run_id``.

    ``use_cache`` overrides ``config.runtime.cache`` (mlpipe's step cache inside each component;
    kfp.local's own cache stays off, see docs/kubeflow.md). Raises ``StepFailedError`` naming the
    failing step, with the cause's exit code.
    """
    _ignore_docker_folder()
    refuse_local_run(config, "kubeflow")
    preflight(config, Path(home).expanduser().resolve())
    home = Path(home).expanduser().resolve()
    if use_cache is not None:
        config = config.model_copy(
            update={"runtime": config.runtime.model_copy(update={"cache": use_cache})})
    pipeline_root = home / "kfp"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    kfp_name = f"mlpipe-{pipeline.name}-"
    before = {p.name for p in pipeline_root.iterdir()}
    fresh = [d for d in (home / "runs", home / "runs" / pipeline.name) if not d.exists()]
    pipeline_func = build_pipeline(pipeline, config, home=str(home), run_id=run_id or "")
    plans = plan(pipeline)

    events = _TaskEvents()
    root_logger = logging.getLogger()
    previous = local_config.LocalExecutionConfig.instance
    root_logger.addFilter(events)
    started = time.perf_counter()
    try:
        # kfp.local prints task logs to stdout; keep stdout for the caller (``mlpipe --json``)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            # the image is for clusters; locally the body runs with this interpreter
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            warnings.filterwarnings("ignore", message=".*no effect in the current local runner.*")
            local.init(runner=local.SubprocessRunner(use_venv=False),
                       pipeline_root=str(pipeline_root), raise_on_error=True)
            final = pipeline_func().output
    except RuntimeError as exc:
        new_runs = sorted((p for p in pipeline_root.iterdir()
                           if p.name not in before and p.name.startswith(kfp_name)),
                          key=lambda p: p.stat().st_mtime)
        failure = _failure(exc, new_runs[-1] if new_runs else None, plans, events)
        _remove_empty(home, pipeline.name, failure, fresh)
        raise failure from exc
    finally:
        root_logger.removeFilter(events)
        local_config.LocalExecutionConfig.instance = previous
    seconds = time.perf_counter() - started

    kfp_run_dir = Path(final.uri).parent.parent  # <root>/<kfp run name>/<task>/<output>
    steps: list[StepRun] = []
    task_seconds: dict[str, float] = {}
    outputs: dict[str, dict[str, Any]] = {}
    step_run_id = ""
    for item in plans:
        task_dir = kfp_run_dir / item.task_name
        artifacts = _executor_artifacts(task_dir)
        main = artifacts[item.output]
        meta = main.get("metadata", {})
        step_run_id = meta["run_id"]
        ref = ref_from_json(Path(main["uri"]).read_text())
        steps.append(StepRun(step=item.step.name, ref=ref, seconds=float(meta["seconds"]),
                             cached=bool(meta["cached"])))
        measured = events.seconds(item.task_name)
        task_seconds[item.step.name] = (measured if measured is not None
                                        else float(meta["component_seconds"]))
        outputs[item.step.name] = {
            "state": events.state(item.task_name),
            "artifacts": {name: {"uri": a["uri"], "metadata": a.get("metadata", {})}
                          for name, a in artifacts.items()},
        }
    run = PipelineRun(pipeline=pipeline.name, run_id=step_run_id,
                      run_dir=run_dir(home, pipeline.name, step_run_id), steps=steps,
                      seconds=seconds, runner="kubeflow",
                      extra={"orchestrator_run_id": kfp_run_dir.name,
                             "task_seconds": task_seconds,
                             "pipeline_root": str(pipeline_root),
                             "kfp_run_dir": str(kfp_run_dir),
                             "tasks": outputs})
    run.write_record(config)
    return run


def _ignore_docker_folder() -> None:
    """Keep a ``docker/`` folder in the working directory from posing as the Docker SDK.

    kfp.local does ``import docker`` to decide whether DockerRunner is available; with the cwd on
    ``sys.path`` (``python -m pytest``) a plain folder named ``docker`` imports as an empty
    namespace package and kfp.local then fails with "module 'docker' has no attribute
    'DockerClient'". Mark the SDK as absent in that case (it is not used here anyway).
    """
    if "docker" in sys.modules:
        module = sys.modules["docker"]
        if module is not None and getattr(module, "__file__", None) is None:
            sys.modules["docker"] = None  # type: ignore[assignment]
        return
    try:
        spec = importlib.util.find_spec("docker")
    except (ImportError, ValueError):
        return
    if spec is not None and spec.origin in (None, "namespace"):  # a folder, not a package
        sys.modules["docker"] = None  # type: ignore[assignment]


def _executor_artifacts(task_dir: Path) -> dict[str, dict[str, Any]]:
    """A finished task's output artifacts (name -> uri, metadata) from kfp's executor output."""
    data = json.loads((task_dir / "executor_output.json").read_text())
    return {name: entry["artifacts"][0] for name, entry in data.get("artifacts", {}).items()}


def _failure(
    exc: RuntimeError, kfp_run_dir: Path | None, plans: list[ComponentPlan], events: _TaskEvents
) -> StepFailedError:
    """The StepFailedError for a failed kfp.local run: step and cause from the task's record."""
    by_task = {p.task_name: p.step.name for p in plans}
    message = _ANSI.sub("", str(exc))
    record: dict[str, Any] | None = None
    if kfp_run_dir is not None:
        for path in sorted(kfp_run_dir.glob(f"*/{ERROR_FILE}")):
            record = json.loads(path.read_text())
    if record is not None:
        failure = StepFailedError(record["step"], error_from_record(record))
        failure.run_id = record["run_id"]  # type: ignore[attr-defined]
        return failure
    m = _FAILED_TASK.search(message)
    failed = [t for t, (_, state) in events.finished.items() if state == "FAILURE"]
    task = m.group(1) if m else (failed[-1] if failed else "?")
    return StepFailedError(by_task.get(task) or task,
                           RuntimeError(f"kfp task '{task}' failed (see its log above): {message}"))


def _remove_empty(home: Path, pipeline: str, failure: StepFailedError, fresh: list[Path]) -> None:
    """A failed run leaves no empty run directories behind (as the local runner does)."""
    run_id = getattr(failure, "run_id", None)
    candidates = [run_dir(home, pipeline, run_id)] if run_id else []
    for directory in [*candidates, *reversed(fresh)]:
        if directory.is_dir() and not any(directory.iterdir()):
            os.rmdir(directory)
