"""Jobs, schedules, resources and the ``Definitions`` object, built from mlpipe configs."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from mlpipe.core.config import InferenceConfig, PipelineConfig, TrainingConfig
from mlpipe.core.errors import ConfigError
from mlpipe.core.pipelines import INFERENCE, TRAINING
from mlpipe.core.runner import resolve_home

from .assets import RESOURCE_KEY, MlpipeResource, RefIOManager, build_assets

# Used when a config sets no runtime.schedule: retrain weekly, score daily (both start stopped).
DEFAULT_SCHEDULES = {"training": "0 3 * * 0", "inference": "0 5 * * *"}
# Airflow presets croniter does not know; everything else must be a cron string Dagster accepts.
_PRESETS = {"@quarterly": "0 0 1 */3 *"}
# Each run already gets its own run-worker process; running the steps inside it (in_process) saves
# a Python + torch start per step (~2 s each here). "multiprocess" gives each step its own process.
EXECUTOR_ENV = "MLPIPE_DAGSTER_EXECUTOR"


def job_name(pipeline: str) -> str:
    return f"mlpipe_{pipeline}"


def cron_for(pipeline: str, config: PipelineConfig) -> str:
    """``runtime.schedule`` as a cron string, else this pipeline's default."""
    from dagster._utils.schedules import is_valid_cron_string

    raw = config.runtime.schedule
    cron = _PRESETS.get(raw, raw) if raw else DEFAULT_SCHEDULES[pipeline]
    if not is_valid_cron_string(cron):
        raise ConfigError(f"runtime.schedule: {raw!r} is not a cron schedule Dagster can run "
                          "(use e.g. '0 3 * * 0' or '@daily')")
    return cron


def _executor() -> dg.ExecutorDefinition:
    choice = os.environ.get(EXECUTOR_ENV, "in_process")
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "multiprocess":
        return dg.multiprocess_executor
    raise ConfigError(f"{EXECUTOR_ENV}: must be 'multiprocess' or 'in_process' (got {choice!r})")


def build_definitions(
    training: TrainingConfig | None,
    inference: InferenceConfig | None,
    *,
    home: Path | None = None,
    use_cache: bool | None = None,
) -> dg.Definitions:
    """Assets, checks, a job and a stopped schedule per given pipeline, and the shared resources."""
    home = resolve_home(home)
    assets: list[dg.AssetsDefinition] = []
    jobs: list[dg.UnresolvedAssetJobDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []
    for pipeline, config in ((TRAINING, training), (INFERENCE, inference)):
        if config is None:
            continue
        assets.extend(build_assets(pipeline, config))
        job = dg.define_asset_job(
            job_name(pipeline.name),
            selection=dg.AssetSelection.groups(pipeline.name),
            description=pipeline.description,
            tags={"mlpipe/pipeline": pipeline.name},
        )
        jobs.append(job)
        schedules.append(dg.ScheduleDefinition(
            name=f"{job_name(pipeline.name)}_schedule", job=job,
            cron_schedule=cron_for(pipeline.name, config),
            default_status=dg.DefaultScheduleStatus.STOPPED,
        ))
    resource = MlpipeResource(
        home=str(home),
        training_config=training.model_dump_json() if training else "",
        inference_config=inference.model_dump_json() if inference else "",
        use_cache=use_cache,
    )
    resources: dict[str, object] = {
        RESOURCE_KEY: resource, "io_manager": RefIOManager(home=str(home))}
    if any(c is not None and c.runtime.mode == "kubernetes" for c in (training, inference)):
        from .cluster import PIPES_KEY, pipes_client

        resources[PIPES_KEY] = pipes_client()  # cluster mode: assets launch pods through it
    return dg.Definitions(
        assets=assets, jobs=jobs, schedules=schedules, executor=_executor(), resources=resources,
    )
