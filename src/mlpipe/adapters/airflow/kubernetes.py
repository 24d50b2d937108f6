"""Cluster mode for Airflow: each step is a KubernetesPodOperator running ``mlpipe step``.

``build_dag`` swaps its task factory for :func:`pod_task_factory` when
``config.runtime.mode == "kubernetes"``; the DAG's wiring, retries, timeout and schedule stay
the same. This module only translates core's :class:`~mlpipe.core.cluster.ContainerSpec` into
KubernetesPodOperator arguments (V1EnvVar with ``secretKeyRef``, V1ResourceRequirements, PVC or
emptyDir volumes, node selector, service account, namespace, security context).

No XCom between pods: each pod reads the earlier steps' ``result.json`` of the same run from the
shared volume or store (``mlpipe step`` does), so ``do_xcom_push`` stays off and tasks are
ordered by the DAG's explicit dependencies. The run id is the Jinja template
:data:`RUN_ID_TEMPLATE` (``conf['mlpipe_run_id']`` or Airflow's ``run_id``), which Airflow
renders per run and ``mlpipe step`` makes safe exactly as the in-process tasks do.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import models as k8s

from mlpipe.core.cluster import (
    CONTAINER_NAME,
    IMAGE_UID,
    ContainerSpec,
    pipeline_containers,
    step_container,
)
from mlpipe.core.config import PipelineConfig, config_from_json
from mlpipe.core.pipeline import Pipeline
from mlpipe.core.pipelines import get_pipeline

from .dags import CONF_RUN_ID, StepTaskSpec

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

    pipeline = get_pipeline(spec.pipeline)
    config = config_from_json(spec.config_json)
    container = step_container(pipeline, spec.step.name, config, RUN_ID_TEMPLATE)
    op = KubernetesPodOperator(task_id=spec.step.name, doc_md=spec.step.description,
                               **operator_kwargs(container))
    return op.output


def render_cluster(pipeline: Pipeline, config: PipelineConfig, out_dir: Path) -> list[Path]:
    """Build the cluster-mode DAG and write each task's pod (``<pipeline>-<step>.pod.yaml``,
    as KubernetesPodOperator would create it, templates not yet rendered) and the DAG's shape
    (``<pipeline>.dag.yaml``). No cluster is contacted: a dummy kubeconfig is used."""
    from kubernetes.client import ApiClient

    from .dags import build_dag

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.runtime.mode != "kubernetes":
        config = config.model_copy(
            update={"runtime": config.runtime.model_copy(update={"mode": "kubernetes"})})
    pipeline_containers(pipeline, config, RUN_ID_TEMPLATE)  # fail on bad settings before Airflow
    dag = build_dag(pipeline, config)
    paths: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="mlpipe-kubeconfig-") as tmp:
        kubeconfig = Path(tmp) / "config"
        kubeconfig.write_text(yaml.safe_dump(_DUMMY_KUBECONFIG))
        for step in pipeline.steps:
            op: Any = dag.get_task(step.name)
            op.config_file = str(kubeconfig)
            pod = op.build_pod_request_obj(context=None)
            body = ApiClient().sanitize_for_serialization(pod)
            path = out_dir / f"{pipeline.name}-{step.name}.pod.yaml"
            path.write_text(yaml.safe_dump(body, sort_keys=False, width=120))
            paths.append(path)
    shape = {
        "dag_id": dag.dag_id,
        "schedule": config.runtime.schedule,
        "run_id": f"{RUN_ID_TEMPLATE} (made safe by `mlpipe step`)",
        "tasks": [{"task_id": t, "operator": type(dag.get_task(t)).__name__,
                   "upstream": sorted(dag.get_task(t).upstream_task_ids),
                   "retries": dag.get_task(t).retries,
                   "pod": f"{pipeline.name}-{t}.pod.yaml"} for t in _ordered(dag, pipeline)],
    }
    path = out_dir / f"{pipeline.name}.dag.yaml"
    path.write_text(yaml.safe_dump(shape, sort_keys=False, width=120))
    return [*paths, path]


def _ordered(dag: Any, pipeline: Pipeline) -> Sequence[str]:
    return [s.name for s in pipeline.steps if s.name in dag.task_ids]


#: A kubeconfig that names a cluster nobody dials: building a pod request reads it, no more.
_DUMMY_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "render",
    "clusters": [{"name": "render", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "render", "user": {"token": "not-a-secret"}}],
    "contexts": [{"name": "render", "context": {"cluster": "render", "user": "render"}}],
}
