"""What the DAG builder and its task factories share; imports no Airflow.

``dags`` (in-process TaskFlow tasks) and ``kubernetes`` (one pod per step) both build tasks from a
:class:`StepTaskSpec` and read the same ``dag_run.conf`` keys, so both import this module and
neither imports the other's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlpipe.core.paths import safe_run_id
from mlpipe.core.pipeline import Step

#: ``dag_run.conf`` keys the tasks understand (both optional).
CONF_RUN_ID = "mlpipe_run_id"  # use this mlpipe run id instead of the Airflow run id
CONF_USE_CACHE = "use_cache"  # true/false forces the step cache on/off for this run


@dataclass(frozen=True)
class StepTaskSpec:
    """Everything a task factory needs to make the operator for one step.

    ``pipeline`` is the pipeline's portable reference (``training`` or ``module:ATTR``), what
    ``execute_step`` and ``mlpipe step --pipeline`` resolve in the worker or pod. ``inputs`` maps
    the step's argument names to the upstream tasks' outputs (``XComArg``s whose value is
    ``execute_step``'s result dict). A factory returns the new task's output (``XComArg``).
    """

    dag_id: str
    pipeline: str
    step: Step
    config_json: str
    home: str | None
    inputs: Mapping[str, Any] = field(default_factory=dict)


class TaskFactory(Protocol):
    def __call__(self, spec: StepTaskSpec) -> Any: ...


def dag_conf(context: Mapping[str, Any]) -> dict[str, Any]:
    """The DAG run's ``conf`` (empty when the run was triggered without one)."""
    conf = getattr(context.get("dag_run"), "conf", None)
    return dict(conf) if isinstance(conf, Mapping) else {}


def mlpipe_run_id(context: Mapping[str, Any]) -> str:
    """The mlpipe run id of a DAG run: ``conf['mlpipe_run_id']`` or the Airflow run id, made safe.

    All tasks of one DAG run compute the same id, so they share ``<home>/runs/<pipeline>/<run_id>``.
    """
    return safe_run_id(str(dag_conf(context).get(CONF_RUN_ID) or context["run_id"]))
