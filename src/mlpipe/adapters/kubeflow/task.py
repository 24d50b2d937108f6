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
    """``execute`` the job of plan task ``task`` of ``pipeline`` (its portable ref); ``args``:
    the component's arguments (parameters, input and output artifacts, ``metrics``,
    ``confusion_matrix``). A shard list returns the shard numbers (for ``ParallelFor``); a failure
    exits with its exit code (2 for bad input), its cause in the step's ``error.json``."""
    from mlpipe.core.config import config_from_json
    from mlpipe.core.errors import MlpipeError
    from mlpipe.core.execution.execute import execute
    from mlpipe.core.execution.plan import plan
    from mlpipe.core.execution.teardown import skip_teardown_at_exit
    from mlpipe.core.paths import safe_run_id
    from mlpipe.core.pipeline import resolve_pipeline
    from mlpipe.core.refs import ref_from_json

    started = time.perf_counter()
    run_id = safe_run_id(args["run_id"] or args["job_name"])
    try:
        pipe = resolve_pipeline(pipeline)
        config = config_from_json(args["config_json"], pipe.config_type)
        spec = plan(pipe, config).task(task)
        inputs = {s: ref_from_json(Path(args[a].path).read_text())
                  for a, s in task_inputs(pipe, spec).items()}
        job = spec.job(run_id, home=args["mlpipe_home"] or None, runner="kubeflow",
                       shard=args.get("shard"), orchestrator_run_id=args["job_name"] or run_id)
        result = execute(job, pipeline=pipe, config=config, inputs=inputs)
    except MlpipeError as exc:  # also a bad config or missing input, raised before the step ran
        print(f"mlpipe: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from exc
    skip_teardown_at_exit()  # this process is the component's own (kfp.local's or a pod)
    if spec.kind == "shard_list":
        return list(result.shards)
    for step, run in result.runs.items():
        out = args[pipe.step(step).asset]
        Path(out.path).parent.mkdir(parents=True, exist_ok=True)
        Path(out.path).write_text(run.ref.model_dump_json(indent=2))
        out.metadata.update({**run.ref.summary(), "step": step, "run_id": run_id,
                             "seconds": run.seconds, "cached": run.cached,
                             "component_seconds": time.perf_counter() - started})
        if spec.kind == "group":
            out.metadata["fused_task"] = spec.name
        for name, value in run.ref.metric_values().items() if "metrics" in args else ():
            args["metrics"].log_metric(name, value)
        matrix = run.ref.confusion_matrix(inputs.values()) if "confusion_matrix" in args else None
        if matrix is not None:
            args["confusion_matrix"].log_confusion_matrix(*matrix)
    return None
