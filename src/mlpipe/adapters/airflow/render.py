"""``mlpipe render airflow``: build the cluster-mode DAG and write what it would submit.

No cluster is contacted: each KubernetesPodOperator builds its pod request from a dummy
kubeconfig, and the V1Pod is written as YAML next to the DAG's shape.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiClient

from mlpipe.core.cluster import pipeline_containers
from mlpipe.core.config import PipelineSettings
from mlpipe.core.pipeline import Pipeline

from .dags import build_dag
from .kubernetes import RUN_ID_TEMPLATE, pod_task_factory

#: A kubeconfig that names a cluster nobody dials: building a pod request reads it, no more.
DUMMY_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "render",
    "clusters": [{"name": "render", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "render", "user": {"token": "not-a-secret"}}],
    "contexts": [{"name": "render", "context": {"cluster": "render", "user": "render"}}],
}


def render_cluster(pipeline: Pipeline, config: PipelineSettings, out_dir: Path) -> list[Path]:
    """Write each task's pod (``<pipeline>-<step>.pod.yaml``, as KubernetesPodOperator would
    create it, templates not yet rendered) and the DAG's shape (``<pipeline>.dag.yaml``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.runtime.mode != "kubernetes":
        runtime = config.runtime.model_copy(update={"mode": "kubernetes"})
        config = config.model_copy(update={"runtime": runtime})
    pipeline_containers(pipeline, config, RUN_ID_TEMPLATE)  # fail on bad settings before Airflow
    dag = build_dag(pipeline, config, task_factory=pod_task_factory)
    paths: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="mlpipe-kubeconfig-") as tmp:
        kubeconfig = Path(tmp) / "config"
        kubeconfig.write_text(yaml.safe_dump(DUMMY_KUBECONFIG))
        for step in pipeline.steps:
            op: Any = dag.get_task(step.name)
            op.config_file = str(kubeconfig)
            body = ApiClient().sanitize_for_serialization(op.build_pod_request_obj(context=None))
            path = out_dir / f"{pipeline.name}-{step.name}.pod.yaml"
            path.write_text(yaml.safe_dump(body, sort_keys=False, width=120))
            paths.append(path)
    shape = {
        "dag_id": dag.dag_id,
        "schedule": config.runtime.schedule,
        "run_id": f"{RUN_ID_TEMPLATE} (made safe by `mlpipe step`)",
        "tasks": [
            {
                "task_id": step.name,
                "operator": type(dag.get_task(step.name)).__name__,
                "upstream": sorted(dag.get_task(step.name).upstream_task_ids),
                "retries": dag.get_task(step.name).retries,
                "pod": f"{pipeline.name}-{step.name}.pod.yaml",
            }
            for step in pipeline.steps
        ],
    }
    path = out_dir / f"{pipeline.name}.dag.yaml"
    path.write_text(yaml.safe_dump(shape, sort_keys=False, width=120))
    return [*paths, path]
