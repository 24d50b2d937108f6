"""The plan walk both kfp modes translate (in-process components and cluster containers): a module
of its own, so the compiler and the cluster mode share it without importing each other."""

from collections.abc import Callable
from typing import Any

from kfp import dsl

from mlpipe.core.execution.plan import Plan, TaskSpec


def walk(tasks: Plan, make: Callable[[TaskSpec, dict[str, Any], Any], Any],
         listed: str) -> dict[str, Any]:
    """The plan walk both modes translate: ``make(task, made, shard)`` makes each task's kfp task
    in plan order (``made``: plan task -> kfp task so far); a shard task inside a ``ParallelFor``
    over its shard list's output ``listed`` (``shard``: the loop item, else None)."""
    made: dict[str, Any] = {}
    for task in tasks:
        if task.kind == "shard":
            with dsl.ParallelFor(made[task.upstream[0]].outputs[listed]) as shard:
                made[task.name] = make(task, made, shard)
        else:
            made[task.name] = make(task, made, None)
        made[task.name].set_display_name(
            {"shard_list": f"{task.step} shards", "shard": f"{task.step} shard"}.get(
                task.kind, task.name))
    return made
