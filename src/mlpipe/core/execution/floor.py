"""The floor protocol: a runner plugin runs a native no-op pipeline of a plan's shape.

What mlpipe's run costs above its steps' time and the orchestrator's own floor is mlpipe's
adapter overhead, so each runner's floor has the plan's task names, dependencies and fan-out
(a shard task once per shard the run made), written in the orchestrator's API directly: it must
not share mlpipe's translation, whose cost it measures. ``Runner.floor`` returns ``None`` for a
runner without one, reported as having no floor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlpipe.core.execution.plan import Plan, TaskKind


@dataclass(frozen=True)
class FloorTask:
    """One task of the no-op pipeline: a plan task's name, kind and upstream; ``shards``: how
    many instances a shard task runs (and a shard list lists); ``checks``: the quality checks a
    step task's run reported (an orchestrator that models checks natively declares them)."""

    name: str
    kind: TaskKind
    upstream: tuple[str, ...]
    shards: int = 0
    checks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Floor:
    """A floor run: its seconds and how many task executions the orchestrator itself recorded."""

    seconds: float
    tasks: int


def floor_tasks(plan: Plan, shards: Mapping[str, int],
                checks: Mapping[str, tuple[str, ...]] | None = None) -> list[FloorTask]:
    """The plan's shape for a floor: ``shards`` maps each map step to the shard count of the
    run being compared (1 when absent), ``checks`` each step to the checks its run reported."""
    return [FloorTask(t.name, t.kind, t.upstream,
                      shards.get(t.step, 1) if t.kind in ("shard_list", "shard") else 0,
                      tuple((checks or {}).get(t.step, ())) if t.kind == "step" else ())
            for t in plan]


def listing_of(task: FloorTask, tasks: list[FloorTask]) -> FloorTask:
    """The shard list a shard task is expanded over (its upstream of kind ``shard_list``)."""
    kinds = {t.name: t for t in tasks}
    return next(kinds[u] for u in task.upstream if kinds[u].kind == "shard_list")
