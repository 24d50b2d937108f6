"""``mlpipe render airflow``: the cluster-mode DAG and, contacting no cluster, each pod its
KubernetesPodOperator would request (a mapped shard task unmapped as Airflow does it).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiClient

from mlpipe.core.config import PipelineSettings
from mlpipe.core.execution.plan import TaskSpec, plan
from mlpipe.core.pipeline import Pipeline
from mlpipe.core.render import write_pods, write_yaml

from .dags import build_dag
from .kubernetes import RUN_ID_TEMPLATE

#: A kubeconfig that names a cluster nobody dials: building a pod request reads it, no more.
DUMMY_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "render",
    "clusters": [{"name": "render", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "render", "user": {"token": "not-a-secret"}}],
    "contexts": [{"name": "render", "context": {"cluster": "render", "user": "render"}}],
}


def render_cluster(pipeline: Pipeline, config: PipelineSettings, out_dir: Path) -> list[Path]:
    """Each plan task's pod as KubernetesPodOperator would create it (templates not yet
    rendered) and the DAG's shape (``<pipeline>.dag.yaml``)."""
    pods = config.runtime.model_copy(update={"mode": "kubernetes"})  # the pod translation
    config = config.model_copy(update={"runtime": pods})
    dag, tasks = build_dag(pipeline, config), plan(pipeline, config)  # bad settings: ConfigError
    with tempfile.TemporaryDirectory(prefix="mlpipe-kubeconfig-") as tmp:
        kubeconfig = Path(tmp) / "config"
        kubeconfig.write_text(yaml.safe_dump(DUMMY_KUBECONFIG))

        def body(task: TaskSpec, shard: int | None) -> dict[str, Any]:
            op: Any = dag.get_task(task.name)
            if shard is not None:
                args: Any = shard
                for fn in op.expand_input.value["arguments"].callables:  # listing.output.map
                    args = fn(args)
                op = op.unmap({"arguments": args})
            op.config_file = str(kubeconfig)
            pod: Any = op.build_pod_request_obj(context=None)
            return ApiClient().sanitize_for_serialization(pod)

        paths = write_pods(tasks, config, Path(out_dir), body)
    shape = {"dag_id": dag.dag_id, "schedule": config.runtime.schedule,
             "run_id": f"{RUN_ID_TEMPLATE} (made safe by `mlpipe step`)",
             "tasks": [_task_shape(pipeline.name, dag.get_task(t.name), t) for t in tasks]}
    return [*paths, write_yaml(Path(out_dir) / f"{pipeline.name}.dag.yaml", shape)]


def _task_shape(pipeline: str, op: Any, task: TaskSpec) -> dict[str, Any]:
    mapped = task.kind == "shard"
    shape: dict[str, Any] = {
        "task_id": op.task_id, "operator": op.operator_name if mapped else type(op).__name__,
        "upstream": sorted(op.upstream_task_ids), "retries": op.retries,
        "pod": f"{pipeline}-{op.task_id}{'-NNNN' if mapped else ''}.pod.yaml"}
    if mapped:
        shape["expand"] = f"arguments, over the shard list in the XCom of {task.upstream[0]}"
    return shape
