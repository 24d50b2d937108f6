"""Running pipelines: one step (``run_step``), a whole run (``Runner``), a pod's step."""

from mlpipe.core.execution.runner import (
    Launch,
    PipelineRun,
    Runner,
    RunnerError,
    get_runner,
    preflight,
    run_pipeline,
)
from mlpipe.core.execution.step import (
    StepRun,
    execute_gather,
    execute_step,
    load_step_result,
    read_step,
    run_step,
)

__all__ = [
    "Launch",
    "PipelineRun",
    "Runner",
    "RunnerError",
    "StepRun",
    "execute_gather",
    "execute_step",
    "get_runner",
    "load_step_result",
    "preflight",
    "read_step",
    "run_pipeline",
    "run_step",
]
