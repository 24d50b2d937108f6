"""mlpipe pipelines as kfp v2 pipelines: core's plan walked once (:func:`walk`), each task one
component, in either mode. In process, a Python component whose *source* kfp ships to the pod
(typed artifacts in and out, body :func:`~.task.run_task`). In cluster mode
(``runtime.mode: kubernetes``), a container component running ``mlpipe step``
(:meth:`~mlpipe.core.execution.plan.TaskSpec.container`), the rest of its pod through
kfp-kubernetes; pods pass nothing through kfp but the shard list (each reads the earlier tasks'
records from the shared volume or store), and the run id is the kfp run name."""

import json
import keyword
import linecache
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kfp import compiler, dsl, kubernetes
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output
from kfp.dsl.utils import maybe_rename_for_k8s

from mlpipe.adapters.kubeflow.task import task_inputs
from mlpipe.core.cluster import RUN_ID_SLOT, SHARD_SLOT, ContainerSpec
from mlpipe.core.config import PipelineSettings
from mlpipe.core.errors import ConfigError
from mlpipe.core.execution.plan import Plan, TaskSpec
from mlpipe.core.execution.plan import plan as core_plan
from mlpipe.core.pipeline import Pipeline, Step, portable_ref
from mlpipe.core.refs import Ref
from mlpipe.core.render import write_yaml

#: kfp's artifact type per ``Ref.artifact_type``; the artifact's file holds the reference JSON.
ARTIFACTS: dict[str, type[dsl.Artifact]] = {"dataset": Dataset, "model": Model}
PARAMS = ("config_json", "mlpipe_home", "run_id", "job_name")  # every component's parameters
#: What the components' annotations name.
_NAMESPACE = {"Input": Input, "Output": Output, "List": list,
              **{t.__name__: t for t in (Artifact, ClassificationMetrics, Dataset, Metrics, Model)}}
#: The shard list component's output parameter, and the slot its file path fills.
PLAN_OUTPUT = "shards"
_PLAN_OUT = "<<mlpipe-plan-out>>"


def function_name(task: TaskSpec) -> str:
    """The component function's name for a plan task (kfp names the component and task by it)."""
    name = "".join(c if c.isalnum() else "_" for c in task.name)
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"step_{name}"


def component_function(task: TaskSpec, args: list[tuple[str, str]], returns: str, body: str,
                       namespace: dict[str, Any]) -> Callable[..., Any]:
    """A plan task's component function, written as source: ``args`` (name, annotation in
    ``namespace``), the task's description, ``body``. kfp reads its signature, and ships a Python
    component's source to the pod: kept in :mod:`linecache` for ``inspect.getsource``."""
    names = [a for a, _ in args]
    bad = [a for a in names if names.count(a) > 1 or not a.isidentifier() or keyword.iskeyword(a)]
    if bad:
        raise ConfigError(f"task {task.name}: {bad[0]!r} cannot name an argument of its kfp "
                          "component (not an identifier, or taken): rename the step's asset")
    signature = "".join(f"    {a}: {t},\n" for a, t in args)
    source = (f"def {function_name(task)}(\n{signature}){returns}:\n"
              f"    {json.dumps(task.description)}\n{body}")
    filename = f"<mlpipe-kfp {task.name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    return namespace[function_name(task)]


def kfp_names(tasks: Plan) -> dict[str, str]:
    """Plan task -> the kfp task that runs it; ConfigError when two would share a kfp name."""
    names = {t.name: maybe_rename_for_k8s(function_name(t)) for t in tasks}
    if len(set(names.values())) != len(names):
        raise ConfigError(f"pipeline {tasks.pipeline.name}: task names clash as kfp tasks: "
                          f"{sorted(names.values())}")
    return names


