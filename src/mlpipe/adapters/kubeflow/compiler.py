"""mlpipe pipelines as kfp v2 pipelines: one generated component per step, for any pipeline.

kfp's lightweight components ship their function's *source* to the pod, so a component cannot be
a closure over a ``Step``. Instead, for each step this module writes a short function source (typed
kfp inputs and outputs, body = one call to :func:`mlpipe.adapters.kubeflow.task.run_component`
with the pipeline's portable ref), registers it with :mod:`linecache` so ``inspect.getsource``
(which kfp uses) can read it, and wraps it with ``dsl.component``.
"""

import json
import keyword
import linecache
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp import compiler, dsl
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output
from kfp.dsl.utils import maybe_rename_for_k8s

from mlpipe.core.config import PipelineSettings
from mlpipe.core.errors import ConfigError
from mlpipe.core.execution.group import group_inputs, group_name, task_groups
from mlpipe.core.pipeline import Pipeline, Step, portable_ref
from mlpipe.core.refs import (
    ArtifactsRef,
    DatasetRef,
    ModelRef,
    ModelVersionRef,
    PredictionsRef,
    Ref,
    ResultsRef,
)

# The image a cluster run would use: mlpipe installed, so the body's import resolves. kfp.local's
# SubprocessRunner ignores it (it runs the same body with this interpreter).
DEFAULT_BASE_IMAGE = "mlpipe:latest"

# kfp artifact type per built-in reference type; any other reference is a plain ``Artifact``.
# The artifact's file holds the reference JSON.
ARTIFACT_TYPES: dict[type, type[dsl.Artifact]] = {
    DatasetRef: Dataset,
    ModelRef: Model,
    ArtifactsRef: Model,
    ModelVersionRef: Model,
    PredictionsRef: Dataset,
    ResultsRef: Dataset,
}
# Built-in references whose numbers go to a kfp Metrics artifact (the others repeat their
# upstream's metrics); other references get one when they have a ``metrics`` field.
METRICS_REFS: tuple[type, ...] = (ModelRef, PredictionsRef, ResultsRef)
# References that also get a ClassificationMetrics artifact (a confusion matrix, when labelled).
CLASSIFICATION_REFS: tuple[type, ...] = (ResultsRef,)

PARAMS = ("config_json", "mlpipe_home", "run_id")  # pipeline parameters every component takes
JOB_NAME_ARG = "job_name"  # the orchestrator's run name; the run id when run_id is empty
_NAMESPACE = {t.__name__: t for t in (Artifact, ClassificationMetrics, Dataset, Metrics, Model)}


@dataclass(frozen=True)
class ComponentPlan:
    """How one step appears in kfp: its main output's name and type, and extra outputs."""

    step: Step
    ref_type: type | None  # the step function's return annotation, when it is a class
    output: str  # the main output's name: the step's asset name
    artifact: type[dsl.Artifact]
    metrics: bool
    confusion: bool

    @property
    def function_name(self) -> str:
        """The generated function's name (kfp derives the component's name from it)."""
        name = "".join(c if c.isalnum() else "_" for c in self.step.name)
        return f"step_{name}" if not name.isidentifier() or keyword.iskeyword(name) else name

    @property
    def task_name(self) -> str:
        return maybe_rename_for_k8s(self.function_name)  # how kfp names the component and task


def _return_type(step: Step) -> type | None:
    try:
        hint = typing.get_type_hints(step.fn).get("return")
    except Exception:  # unresolvable annotations: the step is still runnable, just untyped
        return None
    return hint if isinstance(hint, type) else None


def _has_metrics(ref_type: type | None) -> bool:
    if ref_type is None:
        return False
    if ref_type in ARTIFACT_TYPES:
        return issubclass(ref_type, METRICS_REFS)
    return issubclass(ref_type, Ref) and "metrics" in ref_type.model_fields


