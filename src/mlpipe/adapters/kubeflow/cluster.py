"""Cluster mode for Kubeflow: one kfp *container* component per step, running ``mlpipe step``.

Translates core's :class:`~mlpipe.core.cluster.ContainerSpec` only: image, command and args
become a ``dsl.ContainerSpec``; resources become the task's cpu/memory requests and limits and
accelerator settings; Secrets, the PVC (or an emptyDir when object storage carries the data), the
node selector, labels, image pull policy, security context and timeout go through kfp-kubernetes.
Steps pass nothing to each other through kfp: each pod reads the earlier steps' ``result.json``
of the same run from the shared volume or store, so tasks are ordered with ``.after()``.

A map step is one pod per shard: ``<step>-shards`` (the plan pod) writes the shard list to its
output parameter ``shards``, a ``dsl.ParallelFor`` over it runs ``<step>-shard`` once per shard
(``--shard`` from the loop item, the step's resources) and ``<step>`` gathers them after the loop.

The run id is the kfp run name (``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``), fed to every component as
its one input ``run_id``. Namespace and service account are not part of a kfp pipeline: they are
chosen when the run is submitted, so ``render_cluster`` writes them next to the YAML.
"""

# No ``from __future__ import annotations``: kfp reads the component signature's real types.

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler, dsl, kubernetes

from mlpipe.core.cluster import ContainerSpec, pipeline_containers, step_container
from mlpipe.core.config import PipelineSettings
from mlpipe.core.pipeline import Pipeline

#: Stands for the run id while building the specs; replaced by the component input ``run_id``.
_RUN_ID = "<<mlpipe-run-id>>"
#: How the component's ``run_id`` input appears in the compiled container args.
RUN_ID_ARG = "{{$.inputs.parameters['run_id']}}"
#: Stand for a shard pod's shard and the plan pod's output file; replaced by the component's
#: ``shard`` input and ``shards`` output parameter.
_SHARD = "<<mlpipe-shard>>"
#: The plan component's output parameter: the shard list.
PLAN_OUTPUT = "shards"
_PLAN_OUT = "<<mlpipe-plan-out>>"


def _component(spec: ContainerSpec, description: str) -> Callable[..., Any]:
    """A container component whose args are the spec's, with the run id as its one input."""

    def component(run_id: str) -> dsl.ContainerSpec:
        args = [run_id if a == _RUN_ID else a for a in spec.args]
        return dsl.ContainerSpec(image=spec.image, command=list(spec.command), args=args)

    component.__name__ = spec.step
    component.__qualname__ = spec.step
    component.__doc__ = description
    return dsl.container_component(component)


def _plan_component(spec: ContainerSpec) -> Callable[..., Any]:
    """A map step's plan pod: its output parameter ``shards`` is the list ParallelFor runs over.

    KFP backends iterate over any list output; kfp.local 2.17 only over a Python component's
    return value (``Output``, a name container components may not use), so kfp.local cannot run
    this loop."""

    def component(run_id: str, shards: dsl.OutputPath(list)) -> dsl.ContainerSpec:  # type: ignore[valid-type]
        args = [{_RUN_ID: run_id, _PLAN_OUT: shards}.get(a, a) for a in spec.args]
        return dsl.ContainerSpec(image=spec.image, command=list(spec.command), args=args)

    return _named(component, f"{spec.step}_shards", f"The shards {spec.step} runs over")


def _shard_component(spec: ContainerSpec, description: str) -> Callable[..., Any]:
    """One shard of a map step: the run id and the shard (a ParallelFor item) as inputs."""

    def component(run_id: str, shard: int) -> dsl.ContainerSpec:
        args = [{_RUN_ID: run_id, _SHARD: shard}.get(a, a) for a in spec.args]
        return dsl.ContainerSpec(image=spec.image, command=list(spec.command), args=args)

    return _named(component, f"{spec.step}_shard", description)


def _named(component: Callable[..., Any], name: str, doc: str) -> Callable[..., Any]:
    component.__name__ = component.__qualname__ = name
    component.__doc__ = doc
    return dsl.container_component(component)


