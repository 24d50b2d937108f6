"""What both kfp modes share (in-process components and cluster containers): the plan walk and
the names of plan tasks in kfp; a module of its own, so the compiler and the cluster mode share
it without importing each other."""

import keyword
from collections.abc import Callable
from typing import Any

from kfp import dsl, kubernetes
from kfp.dsl.utils import maybe_rename_for_k8s

from mlpipe.core.errors import ConfigError
from mlpipe.core.execution.plan import Plan, TaskSpec
from mlpipe.core.pipeline import Pipeline


def function_name(task: TaskSpec) -> str:
    """The component function's name for a plan task (kfp names the component and task by it)."""
    name = "".join(c if c.isalnum() else "_" for c in task.name)
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"step_{name}"


def kfp_names(tasks: Plan) -> dict[str, str]:
    """Plan task -> the kfp task that runs it; ConfigError when two would share a kfp name."""
    names = {t.name: maybe_rename_for_k8s(function_name(t)) for t in tasks}
    if len(set(names.values())) != len(names):
        raise ConfigError(f"pipeline {tasks.pipeline.name}: task names clash as kfp tasks: "
                          f"{sorted(names.values())}")
    return names


def walk(tasks: Plan, make: Callable[[TaskSpec, dict[str, Any], Any], Any],
         listed: str, cache: bool) -> dict[str, Any]:
    """The plan walk both modes translate: ``make(task, made, shard)`` makes each task's kfp task
    in plan order (``made``: plan task -> kfp task so far); a shard task inside a ``ParallelFor``
    over its shard list's output ``listed`` (``shard``: the loop item, else None). Core's retries
    and timeout go on every task, in both modes; kfp's cache (``cache``) on a step, group or shard
    task whose steps are all cacheable (never a shard list or gather: they only read records)."""
    kfp_names(tasks)  # refuses names that clash as kfp tasks
    made: dict[str, Any] = {}
    for task in tasks:
        if task.kind == "shard":
            with dsl.ParallelFor(made[task.upstream[0]].outputs[listed]) as shard:
                made[task.name] = make(task, made, shard)
        else:
            made[task.name] = make(task, made, None)
        kfp_task = made[task.name]
        kfp_task.set_display_name({"shard_list": f"{task.step} shards",
                                   "shard": f"{task.step} shard"}.get(task.kind, task.name))
        if task.retries:
            kfp_task.set_retry(num_retries=task.retries,
                               backoff_duration=f"{int(task.retry_delay_s)}s")
        kubernetes.set_timeout(kfp_task, int(task.timeout_s))  # the pod's activeDeadlineSeconds
        whole = task.kind in ("step", "group", "shard")
        kfp_task.set_caching_options(enable_caching=cache and whole and all(
            tasks.pipeline.step(s).cacheable for s in task.steps))
    return made


def kfp_pipeline(pipeline: Pipeline, fn: Callable[..., Any]) -> Any:
    """``fn`` as the kfp pipeline ``mlpipe-<pipeline>``."""
    fn.__name__ = f"mlpipe_{pipeline.name}"
    return dsl.pipeline(name=f"mlpipe-{pipeline.name}",
                        description=pipeline.description or None)(fn)
