"""Run any mlpipe pipeline on Kubeflow Pipelines' local runner (``kfp.local``), offline: the
compiled pipeline a cluster would get, each component its own process; kfp's artifacts (reference
JSON) land under ``<home>/kfp/<kfp run name>/<task>/``, the steps' records where every runner's
do (the ``Runner`` base reads them back). The floor runs on the same kfp.local session."""

# No ``from __future__ import annotations``: kfp reads the floor components' real types.

import contextlib
import json
import logging
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, List  # noqa: UP035 (kfp's component source, as mlpipe's compiler writes)

from kfp import dsl, local
from kfp.local import config as local_config

from mlpipe.adapters.kubeflow import compiler
from mlpipe.core.execution.floor import Floor, FloorTask
from mlpipe.core.execution.honours import on_this_machine
from mlpipe.core.execution.runner import Launch, Runner, RunRequest, TaskFacts
from mlpipe.core.pipeline import child_env

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"^Executing task '([^']+)'")
FINISHED = re.compile(r"^Task '([^']+)' finished with status (\w+)")


@contextlib.contextmanager
def local_session(root: Path, events: logging.Filter) -> Iterator[Callable[[], list[Path]]]:
    """kfp.local's SubprocessRunner under ``root`` for the ``with`` block, task logs on
    stderr (stdout stays the caller's: ``mlpipe --json``) and through ``events``, kfp.local's
    process-global configuration restored after; yields what lists the runs made since."""
    root.mkdir(parents=True, exist_ok=True)
    before, previous = set(root.iterdir()), local_config.LocalExecutionConfig.instance
    logging.getLogger().addFilter(events)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            # the image is for clusters; locally the body runs with this interpreter
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            warnings.filterwarnings("ignore", message=".*no effect in the current local runner")
            local.init(runner=local.SubprocessRunner(use_venv=False),
                       pipeline_root=str(root), raise_on_error=True)
            yield lambda: [p for p in set(root.iterdir()) - before if p.is_dir()]
    finally:
        logging.getLogger().removeFilter(events)
        local_config.LocalExecutionConfig.instance = previous


