"""Cluster mode for Airflow: each plan task is a KubernetesPodOperator running ``mlpipe step``,
its pod template core's :func:`~mlpipe.core.cluster.pod_manifest` of the task's container.

No XCom between pods (each reads the run's records from the shared volume or store) but the
shard list pod's, which its shard task is expanded over. Airflow renders no templates in expanded
values, so a shard pod's ``--run-id`` is ``$(MLPIPE_RUN_ID)``, filled by Kubernetes from its env.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlpipe.core.cluster import CONTAINER_NAME, SHARD_SLOT, ContainerSpec, pod_manifest

from .spec import CONF_RUN_ID, DagTask, task_args

#: Filled by Airflow when the task runs; ``mlpipe step`` passes it through ``safe_run_id``.
RUN_ID_TEMPLATE = f"{{{{ (dag_run.conf or {{}}).get('{CONF_RUN_ID}') or run_id }}}}"
_JINJA = ("{{", "{%", "{#")
#: A shard pod's env var holding the run id, and how its args refer to it (Kubernetes fills it).
RUN_ID_ENV = "MLPIPE_RUN_ID"
RUN_ID_REF = f"$({RUN_ID_ENV})"
#: Where the plan pod writes the shard list: the file KubernetesPodOperator's XCom sidecar reads.
XCOM_FILE = "/airflow/xcom/return.json"


def _raw(value: Any) -> Any:
    """Keep Airflow's Jinja away from the template's values that merely contain braces (config
    JSON, env), all but the run id's own template."""
    if isinstance(value, dict):
        return {k: _raw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_raw(v) for v in value]
    if isinstance(value, str) and value != RUN_ID_TEMPLATE and any(t in value for t in _JINJA):
        return "{% raw %}" + value + "{% endraw %}"
    return value


def shard_mapper(container: ContainerSpec) -> Callable[[int], list[str]]:
    """A shard number -> the shard pod's arguments (``.expand(arguments=...map(...))``); a
    function, not a partial: Airflow serializes a map callable by its source."""
    args = list(container.args)

    def shard_arguments(shard: int) -> list[str]:
        return [str(int(shard)) if a == SHARD_SLOT else a for a in args]

    return shard_arguments


def pod_task(spec: DagTask) -> Any:
    """A KubernetesPodOperator per plan task; a shard task's expanded over the list the
    ``shard_list`` pod pushes as its XCom."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    task = spec.task
    listing, shard = task.kind == "shard_list", task.kind == "shard"
    container = task.container(spec.pipeline, plan_out=XCOM_FILE if listing else None)
    pod = container.filled(run_id=RUN_ID_REF if shard else RUN_ID_TEMPLATE)
    kwargs = {**task_args(task), "doc_md": task.description, "do_xcom_push": listing,
              "pod_template_dict": _raw(pod_manifest(pod, f"mlpipe-{pod.pipeline}-{pod.name}")),
              "base_container_name": CONTAINER_NAME, "get_logs": True,
              "on_finish_action": "delete_succeeded_pod"}  # keep failed pods for `kubectl logs`
    if not shard:
        return KubernetesPodOperator(**kwargs)
    return KubernetesPodOperator.partial(**kwargs, env_vars={RUN_ID_ENV: RUN_ID_TEMPLATE}).expand(
        arguments=spec.listing.output.map(shard_mapper(pod)))
