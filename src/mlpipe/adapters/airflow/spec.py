"""What the DAG builder and its task factories share; imports no Airflow.

``dags`` (in-process TaskFlow tasks) and ``kubernetes`` (one pod per task) are two translations
of one plan: both make operators from a :class:`DagTask` and read the same ``dag_run.conf`` keys,
so both import this module and neither imports the other's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mlpipe.core.execution.plan import TaskSpec
from mlpipe.core.paths import safe_run_id
from mlpipe.core.pipeline import Pipeline

#: ``dag_run.conf`` keys the tasks understand (both optional).
CONF_RUN_ID = "mlpipe_run_id"  # use this mlpipe run id instead of the Airflow run id
CONF_USE_CACHE = "use_cache"  # true/false forces the step cache on/off for this run


@dataclass(frozen=True)
class DagTask:
    """One task of core's plan as it goes into a DAG: what a translation needs to make its
    operator. ``listing`` is, for a shard task, the operator of its ``shard_list`` task (whose
    XCom is the shard list the shard task is expanded over)."""

    dag_id: str
    task: TaskSpec
    pipeline: Pipeline
    home: str | None
    listing: Any = None


class Translation(Protocol):
    """Makes the operator for one plan task (the in-process one, or a pod); returns it."""

    def __call__(self, spec: DagTask) -> Any: ...


def task_args(task: TaskSpec) -> dict[str, Any]:
    """The operator arguments every translation takes from the plan: name, retries, timeout."""
    from datetime import timedelta

    return {"task_id": task.name, "retries": task.retries,
            "retry_delay": timedelta(seconds=task.retry_delay_s),
            "execution_timeout": timedelta(seconds=task.timeout_s)}


def dag_conf(context: Mapping[str, Any]) -> dict[str, Any]:
    """The DAG run's ``conf`` (empty when the run was triggered without one)."""
    conf = getattr(context.get("dag_run"), "conf", None)
    return dict(conf) if isinstance(conf, Mapping) else {}


def mlpipe_run_id(context: Mapping[str, Any]) -> str:
    """The mlpipe run id of a DAG run: ``conf['mlpipe_run_id']`` or the Airflow run id, made safe.

    All tasks of one DAG run compute the same id, so they share ``<home>/runs/<pipeline>/<run_id>``.
    """
    return safe_run_id(str(dag_conf(context).get(CONF_RUN_ID) or context["run_id"]))