def plan(pipeline: Pipeline) -> list[ComponentPlan]:
    """One ComponentPlan per step, typed from the step function's return annotation."""
    plans = []
    for step in pipeline.steps:
        ref_type = _return_type(step)
        taken = {*PARAMS, JOB_NAME_ARG, *step.inputs, "metrics", "confusion_matrix"}
        if step.asset in taken or not step.asset.isidentifier() or keyword.iskeyword(step.asset):
            raise ConfigError(f"step '{step.name}': asset name '{step.asset}' cannot name the "
                              "output of its kfp component (not an identifier, or taken)")
        plans.append(ComponentPlan(
            step=step, ref_type=ref_type, output=step.asset,
            artifact=ARTIFACT_TYPES.get(ref_type, Artifact) if ref_type else Artifact,
            metrics=_has_metrics(ref_type),
            confusion=ref_type is not None and issubclass(ref_type, CLASSIFICATION_REFS)))
    names = [p.task_name for p in plans]
    if len(set(names)) != len(names):
        raise ConfigError(f"pipeline {pipeline.name}: step names clash as kfp tasks: {names}")
    return plans


def component_source(
    ref: str, item: ComponentPlan, plans: dict[str, ComponentPlan], role: str = "step"
) -> str:
    """The Python source of one step's component, as it will appear in the pipeline YAML.

    ``ref`` is the pipeline's portable ref (a registered name or ``module:ATTR``), which the
    component's process resolves again. A map step has two: ``role="shard"`` (one shard, inside
    the ``ParallelFor``) and ``role="gather"`` (after it, taking the shards' collected outputs).
    """
    step = item.step
    args = [f"{p}: str" for p in (*PARAMS, JOB_NAME_ARG)]
    if role == "gather":
        args.append(f"shard_results: Input[List[{item.artifact.__name__}]]")
    else:
        args += [f"{arg}: Input[{plans[src].artifact.__name__}]"
                 for arg, src in step.inputs.items()]
    if role == "shard":
        args.append("shard: int")
    outputs = {"ref": item.output}
    args.append(f"{item.output}: Output[{item.artifact.__name__}]")
    if item.metrics:
        args.append("metrics: Output[Metrics]")
        outputs["metrics"] = "metrics"
    if item.confusion:
        args.append("confusion_matrix: Output[ClassificationMetrics]")
        outputs["confusion_matrix"] = "confusion_matrix"
    inputs = "" if role == "gather" else ", ".join(f"{a!r}: {a}" for a in step.inputs)
    outs = ", ".join(f"{k!r}: {v}" for k, v in outputs.items())
    extra = {"shard": ", shard=shard", "gather": ", gather=shard_results"}.get(role, "")
    signature = ",\n    ".join(args)
    name = item.function_name + ("_shard" if role == "shard" else "")
    return (
        f"def {name}(\n    {signature},\n):\n"
        f"    {json.dumps(step.description)}\n"
        "    from mlpipe.adapters.kubeflow.task import run_component\n"
        f"    run_component({ref!r}, {step.name!r}, config_json, mlpipe_home,\n"
        f"                  run_id or {JOB_NAME_ARG}, {{{inputs}}}, {{{outs}}},\n"
        f"                  orchestrator_run_id={JOB_NAME_ARG}{extra})\n"
    )


def lister_source(ref: str, item: ComponentPlan, plans: dict[str, ComponentPlan]) -> str:
    """A map step's first component, core's ``shard_list`` task: the shard numbers of what it
    maps over, for ParallelFor (a step whose upstream made no shards exits 2 naming it)."""
    mapped = plans[item.step.map_over or ""].artifact.__name__
    args = ",\n    ".join([f"{p}: str" for p in (*PARAMS, JOB_NAME_ARG)]
                          + [f"shards: Input[{mapped}]"])
    return (
        f"def {item.function_name}_shards(\n    {args},\n) -> List[int]:\n"
        "    from mlpipe.adapters.kubeflow.task import run_shard_list\n"
        f"    return run_shard_list({ref!r}, {item.step.name!r}, config_json, mlpipe_home,\n"
        f"                          run_id or {JOB_NAME_ARG}, {JOB_NAME_ARG})\n"
    )


def group_function_name(group: tuple[str, ...], plans: dict[str, ComponentPlan]) -> str:
    """A fused group's component function: its steps' function names joined."""
    return "__".join(plans[name].function_name for name in group)


