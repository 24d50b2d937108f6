"""Build Airflow 3 DAGs from core's plan: one Airflow task per plan task, in either mode.

``build_dag`` walks :func:`mlpipe.core.execution.plan.plan` and hands each task to a
*translation*: :func:`python_task` here (a TaskFlow task whose body is one
:func:`~mlpipe.core.execution.execute.execute` call in the worker) or, in cluster mode,
:func:`mlpipe.adapters.airflow.kubernetes.pod_task` (a KubernetesPodOperator running
``mlpipe step``). Kinds map onto Airflow's primitives: a step or fused group is a task, a map
step's ``shard_list`` a task whose XCom is the shard list, its ``shard`` task a mapped task
expanded over that list, its ``gather`` a task after all of them. Steps find their upstream
references in the run's records, so XCom carries only small results; bad input (exit 2) fails
the task without its retries.

Importing this module imports Airflow; ``mlpipe.adapters.airflow.runner`` does not.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Variable, task

from mlpipe.core.config import PipelineSettings, load_config
from mlpipe.core.execution.plan import plan
from mlpipe.core.pipeline import Pipeline, resolve_pipeline

from .spec import CONF_USE_CACHE, DagTask, Translation, dag_conf, mlpipe_run_id, task_args

log = logging.getLogger(__name__)

#: A fixed start date in the past: with ``catchup=False`` a schedule starts at the next tick.
START_DATE = pendulum.datetime(2025, 1, 1, tz="UTC")


def run_task(spec: DagTask, context: Mapping[str, Any], shard: int | None = None) -> Any:
    """What an in-process task does: ``execute`` its job; bad input fails without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlpipe.core.errors import MlpipeError
    from mlpipe.core.execution.execute import execute, retryable

    use_cache = dag_conf(context).get(CONF_USE_CACHE)
    job = spec.task.job(
        mlpipe_run_id(context), home=spec.home, runner="airflow", shard=shard,
        use_cache=None if use_cache is None else bool(use_cache),
        orchestrator_run_id=str(context.get("run_id", "")),
        attempt=int(getattr(context.get("ti"), "try_number", 0) or 0))
    try:
        result = execute(job)
    except MlpipeError as exc:
        if retryable(exc):
            raise
        raise AirflowFailException(str(exc)) from exc
    return list(result.shards) if spec.task.kind == "shard_list" else result.to_json()


def python_task(spec: DagTask) -> Any:
    """The in-process translation: a TaskFlow ``@task`` per plan task; a shard task is mapped
    over its shard list's XCom (one task instance per shard, each retried on its own)."""
    doc = spec.task.description or spec.pipeline.step(spec.task.step).description
    if spec.task.kind == "shard":
        @task(**task_args(spec.task), doc_md=doc,
              map_index_template="shard {{ task.op_kwargs['shard'] }}")
        def shard_task(shard: int, **context: Any) -> Any:
            return run_task(spec, context, shard)

        return shard_task.expand(shard=spec.listing.output).operator  # type: ignore[attr-defined]

    @task(**task_args(spec.task), doc_md=doc)
    def plan_task(**context: Any) -> Any:
        return run_task(spec, context)

    return plan_task().operator  # type: ignore[attr-defined]


def log_task_failure(context: Mapping[str, Any]) -> None:
    """One clear line per failed try: which step, which try, and the error (with its exit code)."""
    ti, exc = context.get("ti"), context.get("exception")
    log.error("mlpipe task %s failed (try %s, exit code %s): %s", getattr(ti, "task_id", "?"),
              getattr(ti, "try_number", "?"), getattr(exc, "exit_code", 1), exc)


