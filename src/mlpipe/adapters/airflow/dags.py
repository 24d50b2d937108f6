"""Build Airflow 3 DAGs from pipeline descriptions: one task per step, refs through XCom.

Every task body is one call to ``mlpipe.core.execution.execute_step`` with the pipeline's portable
reference (a registered name or ``module:ATTR``), so built-in and user pipelines alike run in the
worker; what travels through XCom is that call's small JSON result (step, seconds, cached, ref
with paths/URIs/hashes), never model bytes. The operator behind each step comes from a *task
factory*: the in-process TaskFlow task here, or a KubernetesPodOperator running
``mlpipe step NAME ...`` in cluster mode (:mod:`mlpipe.adapters.airflow.kubernetes`).

Importing this module imports Airflow; ``mlpipe.adapters.airflow.runner`` does not.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Variable, task

from mlpipe.core.config import PipelineSettings, load_config
from mlpipe.core.execution import execute_gather, execute_step
from mlpipe.core.execution.group import execute_group, group_inputs, group_name, task_groups
from mlpipe.core.paths import resolve_home
from mlpipe.core.pipeline import Pipeline, portable_ref, resolve_pipeline
from mlpipe.core.refs import ref_from_json

from .spec import CONF_USE_CACHE, StepTaskSpec, TaskFactory, dag_conf, mlpipe_run_id

log = logging.getLogger(__name__)

#: A fixed start date in the past: with ``catchup=False`` a schedule starts at the next tick.
START_DATE = pendulum.datetime(2025, 1, 1, tz="UTC")


def run_step_task(
    spec: StepTaskSpec, inputs: Mapping[str, Any], context: Mapping[str, Any],
    shard: int | None = None,
) -> dict[str, Any]:
    """What an in-process task does: hand the step and upstream refs to ``execute_step``."""
    use_cache = dag_conf(context).get(CONF_USE_CACHE)
    tags = {"runner": "airflow", "airflow_dag_id": spec.dag_id,
            "orchestrator_run_id": str(context.get("run_id", "")),
            "airflow_try_number": str(getattr(context.get("ti"), "try_number", ""))}
    return execute_step(
        spec.pipeline, spec.step.name, spec.config_json,
        {arg: upstream["ref"] for arg, upstream in inputs.items()},
        home=resolve_home(spec.home), run_id=mlpipe_run_id(context),
        use_cache=None if use_cache is None else bool(use_cache), tags=tags, shard=shard,
    )


def python_task_factory(spec: StepTaskSpec) -> Any:
    """The default factory: a TaskFlow ``@task`` that runs the step in the worker's process."""

    @task(task_id=spec.step.name, doc_md=spec.step.description, multiple_outputs=False)
    def step_task(inputs: dict[str, Any], **context: Any) -> dict[str, Any]:
        return run_step_task(spec, inputs, context)

    return step_task(inputs=dict(spec.inputs))


def mapped_python_tasks(spec: StepTaskSpec) -> Any:
    """A map step as Airflow dynamic task mapping: ``<step>__shards`` lists the shards the
    upstream made (known only at run time), ``<step>__shard`` is expanded over them (one mapped
    task instance per shard, each retried on its own), and ``<step>`` gathers them in order."""
    step = spec.step

    @task(task_id=f"{step.name}__shards", doc_md=f"The shards {step.name} runs over")
    def list_shards(inputs: dict[str, Any]) -> list[int]:
        shards = ref_from_json(inputs[step.mapped_inputs[0]]["ref"])
        return list(range(len(getattr(shards, "shards", ()))))

    @task(task_id=f"{step.name}__shard", doc_md=step.description,
          map_index_template="shard {{ task.op_kwargs['shard'] }}")
    def shard_task(inputs: dict[str, Any], shard: int, **context: Any) -> dict[str, Any]:
        return run_step_task(spec, inputs, context, shard=shard)

    @task(task_id=step.name, doc_md=f"{step.name}: its shards gathered in order")
    def gather(shard_results: Any, **context: Any) -> dict[str, Any]:
        return execute_gather(spec.pipeline, step.name, home=resolve_home(spec.home),
                              run_id=mlpipe_run_id(context), count=len(shard_results))

    inputs = dict(spec.inputs)
    shards = shard_task.partial(inputs=inputs).expand(shard=list_shards(inputs=inputs))
    return gather(shard_results=shards)


