"""Fused groups for the adapters not yet translated from the plan (Dagster, Kubeflow).

The rules and names live in :mod:`.plan` (``task_groups``, ``group_name``); this module keeps
only ``group_inputs`` and ``execute_group`` for those adapters, until they move onto
``plan``/``execute`` as the local runner and Airflow have. Then it goes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlpipe.core.execution.plan import SEPARATOR, group_name, task_groups
from mlpipe.core.execution.step import execute_step
from mlpipe.core.pipeline import Pipeline, resolve_pipeline

__all__ = ["SEPARATOR", "execute_group", "group_inputs", "group_name", "task_groups"]


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