def walk(tasks: Plan, components: Mapping[str, Any],
         inputs: Callable[[TaskSpec, dict[str, Any]], dict[str, Any]], listed: str,
         cache: bool) -> dict[str, Any]:
    """The plan walk both modes translate: each task's component called in plan order on
    ``inputs(task, made)`` (``made``: plan task -> kfp task so far), after its upstream tasks (a
    shard: in a ``ParallelFor`` over its list's output ``listed``); core's retries, timeout and
    whether a cache may serve it (and ``cache``: kfp's cache is on) on every task."""
    kfp_names(tasks)  # refuses names that clash as kfp tasks
    made: dict[str, Any] = {}
    for task in tasks:
        component, args = components[task.name], inputs(task, made)
        if task.kind == "shard":
            with dsl.ParallelFor(made[task.upstream[0]].outputs[listed]) as shard:
                kfp_task = made[task.name] = component(**args, shard=shard)
        else:
            kfp_task = made[task.name] = component(**args).after(*(made[u] for u in task.upstream))
        kfp_task.set_display_name({"shard_list": f"{task.step} shards",
                                   "shard": f"{task.step} shard"}.get(task.kind, task.name))
        if task.retries:
            kfp_task.set_retry(num_retries=task.retries,
                               backoff_duration=f"{int(task.retry_delay_s)}s")
        kubernetes.set_timeout(kfp_task, int(task.timeout_s))  # the pod's activeDeadlineSeconds
        kfp_task.set_caching_options(enable_caching=cache and task.cacheable)
    return made


def kfp_pipeline(pipeline: Pipeline, fn: Callable[..., Any]) -> Any:
    return dsl.pipeline(name=f"mlpipe-{pipeline.name}",
                        description=pipeline.description or None)(fn)


def step_outputs(step: Step) -> dict[str, type[dsl.Artifact]]:
    """A step's kfp outputs, typed by the reference its function returns: the reference, and
    where that kind has them, its own metrics and a confusion matrix."""
    ref = step.returns
    outputs = {step.asset: ARTIFACTS.get(ref.artifact_type, Artifact)}
    if ref.has_own_metrics():
        outputs["metrics"] = Metrics
    if ref.confusion_matrix is not Ref.confusion_matrix:  # the kind has one
        outputs["confusion_matrix"] = ClassificationMetrics
    return outputs


def python_component(ref: str, task: TaskSpec, pipeline: Pipeline, image: str) -> Any:
    """One plan task's Python component: upstream artifacts in, the task's outputs out (a shard
    list returns the shard numbers), all to ``run_task`` with the pipeline's portable ``ref``. No
    pip installs at run time: the image (or venv) has mlpipe."""

    def art(step: str) -> str:
        return next(iter(step_outputs(pipeline.step(step)).values())).__name__

    args = [(p, "str") for p in PARAMS]
    args += [(a, f"Input[{art(s)}]") for a, s in task_inputs(pipeline, task).items()]
    if task.kind == "gather":  # the shards' outputs: what makes the gather wait for the loop
        args.append(("shard_results", f"Input[List[{art(task.step)}]]"))
    if task.kind == "shard":
        args.append(("shard", "int"))
    if task.kind == "group":
        args += [(pipeline.step(s).asset, f"Output[{art(s)}]") for s in task.steps]
    elif task.kind != "shard_list":
        outputs = step_outputs(pipeline.step(task.step))
        args += [(name, f"Output[{kind.__name__}]") for name, kind in outputs.items()]
    body = ("    from mlpipe.adapters.kubeflow.task import run_task\n"
            f"    return run_task({ref!r}, {task.name!r}, locals())\n")
    returns = " -> List[int]" if task.kind == "shard_list" else ""
    fn = component_function(task, args, returns, body, dict(_NAMESPACE))
    return dsl.component(fn, base_image=image, packages_to_install=[], install_kfp_package=False)


