"""mlpipe pipelines as kfp v2 pipelines: one generated component per plan task, for any pipeline.

kfp's lightweight components ship their function's *source* to the pod, so a component cannot be
a closure over a ``Step``. Instead, for each step this module writes a short function source (typed
kfp inputs and outputs, body = one call to :func:`mlpipe.adapters.kubeflow.task.run_task`
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

from kfp import compiler, dsl, kubernetes
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output
from kfp.dsl.utils import maybe_rename_for_k8s

from mlpipe.adapters.kubeflow.walk import walk
from mlpipe.core.config import PipelineSettings
from mlpipe.core.errors import ConfigError
from mlpipe.core.execution.plan import Plan, TaskSpec, group_inputs
from mlpipe.core.execution.plan import plan as core_plan
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


def task_inputs(pipeline: Pipeline, task: TaskSpec,
                plans: dict[str, ComponentPlan]) -> dict[str, str]:
    """A task's input artifacts, argument -> upstream step: a fused group's outside upstream by
    their asset names, a step's by its argument names; a gather takes its shards only."""
    if task.kind == "group":
        return {plans[s].output: s for s in group_inputs(pipeline, task.steps)}
    return {} if task.kind == "gather" else dict(pipeline.step(task.step).inputs)


def function_name(task: TaskSpec, plans: dict[str, ComponentPlan]) -> str:
    """The generated function's name, from which kfp names the component and the task."""
    if task.kind == "group":
        return "__".join(plans[name].function_name for name in task.steps)
    suffix = {"shard_list": "_shards", "shard": "_shard"}.get(task.kind, "")
    return plans[task.step].function_name + suffix


def task_source(ref: str, task: TaskSpec, pipeline: Pipeline,
                plans: dict[str, ComponentPlan]) -> str:
    """The Python source of one plan task's component, as it will appear in the pipeline YAML:
    the upstream steps' artifacts in, one artifact per step out (a shard list returns the shard
    numbers), and a body that is one call to :func:`~mlpipe.adapters.kubeflow.task.run_task`
    (``ref``: the pipeline's portable ref, which the component's process resolves again)."""
    item = plans[task.step]
    single = task.kind in ("step", "shard", "gather")
    upstream = task_inputs(pipeline, task, plans)
    args = [f"{p}: str" for p in (*PARAMS, JOB_NAME_ARG)]
    args += [f"{a}: Input[{plans[s].artifact.__name__}]" for a, s in upstream.items()]
    if task.kind == "gather":
        args.append(f"shard_results: Input[List[{item.artifact.__name__}]]")
    if task.kind == "shard":
        args.append("shard: int")
    outputs = () if task.kind == "shard_list" else task.steps
    args += [f"{plans[s].output}: Output[{plans[s].artifact.__name__}]" for s in outputs]
    extra = ", shard=shard" if task.kind == "shard" else ""
    if single and item.metrics:
        args.append("metrics: Output[Metrics]")
        extra += ", metrics=metrics"
    if single and item.confusion:
        args.append("confusion_matrix: Output[ClassificationMetrics]")
        extra += ", confusion=confusion_matrix"
    ins = ", ".join(f"{s!r}: {a}" for a, s in upstream.items())
    outs = ", ".join(f"{s!r}: {plans[s].output}" for s in outputs)
    doc = task.description or item.step.description
    signature = ",\n    ".join(args)
    returns = " -> List[int]" if task.kind == "shard_list" else ""
    return (
        f"def {function_name(task, plans)}(\n    {signature},\n){returns}:\n"
        f"    {json.dumps(doc)}\n"
        "    from mlpipe.adapters.kubeflow.task import run_task\n"
        f"    return run_task({ref!r}, {task.name!r}, config_json, mlpipe_home,\n"
        f"                    run_id or {JOB_NAME_ARG}, {JOB_NAME_ARG}, {{{ins}}}, {{{outs}}}"
        f"{extra})\n"
    )


def task_names(pipeline: Pipeline, config: PipelineSettings) -> dict[str, str]:
    """plan task name -> the kfp task that runs it (as kfp names it)."""
    plans = {p.step.name: p for p in plan(pipeline)}
    return {task.name: maybe_rename_for_k8s(function_name(task, plans))
            for task in core_plan(pipeline, config)}


