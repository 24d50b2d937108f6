"""``DagsterRunner``: a pipeline's job executed in this process on a real Dagster instance
(``$DAGSTER_HOME``'s, so the run shows in ``dagster dev``), tagged ``mlpipe/run_id``; Dagster's
step stats give each plan task's states, times and tries, its check evaluations the checks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from mlpipe.core.execution import Launch, Runner
from mlpipe.core.execution.facts import Instance, task_facts
from mlpipe.core.execution.floor import Floor, FloorTask
from mlpipe.core.execution.honours import on_this_machine
from mlpipe.core.execution.runner import RunRequest

from .assets import RUN_ID_TAG, job_name
from .build import build_definitions
from .cluster import render_cluster
from .floor import dagster_floor

LOG_LEVEL_ENV = "MLPIPE_DAGSTER_LOG_LEVEL"
_STATES = {"SUCCESS": "success", "FAILURE": "failed", "SKIPPED": "skipped"}


def task_instances(instance: dg.DagsterInstance, job: dg.JobDefinition, dagster_run_id: str
                   ) -> list[Instance]:
    """Dagster's own step stats as core's instances, each op's plan task by its tag."""
    task_of = {op.name: op.tags["mlpipe/task"] for op in job.graph.iterate_op_defs()}
    found = []
    for stats in instance.get_run_step_stats(dagster_run_id):
        op, _, shard = stats.step_key.partition("[")  # a shard's key ends [shard_NNNN]
        state = _STATES.get(getattr(stats.status, "value", ""), "running")
        found.append(Instance(task_of[op.rsplit(".", 1)[-1]], state,
                              stats.start_time, stats.end_time, tries=stats.attempts or None,
                              index=int(shard[-5:-1]) if shard else -1))
    return found


class DagsterRunner(Runner):
    """Materializes the pipeline's job (``mlpipe_<pipeline>``) in process."""

    name = "dagster"
    #: execute_in_process on this machine; dagster dev or cluster mode differs
    honours = on_this_machine(
        retries=("applied", "the asset's RetryPolicy"),
        timeout=("ignored", "Dagster has no per-op timeout (only dagster/max_runtime)"),
        side_by_side_shards=("ignored", "execute_in_process runs the shards' ops one after "
                             "another (the multiprocess executor runs them side by side)"),
    )

    def launch(self, request: RunRequest) -> Launch:
        pipeline = request.pipeline
        defs = build_definitions([(pipeline, request.config)], home=request.home,
                                 use_cache=request.use_cache)
        job = defs.resolve_job_def(job_name(pipeline.name))
        level = os.environ.get(LOG_LEVEL_ENV, "INFO").upper()  # INFO: one line per asset
        run_config = {"loggers": {"console": {"config": {"log_level": level}}}}
        # $DAGSTER_HOME's instance when set (run history kept), else a throwaway one
        home = os.environ.get("DAGSTER_HOME")
        with dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral() as instance:
            started = time.perf_counter()
            result = job.execute_in_process(run_config=run_config, instance=instance,
                                            tags={RUN_ID_TAG: request.run_id}, raise_on_error=False)
            seconds = time.perf_counter() - started
            instances = task_instances(instance, job, result.run_id)
        checks: dict[str, dict[str, bool]] = {}  # per asset, as Dagster evaluated them
        for check in result.get_asset_check_evaluations():
            checks.setdefault(check.asset_key.to_user_string(), {})[check.check_name] = check.passed
        failure = None if result.success else f"Dagster run {result.run_id} failed"
        return Launch(orchestrator_run_id=result.run_id, seconds=seconds, failure=failure,
                      tasks=task_facts(instances),
                      extra={"asset_checks": checks, "dagster_job": job.name})

    def floor(self, tasks: list[FloorTask], name: str, work_dir: Path) -> Floor:
        return dagster_floor(tasks, name, work_dir)

    render_cluster = staticmethod(render_cluster)  # cluster mode's pods and job, rendered