def build_dag(
    pipeline: Pipeline,
    config: PipelineSettings,
    *,
    home: str | Path | None = None,
    dag_id: str | None = None,
    translation: Translation | None = None,
    doc_note: str = "",
    fileloc: str | None = None,
) -> DAG:
    """Translate ``pipeline`` + ``config`` into a DAG; nothing runs until Airflow schedules it.

    Task names, upstream, retries, retry delay and timeouts come from core's plan (from
    ``config.runtime``), the schedule from ``config.runtime.schedule`` (a cron, a preset like
    ``@weekly``, or ``None`` for manual only). ``home`` is the mlpipe home the tasks write to
    (``None``: resolved in the worker from ``$MLPIPE_HOME``). ``translation`` defaults to
    in-process tasks, or to pods when ``runtime.mode`` is ``kubernetes``. ``fileloc`` is the DAG
    file Airflow re-parses to run the tasks (default: this module).
    """
    if config.pipeline != pipeline.name:
        raise ValueError(f"config is for '{config.pipeline}', pipeline is '{pipeline.name}'")
    runtime = config.runtime
    if translation is None:
        translation = python_task
        if runtime.mode == "kubernetes":
            from .kubernetes import pod_task  # cluster mode: Airflow's cncf provider

            translation = pod_task
    dag_id = dag_id or f"mlpipe_{pipeline.name}"
    tasks = plan(pipeline, config)
    home_str = str(Path(home).expanduser().resolve()) if home is not None else None
    doc = (f"{pipeline.description}\n\nmlpipe pipeline `{tasks.tasks[0].pipeline}`; home "
           f"`{home_str}`. {doc_note}")
    default_args: dict[str, Any] = {
        "owner": "mlpipe",
        "on_failure_callback": log_task_failure,
        "on_retry_callback": log_task_failure,
    }
    with DAG(dag_id=dag_id, schedule=runtime.schedule, start_date=START_DATE, catchup=False,
             max_active_runs=1, default_args=default_args, tags=["mlpipe", pipeline.name],
             doc_md=doc, description=pipeline.description[:200] or None) as dag:
        ops: dict[str, Any] = {}
        for each in tasks:
            listing = next((ops[u] for u in each.upstream
                            if tasks.task(u).kind == "shard_list"), None)
            op = translation(DagTask(dag_id, each, pipeline, home_str, listing))
            for upstream in each.upstream:
                if upstream not in op.upstream_task_ids:
                    ops[upstream] >> op
            ops[each.name] = op
    if fileloc:
        dag.fileloc = fileloc
    return dag


# --- the dags-folder entry point -------------------------------------------------------------

ENV_PIPELINES = "MLPIPE_PIPELINES"  # e.g. "training,inference,my_module:PIPELINE"
DEFAULT_PIPELINES = "training,inference"
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


def dags_from_environment(
    home: str | Path | None = None, fileloc: str | None = None
) -> dict[str, DAG]:
    """The DAGs ``dags/mlpipe_dags.py`` exposes, configured from env vars or Airflow Variables.

    The pipelines are ``$MLPIPE_PIPELINES`` (or the Variable ``mlpipe_pipelines``): comma-separated
    registered names or ``module:ATTR`` refs, default ``training,inference``. For each, the config
    file is ``$MLPIPE_<PIPELINE>_CONFIG`` (or the Variable ``mlpipe_<pipeline>_config``) with
    optional ``--set``-style overrides from ``$MLPIPE_<PIPELINE>_OVERRIDES``. Without one, the DAG
    uses the config type's defaults and says so in the log and the DAG docs. A named config that
    is missing or invalid raises, so Airflow shows it as an import error instead of silently
    running something else. The mlpipe home is ``home``, else ``$MLPIPE_HOME`` / Variable
    ``mlpipe_home``, else ``$AIRFLOW_HOME/mlpipe``. ``fileloc`` defaults to the calling file.
    """
    fileloc = fileloc or sys._getframe(1).f_code.co_filename
    home = home or _setting("MLPIPE_HOME", "mlpipe_home") or (
        Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "mlpipe"
    )
    refs = _setting(ENV_PIPELINES, ENV_PIPELINES.lower()) or DEFAULT_PIPELINES
    dags: dict[str, DAG] = {}
    for ref in filter(None, (r.strip() for r in refs.split(","))):
        pipeline = resolve_pipeline(ref)
        key = re.sub(r"\W", "_", pipeline.name)
        env_config = ENV_CONFIG.format(name=key.upper())
        path = _setting(env_config, VAR_CONFIG.format(name=key))
        overrides = shlex.split(
            _setting(ENV_OVERRIDES.format(name=key.upper()), VAR_OVERRIDES.format(name=key)) or ""
        )
        if path:
            note = f"Config: `{path}` {' '.join(overrides)}"
        else:
            log.info("mlpipe: %s not set; the %s DAG uses mlpipe's built-in default config",
                     env_config, pipeline.name)
            note = f"Config: mlpipe's built-in defaults (set {env_config})."
        config = load_config(
            path or None, overrides, pipeline=pipeline.name, config_type=pipeline.config_type
        )
        dag = build_dag(pipeline, config, home=home, doc_note=note, fileloc=fileloc)
        dags[dag.dag_id] = dag
    return dags