def group_source(ref: str, group: tuple[str, ...], pipeline: Pipeline,
                 plans: dict[str, ComponentPlan]) -> str:
    """The source of a fused group's component (``runtime.fuse``): one output artifact per step,
    named by the step's asset, and one input per upstream step outside the group."""
    upstream = group_inputs(pipeline, group)
    args = [f"{p}: str" for p in (*PARAMS, JOB_NAME_ARG)]
    args += [f"{plans[src].output}: Input[{plans[src].artifact.__name__}]" for src in upstream]
    args += [f"{plans[s].output}: Output[{plans[s].artifact.__name__}]" for s in group]
    ins = ", ".join(f"{src!r}: {plans[src].output}" for src in upstream)
    outs = ", ".join(f"{s!r}: {plans[s].output}" for s in group)
    doc = "mlpipe steps run as one task: " + ", ".join(group)
    signature = ",\n    ".join(args)
    return (
        f"def {group_function_name(group, plans)}(\n    {signature},\n):\n"
        f"    {json.dumps(doc)}\n"
        "    from mlpipe.adapters.kubeflow.task import run_group_component\n"
        f"    run_group_component({ref!r}, {group!r}, config_json, mlpipe_home,\n"
        f"                        run_id or {JOB_NAME_ARG}, {{{ins}}}, {{{outs}}},\n"
        f"                        orchestrator_run_id={JOB_NAME_ARG})\n"
    )


def task_names(pipeline: Pipeline, config: PipelineSettings) -> dict[str, str]:
    """step name -> the kfp task that runs it (its own, or its fused group's)."""
    plans = {p.step.name: p for p in plan(pipeline)}
    names: dict[str, str] = {}
    for group in task_groups(pipeline, config):
        task = (plans[group[0]].task_name if len(group) == 1
                else maybe_rename_for_k8s(group_function_name(group, plans)))
        names.update(dict.fromkeys(group, task))
    return names


