"""Run any mlpipe pipeline on Kubeflow Pipelines' local runner (``kfp.local``), offline.

The same compiled pipeline a cluster would get runs here with ``SubprocessRunner``: every
component is its own Python process running the generated body (``execute``), artifacts
land under ``<home>/kfp/<kfp run name>/<task>/<output>`` and hold reference JSON, while the steps'
real outputs and their ``result.json``/``error.json`` go to ``<home>/runs/<pipeline>/<run_id>/``
as with every other runner (the ``Runner`` base reads them back).
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from kfp import local
from kfp.local import config as local_config

from mlpipe.adapters.kubeflow.compiler import (
    build_pipeline,
    compile_pipeline,
    task_names,
)
from mlpipe.core.config import PipelineSettings
from mlpipe.core.execution.floor import Floor, FloorTask
from mlpipe.core.execution.honours import Level
from mlpipe.core.execution.plan import plan as core_plan
from mlpipe.core.execution.runner import Launch, Runner, RunRequest, TaskFacts
from mlpipe.core.pipeline import Pipeline, import_root

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"^Executing task '([^']+)'")
FINISHED = re.compile(r"^Task '([^']+)' finished with status (\w+)")


class TaskEvents(logging.Filter):
    """Collects kfp.local's own task start/finish log records: the orchestrator's timings.

    kfp.local swaps the root logger's handlers around each task but leaves its filters alone,
    so a filter on the root logger sees every record it emits (and lets all of them through).
    """

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, float] = {}
        self.finished: dict[str, tuple[float, str]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = ANSI.sub("", record.getMessage())
        if m := STARTED.match(message):
            self.started.setdefault(m.group(1), record.created)  # first attempt, if retried
        elif m := FINISHED.match(message):
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


class KubeflowRunner(Runner):
    """Compiles the pipeline to kfp components and runs it with kfp.local's SubprocessRunner.

    The mlpipe run id is the kfp pipeline parameter ``run_id``; kfp's own run name is the
    orchestrator run id. ``use_cache`` overrides ``runtime.cache`` (mlpipe's step cache inside
    each component; kfp.local's cache stays off, see docs/kubeflow.md). kfp.local's
    configuration is process-global: do not launch two runs from two threads at once.
    """

    name = "kubeflow"
    #: kfp.local on this machine; a KFP cluster applies all of them
    honours: ClassVar[Mapping[str, tuple[Level, str]]] = {
        "resources": ("ignored", "kfp.local's SubprocessRunner sets no limits"),
        "gpu": ("ignored", "kfp.local requests no GPU"),
        "retries": ("applied", "each task's retry policy (kfp.local retries it too)"),
        "timeout": ("ignored", "the timeout is a pod's activeDeadlineSeconds: not in kfp.local"),
        "side_by_side_shards": ("applied", "kfp.local runs ParallelFor iterations side by side"),
    }

    def launch(self, request: RunRequest) -> Launch:
        pipeline, config, home, run_id = (request.pipeline, request.config, request.home,
                                          request.run_id)
        use_cache = request.use_cache
        _ignore_docker_folder()
        if use_cache is not None:
            runtime = config.runtime.model_copy(update={"cache": use_cache})
            config = config.model_copy(update={"runtime": runtime})
        pipeline_root = home / "kfp"
        pipeline_root.mkdir(parents=True, exist_ok=True)
        pipeline_func = build_pipeline(pipeline, config, home=str(home), run_id=run_id)
        kfp_tasks = task_names(pipeline, config)  # plan task -> its kfp task
        events = TaskEvents()
        started = time.perf_counter()
        kfp_run_dir, failure = _run_local(pipeline_func, pipeline_root, events,
                                          import_root(pipeline))
        seconds = time.perf_counter() - started
        facts = {task: TaskFacts(state=events.state(name).lower(), seconds=events.seconds(name),
                                 started=events.started.get(name))
                 for task, name in kfp_tasks.items()}
        steps = {step: kfp_tasks[task.name] for task in core_plan(pipeline, config)
                 if task.kind in ("step", "group", "gather") for step in task.steps}
        # what only kfp knows: each step's task, its state and output artifacts
        tasks = {step: {"state": events.state(name), "task": name,
                        "artifacts": _executor_artifacts(kfp_run_dir / name) if kfp_run_dir
                        else {}} for step, name in steps.items()}
        extra: dict[str, Any] = {"tasks": tasks, "pipeline_root": str(pipeline_root)}
        if kfp_run_dir is not None:
            extra["kfp_run_dir"] = str(kfp_run_dir)
        return Launch(orchestrator_run_id=kfp_run_dir.name if kfp_run_dir else "",
                      seconds=seconds, tasks=facts, extra=extra, failure=failure)

    def floor(self, tasks: list[FloorTask], name: str, work_dir: Path) -> Floor:
        from mlpipe.adapters.kubeflow.floor import kubeflow_floor

        return kubeflow_floor(tasks, name, work_dir / "kfp")

    def compile(self, pipeline: Pipeline, config: PipelineSettings, output: Path) -> Path:
        """The kfp v2 pipeline YAML any KFP backend loads (``compiler.compile_pipeline``)."""
        return compile_pipeline(pipeline, config, output)

    def render_cluster(
        self, pipeline: Pipeline, config: PipelineSettings, out_dir: Path
    ) -> list[Path]:
        """Cluster mode: container components running ``mlpipe step`` (``cluster.py``)."""
        from mlpipe.adapters.kubeflow.cluster import render_cluster

        return render_cluster(pipeline, config, out_dir)


def _run_local(
    pipeline_func: Any, pipeline_root: Path, events: TaskEvents, import_root: str | None
) -> tuple[Path | None, str | None]:
    """Run the kfp pipeline with SubprocessRunner: (kfp's run directory, kfp's failure text).

    ``import_root`` goes on the components' ``PYTHONPATH``, so they import a user pipeline too.
    """
    before = {p.name for p in pipeline_root.iterdir()}
    pythonpath = os.environ.get("PYTHONPATH")
    if import_root:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (import_root, pythonpath) if p)
    root_logger = logging.getLogger()
    previous = local_config.LocalExecutionConfig.instance
    root_logger.addFilter(events)
    try:
        # kfp.local prints task logs to stdout; keep stdout for the caller (``mlpipe --json``)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            # the image is for clusters; locally the body runs with this interpreter
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            warnings.filterwarnings("ignore", message=".*no effect in the current local runner")
            local.init(runner=local.SubprocessRunner(use_venv=False),
                       pipeline_root=str(pipeline_root), raise_on_error=True)
            final = pipeline_func().output
        return Path(final.uri).parent.parent, None  # <root>/<kfp run name>/<task>/<output>
    except RuntimeError as exc:  # only a fallback: a failed step has written its error.json
        new = [p for p in pipeline_root.iterdir() if p.name not in before and p.is_dir()]
        newest = max(new, key=lambda p: p.stat().st_mtime) if new else None
        return newest, f"kfp.local: {ANSI.sub('', str(exc))}"
    finally:
        root_logger.removeFilter(events)
        local_config.LocalExecutionConfig.instance = previous
        if pythonpath is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = pythonpath


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
    path = task_dir / "executor_output.json"
    if not path.is_file():  # the task failed or never ran
        return {}
    data = json.loads(path.read_text())
    return {name: {"uri": entry["artifacts"][0]["uri"],
                   "metadata": entry["artifacts"][0].get("metadata", {})}
            for name, entry in data.get("artifacts", {}).items()}
