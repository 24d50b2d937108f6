"""Cluster mode for Kubeflow: the plan walk of the in-process mode, each task a kfp *container*
component running ``mlpipe step`` (:meth:`~mlpipe.core.execution.plan.TaskSpec.container`); a
shard list pod writes the shard numbers to its output parameter ``shards``. Pods pass nothing
through kfp (each reads the earlier tasks' ``result.json`` from the shared volume or store), so
tasks are ordered with ``.after()``; the run id is the kfp run name."""

from pathlib import Path
from typing import Any

from kfp import compiler, dsl, kubernetes

from mlpipe.adapters.kubeflow.walk import component_function, kfp_pipeline, walk
from mlpipe.core.cluster import RUN_ID_SLOT, SHARD_SLOT, ContainerSpec
from mlpipe.core.config import PipelineSettings
from mlpipe.core.execution.plan import TaskSpec
from mlpipe.core.execution.plan import plan as core_plan
from mlpipe.core.pipeline import Pipeline
from mlpipe.core.render import write_yaml

#: The shard list component's output parameter, and the slot its file path fills.
PLAN_OUTPUT = "shards"
_PLAN_OUT = "<<mlpipe-plan-out>>"


def _component(task: TaskSpec, spec: ContainerSpec) -> Any:
    """The task's container component: its arguments (the run id; a shard's number, a list's
    output file) fill the spec's slots. kfp.local runs no ParallelFor over its output."""
    slots = {"run_id": RUN_ID_SLOT, "shard": SHARD_SLOT, PLAN_OUTPUT: _PLAN_OUT}
    args = [("run_id", "str")]
    if task.kind == "shard":
        args.append(("shard", "int"))
    if task.kind == "shard_list":
        args.append((PLAN_OUTPUT, "OutputPath(list)"))

    def fill(values: dict[str, Any]) -> dsl.ContainerSpec:
        filled = {slots[name]: value for name, value in values.items()}
        return dsl.ContainerSpec(image=spec.image, command=list(spec.command),
                                 args=[filled.get(a, a) for a in spec.args])

    namespace = {"fill": fill, "OutputPath": dsl.OutputPath}
    return dsl.container_component(
        component_function(task, args, "", "    return fill(locals())\n", namespace))


def apply_container_spec(task: Any, spec: ContainerSpec) -> None:
    """Everything of the pod but image/command/args (and the plan's retries, timeout and kfp
    caching, which :func:`~.walk.walk` sets), set on a kfp task."""
    if "cpu" in spec.requests:
        task.set_cpu_request(spec.requests["cpu"]).set_cpu_limit(spec.limits["cpu"])
    if "memory" in spec.requests:
        task.set_memory_request(spec.requests["memory"]).set_memory_limit(spec.limits["memory"])
    if spec.gpu:
        task.set_accelerator_type(spec.gpu_resource).set_accelerator_limit(spec.gpu)
    for name, value in spec.env.items():
        task.set_env_variable(name, value)
    for ref in spec.secret_env:
        kubernetes.use_secret_as_env(task, secret_name=ref.secret,
                                     secret_key_to_env={ref.key: ref.env})
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


def build_cluster_pipeline(pipeline: Pipeline, config: PipelineSettings) -> Any:
    """The kfp pipeline for cluster mode (no parameters: the config is in each pod's args)."""
    tasks = core_plan(pipeline, config)
    specs = {t.name: t.container(pipeline, plan_out=_PLAN_OUT) for t in tasks}
    components = {t.name: _component(t, specs[t.name]) for t in tasks}

    def pipeline_fn() -> None:  # no kfp cache: the run id (kfp run name) is an input, so it would
        # never hit, and a hit would skip this run's step records; mlpipe's own cache works in pods
        made = walk(tasks, components, lambda task, made: {
            "run_id": dsl.PIPELINE_JOB_NAME_PLACEHOLDER}, PLAN_OUTPUT, cache=False)
        for name, kfp_task in made.items():
            apply_container_spec(kfp_task, specs[name])

    return kfp_pipeline(pipeline, pipeline_fn)


def render_cluster(pipeline: Pipeline, config: PipelineSettings, out_dir: Path) -> list[Path]:
    """Compile the cluster pipeline to ``<pipeline>.kfp.yaml`` and write the submission settings
    (namespace, service account) to ``<pipeline>.run.yaml``."""
    compiled = Path(out_dir) / f"{pipeline.name}.kfp.yaml"
    compiled.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_cluster_pipeline(pipeline, config),
                                package_path=str(compiled))
    cluster = config.cluster
    return [compiled, write_yaml(Path(out_dir) / f"{pipeline.name}.run.yaml", {
        "pipeline_package": compiled.name,
        "namespace": cluster.namespace,
        "service_account": cluster.service_account,
        "run_id": "the kfp run name ({{$.pipeline_job_name}}), made safe by `mlpipe step`",
        "submit": (f"kfp.Client(namespace={cluster.namespace!r}).create_run_from_pipeline_package("
                   f"{compiled.name!r}, service_account={cluster.service_account!r})"),
    })]
