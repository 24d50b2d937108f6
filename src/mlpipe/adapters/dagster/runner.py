"""Run a pipeline's assets in a real Dagster instance and report it as an mlpipe ``PipelineRun``.

The job executes in this process on an ephemeral instance, or on the persistent instance in
``$DAGSTER_HOME`` when that is set (so the run shows up in ``dagster dev``). What each asset did
is read back from Dagster's event log: state, duration, check evaluations, failure metadata.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from mlpipe.core.cluster import refuse_local_run
from mlpipe.core.config import InferenceConfig, PipelineConfig, TrainingConfig
from mlpipe.core.errors import (
    QualityGateError,
    RemoteStepError,
    StepFailedError,
    error_from_record,
)
from mlpipe.core.pipeline import Pipeline
from mlpipe.core.runner import PipelineRun, load_step_result, preflight, run_dir, safe_run_id

from .assets import RUN_ID_TAG, asset_to_step
from .build import build_definitions, job_name

LOG_LEVEL_ENV = "MLPIPE_DAGSTER_LOG_LEVEL"


@dataclass
class AssetState:
    """One asset's fate in a Dagster run, as its event log tells it."""

    state: str = "not_run"  # running | success | failed | skipped | not_run
    started: float | None = None
    ended: float | None = None
    failure: dict[str, Any] = field(default_factory=dict)
    failed_checks: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


@contextmanager
def _instance() -> Iterator[dg.DagsterInstance]:
    """``$DAGSTER_HOME``'s instance when set (run history kept), else a throwaway one."""
    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance


def _run_config() -> dict[str, Any]:
    """Console logs at INFO (one line per asset) unless ``MLPIPE_DAGSTER_LOG_LEVEL`` says else."""
    level = os.environ.get(LOG_LEVEL_ENV, "INFO").upper()
    return {"loggers": {"console": {"config": {"log_level": level}}}}


def asset_states(instance: dg.DagsterInstance, dagster_run_id: str) -> dict[str, AssetState]:
    """Per asset (op) name: state, start/end timestamps, checks and failure details."""
    states: dict[str, AssetState] = {}
    for entry in instance.all_logs(dagster_run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        st = states.setdefault(event.step_key, AssetState())
        kind = event.event_type
        data: Any = event.event_specific_data
        if kind == dg.DagsterEventType.STEP_START:
            st.state, st.started = "running", entry.timestamp
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            st.state, st.ended = "success", entry.timestamp
        elif kind == dg.DagsterEventType.STEP_SKIPPED:
            st.state = "skipped"
        elif kind == dg.DagsterEventType.STEP_FAILURE:
            st.state, st.ended = "failed", entry.timestamp
            user = getattr(data, "user_failure_data", None)
            meta = {k: getattr(v, "value", v) for k, v in (user.metadata if user else {}).items()}
            error = getattr(data, "error", None)
            st.failure = {"error_class": getattr(error, "cls_name", None),
                          "message": getattr(error, "message", "").strip(), **meta}
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            st.checks[data.check_name] = data.passed
            if not data.passed and data.severity == dg.AssetCheckSeverity.ERROR:
                st.failed_checks.append(f"check {data.check_name} failed: {data.description}")
    return states


def _step_error(step: str, st: AssetState) -> StepFailedError:
    """The StepFailedError the local runner would have raised for this failed asset."""
    if st.failed_checks:
        return StepFailedError(step, QualityGateError("; ".join(st.failed_checks)))
    return StepFailedError(step, error_from_record(st.failure))


def run_pipeline(
    pipeline: Pipeline,
    config: PipelineConfig,
    *,
    home: Path,
    run_id: str | None = None,
    use_cache: bool | None = None,
) -> PipelineRun:
    """Materialize the pipeline's job in Dagster; raise StepFailedError naming the failed step."""
    refuse_local_run(config, "dagster")
    preflight(config, Path(home).expanduser().resolve())
    home = Path(home).resolve()
    defs = build_definitions(config if isinstance(config, TrainingConfig) else None,
                             config if isinstance(config, InferenceConfig) else None,
                             home=home, use_cache=use_cache)
    job = defs.resolve_job_def(job_name(pipeline.name))
    tags = {RUN_ID_TAG: safe_run_id(run_id)} if run_id else {}
    steps_of = asset_to_step(pipeline)
    with _instance() as instance:
        started = time.perf_counter()
        result = job.execute_in_process(run_config=_run_config(), instance=instance, tags=tags,
                                        raise_on_error=False)
        seconds = time.perf_counter() - started
        dagster_run_id = result.run_id
        states = asset_states(instance, dagster_run_id)
    mlpipe_run_id = tags.get(RUN_ID_TAG) or safe_run_id(dagster_run_id)
    by_step = {steps_of[a]: st for a, st in states.items() if a in steps_of}
    for step in pipeline.step_names:  # first failure in pipeline order names the step
        st = by_step.get(step)
        if st is not None and (st.state == "failed" or st.failed_checks):
            raise _step_error(step, st)
    if not result.success:
        raise StepFailedError(pipeline.step_names[0],
                              RemoteStepError(f"Dagster run {dagster_run_id} failed", 1))
    run = PipelineRun(pipeline=pipeline.name, run_id=mlpipe_run_id,
                      run_dir=run_dir(home, pipeline.name, mlpipe_run_id), seconds=seconds,
                      runner="dagster")
    run.steps = [load_step_result(home, pipeline.name, mlpipe_run_id, step)
                 for step in pipeline.step_names]
    run.extra = {
        "orchestrator_run_id": dagster_run_id,
        "task_seconds": {s: by_step[s].seconds for s in pipeline.step_names if s in by_step},
        "asset_states": {a: st.state for a, st in states.items()},
        "asset_checks": {a: st.checks for a, st in states.items() if st.checks},
        "dagster_job": job.name,
    }
    run.write_record(config)
    return run
