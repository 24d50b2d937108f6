"""What the two translations of a plan (``dags``: in-process tasks, ``kubernetes``: pods)
share; imports no Airflow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlpipe.core.execution.plan import TaskSpec
from mlpipe.core.pipeline import Pipeline

#: ``dag_run.conf`` keys the tasks understand (both optional; the DAG's params).
CONF_RUN_ID = "mlpipe_run_id"  # use this mlpipe run id instead of the Airflow run id
CONF_USE_CACHE = "use_cache"  # true/false forces the step cache on/off for this run


@dataclass(frozen=True)
class DagTask:
    """A plan task as a translation gets it; ``listing``: a shard task's ``shard_list``
    operator (whose XCom it is expanded over)."""

    task: TaskSpec
    pipeline: Pipeline
    home: str | None
    listing: Any = None


#: Makes the operator for one plan task (the in-process one, or a pod).
Translation = Callable[[DagTask], Any]


def task_args(task: TaskSpec) -> dict[str, Any]:
    """The operator arguments every translation takes from the plan: name, retries, timeout."""
    from datetime import timedelta

    return {"task_id": task.name, "retries": task.retries,
            "retry_delay": timedelta(seconds=task.retry_delay_s),
            "execution_timeout": timedelta(seconds=task.timeout_s)}
