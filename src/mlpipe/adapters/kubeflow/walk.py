"""What both kfp modes share (in-process components and cluster containers): the names of plan
tasks in kfp, the one way a task's component function is written, and the plan walk; a module of
its own, so the compiler and the cluster mode share it without importing each other."""

import json
import keyword
import linecache
from collections.abc import Callable, Mapping
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


def component_function(task: TaskSpec, args: list[tuple[str, str]], returns: str, body: str,
                       namespace: dict[str, Any]) -> Callable[..., Any]:
    """A plan task's component function, written as source: ``args`` (name, annotation in
    ``namespace``), the task's description, ``body``. kfp reads its signature, and ships a Python
    component's source to the pod: kept in :mod:`linecache` for ``inspect.getsource``."""
    names = [a for a, _ in args]
    bad = [a for a in names if names.count(a) > 1 or not a.isidentifier() or keyword.iskeyword(a)]
    if bad:
        raise ConfigError(f"task {task.name}: {bad[0]!r} cannot name an argument of its kfp "
                          "component (not an identifier, or taken): rename the step's asset")
    signature = "".join(f"    {a}: {t},\n" for a, t in args)
    source = (f"def {function_name(task)}(\n{signature}){returns}:\n"
              f"    {json.dumps(task.description)}\n{body}")
    filename = f"<mlpipe-kfp {task.name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    return namespace[function_name(task)]


def kfp_names(tasks: Plan) -> dict[str, str]:
    """Plan task -> the kfp task that runs it; ConfigError when two would share a kfp name."""
    names = {t.name: maybe_rename_for_k8s(function_name(t)) for t in tasks}
    if len(set(names.values())) != len(names):
        raise ConfigError(f"pipeline {tasks.pipeline.name}: task names clash as kfp tasks: "
                          f"{sorted(names.values())}")
    return names


def walk(tasks: Plan, components: Mapping[str, Any],
         inputs: Callable[[TaskSpec, dict[str, Any]], dict[str, Any]], listed: str,
         cache: bool) -> dict[str, Any]:
    """The plan walk both modes translate: each task's component called in plan order on
    ``inputs(task, made)`` (``made``: plan task -> kfp task so far), after its upstream tasks; a
    shard task inside a ``ParallelFor`` over its shard list's output ``listed``, its ``shard`` the
    loop item. Core's retries and timeout go on every task, kfp's cache (``cache``) on those core
    says a cache may serve."""
    kfp_names(tasks)  # refuses names that clash as kfp tasks
    made: dict[str, Any] = {}
    for task in tasks:
        component, args = components[task.name], inputs(task, made)
        if task.kind == "shard":
            with dsl.ParallelFor(made[task.upstream[0]].outputs[listed]) as shard:
                kfp_task = made[task.name] = component(**args, shard=shard)
        else:
            kfp_task = made[task.name] = component(**args).after(*(made[u] for u in task.upstream))
        kfp_task.set_display_name({"shard_list": f"{task.step} shards",
                                   "shard": f"{task.step} shard"}.get(task.kind, task.name))
        if task.retries:
            kfp_task.set_retry(num_retries=task.retries,
                               backoff_duration=f"{int(task.retry_delay_s)}s")
        kubernetes.set_timeout(kfp_task, int(task.timeout_s))  # the pod's activeDeadlineSeconds
        kfp_task.set_caching_options(enable_caching=cache and task.cacheable)
    return made


def kfp_pipeline(pipeline: Pipeline, fn: Callable[..., Any]) -> Any:
    """``fn`` as the kfp pipeline ``mlpipe-<pipeline>``."""
    fn.__name__ = f"mlpipe_{pipeline.name}"
    return dsl.pipeline(name=f"mlpipe-{pipeline.name}",
                        description=pipeline.description or None)(fn)
