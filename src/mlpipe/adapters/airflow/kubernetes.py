"""Cluster mode for Airflow: each plan task is a KubernetesPodOperator running ``mlpipe step``.

Only the translation of a task's :class:`~mlpipe.core.cluster.ContainerSpec` into operator
arguments; the plan, wiring, retries, timeout and schedule are ``build_dag``'s. No XCom between
pods (each reads the run's records from the shared volume or store) except the shard list pod's
list, which a shard task is expanded over. Airflow renders no templates in expanded values, so a
shard pod's ``--run-id`` is ``$(MLPIPE_RUN_ID)``, filled by Kubernetes from the pod's env var.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes.client import models as k8s

from mlpipe.core.cluster import CONTAINER_NAME, IMAGE_UID, SHARD_SLOT, ContainerSpec

from .spec import CONF_RUN_ID, DagTask, task_args

#: Filled by Airflow when the task runs; ``mlpipe step`` passes it through ``safe_run_id``.
RUN_ID_TEMPLATE = f"{{{{ (dag_run.conf or {{}}).get('{CONF_RUN_ID}') or run_id }}}}"
_JINJA = ("{{", "{%", "{#")
#: A shard pod's env var holding the run id, and how its args refer to it (Kubernetes fills it).
RUN_ID_ENV = "MLPIPE_RUN_ID"
RUN_ID_REF = f"$({RUN_ID_ENV})"
#: Where the plan pod writes the shard list: the file KubernetesPodOperator's XCom sidecar reads.
XCOM_FILE = "/airflow/xcom/return.json"


def _raw(value: str) -> str:
    """Keep Airflow's Jinja away from values that merely contain braces (config JSON, env)."""
    return "{% raw %}" + value + "{% endraw %}" if any(t in value for t in _JINJA) else value


def operator_kwargs(spec: ContainerSpec) -> dict[str, Any]:
    """KubernetesPodOperator arguments for ``spec`` (everything but task id and DAG settings)."""
    env = [k8s.V1EnvVar(name=k, value=_raw(v)) for k, v in spec.env.items()]
    env += [
        k8s.V1EnvVar(name=s.env, value_from=k8s.V1EnvVarSource(
            secret_key_ref=k8s.V1SecretKeySelector(name=s.secret, key=s.key)))
        for s in spec.secret_env
    ]
    volumes = [
        k8s.V1Volume(name=v.name, empty_dir=k8s.V1EmptyDirVolumeSource()) if v.empty_dir else
        k8s.V1Volume(name=v.name, persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
            claim_name=v.claim))
        for v in spec.volumes
    ]
    return {
        "name": f"mlpipe-{spec.pipeline}-{spec.name}",
        "namespace": spec.namespace,
        "image": spec.image,
        "image_pull_policy": spec.image_pull_policy,
        "cmds": list(spec.command),
        "arguments": [a if a == RUN_ID_TEMPLATE else _raw(a) for a in spec.args],
        "env_vars": env,
        "container_resources": k8s.V1ResourceRequirements(
            requests=dict(spec.requests), limits=dict(spec.limits)),
        "volumes": volumes,
        "volume_mounts": [k8s.V1VolumeMount(name=v.name, mount_path=v.mount_path)
                          for v in spec.volumes],
        "node_selector": dict(spec.node_selector) or None,
        "service_account_name": spec.service_account,
        "labels": dict(spec.labels),
        "security_context": k8s.V1PodSecurityContext(
            run_as_user=spec.run_as_user, run_as_group=spec.run_as_user, fs_group=IMAGE_UID,
            run_as_non_root=True),
        "container_security_context": k8s.V1SecurityContext(
            allow_privilege_escalation=False, run_as_non_root=True),
        "active_deadline_seconds": spec.timeout_s,
        "base_container_name": CONTAINER_NAME,
        "do_xcom_push": False,  # refs travel on the shared volume / store, not XCom
        "get_logs": True,
        "on_finish_action": "delete_succeeded_pod",  # keep failed pods for `kubectl logs`
    }


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
    doc = task.description or spec.pipeline.step(task.step).description
    listing = task.kind == "shard_list"
    container = task.container(spec.pipeline, plan_out=XCOM_FILE if listing else None)
    if task.kind == "shard":
        pod = container.filled(run_id=RUN_ID_REF)
        kwargs = operator_kwargs(pod)
        del kwargs["arguments"]  # expanded per shard
        kwargs["env_vars"] = [k8s.V1EnvVar(name=RUN_ID_ENV, value=RUN_ID_TEMPLATE),
                              *kwargs["env_vars"]]
        return KubernetesPodOperator.partial(**task_args(task), doc_md=doc, **kwargs).expand(
            arguments=spec.listing.output.map(shard_mapper(pod)))
    kwargs = {**operator_kwargs(container.filled(run_id=RUN_ID_TEMPLATE)),
              "do_xcom_push": listing}
    return KubernetesPodOperator(**task_args(task), doc_md=doc, **kwargs)
