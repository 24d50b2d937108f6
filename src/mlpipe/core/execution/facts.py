"""An orchestrator's task instances folded into core's per-task facts, and its failed-try note.

Every orchestrator reports task instances (a mapped task one per shard); what a run records per
plan task (``Launch.tasks``) and how a failed try is named are the same whatever reported them,
so adapters only read their orchestrator's records into :class:`Instance` s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mlpipe.core.execution.runner import RunRequest, TaskFacts
from mlpipe.core.execution.step import read_step


@dataclass(frozen=True)
class Instance:
    """One run of one plan task as the orchestrator recorded it; ``index``: a mapped task's map
    index (its shard), -1 when not mapped; ``seconds``: the orchestrator's own figure, if any."""

    task: str
    state: str | None
    started: float | None = None
    ended: float | None = None
    seconds: float | None = None
    tries: int | None = None
    max_tries: int | None = None
    index: int = -1


def task_facts(instances: Iterable[Instance]) -> dict[str, TaskFacts]:
    """Per task: failed if any instance failed, else the last one's state; seconds from the
    first start to the last end (or the one instance's own figure); the most tries; a mapped
    task's states in map index order."""
    by_task: dict[str, list[Instance]] = {}
    for each in instances:
        by_task.setdefault(each.task, []).append(each)
    facts: dict[str, TaskFacts] = {}
    for name, runs in by_task.items():
        runs.sort(key=lambda i: i.index)
        began = [i.started for i in runs if i.started is not None]
        ended = [i.ended for i in runs if i.ended is not None]
        seconds = runs[0].seconds if len(runs) == 1 else None
        if seconds is None and began and ended:
            seconds = max(ended) - min(began)
        tries = [i.tries for i in runs if i.tries is not None]
        facts[name] = TaskFacts(
            state="failed" if any(i.state == "failed" for i in runs) else runs[-1].state,
            seconds=seconds, started=min(began, default=None), tries=max(tries, default=None),
            map_states=tuple(i.state for i in runs if i.index >= 0))
    return facts


def failed_try_note(request: RunRequest, instances: Iterable[Instance], *, label: str,
                    run: str, log: Path | str | None, timeout_error: str = "") -> str:
    """``<label><task>[i] failed on try N of M, run R; log P`` for the first failed instance
    (empty when none failed), led by ``ran longer than runtime.timeout_s=Ts`` when a step it
    ran recorded ``timeout_error`` (the orchestrator's own timeout exception) as its cause."""
    failed = next((i for i in instances if i.state == "failed"), None)
    if failed is None:
        return ""
    mapped = f"[{failed.index}]" if failed.index >= 0 else ""
    note = (f"{label}{failed.task}{mapped} failed on try {failed.tries} of {failed.max_tries}, "
            f"run {run}; log {log}")
    steps = request.plan.task(failed.task).steps  # a group's, or the map step's
    causes = [str(getattr(read_step(request.home, request.pipeline.name, request.run_id, s),
                          "cause", "")) for s in steps]
    if timeout_error and any(timeout_error in c for c in causes):
        note = f"ran longer than runtime.timeout_s={request.config.runtime.timeout_s:g}s; {note}"
    return note
