"""Running pipelines: the plan (``plan``), one task (``execute.execute``), one step
(``run_step``), a whole run (``Runner``).

``mlpipe.core.execution.execute`` is not imported here: it is also run as a module
(``python -m mlpipe.core.execution.execute``), the entry point of a task's own process.
"""

from mlpipe.core.execution.plan import Plan, TaskSpec, plan
from mlpipe.core.execution.runner import (
    Launch,
    PipelineRun,
    Runner,
    RunnerError,
    RunRequest,
    TaskFacts,
    get_runner,
    preflight,
    run_pipeline,
)
from mlpipe.core.execution.step import (
    StepRun,
    load_step_result,
    read_step,
    run_step,
)

__all__ = [
    "Launch",
    "PipelineRun",
    "Plan",
    "RunRequest",
    "Runner",
    "RunnerError",
    "StepRun",
    "TaskFacts",
    "TaskSpec",
    "get_runner",
    "load_step_result",
    "plan",
    "preflight",
    "read_step",
    "run_pipeline",
    "run_step",
]
