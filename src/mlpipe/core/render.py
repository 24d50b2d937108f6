"""What ``mlpipe render`` writes for every runner: one pod file per plan task (a shard task's
pods once per rendered shard, ``<task>-NNNN``) and the orchestrator's shape, as YAML."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from mlpipe.core.cluster import rendered_shards
from mlpipe.core.config import PipelineSettings
from mlpipe.core.execution.plan import Plan, TaskSpec


def task_pods(tasks: Plan, config: PipelineSettings) -> Iterator[tuple[str, TaskSpec, int | None]]:
    """(file stem, task, shard) of each pod the plan would start: a shard task's once per
    shard (``rendered_shards``), with the shard's number."""
    for task in tasks:
        if task.kind != "shard":
            yield task.name, task, None
            continue
        for shard in range(rendered_shards(tasks.pipeline, task.step, config)):
            yield f"{task.name}-{shard:04d}", task, shard


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=120))
    return path


def write_pods(tasks: Plan, config: PipelineSettings, out_dir: Path,
               body: Callable[[TaskSpec, int | None], dict[str, Any]]) -> list[Path]:
    """``<pipeline>-<stem>.pod.yaml`` for each pod of the plan, ``body`` saying what the
    orchestrator would submit for a task (and shard)."""
    name = tasks.pipeline.name
    return [write_yaml(Path(out_dir) / f"{name}-{stem}.pod.yaml", body(task, shard))
            for stem, task, shard in task_pods(tasks, config)]
