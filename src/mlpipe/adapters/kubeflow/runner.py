"""Run any mlpipe pipeline on Kubeflow Pipelines' local runner (``kfp.local``), offline: the
compiled pipeline a cluster would get, each component its own process; kfp's artifacts (reference
JSON) land under ``<home>/kfp/<kfp run name>/<task>/``, the steps' records where every runner's
do (the ``Runner`` base reads them back)."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from mlpipe.adapters.kubeflow.compiler import build_pipeline, compile_pipeline
from mlpipe.adapters.kubeflow.session import local_session
from mlpipe.adapters.kubeflow.walk import kfp_names
from mlpipe.core.config import PipelineSettings
from mlpipe.core.execution.floor import Floor, FloorTask
from mlpipe.core.execution.honours import on_this_machine
from mlpipe.core.execution.runner import Launch, Runner, RunRequest, TaskFacts
from mlpipe.core.pipeline import Pipeline, child_env

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"^Executing task '([^']+)'")
FINISHED = re.compile(r"^Task '([^']+)' finished with status (\w+)")


class TaskEvents(logging.Filter):
    """kfp.local's own task start/finish log records: the orchestrator's timings. kfp.local swaps
    the root logger's handlers around each task but leaves its filters alone."""

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

    def facts(self, task: str) -> TaskFacts:
        start, (end, state) = self.started.get(task), self.finished.get(task, (None, ""))
        state = state or ("running" if start is not None else "not_run")
        return TaskFacts(state=state.lower(), started=start,
                         seconds=None if start is None or end is None else end - start)


class KubeflowRunner(Runner):
    """The pipeline's kfp components on kfp.local's SubprocessRunner; the mlpipe run id is the
    kfp parameter ``run_id``, kfp's run name the orchestrator run id. kfp.local's configuration is
    process-global: do not launch two runs from two threads at once."""

    name = "kubeflow"
    #: kfp.local on this machine; a KFP cluster applies all of them
    honours = on_this_machine(
        retries=("applied", "each task's retry policy (kfp.local retries it too)"),
        timeout=("ignored", "the timeout is a pod's activeDeadlineSeconds: not in kfp.local"),
        side_by_side_shards=("applied", "kfp.local runs ParallelFor iterations side by side"),
    )

    def launch(self, request: RunRequest) -> Launch:
        pipeline, config, home = request.pipeline, request.config, request.home
        if request.use_cache is not None:
            runtime = config.runtime.model_copy(update={"cache": request.use_cache})
            config = config.model_copy(update={"runtime": runtime})
        pipeline_root = home / "kfp"
        pipeline_root.mkdir(parents=True, exist_ok=True)
        path = child_env(pipeline).get("PYTHONPATH", "")  # where components find a user's module
        pipeline_func = build_pipeline(pipeline, config, home=str(home), run_id=request.run_id,
                                       env={"PYTHONPATH": path})
        kfp_tasks = kfp_names(request.plan)  # plan task -> its kfp task
        events, before, failure = TaskEvents(), set(pipeline_root.iterdir()), None
        started = time.perf_counter()
        try:
            with local_session(pipeline_root, events):
                final = pipeline_func().output
            run_dir: Path | None = Path(final.uri).parent.parent  # <root>/<run>/<task>/<output>
        except RuntimeError as exc:  # only a fallback: a failed step has written its error.json
            new = [p for p in set(pipeline_root.iterdir()) - before if p.is_dir()]
            run_dir = max(new, key=lambda p: p.stat().st_mtime) if new else None
            failure = f"kfp.local: {ANSI.sub('', str(exc))}"
        seconds = time.perf_counter() - started
        facts = {task: events.facts(name) for task, name in kfp_tasks.items()}
        # what only kfp knows: each step's kfp task and its output artifacts (states: core's)
        steps = {s: kfp_tasks[request.plan.task_of(s).name] for s in pipeline.step_names}
        tasks = {step: {"task": name, "artifacts": _executor_artifacts(run_dir / name)
                        if run_dir else {}} for step, name in steps.items()}
        extra: dict[str, Any] = {"tasks": tasks, "pipeline_root": str(pipeline_root)}
        if run_dir is not None:
            extra["kfp_run_dir"] = str(run_dir)
        return Launch(orchestrator_run_id=run_dir.name if run_dir else "",
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


def _executor_artifacts(task_dir: Path) -> dict[str, dict[str, Any]]:
    """A finished task's output artifacts (name -> uri, metadata) from kfp's executor output."""
    path = task_dir / "executor_output.json"
    if not path.is_file():  # the task failed or never ran
        return {}
    data = json.loads(path.read_text())
    return {name: {"uri": entry["artifacts"][0]["uri"],
                   "metadata": entry["artifacts"][0].get("metadata", {})}
            for name, entry in data.get("artifacts", {}).items()}