def _function_from_source(source: str, name: str, filename: str) -> Callable[..., None]:
    """Define a function from source so that ``inspect.getsource`` returns exactly ``source``."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"Input": Input, "Output": Output, "List": list, **_NAMESPACE}
    exec(compile(source, filename, "exec"), namespace)
    fn: Callable[..., None] = namespace[name]
    return fn


def build_components(pipeline: Pipeline, tasks: Plan,
                     base_image: str = DEFAULT_BASE_IMAGE) -> dict[str, Any]:
    """plan task name -> kfp component. No pip installs at run time: the image (or venv) has
    mlpipe."""
    ref = portable_ref(pipeline)
    plans = {p.step.name: p for p in plan(pipeline)}
    components = {}
    for task in tasks:
        source = task_source(ref, task, pipeline, plans)
        fn = _function_from_source(source, function_name(task, plans),
                                   f"<mlpipe-kfp {pipeline.name}.{task.name}>")
        components[task.name] = dsl.component(
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
    kfp run name). One component per plan task: a map step's shard tasks in a ``ParallelFor``
    over its shard list's output, its gather taking them ``Collected``. Caching and retries come
    from ``config.runtime``.
    """
    if config.pipeline != pipeline.name:
        raise ConfigError(
            f"pipeline: a '{config.pipeline}' config cannot drive the '{pipeline.name}' pipeline")
    if config.runtime.mode == "kubernetes":  # one container component per step: cluster.py
        from mlpipe.adapters.kubeflow.cluster import build_cluster_pipeline

        return build_cluster_pipeline(pipeline, config)
    tasks = core_plan(pipeline, config)
    components = build_components(pipeline, tasks, base_image)
    plans = {p.step.name: p for p in plan(pipeline)}
    plan_of = {s: t for t in tasks for s in t.steps if t.kind in ("step", "group", "gather")}
    runtime = config.runtime
    config_default = config.model_dump_json()

    def body(config_json: str, mlpipe_home: str, run_id: str) -> Any:
        params = {"config_json": config_json, "mlpipe_home": mlpipe_home, "run_id": run_id,
                  "job_name": dsl.PIPELINE_JOB_NAME_PLACEHOLDER}

        def output(made: dict[str, Any], step: str) -> Any:  # the kfp output of a step's ref
            return made[plan_of[step].name].outputs[plans[step].output]

        def make(task: TaskSpec, made: dict[str, Any], shard: Any) -> Any:
            args = {a: output(made, s) for a, s in task_inputs(pipeline, task, plans).items()}
            if task.kind == "gather":  # the shards' outputs, collected outside their loop
                args["shard_results"] = dsl.Collected(
                    made[task.upstream[-1]].outputs[plans[task.step].output])
            kfp_task = components[task.name](**params, **args,
                                             **({} if shard is None else {"shard": shard}))
            cacheable = all(pipeline.step(s).cacheable for s in task.steps)
            whole = task.kind in ("step", "group")
            _step_options(kfp_task, cacheable and (whole or task.kind == "shard"), runtime,
                          retries=whole or task.kind == "shard")
            return kfp_task

        made = walk(tasks, make, "Output")
        return output(made, pipeline.steps[-1].name)

    # kfp reads parameter names, types and defaults from the signature: build a real one.
    def pipeline_fn(config_json: str = config_default, mlpipe_home: str = home,
                    run_id: str = run_id):
        return body(config_json, mlpipe_home, run_id)

    pipeline_fn.__annotations__["return"] = plans[pipeline.steps[-1].name].artifact
    pipeline_fn.__name__ = f"mlpipe_{pipeline.name}"
    return dsl.pipeline(name=f"mlpipe-{pipeline.name}",
                        description=pipeline.description or None)(pipeline_fn)


def _step_options(task: Any, cacheable: bool, runtime: Any, retries: bool = True) -> None:
    """Caching, retries and timeout from ``runtime`` (one task, or one shard's)."""
    task.set_caching_options(enable_caching=runtime.cache and cacheable)
    if retries and runtime.retries:
        task.set_retry(num_retries=runtime.retries,
                       backoff_duration=f"{int(runtime.retry_delay_s)}s")
    kubernetes.set_timeout(task, int(runtime.timeout_s))  # the pod's activeDeadlineSeconds


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
