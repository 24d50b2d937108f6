"""Cluster mode for Dagster: each asset launches its step as a pod running ``mlpipe step``.

Uses dagster-k8s Pipes (``PipesK8sClient``) rather than ``k8s_job_executor``: the executor would
run Dagster's own ``dagster api execute_step`` in every pod, whereas Pipes runs exactly the
command every other cluster mode runs, ``mlpipe step NAME ...`` in ``cluster.image``, with the
pod spec translated from core's :class:`~mlpipe.core.cluster.ContainerSpec` (``pod_manifest``).
The Dagster run (run worker) only creates the pods and waits; the run worker needs a kubeconfig
or an in-cluster service account allowed to create pods in ``cluster.namespace``.

Assets depend on their upstream assets (``deps``) and carry no value: each pod reads the earlier
steps' ``result.json`` of the same run from the shared volume or store. Blocking quality checks
are enforced inside the pod (``mlpipe step`` exits non-zero), which fails the asset.

A map step is a graph-backed asset whose ops each launch pods: ``<step>__shards`` runs the plan
pod (:mod:`.pipes_plan`, which reports the shard list through Pipes) and yields one dynamic
output per shard, ``<step>__shard`` is mapped over them (one pod per shard, the step's
resources, ``--shard I``; each retried on its own) and ``<step>`` runs the gather pod.
"""

# No ``from __future__ import annotations``: Dagster reads the context annotation at runtime.

import dataclasses
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from mlpipe.core.cluster import ContainerSpec, pod_manifest, rendered_shards
from mlpipe.core.config import PipelineSettings
from mlpipe.core.execution.plan import TaskSpec, plan
from mlpipe.core.pipeline import Pipeline, portable_ref

from . import pipes_plan
from .assets import (
    BUILT_IN,
    PIPES_KEY,
    RUN_ID_TAG,
    config_env,
    dagster_name,
    job_name,
    mlpipe_run_id,
    plan_assets,
)

#: What the rendered specs show where the asset puts the run's id at run time.
RUN_ID_PLACEHOLDER = "{{dagster_run_id}}"


def pipes_client() -> Any:
    """The default client: in-cluster config when running in a pod, else ``~/.kube/config``."""
    from dagster_k8s import PipesK8sClient

    return PipesK8sClient()


def pod_arguments(spec: ContainerSpec) -> dict[str, Any]:
    """``PipesK8sClient.run`` keyword arguments for one step (image and command live in the
    base pod spec's container, so nothing else overrides them)."""
    manifest = pod_manifest(spec)
    return {
        "namespace": spec.namespace,
        "base_pod_meta": {"labels": manifest["metadata"]["labels"]},
        "base_pod_spec": manifest["spec"],
    }


def run_pod(context: Any, pipeline: Pipeline, task: TaskSpec, shard: int | None,
            inputs: dict[str, Any]) -> list[int] | None:
    """The cluster body: the task's pod through Pipes; a shard list pod reports its list."""
    spec = task.container(pipeline).filled(run_id=mlpipe_run_id(context), shard=shard)
    if task.kind == "shard_list":
        spec = dataclasses.replace(spec, command=pipes_plan.COMMAND)
    invocation = getattr(context.resources, PIPES_KEY).run(context=context,
                                                            **pod_arguments(spec))
    if task.kind != "shard_list":
        return None
    reported = invocation.get_custom_messages()
    shards = next((m["shards"] for m in reported if isinstance(m, dict) and "shards" in m), None)
    if shards is None:
        raise dg.Failure(description=f"{task.step}: the plan pod reported no shard list")
    return [int(s) for s in shards]


def location_env(pipeline: Pipeline) -> str:
    """``MLPIPE_PIPELINES=<ref> `` for a pipeline the code location does not serve by default."""
    ref = portable_ref(pipeline)
    return "" if ref in BUILT_IN else f"MLPIPE_PIPELINES={ref} "


def build_cluster_assets(pipeline: Pipeline, config: PipelineSettings) -> list[Any]:
    tasks = plan(pipeline, config)
    for task in tasks:  # bad settings fail at load
        task.container(pipeline)
    return plan_assets(tasks, run_pod, pod=True)


def pod_body(spec: ContainerSpec, pod_name: str) -> dict[str, Any]:
    """The pod ``PipesK8sClient.run`` creates for ``spec`` (built by dagster-k8s itself), as a
    plain dict; the Pipes session's bootstrap env vars are added at run time."""
    import kubernetes
    from dagster_k8s.pipes import build_pod_body

    args = pod_arguments(spec)
    pod = build_pod_body(pod_name=pod_name, image=None, command=None, env_vars={},
                         base_pod_meta=args["base_pod_meta"], base_pod_spec=args["base_pod_spec"])
    body: dict[str, Any] = kubernetes.client.ApiClient().sanitize_for_serialization(pod)
    body.setdefault("metadata", {})["namespace"] = spec.namespace
    return {"apiVersion": "v1", "kind": "Pod", **body}


def render_cluster(pipeline: Pipeline, config: PipelineSettings, out_dir: Path) -> list[Path]:
    """Write ``<pipeline>-<step>.pod.yaml`` (each step's pod) and ``<pipeline>.dagster.yaml``
    (the job: assets in order, their deps, the resource and how the run id is chosen)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for task in plan(pipeline, config):
        spec = task.container(pipeline).filled(run_id=RUN_ID_PLACEHOLDER)
        if task.kind == "shard_list":
            spec = dataclasses.replace(spec, command=pipes_plan.COMMAND)
        pods = {task.name: spec}
        if task.kind == "shard":
            pods = {f"{task.name}-{i:04d}": spec.filled(shard=i)
                    for i in range(rendered_shards(pipeline, task.step, config))}
        for stem, each in pods.items():
            pod = pod_body(each, f"dagster-{RUN_ID_PLACEHOLDER}-{each.name}")
            path = out_dir / f"{pipeline.name}-{stem}.pod.yaml"
            path.write_text(yaml.safe_dump(pod, sort_keys=False, width=120))
            paths.append(path)
    job = {
        "job": job_name(pipeline.name),
        "code_location": "dagster dev -m mlpipe.adapters.dagster.definitions "
                         f"({location_env(pipeline)}{config_env(pipeline.name)}=<this config>)",
        "launcher": "dagster_k8s.PipesK8sClient (resource 'pipes_k8s'), one pod per asset; "
                    "a map step's asset: a plan pod, one pod per shard (dynamic outputs), a "
                    "gather pod",
        "run_id": f"run tag '{RUN_ID_TAG}' if set, else the Dagster run id; "
                  f"{RUN_ID_PLACEHOLDER} in the pod files",
        "namespace": config.cluster.namespace,
        "assets": [{"asset": dagster_name(step.asset), "step": step.name,
                    "deps": [dagster_name(pipeline.step(s).asset) for s in step.upstream],
                    "pod": f"{pipeline.name}-{step.name}.pod.yaml"} for step in pipeline.steps],
    }
    path = out_dir / f"{pipeline.name}.dagster.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False, width=120))
    return [*paths, path]
