"""Running pipelines: the plan (``plan``), one task (``execute.execute``), one step
(``run_step``), a whole run (``Runner``).

``mlpipe.core.execution.execute`` is not imported here: it is also run as a module
(``python -m mlpipe.core.execution.execute``), the entry point of a task's own process, which
needs neither the runners nor a second copy of itself; the runner and step names are imported on
first use (PEP 562). ``plan`` is imported now: it is also the name of its own submodule, which
would otherwise shadow the function once anything imported the submodule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlpipe.core.execution.plan import Plan, TaskSpec, plan
from mlpipe.core.lazy import lazy_exports

if TYPE_CHECKING:
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

#: public name -> the submodule that defines it
_WHERE = {
    **dict.fromkeys(("Launch", "PipelineRun", "Runner", "RunnerError", "RunRequest", "TaskFacts",
                     "get_runner", "preflight", "run_pipeline"), "runner"),
    **dict.fromkeys(("StepRun", "load_step_result", "read_step", "run_step"), "step"),
}

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


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
