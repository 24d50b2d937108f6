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

A map step is one pod per shard, as core's map parts say: ``<step>__shards`` (the plan pod, the
one pod that pushes an XCom: the shard list, written to the XCom sidecar's file),
``<step>__shard`` (``KubernetesPodOperator.partial(...).expand(arguments=...)`` over that list,
each mapped pod with the step's resources and ``--shard I``) and ``<step>`` (the gather pod).
Airflow does not render templates in expanded values, so a shard pod's ``--run-id`` is
``$(MLPIPE_RUN_ID)``, which Kubernetes fills from the pod's env var, rendered by Airflow as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes.client import models as k8s

from mlpipe.core.cluster import CONTAINER_NAME, IMAGE_UID, ContainerSpec, step_container
from mlpipe.core.config import config_from_json
from mlpipe.core.pipeline import Pipeline, resolve_pipeline

from .spec import CONF_RUN_ID, StepTaskSpec

#: Filled by Airflow when the task runs; ``mlpipe step`` passes it through ``safe_run_id``.
RUN_ID_TEMPLATE = f"{{{{ (dag_run.conf or {{}}).get('{CONF_RUN_ID}') or run_id }}}}"
_JINJA = ("{{", "{%", "{#")
#: A shard pod's env var holding the run id, and how its args refer to it (Kubernetes fills it).
RUN_ID_ENV = "MLPIPE_RUN_ID"
RUN_ID_REF = f"$({RUN_ID_ENV})"
#: Where the plan pod writes the shard list: the file KubernetesPodOperator's XCom sidecar reads.
XCOM_FILE = "/airflow/xcom/return.json"
_SHARD = "<<shard>>"


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


def shard_mapper(pipeline: Pipeline, step: str, config: Any) -> Callable[[int], list[str]]:
    """The function ``.expand(arguments=plan.output.map(...))`` applies to each shard number of
    the plan's XCom: the shard pod's arguments with that shard in its slot (plain values, never
    templated). A function, not a partial: Airflow serializes a map callable by its source."""
    container = step_container(pipeline, step, config, RUN_ID_REF, part="shard", shard=_SHARD)
    args = list(container.args)

    def shard_arguments(shard: int) -> list[str]:
        return [str(int(shard)) if a == _SHARD else a for a in args]

    return shard_arguments


def mapped_pod_tasks(spec: StepTaskSpec, pipeline: Pipeline, config: Any) -> Any:
    """A map step as three pod tasks: plan, one mapped pod per shard, gather."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    step = spec.step
    plan_pod = step_container(pipeline, step.name, config, RUN_ID_TEMPLATE, part="plan",
                              plan_out=XCOM_FILE)
    plan = KubernetesPodOperator(task_id=f"{step.name}__shards",
                                 doc_md=f"The shards {step.name} runs over",
                                 **{**operator_kwargs(plan_pod), "do_xcom_push": True})
    for upstream in spec.inputs.values():  # the plan reads their results
        upstream.operator >> plan
    shard_pod = step_container(pipeline, step.name, config, RUN_ID_REF, part="shard",
                               shard=_SHARD)
    kwargs = operator_kwargs(shard_pod)
    del kwargs["arguments"]  # expanded per shard
    kwargs["env_vars"] = [k8s.V1EnvVar(name=RUN_ID_ENV, value=RUN_ID_TEMPLATE),
                          *kwargs["env_vars"]]
    shards = KubernetesPodOperator.partial(
        task_id=f"{step.name}__shard", doc_md=step.description, **kwargs,
    ).expand(arguments=plan.output.map(shard_mapper(pipeline, step.name, config)))
    gather_pod = step_container(pipeline, step.name, config, RUN_ID_TEMPLATE, part="gather")
    gather = KubernetesPodOperator(task_id=step.name,
                                   doc_md=f"{step.name}: its shards gathered in order",
                                   **operator_kwargs(gather_pod))
    plan >> shards >> gather
    return gather.output


def pod_task_factory(spec: StepTaskSpec) -> Any:
    """The cluster-mode task factory: a KubernetesPodOperator for ``spec.step`` (three tasks,
    one pod per shard, for a map step)."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    pipeline = resolve_pipeline(spec.pipeline)
    config = config_from_json(spec.config_json, pipeline.config_type)
    if spec.step.map_over is not None:
        return mapped_pod_tasks(spec, pipeline, config)
    container = step_container(pipeline, spec.step.name, config, RUN_ID_TEMPLATE)
    op = KubernetesPodOperator(task_id=spec.step.name, doc_md=spec.step.description,
                               **operator_kwargs(container))
    return op.output
