"""Assets, jobs, schedules, resources and the ``Definitions`` object for any set of pipelines."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from mlpipe.core.config import PipelineSettings
from mlpipe.core.errors import ConfigError
from mlpipe.core.execution.plan import plan
from mlpipe.core.paths import resolve_home
from mlpipe.core.pipeline import Pipeline

from .assets import dagster_name, job_name, plan_assets, resources, run_task
from .cluster import run_pod

# Each run already gets its own run-worker process; running the steps inside it (in_process) saves
# a Python + torch start per step (~2 s each here). "multiprocess" gives each step its own process.
EXECUTOR_ENV = "MLPIPE_DAGSTER_EXECUTOR"


def _executor() -> dg.ExecutorDefinition:
    choice = os.environ.get(EXECUTOR_ENV, "in_process")
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "multiprocess":  # each step forks from a server that imported the code
        # location once (Dagster's forkserver), instead of a fresh Python importing it again
        return dg.multiprocess_executor.configured({"start_method": {"forkserver": {}}})
    raise ConfigError(f"{EXECUTOR_ENV}: must be 'multiprocess' or 'in_process' (got {choice!r})")


def build_definitions(pairs: Sequence[tuple[Pipeline, PipelineSettings]], *,
                      home: str | Path | None = None, use_cache: bool | None = None
                      ) -> dg.Definitions:
    """One asset group (with checks), job and stopped schedule per pipeline, shared resources;
    in cluster mode (``runtime.mode: kubernetes``) each task a pod, whose bad settings fail at
    load. Dagster itself refuses two pipelines whose names clash as job names."""
    assets: list[dg.AssetsDefinition] = []
    jobs: list[dg.UnresolvedAssetJobDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []
    for pipeline, config in pairs:
        tasks, pods = plan(pipeline, config), config.runtime.mode == "kubernetes"
        for task in tasks if pods else ():
            task.container(pipeline)
        assets.extend(plan_assets(tasks, run_pod if pods else run_task, pod=pods))
        job = dg.define_asset_job(job_name(pipeline.name), description=pipeline.description,
                                  selection=dg.AssetSelection.groups(dagster_name(pipeline.name)),
                                  tags={"mlpipe/pipeline": pipeline.name})
        jobs.append(job)
        cron = pipeline.cron(config)
        if cron is not None:
            schedules.append(dg.ScheduleDefinition(
                name=f"{job.name}_schedule", job=job, cron_schedule=cron,
                default_status=dg.DefaultScheduleStatus.STOPPED))
    configs = {p.name: c.model_dump_json() for p, c in pairs}
    pods = any(c.runtime.mode == "kubernetes" for _, c in pairs)
    return dg.Definitions(assets=assets, jobs=jobs, schedules=schedules, executor=_executor(),
                          resources=resources(resolve_home(home), configs, use_cache, pods))
