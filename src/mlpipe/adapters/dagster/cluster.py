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
"""

# No ``from __future__ import annotations``: Dagster reads the context annotation at runtime.

from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from mlpipe.core.cluster import ContainerSpec, pod_manifest, step_container
from mlpipe.core.config import PipelineSettings
from mlpipe.core.pipeline import Pipeline, Step, portable_ref

from .assets import (
    BUILT_IN,
    RUN_ID_TAG,
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


def location_env(pipeline: Pipeline) -> str:
    """``MLPIPE_PIPELINES=<ref> `` for a pipeline the code location does not serve by default."""
    ref = portable_ref(pipeline)
    return "" if ref in BUILT_IN else f"MLPIPE_PIPELINES={ref} "


def build_cluster_assets(pipeline: Pipeline, config: PipelineSettings) -> list[dg.AssetsDefinition]:
    return [cluster_asset(pipeline, step, config) for step in pipeline.steps]


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
        spec = step_container(pipeline, step.name, config, RUN_ID_PLACEHOLDER)
        pod = pod_body(spec, f"dagster-{RUN_ID_PLACEHOLDER}-{spec.name}")
        path = out_dir / f"{pipeline.name}-{step.name}.pod.yaml"
        path.write_text(yaml.safe_dump(pod, sort_keys=False, width=120))
        paths.append(path)
    job = {
        "job": job_name(pipeline.name),
        "code_location": "dagster dev -m mlpipe.adapters.dagster.definitions "
                         f"({location_env(pipeline)}{config_env(pipeline.name)}=<this config>)",
        "launcher": "dagster_k8s.PipesK8sClient (resource 'pipes_k8s'), one pod per asset",
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
