"""mlpipe pipelines as kfp v2 pipelines: one generated component per plan task. kfp ships a
lightweight component's *source* to the pod, so each is a short function written here (typed
artifacts, body = :func:`~.task.run_task`)."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kfp import compiler, dsl
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from mlpipe.adapters.kubeflow.task import task_inputs
from mlpipe.adapters.kubeflow.walk import component_function, kfp_pipeline, walk
from mlpipe.core.config import PipelineSettings
from mlpipe.core.errors import ConfigError
from mlpipe.core.execution.plan import TaskSpec
from mlpipe.core.execution.plan import plan as core_plan
from mlpipe.core.pipeline import Pipeline, Step, portable_ref
from mlpipe.core.refs import Ref

#: kfp's artifact type per ``Ref.artifact_type``; the artifact's file holds the reference JSON.
ARTIFACTS: dict[str, type[dsl.Artifact]] = {"dataset": Dataset, "model": Model}
PARAMS = ("config_json", "mlpipe_home", "run_id", "job_name")  # every component's parameters
#: What the components' annotations name.
_NAMESPACE = {"Input": Input, "Output": Output, "List": list,
              **{t.__name__: t for t in (Artifact, ClassificationMetrics, Dataset, Metrics, Model)}}


def step_outputs(step: Step) -> dict[str, type[dsl.Artifact]]:
    """A step's kfp outputs, typed by the reference its function returns: the reference, and
    where that kind has them, its own metrics and a confusion matrix."""
    ref = step.returns
    if ref is None:
        return {step.asset: Artifact}
    outputs = {step.asset: ARTIFACTS.get(ref.artifact_type, Artifact)}
    if ref.has_own_metrics():
        outputs["metrics"] = Metrics
    if ref.confusion_matrix is not Ref.confusion_matrix:  # the kind has one
        outputs["confusion_matrix"] = ClassificationMetrics
    return outputs


def python_component(ref: str, task: TaskSpec, pipeline: Pipeline, image: str) -> Any:
    """One plan task's Python component: upstream artifacts in, the task's outputs out (a shard
    list returns the shard numbers), its arguments to ``run_task`` (``ref``: the pipeline's
    portable ref, which the component's process resolves again). No pip installs at run time: the
    image (or venv) has mlpipe."""

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


def build_pipeline(
    pipeline: Pipeline,
    config: PipelineSettings,
    *,
    home: str = "",
    run_id: str = "",
    env: Mapping[str, str] | None = None,
) -> Any:
    """The kfp pipeline: parameters ``config_json`` (defaults to ``config``), ``mlpipe_home``
    (empty = ``$MLPIPE_HOME`` or ``./.mlpipe`` where the step runs) and ``run_id`` (empty = the
    kfp run name); one component per plan task in ``cluster.image`` (mlpipe installed; kfp.local
    ignores it), ``env`` in each one's environment (a local run's import path)."""
    if config.runtime.mode == "kubernetes":  # one container component per step: cluster.py
        from mlpipe.adapters.kubeflow.cluster import build_cluster_pipeline

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


def compile_pipeline(
    pipeline: Pipeline,
    config: PipelineSettings,
    output: Path,
) -> Path:
    """Write the kfp pipeline YAML for ``pipeline``, ``config`` its default parameters (configs
    hold no secrets: tokens come from the pod's environment)."""
    output = Path(output)
    if output.suffix not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"output: kfp writes .yaml (or .json) files, not {output.name!r}")
    output.parent.mkdir(parents=True, exist_ok=True)
    pipeline_func = build_pipeline(pipeline, config)
    compiler.Compiler().compile(pipeline_func, package_path=str(output))
    return output
