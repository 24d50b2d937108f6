"""What every generated kfp component body calls, in the component's own process or pod: kfp
artifacts in, core's ``execute``, references out as artifacts with what each says of itself.
No kfp import here: the body must not pull in kfp's compiler."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlpipe.core.execution.plan import TaskSpec
    from mlpipe.core.pipeline import Pipeline


def task_inputs(pipeline: Pipeline, task: TaskSpec) -> dict[str, str]:
    """A task's input artifacts, argument -> upstream step: a fused group's outside upstream by
    their asset names, a step's by its argument names; a gather reads its shards' records."""
    from mlpipe.core.execution.plan import group_inputs

    if task.kind == "group":
        return {pipeline.step(s).asset: s for s in group_inputs(pipeline, task.steps)}
    return {} if task.kind == "gather" else dict(pipeline.step(task.step).inputs)


def run_task(pipeline: str, task: str, args: Mapping[str, Any]) -> list[int] | None:
    """``execute`` plan task ``task`` of ``pipeline`` (its portable ref) on the component's
    ``args`` (parameters, artifacts in and out), in the run's warm worker if any (``core.warm``).
    A shard list returns its shard numbers (for ``ParallelFor``); a failure exits with its exit
    code (2 for bad input), its cause in the step's ``error.json``."""
    from mlpipe.core.warm import run_warm

    paths = {k: v.path for k, v in args.items() if isinstance(getattr(v, "path", None), str)}
    params = {k: args.get(k) for k in ("config_json", "mlpipe_home", "run_id", "job_name", "shard")}
    done = run_warm(task_body, pipeline=pipeline, task=task, params=params, paths=paths)
    if done["shards"] is not None:
        return list(done["shards"])
    for name, metadata in done["metadata"].items():
        args[name].metadata.update(metadata)
    for name, value in done["metrics"].items():
        args["metrics"].log_metric(name, value)
    if done["matrix"] is not None:
        args["confusion_matrix"].log_confusion_matrix(*done["matrix"])
    return None


def task_body(pipeline: str, task: str, params: Mapping[str, Any], paths: Mapping[str, str]
              ) -> dict[str, Any]:
    """The job, in plain JSON: ``paths`` of the component's artifacts by argument (the inputs'
    reference JSON is read from theirs, each output's written to its); returns the shard list,
    or each output's metadata, the metrics and the confusion matrix to log."""
    from mlpipe.core.config import config_from_json
    from mlpipe.core.errors import MlpipeError
    from mlpipe.core.execution.execute import execute
    from mlpipe.core.execution.plan import plan
    from mlpipe.core.paths import safe_run_id
    from mlpipe.core.pipeline import resolve_pipeline
    from mlpipe.core.refs import ref_from_json

    started = time.perf_counter()
    run_id = safe_run_id(params["run_id"] or params["job_name"])
    try:
        pipe = resolve_pipeline(pipeline)
        config = config_from_json(params["config_json"], pipe.config_type)
        spec = plan(pipe, config).task(task)
        inputs = {s: ref_from_json(Path(paths[a]).read_text())
                  for a, s in task_inputs(pipe, spec).items()}
        job = spec.job(run_id, home=params["mlpipe_home"] or None, runner="kubeflow",
                       shard=params.get("shard"),
                       orchestrator_run_id=params["job_name"] or run_id)
        result = execute(job, pipeline=pipe, config=config, inputs=inputs)
    except MlpipeError as exc:  # also a bad config or missing input, raised before the step ran
        print(f"mlpipe: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from exc
    done: dict[str, Any] = {"shards": None, "metadata": {}, "metrics": {}, "matrix": None}
    if spec.kind == "shard_list":
        return {**done, "shards": list(result.shards)}
    for step, run in result.runs.items():
        asset = pipe.step(step).asset
        out = Path(paths[asset])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(run.ref.model_dump_json(indent=2))
        metadata = done["metadata"][asset] = {
            **run.ref.summary(), "step": step, "run_id": run_id, "seconds": run.seconds,
            "cached": run.cached, "component_seconds": time.perf_counter() - started}
        if spec.kind == "group":
            metadata["fused_task"] = spec.name
        if "metrics" in paths:
            done["metrics"].update(run.ref.metric_values())
        if "confusion_matrix" in paths:
            done["matrix"] = run.ref.confusion_matrix(inputs.values())
    return done
