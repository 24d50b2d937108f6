"""The orchestration plan: one ordered list of tasks that every runner translates, in any mode.

Core decides every task's name, kind, steps, upstream tasks, retries, timeout, resources and
container; an adapter only maps each kind onto its orchestrator's primitive (a task, a mapped
task, a pod, a component, an op). Kinds, after Metaflow's linear / foreach / join:

- ``step``: one step; ``group``: consecutive steps fused by ``runtime.fuse``, one task ``a__b``;
- a map step is three tasks: ``<step>__shards`` (``shard_list``: how many shards the upstream
  made, known at run time), ``<step>__shard`` (``shard``: mapped, one instance per shard) and
  ``<step>`` (``gather``: the step's own record from its shards').

Every task runs through :func:`mlpipe.core.execution.execute.execute` with the task's
:meth:`TaskSpec.job`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from mlpipe.core.cluster import RUN_ID_SLOT, SHARD_SLOT
from mlpipe.core.config import PipelineSettings, ResourcesConfig
from mlpipe.core.errors import ConfigError
from mlpipe.core.pipeline import Pipeline, portable_ref

if TYPE_CHECKING:
    from mlpipe.core.cluster import ContainerSpec

TaskKind = Literal["step", "group", "shard_list", "shard", "gather"]
#: Joins a fused group's step names into its task name (``load_inference_data__load_model``).
SEPARATOR = "__"
SHARD_LIST_SUFFIX = "__shards"
SHARD_SUFFIX = "__shard"
#: ``mlpipe step`` part flags, by task kind (a shard's takes its number after ``--shard``).
_PARTS: dict[str, str] = {"shard_list": "plan", "shard": "shard", "gather": "gather"}


@dataclass(frozen=True)
class TaskSpec:
    """One plan task (what an orchestrator schedules; not an ML ``Task``) and everything any
    runner needs to make it."""

    name: str
    kind: TaskKind
    steps: tuple[str, ...]
    #: task names, in plan order; a shard task's one upstream is its shard list, a gather's last
    #: its shard task
    upstream: tuple[str, ...]
    retries: int
    retry_delay_s: float
    timeout_s: float
    resources: ResourcesConfig
    pipeline: str  # what another process resolves (``portable_ref``), else the pipeline's name
    config: PipelineSettings = field(repr=False, compare=False)
    #: step -> the task whose output carries that step's reference (for XCom-like passing)
    sources: Mapping[str, str] = field(default_factory=dict)
    #: what an orchestrator's UI shows for the task (a step's or a shard's: the step's own)
    description: str = ""
    #: whether an orchestrator's own cache may serve it: a step, group or shard task whose steps
    #: are all cacheable (a shard list or gather only reads records: it always runs)
    cacheable: bool = False

    @property
    def step(self) -> str:
        """The step a single-step task (step, shard_list, shard, gather) is about."""
        return self.steps[0]

    def job(
        self,
        run_id: str,
        *,
        home: str | None = None,
        runner: str = "local",
        shard: int | None = None,
        use_cache: bool | None = None,
        orchestrator_run_id: str = "",
        attempt: int = 0,
        sync: bool = False,
    ) -> dict[str, Any]:
        """What :func:`~mlpipe.core.execution.execute.execute` takes: plain JSON, so it crosses
        processes, pods and orchestrators' own serialization. ``sync``: pull the upstream from
        and push the outputs to ``cluster.storage_uri`` (a pod's home is its own)."""
        if (shard is None) != (self.kind != "shard"):
            raise ValueError(f"task {self.name}: a shard number goes with shard tasks only")
        return {
            "pipeline": self.pipeline, "task": self.name, "kind": self.kind,
            "steps": list(self.steps), "config": self.config.model_dump(mode="json"),
            "home": home, "run_id": run_id, "runner": runner, "shard": shard,
            "use_cache": use_cache, "orchestrator_run_id": orchestrator_run_id,
            "attempt": attempt, "sync": sync,
        }

    def container(self, pipeline: Pipeline, *, plan_out: str | None = None) -> ContainerSpec:
        """The pod that runs this task (``mlpipe step``), its run id and shard left as slots
        for :meth:`ContainerSpec.filled`."""
        from mlpipe.core.cluster import k8s_name, step_container

        part = _PARTS.get(self.kind, "step")
        spec = step_container(pipeline, self.step, self.config, RUN_ID_SLOT, part=part,
                              shard=SHARD_SLOT if self.kind == "shard" else None,
                              plan_out=plan_out)
        if self.kind != "group":
            return spec
        args = list(spec.args)
        args[1] = self.name  # ``mlpipe step`` takes a group's task name
        return replace(spec, args=tuple(args), name=k8s_name(self.name),
                       labels={**spec.labels, "mlpipe/step": k8s_name(self.name)})


@dataclass(frozen=True)
class Plan:
    """A pipeline's tasks in an order where every task comes after its upstream."""

    pipeline: Pipeline
    tasks: tuple[TaskSpec, ...]

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self.tasks)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def task(self, name: str) -> TaskSpec:
        found = {t.name: t for t in self.tasks}.get(name)
        if found is not None:
            return found
        raise ConfigError(f"pipeline {self.pipeline.name} has no task '{name}' "
                          f"(tasks: {', '.join(self.names)})")

    def select(self, names: Iterable[str]) -> list[TaskSpec]:
        """The named tasks, in plan order; a step fused into a group is found by its group
        (ConfigError, exit 2, for a name that is neither a task nor a step)."""
        wanted = list(names)
        found = [self.task_of(n) for n in wanted]
        return [t for t in self.tasks if t in found]

    def task_of(self, name: str) -> TaskSpec:
        """The task named ``name``, else the one that runs step ``name`` (its group, or its
        gather for a map step)."""
        for t in self.tasks:
            if t.name == name:
                return t
        for t in self.tasks:
            if name in t.steps and t.kind in ("step", "group", "gather"):
                return t
        return self.task(name)  # raises, naming the tasks


