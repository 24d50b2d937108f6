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
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from mlpipe.core.cluster import ContainerSpec, pod_manifest, rendered_shards, step_container
from mlpipe.core.config import PipelineSettings
from mlpipe.core.pipeline import Pipeline, Step, portable_ref

from . import pipes_plan
from .assets import (
    BUILT_IN,
    RUN_ID_TAG,
    SHARD_IO_KEY,
    config_env,
    dagster_name,
    job_name,
    mlpipe_run_id,
    retry_policy,
)

PIPES_KEY = "pipes_k8s"
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


def cluster_asset(pipeline: Pipeline, step: Step, config: PipelineSettings) -> dg.AssetsDefinition:
    """One asset whose materialization is one pod running ``mlpipe step`` for ``step``."""
    step_container(pipeline, step.name, config, RUN_ID_PLACEHOLDER)  # bad settings fail at load

    @dg.asset(
        name=dagster_name(step.asset), group_name=dagster_name(pipeline.name),
        description=step.description,
        deps=[dagster_name(pipeline.step(source).asset) for source in step.upstream],
        required_resource_keys={PIPES_KEY}, retry_policy=retry_policy(config),
        kinds={"kubernetes"}, tags={"mlpipe/pipeline": dagster_name(pipeline.name)},
        metadata={"mlpipe/step": step.name, "mlpipe/image": config.cluster.image},
        op_tags={"mlpipe/step": step.name},
    )
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        run_id = mlpipe_run_id(context)
        spec = step_container(pipeline, step.name, config, run_id)
        client = getattr(context.resources, PIPES_KEY)
        invocation = client.run(context=context, **pod_arguments(spec))
        result: dg.MaterializeResult = invocation.get_materialize_result()
        meta = {"mlpipe/run_id": run_id, "image": spec.image, "namespace": spec.namespace}
        return dg.MaterializeResult(
            asset_key=result.asset_key, metadata={**meta, **(result.metadata or {})},
            check_results=result.check_results, data_version=result.data_version,
            tags=result.tags,
        )

    return _asset


def part_container(pipeline: Pipeline, step: str, config: PipelineSettings, run_id: str,
                   part: str, shard: int | None = None) -> ContainerSpec:
    """One pod of a map step; the plan pod runs :mod:`.pipes_plan` to report its list."""
    spec = step_container(pipeline, step, config, run_id, part=part, shard=shard)
    return dataclasses.replace(spec, command=pipes_plan.COMMAND) if part == "plan" else spec


def mapped_cluster_asset(
    pipeline: Pipeline, step: Step, config: PipelineSettings
) -> dg.AssetsDefinition:
    """A map step as plan pod -> one pod per shard (dynamic outputs) -> gather pod."""
    for part in ("plan", "gather"):  # bad settings fail at load
        part_container(pipeline, step.name, config, RUN_ID_PLACEHOLDER, part)
    name = dagster_name(step.name)
    after = {f"after_{dagster_name(s)}": dagster_name(pipeline.step(s).asset)
             for s in step.upstream}
    tags = {"mlpipe/step": step.name}

    def launch(context: dg.OpExecutionContext, spec: ContainerSpec) -> Any:
        return getattr(context.resources, PIPES_KEY).run(context=context, **pod_arguments(spec))

    @dg.op(name=f"{name}__shards", ins={k: dg.In(dg.Nothing) for k in after},
           out=dg.DynamicOut(int, io_manager_key=SHARD_IO_KEY),
           required_resource_keys={PIPES_KEY}, tags=tags)
    def plan(context: dg.OpExecutionContext) -> Iterator[dg.DynamicOutput[int]]:
        spec = part_container(pipeline, step.name, config, mlpipe_run_id(context), "plan")
        reported = launch(context, spec).get_custom_messages()
        shards = next((m["shards"] for m in reported if isinstance(m, dict) and "shards" in m),
                      None)
        if shards is None:
            raise dg.Failure(description=f"{step.name}: the plan pod reported no shard list")
        for shard in shards:
            yield dg.DynamicOutput(int(shard), mapping_key=f"shard_{int(shard):04d}")

    @dg.op(name=f"{name}__shard", out=dg.Out(int, io_manager_key=SHARD_IO_KEY),
           required_resource_keys={PIPES_KEY}, retry_policy=retry_policy(config), tags=tags)
    def run_shard(context: dg.OpExecutionContext, shard: int) -> dg.Output[int]:
        run_id = mlpipe_run_id(context)
        launch(context, part_container(pipeline, step.name, config, run_id, "shard", shard))
        return dg.Output(shard)  # after a Pipes session an op returns typed events only

    @dg.op(name=name, out=dg.Out(io_manager_key=SHARD_IO_KEY),
           required_resource_keys={PIPES_KEY}, tags=tags)
    def gather(context: dg.OpExecutionContext, shards: list[int]) -> dg.Output[dict[str, Any]]:
        run_id = mlpipe_run_id(context)
        launch(context, part_container(pipeline, step.name, config, run_id, "gather"))
        return dg.Output({"mlpipe/run_id": run_id, "shards": len(shards)},
                         metadata={"mlpipe/run_id": run_id, "mlpipe/shards": len(shards)})

    def compose(**upstream: Any) -> Any:
        return gather(plan(**upstream).map(run_shard).collect())

    compose.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(arg, inspect.Parameter.POSITIONAL_OR_KEYWORD) for arg in after])
    return dg.graph_asset(
        name=dagster_name(step.asset), group_name=dagster_name(pipeline.name),
        description=step.description, kinds={"kubernetes"},
        ins={arg: dg.AssetIn(key=asset, dagster_type=dg.Nothing) for arg, asset in after.items()},
        tags={"mlpipe/pipeline": dagster_name(pipeline.name)},
        metadata={"mlpipe/step": step.name, "mlpipe/image": config.cluster.image},
    )(compose)


def location_env(pipeline: Pipeline) -> str:
    """``MLPIPE_PIPELINES=<ref> `` for a pipeline the code location does not serve by default."""
    ref = portable_ref(pipeline)
    return "" if ref in BUILT_IN else f"MLPIPE_PIPELINES={ref} "


def build_cluster_assets(pipeline: Pipeline, config: PipelineSettings) -> list[dg.AssetsDefinition]:
    return [mapped_cluster_asset(pipeline, step, config) if step.map_over else
            cluster_asset(pipeline, step, config) for step in pipeline.steps]


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
    for step in pipeline.steps:
        pods = {step.name: step_container(pipeline, step.name, config, RUN_ID_PLACEHOLDER)}
        if step.map_over:  # the plan pod, one pod per shard, the gather pod
            parts: dict[str, tuple[str, int | None]] = {f"{step.name}__shards": ("plan", None)}
            parts.update({f"{step.name}__shard-{i:04d}": ("shard", i)
                          for i in range(rendered_shards(pipeline, step.name, config))})
            parts[step.name] = ("gather", None)
            pods = {stem: part_container(pipeline, step.name, config, RUN_ID_PLACEHOLDER,
                                         part, shard) for stem, (part, shard) in parts.items()}
        for stem, spec in pods.items():
            pod = pod_body(spec, f"dagster-{RUN_ID_PLACEHOLDER}-{spec.name}")
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
