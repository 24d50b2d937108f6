"""Build Airflow 3 DAGs from core's pipeline descriptions: one task per step, refs through XCom.

Every task body is one call to ``mlpipe.core.runner.execute_step``; what travels through XCom is
that call's small JSON result (step, seconds, cached, ref with paths/URIs/hashes), never model
bytes. The operator behind each step comes from a *task factory*, so the in-process TaskFlow task
used today can later be swapped for a KubernetesPodOperator running ``mlpipe step NAME ...``
without touching the wiring.

Importing this module imports Airflow; ``mlpipe.adapters.airflow.runner`` does not.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import pendulum
from airflow.sdk import DAG, Variable, task

from mlpipe.core.config import PipelineConfig, load_config
from mlpipe.core.pipeline import Pipeline, Step
from mlpipe.core.pipelines import INFERENCE, TRAINING

log = logging.getLogger(__name__)

#: ``dag_run.conf`` keys the tasks understand (both optional).
CONF_RUN_ID = "mlpipe_run_id"  # use this mlpipe run id instead of the Airflow run id
CONF_USE_CACHE = "use_cache"  # true/false forces the step cache on/off for this run

#: A fixed start date in the past: with ``catchup=False`` a schedule starts at the next tick.
START_DATE = pendulum.datetime(2025, 1, 1, tz="UTC")

FailureCallback = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class StepTaskSpec:
    """Everything a task factory needs to make the operator for one step.

    ``inputs`` maps the step's argument names to the upstream tasks' outputs (``XComArg``s whose
    value is ``execute_step``'s result dict). A factory must return the new task's output
    (``XComArg``) and make its own XCom return value that same result dict, so any mix of
    factories composes.
    """

    dag_id: str
    pipeline: str
    step: Step
    config_json: str
    home: str | None
    inputs: Mapping[str, Any] = field(default_factory=dict)


class TaskFactory(Protocol):
    def __call__(self, spec: StepTaskSpec) -> Any: ...


def mlpipe_run_id(context: Mapping[str, Any]) -> str:
    """The mlpipe run id of a DAG run: ``conf['mlpipe_run_id']`` or the Airflow run id, made safe.

    All tasks of one DAG run compute the same id, so they share ``<home>/runs/<pipeline>/<run_id>``.
    """
    from mlpipe.core.runner import safe_run_id

    conf = _conf(context)
    return safe_run_id(str(conf.get(CONF_RUN_ID) or context["run_id"]))


def _conf(context: Mapping[str, Any]) -> dict[str, Any]:
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None)
    return dict(conf) if isinstance(conf, Mapping) else {}


def run_step_task(spec: StepTaskSpec, inputs: Mapping[str, Any], context: Mapping[str, Any]
                  ) -> dict[str, Any]:
    """What an in-process task does: hand the step and upstream refs to ``execute_step``."""
    from mlpipe.core.runner import execute_step, resolve_home

    use_cache = _conf(context).get(CONF_USE_CACHE)
    ti = context.get("ti")
    tags = {"runner": "airflow", "airflow_dag_id": spec.dag_id,
            "orchestrator_run_id": str(context.get("run_id", "")),
            "airflow_try_number": str(getattr(ti, "try_number", ""))}
    return execute_step(
        spec.pipeline, spec.step.name, spec.config_json,
        {arg: upstream["ref"] for arg, upstream in inputs.items()},
        home=resolve_home(spec.home), run_id=mlpipe_run_id(context),
        use_cache=None if use_cache is None else bool(use_cache), tags=tags,
    )


def python_task_factory(spec: StepTaskSpec) -> Any:
    """The default factory: a TaskFlow ``@task`` that runs the step in the worker's process."""

    @task(task_id=spec.step.name, doc_md=spec.step.description, multiple_outputs=False)
    def step_task(inputs: dict[str, Any], **context: Any) -> dict[str, Any]:
        return run_step_task(spec, inputs, context)

    return step_task(inputs=dict(spec.inputs))


def log_task_failure(context: Mapping[str, Any]) -> None:
    """One clear line per failed try: which step, which try, and the error (with its exit code)."""
    ti = context.get("ti")
    exc = context.get("exception")
    log.error("mlpipe task %s failed (try %s, exit code %s): %s",
              getattr(ti, "task_id", "?"), getattr(ti, "try_number", "?"),
              getattr(exc, "exit_code", 1), exc)


def build_dag(
    pipeline: Pipeline,
    config: PipelineConfig,
    *,
    home: str | Path | None = None,
    dag_id: str | None = None,
    task_factory: TaskFactory = python_task_factory,
    on_failure: FailureCallback | None = None,
    doc_note: str = "",
    fileloc: str | None = None,
) -> DAG:
    """Translate ``pipeline`` + ``config`` into a DAG; nothing runs until Airflow schedules it.

    Retries, retry delay and the per-task timeout come from ``config.runtime``, the schedule from
    ``config.runtime.schedule`` (a cron, a preset like ``@weekly``, or ``None`` for manual only).
    ``home`` is the mlpipe home the tasks write to (``None``: resolved in the worker from
    ``$MLPIPE_HOME``). ``on_failure`` is called (in the worker) after every failed try.
    ``fileloc`` is the DAG file Airflow should re-parse to run the tasks (default: this module).
    """
    if config.pipeline != pipeline.name:
        raise ValueError(f"config is for '{config.pipeline}', pipeline is '{pipeline.name}'")
    runtime = config.runtime
    if runtime.mode == "kubernetes" and task_factory is python_task_factory:
        from mlpipe.adapters.airflow.kubernetes import pod_task_factory  # cluster mode: pods

        task_factory = pod_task_factory
    callbacks: list[FailureCallback] = [log_task_failure, *([on_failure] if on_failure else [])]
    default_args: dict[str, Any] = {
        "owner": "mlpipe",
        "retries": runtime.retries,
        "retry_delay": timedelta(seconds=runtime.retry_delay_s),
        "execution_timeout": timedelta(seconds=runtime.timeout_s),
        "on_failure_callback": callbacks,
        "on_retry_callback": callbacks,
    }
    dag_id = dag_id or f"mlpipe_{pipeline.name}"
    config_json = config.model_dump_json()
    home_str = str(Path(home).expanduser().resolve()) if home is not None else None
    doc = (f"{pipeline.description}\n\nmlpipe pipeline `{pipeline.name}`; home `{home_str}`. "
           f"{doc_note}")
    with DAG(
        dag_id=dag_id,
        schedule=runtime.schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args,
        tags=["mlpipe", pipeline.name],
        doc_md=doc,
        description=pipeline.description[:200] or None,
    ) as dag:
        outputs: dict[str, Any] = {}
        for step in pipeline.steps:
            spec = StepTaskSpec(dag_id=dag_id, pipeline=pipeline.name, step=step,
                                config_json=config_json, home=home_str,
                                inputs={arg: outputs[src] for arg, src in step.inputs.items()})
            outputs[step.name] = task_factory(spec)
            for upstream in step.upstream:  # explicit, for factories that template their inputs
                dag.task_dict[upstream] >> dag.task_dict[step.name]
    if fileloc:
        dag.fileloc = fileloc
    return dag


# --- the dags-folder entry point -------------------------------------------------------------

ENV_CONFIG = "MLPIPE_{name}_CONFIG"  # e.g. MLPIPE_TRAINING_CONFIG=/path/training.yaml
ENV_OVERRIDES = "MLPIPE_{name}_OVERRIDES"  # e.g. "training.epochs=2 data.max_rows=1000"
VAR_CONFIG = "mlpipe_{name}_config"  # Airflow Variable with the same meaning
VAR_OVERRIDES = "mlpipe_{name}_overrides"


def _setting(env_name: str, var_name: str) -> str | None:
    """An env var, else an Airflow Variable (``AIRFLOW_VAR_*`` env vars count), else None."""
    value = os.environ.get(env_name)
    if value:
        return value
    try:
        found = Variable.get(var_name, default=None)
    except Exception as exc:  # no metadata DB / API reachable while parsing: treat as unset
        log.debug("Airflow Variable %s unavailable: %s", var_name, exc)
        return None
    return str(found) if found else None


def dags_from_environment(home: str | Path | None = None, fileloc: str | None = None
                          ) -> dict[str, DAG]:
    """The DAGs ``dags/mlpipe_dags.py`` exposes, configured from env vars or Airflow Variables.

    For each pipeline, the config file is ``$MLPIPE_<PIPELINE>_CONFIG`` (or the Variable
    ``mlpipe_<pipeline>_config``) with optional ``--set``-style overrides from
    ``$MLPIPE_<PIPELINE>_OVERRIDES``. Without one, the DAG uses mlpipe's built-in defaults and says
    so in the log and the DAG docs. A named config that is missing or invalid raises, so Airflow
    shows it as an import error instead of silently running something else. The mlpipe home is
    ``home``, else ``$MLPIPE_HOME`` / Variable ``mlpipe_home``, else ``$AIRFLOW_HOME/mlpipe``.
    ``fileloc`` defaults to the calling file: the DAGs belong to the file in the dags folder.
    """
    fileloc = fileloc or sys._getframe(1).f_code.co_filename
    home = home or _setting("MLPIPE_HOME", "mlpipe_home") or (
        Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "mlpipe")
    dags: dict[str, DAG] = {}
    for pipeline in (TRAINING, INFERENCE):
        name = pipeline.name.upper()
        path = _setting(ENV_CONFIG.format(name=name), VAR_CONFIG.format(name=pipeline.name))
        overrides = shlex.split(_setting(ENV_OVERRIDES.format(name=name),
                                         VAR_OVERRIDES.format(name=pipeline.name)) or "")
        if path:
            config = load_config(path, overrides, pipeline=pipeline.name)  # type: ignore[arg-type]
            note = f"Config: `{path}` {' '.join(overrides)}"
        else:
            log.info("mlpipe: %s not set; the %s DAG uses mlpipe's built-in default config",
                     ENV_CONFIG.format(name=name), pipeline.name)
            config = load_config(None, overrides, pipeline=pipeline.name)  # type: ignore[arg-type]
            note = f"Config: mlpipe's built-in defaults (set {ENV_CONFIG.format(name=name)})."
        dag = build_dag(pipeline, config, home=home, doc_note=note, fileloc=fileloc)
        dags[dag.dag_id] = dag
    return dags
