"""What every adapter's in-process task body does: ``execute`` the task's job and hand the
orchestrator either the shard list (a ``shard_list`` task) or the result; a failure becomes the
orchestrator's own exception, told whether a retry could help (bad input, exit 2, never)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlpipe.core.errors import MlpipeError
from mlpipe.core.execution.execute import TaskResult, execute, retryable
from mlpipe.core.execution.plan import TaskSpec

#: (the failure, whether to retry) -> what the orchestrator's task raises (the failure itself:
#: as it is).
Fail = Callable[[MlpipeError, bool], BaseException]


def run_task(task: TaskSpec, job: dict[str, Any], fail: Fail, **context: Any
             ) -> TaskResult | list[int]:
    """``execute(job, **context)`` (``pipeline``, ``config``, ``inputs`` when in process)."""
    try:
        result = execute(job, **context)
    except MlpipeError as exc:  # error.json says what; the orchestrator only needs to stop
        failure = fail(exc, retryable(exc))
        if failure is exc:
            raise
        raise failure from exc
    return list(result.shards) if task.kind == "shard_list" else result