def build_pipeline(pipeline: Pipeline, config: PipelineSettings, *, home: str = "",
                   run_id: str = "", env: Mapping[str, str] | None = None) -> Any:
    """The kfp pipeline: parameters ``config_json`` (defaults to ``config``), ``mlpipe_home``
    (empty = ``$MLPIPE_HOME`` or ``./.mlpipe`` where the step runs) and ``run_id`` (empty = the
    kfp run name); one component per plan task in ``cluster.image`` (mlpipe installed; kfp.local
    ignores it), ``env`` in each one's environment (a local run's import path)."""
    if config.runtime.mode == "kubernetes":
        return build_cluster_pipeline(pipeline, config)
    tasks = core_plan(pipeline, config)  # refuses a config of another pipeline
    ref = portable_ref(pipeline)
    components = {t.name: python_component(ref, t, pipeline, config.cluster.image) for t in tasks}
    last = pipeline.steps[-1]

    # kfp reads parameter names, types and defaults from the signature: build a real one.
    def pipeline_fn(config_json: str = config.model_dump_json(), mlpipe_home: str = home,
                    run_id: str = run_id):
        params = {"config_json": config_json, "mlpipe_home": mlpipe_home, "run_id": run_id,
                  "job_name": dsl.PIPELINE_JOB_NAME_PLACEHOLDER}

        def inputs(task: TaskSpec, made: dict[str, Any]) -> dict[str, Any]:
            args = {a: made[task.sources[s]].outputs[pipeline.step(s).asset]
                    for a, s in task_inputs(pipeline, task).items()}
            if task.kind == "gather":  # the shards' outputs, collected outside their loop
                args["shard_results"] = dsl.Collected(
                    made[task.upstream[-1]].outputs[pipeline.step(task.step).asset])
            return {**params, **args}

        made = walk(tasks, components, inputs, "Output", config.runtime.cache)
        for kfp_task in made.values():
            for name, value in (env or {}).items():
                kfp_task.set_env_variable(name, value)
        return made[tasks.task_of(last.name).name].outputs[last.asset]

    pipeline_fn.__annotations__["return"] = next(iter(step_outputs(last).values()))
    return kfp_pipeline(pipeline, pipeline_fn)


def container_component(task: TaskSpec, spec: ContainerSpec) -> Any:
    """The task's container component: its arguments (the run id; a shard's number, a list's
    output file) fill the spec's slots. kfp.local runs no ParallelFor over its output."""
    slots = {"run_id": RUN_ID_SLOT, "shard": SHARD_SLOT, PLAN_OUTPUT: _PLAN_OUT}
    own = {"shard": [("shard", "int")], "shard_list": [(PLAN_OUTPUT, "OutputPath(list)")]}
    args = [("run_id", "str"), *own.get(task.kind, [])]

    def fill(values: dict[str, Any]) -> dsl.ContainerSpec:
        filled = {slots[name]: value for name, value in values.items()}
        return dsl.ContainerSpec(image=spec.image, command=list(spec.command),
                                 args=[filled.get(a, a) for a in spec.args])

    return dsl.container_component(component_function(task, args, "", "    return fill(locals())\n",
                                                      {"fill": fill, "OutputPath": dsl.OutputPath}))


def apply_container_spec(task: Any, spec: ContainerSpec) -> None:
    """Everything of the pod but image/command/args (and the plan's retries, timeout and kfp
    caching, which :func:`walk` sets), set on a kfp task."""
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
    kubernetes.set_security_context(task, run_as_user=spec.run_as_user,
                                    run_as_group=spec.run_as_user, run_as_non_root=True)


def build_cluster_pipeline(pipeline: Pipeline, config: PipelineSettings) -> Any:
    """The kfp pipeline for cluster mode (no parameters: the config is in each pod's args)."""
    tasks = core_plan(pipeline, config)
    specs = {t.name: t.container(pipeline, plan_out=_PLAN_OUT) for t in tasks}
    components = {t.name: container_component(t, specs[t.name]) for t in tasks}

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


def compile_pipeline(pipeline: Pipeline, config: PipelineSettings, output: Path) -> Path:
    """Write the kfp pipeline YAML for ``pipeline``, ``config`` its default parameters (configs
    hold no secrets: tokens come from the pod's environment)."""
    output = Path(output)
    if output.suffix not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"output: kfp writes .yaml (or .json) files, not {output.name!r}")
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(pipeline, config), package_path=str(output))
    return output