def apply_container_spec(task: Any, spec: ContainerSpec) -> None:
    """Everything of the pod but image/command/args, set on a kfp task."""
    if "cpu" in spec.requests:
        task.set_cpu_request(spec.requests["cpu"]).set_cpu_limit(spec.limits["cpu"])
    if "memory" in spec.requests:
        task.set_memory_request(spec.requests["memory"]).set_memory_limit(spec.limits["memory"])
    if spec.gpu:
        task.set_accelerator_type(spec.gpu_resource).set_accelerator_limit(spec.gpu)
    for name, value in spec.env.items():
        task.set_env_variable(name, value)
    by_secret: dict[str, dict[str, str]] = {}
    for ref in spec.secret_env:
        by_secret.setdefault(ref.secret, {})[ref.key] = ref.env
    for secret, keys in by_secret.items():
        kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=keys)
    for volume in spec.volumes:
        if volume.claim is None:
            kubernetes.empty_dir_mount(task, volume_name=volume.name, mount_path=volume.mount_path)
        else:
            kubernetes.mount_pvc(task, pvc_name=volume.claim, mount_path=volume.mount_path)
    for key, value in spec.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for key, value in spec.labels.items():
        kubernetes.add_pod_label(task, label_key=key, label_value=value)
    kubernetes.set_image_pull_policy(task, spec.image_pull_policy)
    kubernetes.set_security_context(
        task, run_as_user=spec.run_as_user, run_as_group=spec.run_as_user, run_as_non_root=True
    )
    kubernetes.set_timeout(task, spec.timeout_s)
    if spec.retries:
        task.set_retry(num_retries=spec.retries, backoff_duration=f"{int(spec.retry_delay_s)}s")
    # The run id (kfp run name) is an input, so kfp's cache would never hit; a hit would also
    # skip writing this run's step directory. mlpipe's own step cache works inside the pod.
    task.set_caching_options(enable_caching=False)


def build_cluster_pipeline(pipeline: Pipeline, config: PipelineSettings) -> Any:
    """The kfp pipeline for cluster mode (no parameters: the config is in each step's args)."""
    specs = pipeline_containers(pipeline, config, _RUN_ID)
    components = {s.step: _component(s, pipeline.step(s.step).description) for s in specs}

    mapped = {s.name: (step_container(pipeline, s.name, config, _RUN_ID, part="plan",
                                      plan_out=_PLAN_OUT),
                       step_container(pipeline, s.name, config, _RUN_ID, part="shard",
                                      shard=_SHARD))
              for s in pipeline.steps if s.map_over}
    parts = {name: (_plan_component(plan), _shard_component(shard, pipeline.step(name).description))
             for name, (plan, shard) in mapped.items()}
    run_id = dsl.PIPELINE_JOB_NAME_PLACEHOLDER

    def pipeline_fn() -> None:
        tasks: dict[str, Any] = {}
        for spec in specs:
            after = [tasks[upstream] for upstream in pipeline.step(spec.step).upstream]
            if spec.step in mapped:  # plan, a ParallelFor of shard pods, then the gather pod
                plan_spec, shard_spec = mapped[spec.step]
                plan = parts[spec.step][0](run_id=run_id)
                plan.set_display_name(f"{spec.step} shards")
                for task in after:
                    plan.after(task)
                apply_container_spec(plan, plan_spec)
                with dsl.ParallelFor(plan.outputs[PLAN_OUTPUT]) as shard:
                    one = parts[spec.step][1](run_id=run_id, shard=shard)
                    one.set_display_name(f"{spec.step} shard")
                    apply_container_spec(one, shard_spec)
                after = [one]
            task = components[spec.step](run_id=run_id)
            task.set_display_name(spec.step)
            for upstream in after:
                task.after(upstream)
            apply_container_spec(task, spec)
            tasks[spec.step] = task

    pipeline_fn.__name__ = f"mlpipe_{pipeline.name}"
    return dsl.pipeline(name=f"mlpipe-{pipeline.name}",
                        description=pipeline.description or None)(pipeline_fn)


def render_cluster(pipeline: Pipeline, config: PipelineSettings, out_dir: Path) -> list[Path]:
    """Compile the cluster pipeline to ``<pipeline>.kfp.yaml`` and write the submission settings
    (namespace, service account) to ``<pipeline>.run.yaml``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    compiled = out_dir / f"{pipeline.name}.kfp.yaml"
    compiler.Compiler().compile(build_cluster_pipeline(pipeline, config),
                                package_path=str(compiled))
    cluster = config.cluster
    run = out_dir / f"{pipeline.name}.run.yaml"
    run.write_text(yaml.safe_dump({
        "pipeline_package": compiled.name,
        "namespace": cluster.namespace,
        "service_account": cluster.service_account,
        "run_id": "the kfp run name ({{$.pipeline_job_name}}), made safe by `mlpipe step`",
        "submit": (f"kfp.Client(namespace={cluster.namespace!r}).create_run_from_pipeline_package("
                   f"{compiled.name!r}, service_account={cluster.service_account!r})"),
    }, sort_keys=False))
    return [compiled, run]