def fused_task(dag_id: str, ref: str, pipeline: Pipeline, group: tuple[str, ...],
               config_json: str, home: str | None, upstream: Mapping[str, Any]) -> Any:
    """One TaskFlow task running a fused group (``runtime.fuse``); its XCom holds each step's
    result under the step's name, so downstream tasks and the UI see every step by name."""
    doc = "\n".join(f"- `{name}`: {pipeline.step(name).description}" for name in group)

    @task(task_id=group_name(group), doc_md=f"mlpipe steps run as one task:\n\n{doc}",
          multiple_outputs=True)
    def group_task(upstream: dict[str, Any], **context: Any) -> dict[str, Any]:
        use_cache = dag_conf(context).get(CONF_USE_CACHE)
        tags = {"runner": "airflow", "airflow_dag_id": dag_id,
                "orchestrator_run_id": str(context.get("run_id", "")),
                "airflow_try_number": str(getattr(context.get("ti"), "try_number", ""))}
        return execute_group(
            ref, group, config_json, {src: out["ref"] for src, out in upstream.items()},
            home=resolve_home(home), run_id=mlpipe_run_id(context),
            use_cache=None if use_cache is None else bool(use_cache), tags=tags,
        )

    return group_task(upstream=dict(upstream))


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
    task_factory: TaskFactory | None = None,
    doc_note: str = "",
    fileloc: str | None = None,
) -> DAG:
    """Translate ``pipeline`` + ``config`` into a DAG; nothing runs until Airflow schedules it.

    Retries, retry delay and the per-task timeout come from ``config.runtime``, the schedule from
    ``config.runtime.schedule`` (a cron, a preset like ``@weekly``, or ``None`` for manual only).
    ``home`` is the mlpipe home the tasks write to (``None``: resolved in the worker from
    ``$MLPIPE_HOME``). ``task_factory`` defaults to in-process tasks, or to pods when
    ``runtime.mode`` is ``kubernetes``. ``fileloc`` is the DAG file Airflow re-parses to run the
    tasks (default: this module). The pipeline must be importable by its ``portable_ref``.
    """
    if config.pipeline != pipeline.name:
        raise ValueError(f"config is for '{config.pipeline}', pipeline is '{pipeline.name}'")
    runtime = config.runtime
    if task_factory is None:
        task_factory = python_task_factory
        if runtime.mode == "kubernetes":
            from .kubernetes import pod_task_factory  # cluster mode: Airflow's cncf provider

            task_factory = pod_task_factory
    default_args: dict[str, Any] = {
        "owner": "mlpipe",
        "retries": runtime.retries,
        "retry_delay": timedelta(seconds=runtime.retry_delay_s),
        "execution_timeout": timedelta(seconds=runtime.timeout_s),
        "on_failure_callback": log_task_failure,
        "on_retry_callback": log_task_failure,
    }
    dag_id = dag_id or f"mlpipe_{pipeline.name}"
    ref = portable_ref(pipeline)
    config_json = config.model_dump_json()
    home_str = str(Path(home).expanduser().resolve()) if home is not None else None
    doc = f"{pipeline.description}\n\nmlpipe pipeline `{ref}`; home `{home_str}`. {doc_note}"
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
        task_of: dict[str, str] = {}  # step -> the task that runs it (its own, or its group's)
        for group in task_groups(pipeline, config):
            if len(group) > 1:  # runtime.fuse: one task runs the group's steps, in order
                fused = fused_task(dag_id, ref, pipeline, group, config_json, home_str,
                                   {src: outputs[src] for src in group_inputs(pipeline, group)})
                outputs.update({name: fused[name] for name in group})
                task_of.update(dict.fromkeys(group, group_name(group)))
                continue
            step = pipeline.step(group[0])
            inputs = {arg: outputs[src] for arg, src in step.inputs.items()}
            spec = StepTaskSpec(dag_id, ref, step, config_json, home_str, inputs)
            mapped = step.map_over is not None and task_factory is python_task_factory
            outputs[step.name] = mapped_python_tasks(spec) if mapped else task_factory(spec)
            task_of[step.name] = step.name
            for upstream in step.upstream:  # explicit, for factories that template their inputs
                if task_of[upstream] != step.name:
                    dag.task_dict[task_of[upstream]] >> dag.task_dict[step.name]
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