def _function_from_source(source: str, name: str, filename: str) -> Callable[..., None]:
    """Define a function from source so that ``inspect.getsource`` returns exactly ``source``."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"Input": Input, "Output": Output, "List": list, **_NAMESPACE}
    exec(compile(source, filename, "exec"), namespace)
    fn: Callable[..., None] = namespace[name]
    return fn


def build_components(pipeline: Pipeline, base_image: str = DEFAULT_BASE_IMAGE,
                     groups: list[tuple[str, ...]] | None = None) -> dict[str, Any]:
    """task (its steps) -> kfp component: one per step, or per fused group (``groups``).
    No pip installs at run time: the image (or venv) has mlpipe."""
    ref = portable_ref(pipeline)
    plans = {p.step.name: p for p in plan(pipeline)}
    components = {}
    for group in groups or [(name,) for name in plans]:
        if len(group) > 1:  # runtime.fuse: one component runs the group's steps
            sources = {group_name(group): (group_source(ref, group, pipeline, plans),
                                           group_function_name(group, plans))}
        else:
            item = plans[group[0]]
            sources = {item.step.name: (component_source(ref, item, plans), item.function_name)}
            if item.step.map_over:  # <step>_shards, <step>_shard (in a ParallelFor), <step>
                sources = {
                    f"{item.step.name}.shards": (lister_source(ref, item, plans),
                                                 f"{item.function_name}_shards"),
                    f"{item.step.name}.shard": (component_source(ref, item, plans, "shard"),
                                                f"{item.function_name}_shard"),
                    item.step.name: (component_source(ref, item, plans, "gather"),
                                     item.function_name),
                }
        for key, (source, name) in sources.items():
            filename = f"<mlpipe-kfp {pipeline.name}.{key}>"
            fn = _function_from_source(source, name, filename)
            components[key] = dsl.component(
                fn, base_image=base_image, packages_to_install=[], install_kfp_package=False)
    return components


def build_pipeline(
    pipeline: Pipeline,
    config: PipelineSettings,
    *,
    base_image: str = DEFAULT_BASE_IMAGE,
    home: str = "",
    run_id: str = "",
) -> Any:
    """The kfp pipeline: parameters ``config_json`` (defaults to ``config``), ``mlpipe_home``
    (empty = ``$MLPIPE_HOME`` or ``./.mlpipe`` where the step runs) and ``run_id`` (empty = the
    kfp run name). Caching and retries come from ``config.runtime``.
    """
    if config.pipeline != pipeline.name:
        raise ConfigError(
            f"pipeline: a '{config.pipeline}' config cannot drive the '{pipeline.name}' pipeline")
    if config.runtime.mode == "kubernetes":  # one container component per step: cluster.py
        from mlpipe.adapters.kubeflow.cluster import build_cluster_pipeline

        return build_cluster_pipeline(pipeline, config)
    groups = task_groups(pipeline, config)
    components = build_components(pipeline, base_image, groups)
    plans = {p.step.name: p for p in plan(pipeline)}
    runtime = config.runtime
    config_default = config.model_dump_json()

    def body(config_json: str, mlpipe_home: str, run_id: str) -> Any:
        tasks: dict[str, Any] = {}
        for group in groups:
            params = {"config_json": config_json, "mlpipe_home": mlpipe_home, "run_id": run_id,
                      "job_name": dsl.PIPELINE_JOB_NAME_PLACEHOLDER}
            if len(group) > 1:  # a fused group takes each outside upstream by its asset name
                upstream = {plans[src].output: tasks[src].outputs[plans[src].output]
                            for src in group_inputs(pipeline, group)}
                task = components[group_name(group)](**params, **upstream)
                cacheable = all(pipeline.step(name).cacheable for name in group)
                _step_options(task, group_name(group), cacheable, runtime)
                tasks.update(dict.fromkeys(group, task))
                continue
            step = pipeline.step(group[0])
            upstream = {arg: tasks[src].outputs[plans[src].output]
                        for arg, src in step.inputs.items()}
            if step.map_over:  # the shards (known at run time) in a ParallelFor, then gathered
                mapped = tasks[step.map_over].outputs[plans[step.map_over].output]
                listed = components[f"{step.name}.shards"](**params, shards=mapped)
                listed.set_display_name(f"{step.name} shards")
                listed.set_caching_options(enable_caching=False)
                with dsl.ParallelFor(listed.output) as shard:
                    one = components[f"{step.name}.shard"](**params, **upstream, shard=shard)
                    _step_options(one, f"{step.name} shard", step.cacheable, runtime)
                task = components[step.name](
                    **params, shard_results=dsl.Collected(one.outputs[plans[step.name].output]))
                task.set_caching_options(enable_caching=False)
                task.set_display_name(step.name)
            else:
                task = components[step.name](**params, **upstream)
                _step_options(task, step.name, step.cacheable, runtime)
            tasks[step.name] = task
        last = pipeline.steps[-1]
        return tasks[last.name].outputs[plans[last.name].output]

    # kfp reads parameter names, types and defaults from the signature: build a real one.
    def pipeline_fn(config_json: str = config_default, mlpipe_home: str = home,
                    run_id: str = run_id):
        return body(config_json, mlpipe_home, run_id)

    pipeline_fn.__annotations__["return"] = plans[pipeline.steps[-1].name].artifact
    pipeline_fn.__name__ = f"mlpipe_{pipeline.name}"
    return dsl.pipeline(name=f"mlpipe-{pipeline.name}",
                        description=pipeline.description or None)(pipeline_fn)


def _step_options(task: Any, name: str, cacheable: bool, runtime: Any) -> None:
    """Display name, caching, retries and timeout from ``runtime`` (one task, or one shard's)."""
    task.set_display_name(name)
    task.set_caching_options(enable_caching=runtime.cache and cacheable)
    if runtime.retries:
        task.set_retry(num_retries=runtime.retries,
                       backoff_duration=f"{int(runtime.retry_delay_s)}s")
    _set_timeout(task, runtime.timeout_s)


def _set_timeout(task: Any, seconds: float) -> None:
    """``runtime.timeout_s`` as the pod's activeDeadlineSeconds (kfp-kubernetes; not local)."""
    try:
        from kfp import kubernetes
    except ImportError:  # kfp-kubernetes is optional: no timeout in the YAML then
        return
    kubernetes.set_timeout(task, int(seconds))


def compile_pipeline(
    pipeline: Pipeline,
    config: PipelineSettings,
    output: Path,
    *,
    base_image: str = DEFAULT_BASE_IMAGE,
) -> Path:
    """Write the kfp pipeline YAML for ``pipeline`` with ``config`` as the default parameters.

    The YAML holds the config JSON (no secrets live in configs: tokens come from the environment
    of the pod), the generated components' source and the caching/retry policy.
    """
    output = Path(output)
    if output.suffix not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"output: kfp writes .yaml (or .json) files, not {output.name!r}")
    output.parent.mkdir(parents=True, exist_ok=True)
    pipeline_func = build_pipeline(pipeline, config, base_image=base_image)
    compiler.Compiler().compile(pipeline_func, package_path=str(output))
    return output
