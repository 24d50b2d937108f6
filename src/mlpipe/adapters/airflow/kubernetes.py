"""Cluster mode for Airflow: each step is a KubernetesPodOperator running ``mlpipe step``.

``build_dag`` swaps its task factory for :func:`pod_task_factory` when
``config.runtime.mode == "kubernetes"``; the DAG's wiring, retries, timeout and schedule stay
the same; ``mlpipe.adapters.airflow.render`` writes what such a DAG would submit. This module
only translates core's :class:`~mlpipe.core.cluster.ContainerSpec` into KubernetesPodOperator
arguments (V1EnvVar with ``secretKeyRef``, V1ResourceRequirements, PVC or
emptyDir volumes, node selector, service account, namespace, security context).

No XCom between pods: each pod reads the earlier steps' ``result.json`` of the same run from the
shared volume or store (``mlpipe step`` does), so ``do_xcom_push`` stays off and tasks are
ordered by the DAG's explicit dependencies. The run id is the Jinja template
:data:`RUN_ID_TEMPLATE` (``conf['mlpipe_run_id']`` or Airflow's ``run_id``), which Airflow
renders per run and ``mlpipe step`` makes safe exactly as the in-process tasks do.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import models as k8s

from mlpipe.core.cluster import CONTAINER_NAME, IMAGE_UID, ContainerSpec, step_container
from mlpipe.core.config import config_from_json
from mlpipe.core.pipeline import resolve_pipeline

from .spec import CONF_RUN_ID, StepTaskSpec

#: Filled by Airflow when the task runs; ``mlpipe step`` passes it through ``safe_run_id``.
RUN_ID_TEMPLATE = f"{{{{ (dag_run.conf or {{}}).get('{CONF_RUN_ID}') or run_id }}}}"
_JINJA = ("{{", "{%", "{#")


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


def pod_task_factory(spec: StepTaskSpec) -> Any:
    """The cluster-mode task factory: a KubernetesPodOperator for ``spec.step``."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    pipeline = resolve_pipeline(spec.pipeline)
    config = config_from_json(spec.config_json, pipeline.config_type)
    container = step_container(pipeline, spec.step.name, config, RUN_ID_TEMPLATE)
    op = KubernetesPodOperator(task_id=spec.step.name, doc_md=spec.step.description,
                               **operator_kwargs(container))
    return op.output