def group_name(steps: tuple[str, ...]) -> str:
    """The task name of a group: its step names joined (a single step keeps its own name)."""
    return SEPARATOR.join(steps)


def group_inputs(pipeline: Pipeline, steps: tuple[str, ...]) -> tuple[str, ...]:
    """The steps outside the group whose references the group's steps take, in pipeline order."""
    wanted = {src for s in steps for src in pipeline.step(s).upstream if src not in steps}
    return tuple(s for s in pipeline.step_names if s in wanted)


def task_groups(pipeline: Pipeline, config: PipelineSettings) -> list[tuple[str, ...]]:
    """The pipeline's steps as tasks, in order: one per step, or per fused group.

    Raises ``ConfigError`` (exit 2, naming ``runtime.fuse``) for an unknown step, a step in two
    groups, a group of one, a map step in a group, or a group whose steps are not consecutive.
    """
    order = list(pipeline.step_names)
    seen: set[str] = set()
    for i, group in enumerate(config.runtime.fuse):
        where = f"runtime.fuse[{i}]"
        unknown = [s for s in group if s not in order]
        if unknown:
            raise ConfigError(f"{where}: no step {', '.join(unknown)} in pipeline "
                              f"{pipeline.name} (steps: {', '.join(order)})")
        if len(group) < 2:
            raise ConfigError(f"{where}: a fused group names at least two steps")
        mapped = [s for s in group if pipeline.step(s).map_over is not None]
        if mapped:
            raise ConfigError(f"{where}: {', '.join(mapped)} is a map step (one task per shard, "
                              "the orchestrator's own fan-out); leave it out of fused groups")
        twice = [s for s in group if s in seen or group.count(s) > 1]
        if twice:
            raise ConfigError(f"{where}: step {', '.join(dict.fromkeys(twice))} is fused twice")
        seen.update(group)
        positions = sorted(order.index(s) for s in group)
        if positions != list(range(positions[0], positions[0] + len(group))):
            raise ConfigError(f"{where}: fused steps must be consecutive in the pipeline "
                              f"(order: {', '.join(order)})")
    first = {order[min(order.index(s) for s in g)]: g for g in config.runtime.fuse}
    tasks: list[tuple[str, ...]] = []
    for name in order:
        if name in first:
            tasks.append(tuple(s for s in order if s in first[name]))
        elif name not in seen:
            tasks.append((name,))
    return tasks


def plan(pipeline: Pipeline, config: PipelineSettings) -> Plan:
    """``pipeline`` + ``config`` -> the tasks every runner runs (see the module docstring)."""
    pipeline.check_config(config)
    try:
        ref = portable_ref(pipeline)
    except ConfigError:
        ref = pipeline.name  # defined in __main__ or a notebook: runs in this process only
    runtime, cluster = config.runtime, config.cluster
    task_of: dict[str, str] = {}  # step -> the task whose output is that step's reference
    tasks: list[TaskSpec] = []

    def add(name: str, kind: TaskKind, steps: tuple[str, ...], upstream: Iterable[str],
            resources: ResourcesConfig) -> None:
        inside = set(steps)
        sources = {src: task_of[src] for s in steps for src in pipeline.step(s).upstream
                   if src not in inside}
        description = {"shard_list": f"The shards {steps[0]} runs over",
                       "gather": f"{steps[0]}: its shards gathered in order",
                       "group": "mlpipe steps run as one task: " + ", ".join(steps)}.get(
            kind, pipeline.step(steps[0]).description)
        whole = kind in ("step", "group", "shard")  # a shard list or gather only reads records
        tasks.append(TaskSpec(
            name=name, kind=kind, steps=steps, upstream=tuple(dict.fromkeys(upstream)),
            retries=runtime.retries, retry_delay_s=runtime.retry_delay_s,
            timeout_s=runtime.timeout_s, resources=resources, pipeline=ref, config=config,
            sources=sources, description=description,
            cacheable=whole and all(pipeline.step(s).cacheable for s in steps)))

    for group in task_groups(pipeline, config):
        outside = [src for s in group for src in pipeline.step(s).upstream if src not in group]
        after = [task_of[src] for src in pipeline.step_names if src in outside]
        step = pipeline.step(group[0])
        if len(group) > 1:
            add(group_name(group), "group", group, after, cluster.resources_for(group[0]))
        elif step.map_over is None:
            add(step.name, "step", group, after, cluster.resources_for(step.name))
        else:
            listing = step.name + SHARD_LIST_SUFFIX
            add(listing, "shard_list", group, after, cluster.resources)
            # the shards follow their list; the gather reads the upstream again to count them
            add(step.name + SHARD_SUFFIX, "shard", group, [listing],
                cluster.resources_for(step.name))
            add(step.name, "gather", group, [*after, step.name + SHARD_SUFFIX], cluster.resources)
        task_of.update(dict.fromkeys(group, tasks[-1].name))
    return Plan(pipeline, tuple(tasks))
