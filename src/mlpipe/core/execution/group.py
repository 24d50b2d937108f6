"""``runtime.fuse``: consecutive steps run as one orchestrator task, decided here for every runner.

A fused group is a translation of the one pipeline description: core validates the groups and
runs a group's steps one after the other (:func:`execute_group`, each step through
``execute_step``, so each leaves its own ``result.json`` and outputs identical to an unfused run);
adapters only emit one task per group (:func:`task_groups`) named after its steps
(:func:`group_name`). Fusing saves a task's process start and imports per light step where an
orchestrator starts a process per task (kfp.local, Kubernetes pods).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlpipe.core.config import PipelineSettings
from mlpipe.core.errors import ConfigError
from mlpipe.core.execution.step import execute_step
from mlpipe.core.pipeline import Pipeline, resolve_pipeline

#: Joins the step names of a fused group into its task's name (``load_inference_data__load_model``).
SEPARATOR = "__"


def task_groups(pipeline: Pipeline, config: PipelineSettings) -> list[tuple[str, ...]]:
    """The pipeline's steps as orchestrator tasks, in order: one per step, or per fused group.

    Raises ``ConfigError`` (exit 2, naming ``runtime.fuse``) for an unknown step, a step in two
    groups, a group of one, or a group whose steps are not consecutive in the pipeline.
    """
    groups = config.runtime.fuse
    order = list(pipeline.step_names)
    seen: set[str] = set()
    for i, group in enumerate(groups):
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
    first = {order[min(order.index(s) for s in g)]: g for g in groups}
    tasks: list[tuple[str, ...]] = []
    for name in order:
        if name in first:
            tasks.append(tuple(s for s in order if s in first[name]))
        elif name not in seen:
            tasks.append((name,))
    return tasks


def group_name(steps: tuple[str, ...]) -> str:
    """The task name of a group: its step names joined (a single step keeps its own name)."""
    return SEPARATOR.join(steps)


def group_inputs(pipeline: Pipeline, steps: tuple[str, ...]) -> tuple[str, ...]:
    """The steps outside the group whose references the group's steps take, in pipeline order."""
    wanted = {src for s in steps for src in pipeline.step(s).upstream if src not in steps}
    return tuple(s for s in pipeline.step_names if s in wanted)


def execute_group(
    pipeline: str | Pipeline,
    steps: tuple[str, ...] | list[str],
    config: str | Mapping[str, Any],
    upstream: Mapping[str, str | Mapping[str, Any]],
    *,
    home: str | Path,
    run_id: str,
    use_cache: bool | None = None,
    enforce_checks: bool = True,
    tags: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run a fused group's steps in order in this process: step name -> ``execute_step``'s JSON.

    ``upstream`` maps each step outside the group that the group reads from to its reference.
    Steps inside the group always stop on a failed blocking check (the next one must not run on
    it); ``enforce_checks`` applies to the group's last step, as for a single step.
    """
    pipe = resolve_pipeline(pipeline)
    results: dict[str, dict[str, Any]] = {}
    name = group_name(tuple(steps))
    for i, step in enumerate(steps):
        spec = pipe.step(step)
        refs = {arg: results[src]["ref"] if src in results else upstream[src]
                for arg, src in spec.inputs.items()}
        print(f"mlpipe: fused task {name}: step {step} running", file=sys.stderr, flush=True)
        results[step] = execute_step(
            pipe, step, config, refs, home=home, run_id=run_id, use_cache=use_cache,
            enforce_checks=enforce_checks or i < len(steps) - 1,
            tags={**(tags or {}), "fused_task": name},
        )
        state = "cached" if results[step]["cached"] else "done"
        print(f"mlpipe: fused task {name}: step {step} {state} in "
              f"{results[step]['seconds']:.2f}s", file=sys.stderr, flush=True)
    return results
