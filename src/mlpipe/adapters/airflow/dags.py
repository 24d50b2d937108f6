"""Airflow 3 DAGs from core's plan: each plan task through a *translation*, :func:`python_task`
(TaskFlow, in process) or ``kubernetes.pod_task`` (a pod). A ``shard_list`` task's XCom is the
shard list its ``shard`` task is expanded over; steps read their upstream from the run's records,
so XCom carries only small results. Importing this module imports Airflow.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pendulum
from airflow.configuration import get_airflow_home
from airflow.sdk import DAG, Param, Variable, task

from mlpipe.core.config import PipelineSettings
from mlpipe.core.execution.plan import plan
from mlpipe.core.paths import safe_run_id
from mlpipe.core.pipeline import Pipeline
from mlpipe.core.served import BUILT_IN, PIPELINES_ENV, listed, served_pipelines

from .spec import CONF_RUN_ID, CONF_USE_CACHE, DagTask, Translation, task_args

log = logging.getLogger(__name__)

#: A fixed start date in the past: with ``catchup=False`` a schedule starts at the next tick.
START_DATE = pendulum.datetime(2025, 1, 1, tz="UTC")
#: The trigger options (``dag_run.conf``), checked and shown in the trigger form by Airflow.
PARAMS = {
    CONF_RUN_ID: Param(None, type=["null", "string"], description="the mlpipe run id"),
    CONF_USE_CACHE: Param(None, type=["null", "boolean"], description="force the step cache"),
}


def run_task(spec: DagTask, context: Mapping[str, Any], shard: int | None = None) -> Any:
    """What an in-process task does: core's ``run_task``; bad input fails without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlpipe.core.execution.body import run_task as run

    params, run_id = context["params"], context["run_id"]  # params: the DAG run's conf, checked
    job = spec.task.job(
        safe_run_id(params[CONF_RUN_ID] or run_id), home=spec.home, runner="airflow",
        shard=shard, use_cache=params[CONF_USE_CACHE], orchestrator_run_id=run_id,
        attempt=context["ti"].try_number)
    result = run(spec.task, job, lambda exc, retry: exc if retry else AirflowFailException(
        str(exc)))
    return result if isinstance(result, list) else result.to_json()


def python_task(spec: DagTask) -> Any:
    """A TaskFlow ``@task`` per plan task; a shard task's mapped over its list's XCom."""
    shards = spec.task.kind == "shard"

    @task(**task_args(spec.task), doc_md=spec.task.description,
          map_index_template="shard {{ task.op_kwargs['shard'] }}" if shards else None)
    def plan_task(shard: int | None = None, **context: Any) -> Any:
        return run_task(spec, context, shard)

    made: Any = plan_task.expand(shard=spec.listing.output) if shards else plan_task()
    return made.operator


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
    doc_note: str = "",
    fileloc: str | None = None,
) -> DAG:
    """The plan of ``pipeline`` + ``config`` as a DAG scheduled by ``runtime.schedule``, its
    tasks in process or, with ``runtime.mode: kubernetes``, pods. ``home``: the mlpipe home
    (None: ``$MLPIPE_HOME`` in the worker); ``fileloc``: the DAG file Airflow re-parses."""
    tasks = plan(pipeline, config)
    translation: Translation = python_task
    if config.runtime.mode == "kubernetes":
        from .kubernetes import pod_task as translation  # cluster mode: Airflow's cncf provider
    home_str = str(Path(home).expanduser().resolve()) if home is not None else None
    doc = (f"{pipeline.description}\n\nmlpipe pipeline `{tasks.tasks[0].pipeline}`; home "
           f"`{home_str}`. {doc_note}")
    default_args: dict[str, Any] = {
        "owner": "mlpipe",
        "on_failure_callback": log_task_failure,
        "on_retry_callback": log_task_failure,
    }
    with DAG(dag_id=f"mlpipe_{pipeline.name}", schedule=config.runtime.schedule,
             start_date=START_DATE, catchup=False, max_active_runs=1, default_args=default_args,
             tags=["mlpipe", pipeline.name], doc_md=doc, params=PARAMS,
             description=pipeline.description[:200] or None) as dag:
        ops: dict[str, Any] = {}
        for each in tasks:  # a shard task's one upstream is its shard list
            listing = ops[each.upstream[0]] if each.kind == "shard" else None
            ops[each.name] = translation(DagTask(each, pipeline, home_str, listing))
            ops[each.name].set_upstream([ops[u] for u in each.upstream])
    if fileloc:
        dag.fileloc = fileloc
    return dag


# --- the dags-folder entry point -------------------------------------------------------------

def _setting(env_name: str) -> str | None:
    """An env var, else the Airflow Variable of its name in lower case (``mlpipe_pipelines``)."""
    try:
        return os.environ.get(env_name) or Variable.get(env_name.lower(), default=None) or None
    except Exception as exc:  # no metadata DB / API reachable while parsing: treat as unset
        log.debug("Airflow Variable %s unavailable: %s", env_name.lower(), exc)
        return None


def dags_from_environment(
    home: str | Path | None = None, fileloc: str | None = None
) -> dict[str, DAG]:
    """The DAGs ``dags/mlpipe_dags.py`` exposes: core's served pipelines
    (:mod:`mlpipe.core.served`; default ``training,inference``), each setting read from its env
    var or the Airflow Variable of the same name in lower case. The mlpipe home is ``home``, else
    ``$MLPIPE_HOME`` / Variable ``mlpipe_home``, else ``$AIRFLOW_HOME/mlpipe``; ``fileloc``
    defaults to the calling file."""
    fileloc = fileloc or sys._getframe(1).f_code.co_filename
    home = home or _setting("MLPIPE_HOME") or Path(get_airflow_home()) / "mlpipe"
    refs = listed(_setting(PIPELINES_ENV) or ",".join(BUILT_IN))
    dags = [build_dag(s.pipeline, s.config, home=home, doc_note=s.note, fileloc=fileloc)
            for s in served_pipelines(refs, _setting)]
    return {dag.dag_id: dag for dag in dags}
