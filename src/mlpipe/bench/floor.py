"""Each orchestrator's own floor: a no-op pipeline of the same shape, written natively.

Same task names, same dependencies, the same fan-out (the plan core makes of the pipeline: a map
step is a shard list, one task per shard the run produced and a gather), task bodies that do
nothing, run the way mlpipe's runner runs its pipeline, and timed over the same span as the
runner's own figure. What mlpipe's run costs above its steps' time and this floor is mlpipe's
adapter overhead. Each runner plugin writes its floor (``Runner.floor``, see
:mod:`mlpipe.core.execution.floor`); a runner without one has no floor (``None``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from mlpipe.core.execution.floor import Floor, FloorTask

__all__ = ["Floor", "Node", "Shape", "floor_seconds", "plan_shape", "run_floor", "shape_of"]


class Node(NamedTuple):
    """One step of a pipeline's shape: its name, the steps it depends on and, for a map step,
    how many shards the run produced (each orchestrator runs a map step as a shard lister, one
    task per shard and a gather task); for a plain step, the quality checks its run reported."""

    name: str
    upstream: list[str]
    shards: int | None = None  # None: a plain step, one task
    checks: tuple[str, ...] = ()


#: A pipeline's shape: its steps, in order.
Shape = list[Node]


def shape_of(pipeline: Any, run: Any = None) -> Shape:
    """The shape of an mlpipe ``Pipeline``: its steps, each step's upstream steps and, from
    ``run`` (a finished run), a map step's shard count (its output lists one reference per
    shard; 1 without a run) and a plain step's checks (those its output reports)."""
    refs = {s.step: s.ref for s in getattr(run, "steps", ())}
    shape = []
    for step in pipeline.steps:
        ref = refs.get(step.name)
        if step.map_over is None:
            shape.append(Node(step.name, list(step.upstream), None,
                              tuple(c.name for c in getattr(ref, "checks", ()))))
        else:
            shards = len(getattr(ref, "shards", None) or (None,))
            shape.append(Node(step.name, list(step.upstream), shards))
    return shape


def floor_seconds(runner: str, shape: Shape, name: str, work_dir: Path) -> float | None:
    """Seconds the orchestrator behind ``runner`` takes to run a no-op pipeline of ``shape``
    (``None``: the runner has no floor)."""
    floor = run_floor(runner, shape, name, work_dir)
    return None if floor is None else floor.seconds


def run_floor(runner: str, shape: Shape, name: str, work_dir: Path) -> Floor | None:
    """Ask the runner plugin to run the no-op pipeline of ``shape`` (``None``: it has none)."""
    from mlpipe.core.execution import get_runner

    work_dir.mkdir(parents=True, exist_ok=True)
    return get_runner(runner).floor(plan_shape([Node(*n) for n in shape], name), name, work_dir)


def plan_shape(shape: Shape, name: str) -> list[FloorTask]:
    """The tasks core's plan makes of a pipeline of ``shape`` (names, kinds, fan-out)."""
    from mlpipe.core.config import PipelineSettings
    from mlpipe.core.execution.floor import floor_tasks
    from mlpipe.core.execution.plan import plan
    from mlpipe.core.pipeline import Pipeline, Step

    steps = tuple(Step(n.name, _noop, n.name, "", inputs={u: u for u in n.upstream},
                       map_over=n.upstream[0] if n.shards is not None else None) for n in shape)
    tasks = plan(Pipeline(name, PipelineSettings, steps), PipelineSettings(pipeline=name))
    return floor_tasks(tasks, {n.name: n.shards for n in shape if n.shards is not None},
                       {n.name: tuple(n.checks) for n in shape})


def _noop(*_: Any, **__: Any) -> None:
    return None