class TaskEvents(logging.Filter):
    """kfp.local's own task start/finish log records: the orchestrator's timings. kfp.local swaps
    the root logger's handlers around each task but leaves its filters alone."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: dict[str, TaskFacts] = {}  # kfp task -> what its log said so far

    def filter(self, record: logging.LogRecord) -> bool:
        message = ANSI.sub("", record.getMessage())
        if (m := STARTED.match(message)) and m.group(1) not in self.tasks:  # a retry: no restart
            self.tasks[m.group(1)] = TaskFacts(state="running", started=record.created)
        elif m := FINISHED.match(message):
            start = self.tasks.get(m.group(1), TaskFacts()).started
            self.tasks[m.group(1)] = TaskFacts(state=m.group(2).lower(), started=start, seconds=(
                None if start is None else record.created - start))
        return True


def kubeflow_floor(tasks: list[FloorTask], name: str, work_dir: Path) -> Floor:
    """The plan's shape as lightweight no-op components, run as ``KubeflowRunner`` runs mlpipe's
    pipeline (a shard list, a ``ParallelFor`` over it, a gather on ``Collected``). Written in
    kfp's API directly: it must not share the adapter's translation, whose cost it measures."""

    def noop():  # no "-> None": kfp would read it as an output artifact
        return None

    def list_shards(count: int) -> List[int]:  # noqa: UP006 (the component's source: kfp's List)
        return list(range(count))

    def noop_shard(shard: int) -> int:
        return shard

    def gather(shard_results: List[int]):  # noqa: UP006 (as for list_shards and noop)
        return None

    noop_task, lister_task, shard_task, gather_task = (
        dsl.component(fn, packages_to_install=[], install_kfp_package=False)
        for fn in (noop, list_shards, noop_shard, gather))

    @dsl.pipeline(name=f"floor-{name}")
    def floor_pipeline():  # (as for noop)
        made: dict[str, Any] = {}
        for spec in tasks:  # a shard's one upstream is its list, a gather's last its shards
            if spec.kind == "shard_list":
                made[spec.name] = lister_task(count=spec.shards)
            elif spec.kind == "shard":
                with dsl.ParallelFor(made[spec.upstream[0]].output) as shard:
                    made[spec.name] = shard_task(shard=shard)
            elif spec.kind == "gather":
                made[spec.name] = gather_task(
                    shard_results=dsl.Collected(made[spec.upstream[-1]].output))
            else:
                made[spec.name] = noop_task()
            for up in spec.upstream if spec.kind != "shard" else ():  # as mlpipe's tasks
                made[spec.name].after(made[up])

    with local_session(work_dir / "kfp", logging.Filter()) as new_runs:  # every record through
        started = time.perf_counter()
        floor_pipeline()
        seconds = time.perf_counter() - started
    # one folder per task (and ParallelFor item), each holding what the task output
    return Floor(seconds, sum(1 for run in new_runs() for _ in run.rglob("executor_output.json")))


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
    warm_body = "mlpipe.adapters.kubeflow.task"  # each component a fresh Python: served warm

    def launch(self, request: RunRequest) -> Launch:
        pipeline, config, home = request.pipeline, request.settings(), request.home
        pipeline_root = home / "kfp"
        path = child_env(pipeline).get("PYTHONPATH", "")  # where components find a user's module
        pipeline_func = compiler.build_pipeline(pipeline, config, home=str(home),
                                                run_id=request.run_id, env={"PYTHONPATH": path})
        kfp_tasks = compiler.kfp_names(request.plan)  # plan task -> its kfp task
        events, failure, started = TaskEvents(), None, time.perf_counter()
        with local_session(pipeline_root, events) as new_runs:
            try:
                final = pipeline_func().output
                run_dir: Path | None = Path(final.uri).parent.parent  # <root>/<run>/<task>/<out>
            except RuntimeError as exc:  # only a fallback: a failed step wrote its error.json
                run_dir = max(new_runs(), key=lambda p: p.stat().st_mtime, default=None)
                failure = f"kfp.local: {ANSI.sub('', str(exc))}"
        seconds = time.perf_counter() - started
        # the tasks kfp.local logged (core counts the others not_run)
        facts = {task: events.tasks[n] for task, n in kfp_tasks.items() if n in events.tasks}
        # what only kfp knows: each step's kfp task and its output artifacts (states: core's)
        steps = {s: kfp_tasks[request.plan.task_of(s).name] for s in pipeline.step_names}
        tasks = {step: {"task": name, "artifacts": _executor_artifacts(run_dir / name)
                        if run_dir else {}} for step, name in steps.items()}
        extra: dict[str, Any] = {"tasks": tasks, "pipeline_root": str(pipeline_root)}
        if run_dir is not None:
            extra["kfp_run_dir"] = str(run_dir)
        return Launch(orchestrator_run_id=run_dir.name if run_dir else "",
                      seconds=seconds, tasks=facts, extra=extra, failure=failure)

    floor = staticmethod(kubeflow_floor)  # the plan's shape as no-op components
    compile = staticmethod(compiler.compile_pipeline)  # the kfp v2 YAML any KFP backend loads
    render_cluster = staticmethod(compiler.render_cluster)  # containers of `mlpipe step`


def _executor_artifacts(task_dir: Path) -> dict[str, dict[str, Any]]:
    """A finished task's output artifacts (name -> uri, metadata) from kfp's executor output."""
    path = task_dir / "executor_output.json"
    if not path.is_file():  # the task failed or never ran
        return {}
    data = json.loads(path.read_text())
    return {name: {"uri": entry["artifacts"][0]["uri"],
                   "metadata": entry["artifacts"][0].get("metadata", {})}
            for name, entry in data.get("artifacts", {}).items()}
