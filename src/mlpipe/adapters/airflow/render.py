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

from mlpipe.core.cluster import pipeline_containers, rendered_shards
from mlpipe.core.config import PipelineSettings
from mlpipe.core.execution.plan import Plan, plan
from mlpipe.core.pipeline import Pipeline

from .dags import build_dag
from .kubernetes import RUN_ID_TEMPLATE, pod_task

#: A kubeconfig that names a cluster nobody dials: building a pod request reads it, no more.
DUMMY_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "render",
    "clusters": [{"name": "render", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "render", "user": {"token": "not-a-secret"}}],
    "contexts": [{"name": "render", "context": {"cluster": "render", "user": "render"}}],
}


def _task_pods(dag: Any, tasks: Plan, config: PipelineSettings) -> dict[str, Any]:
    """file stem -> the operator that makes that pod: one per plan task; a shard task's mapped
    operator unmapped as Airflow does it, for ``rendered_shards`` shards, with the arguments
    made by the expand's own map function."""
    ops: dict[str, Any] = {}
    for task in tasks:
        op = dag.get_task(task.name)
        if task.kind != "shard":
            ops[task.name] = op
            continue
        expanded = op.expand_input.value["arguments"]  # listing.output.map(...)
        for shard in range(rendered_shards(tasks.pipeline, task.step, config)):
            args: Any = shard
            for fn in expanded.callables:
                args = fn(args)
            ops[f"{task.name}-{shard:04d}"] = op.unmap({"arguments": args})
    return ops


def render_cluster(pipeline: Pipeline, config: PipelineSettings, out_dir: Path) -> list[Path]:
    """Write each task's pod (``<pipeline>-<step>.pod.yaml``, as KubernetesPodOperator would
    create it, templates not yet rendered; one per plan task, ``<step>__shard-NNNN`` per
    shard) and the DAG's shape (``<pipeline>.dag.yaml``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.runtime.mode != "kubernetes":
        runtime = config.runtime.model_copy(update={"mode": "kubernetes"})
        config = config.model_copy(update={"runtime": runtime})
    pipeline_containers(pipeline, config, RUN_ID_TEMPLATE)  # fail on bad settings before Airflow
    dag = build_dag(pipeline, config, translation=pod_task)
    tasks = plan(pipeline, config)
    paths: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="mlpipe-kubeconfig-") as tmp:
        kubeconfig = Path(tmp) / "config"
        kubeconfig.write_text(yaml.safe_dump(DUMMY_KUBECONFIG))
        for stem, op in _task_pods(dag, tasks, config).items():
            op.config_file = str(kubeconfig)
            body = ApiClient().sanitize_for_serialization(op.build_pod_request_obj(context=None))
            path = out_dir / f"{pipeline.name}-{stem}.pod.yaml"
            path.write_text(yaml.safe_dump(body, sort_keys=False, width=120))
            paths.append(path)
    shape = {
        "dag_id": dag.dag_id,
        "schedule": config.runtime.schedule,
        "run_id": f"{RUN_ID_TEMPLATE} (made safe by `mlpipe step`)",
        "tasks": [_task_shape(pipeline.name, dag.get_task(name), tasks) for name in tasks.names],
    }
    path = out_dir / f"{pipeline.name}.dag.yaml"
    path.write_text(yaml.safe_dump(shape, sort_keys=False, width=120))
    return [*paths, path]


def _task_shape(pipeline: str, task: Any, tasks: Plan) -> dict[str, Any]:
    mapped = type(task).__name__ == "MappedOperator"
    shape: dict[str, Any] = {
        "task_id": task.task_id,
        "operator": task.operator_name if mapped else type(task).__name__,
        "upstream": sorted(task.upstream_task_ids),
        "retries": task.retries,
        "pod": f"{pipeline}-{task.task_id}{'-NNNN' if mapped else ''}.pod.yaml",
    }
    if mapped:
        listing = [u for u in tasks.task(task.task_id).upstream
                   if tasks.task(u).kind == "shard_list"]
        shape["expand"] = "arguments, over the shard list in the XCom of " + listing[0]
    return shape
