"""Cluster mode: each task's pod through dagster-k8s Pipes (``PipesK8sClient``), not
``k8s_job_executor``, so the pod runs what every cluster mode runs (``mlpipe step``, core's
``pod_manifest``). Assets carry no value (pods read the run's records on the shared volume or
store); a map step's shard list pod (:mod:`.pipes_plan`) reports its list through Pipes."""

# No ``from __future__ import annotations``: Dagster reads the context annotation at runtime.

import dataclasses
from pathlib import Path
from typing import Any

import dagster as dg

from mlpipe.core.cluster import ContainerSpec, pod_manifest
from mlpipe.core.config import PipelineSettings
from mlpipe.core.execution.plan import TaskSpec, plan
from mlpipe.core.pipeline import Pipeline, portable_ref
from mlpipe.core.render import write_pods, write_yaml
from mlpipe.core.served import BUILT_IN, config_env

from . import pipes_plan
from .assets import PIPES_KEY, RUN_ID_TAG, dagster_name, job_name, mlpipe_run_id

#: What the rendered specs show where the asset puts the run's id at run time.
RUN_ID_PLACEHOLDER = "{{dagster_run_id}}"


def _container(pipeline: Pipeline, task: TaskSpec, run_id: str, shard: int | None
               ) -> ContainerSpec:
    """The task's pod; a shard list pod runs :mod:`.pipes_plan`, which reports the list."""
    spec = task.container(pipeline).filled(run_id=run_id, shard=shard)
    listing = task.kind == "shard_list"
    return dataclasses.replace(spec, command=pipes_plan.COMMAND) if listing else spec


def run_pod(context: Any, pipeline: Pipeline, task: TaskSpec, shard: int | None,
            values: dict[str, Any]) -> list[int] | None:
    """The cluster body: the task's pod through Pipes; a shard list pod reports its list."""
    spec = _container(pipeline, task, mlpipe_run_id(context), shard)
    manifest = pod_manifest(spec)  # image and command live in its container: nothing overrides
    invocation = getattr(context.resources, PIPES_KEY).run(
        context=context, namespace=spec.namespace, base_pod_spec=manifest["spec"],
        base_pod_meta={"labels": manifest["metadata"]["labels"]})
    if task.kind != "shard_list":
        return None
    reported = invocation.get_custom_messages()
    shards = next((m["shards"] for m in reported if isinstance(m, dict) and "shards" in m), None)
    if shards is None:
        raise dg.Failure(description=f"{task.step}: the plan pod reported no shard list")
    return [int(s) for s in shards]


def render_cluster(pipeline: Pipeline, config: PipelineSettings, out_dir: Path) -> list[Path]:
    """Each plan task's pod (core's manifest, which ``PipesK8sClient`` submits adding its own
    labels and the Pipes bootstrap env at run time) and ``<pipeline>.dagster.yaml`` (the job:
    assets in order, their deps, the resource and how the run id is chosen)."""

    def body(task: TaskSpec, shard: int | None) -> dict[str, Any]:
        spec = _container(pipeline, task, RUN_ID_PLACEHOLDER, shard)
        return pod_manifest(spec, f"dagster-{RUN_ID_PLACEHOLDER}-{spec.name}")

    paths = write_pods(plan(pipeline, config), config, Path(out_dir), body)
    ref = portable_ref(pipeline)  # the code location serves the built-in ones unasked
    location = "" if ref in BUILT_IN else f"MLPIPE_PIPELINES={ref} "
    job = {
        "job": job_name(pipeline.name),
        "code_location": "dagster dev -m mlpipe.adapters.dagster.definitions "
                         f"({location}{config_env(pipeline.name)}=<this config>)",
        "launcher": f"dagster_k8s.PipesK8sClient (resource '{PIPES_KEY}'): a pod per task",
        "run_id": f"run tag '{RUN_ID_TAG}' if set, else the Dagster run id; "
                  f"{RUN_ID_PLACEHOLDER} in the pod files",
        "namespace": config.cluster.namespace,
        "assets": [{"asset": dagster_name(step.asset), "step": step.name,
                    "deps": [dagster_name(pipeline.step(s).asset) for s in step.upstream],
                    "pod": f"{pipeline.name}-{step.name}.pod.yaml"} for step in pipeline.steps],
    }
    return [*paths, write_yaml(Path(out_dir) / f"{pipeline.name}.dagster.yaml", job)]
