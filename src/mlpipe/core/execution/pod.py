"""What a step's container runs (``mlpipe step NAME ...``): pull, load upstream, run, push.

In cluster mode each step is its own pod. It reads the results of the earlier steps of the same
run from the shared home (a volume) or, with ``cluster.storage_uri``, from an object store it
syncs before and after, so pods share nothing else.

A map step is several pods, so that each shard gets the step's resources: ``--plan`` lists the
shards the upstream made (the orchestrator fans out over that list, known only at run time),
``--shard I`` runs shard ``I`` alone into ``<step>/shard-NNNN/``, and ``--gather`` writes the
step's own result from the shards' records, as the in-process runners' gather does.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from mlpipe.core.config import PipelineSettings
from mlpipe.core.errors import ConfigError
from mlpipe.core.execution.step import (
    StepRun,
    gather_shards,
    load_step_result,
    run_step,
    shard_count,
    shard_threads,
)
from mlpipe.core.paths import step_dir
from mlpipe.core.pipeline import Pipeline, Step
from mlpipe.core.refs import Ref
from mlpipe.core.storage import RESULT, open_store, pull_for_step, push_for_step


def _step(pipeline: Pipeline, step: str, *, mapped: str | None = None) -> Step:
    """The step; with ``mapped`` (the option asking), refuse one that is not a map step."""
    try:
        spec = pipeline.step(step)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    if mapped and spec.map_over is None:
        raise ConfigError(f"{mapped}: step '{step}' of pipeline {pipeline.name} is not a map "
                          "step (only steps with map_over run as shards)")
    return spec


def _inputs(
    pipeline: Pipeline, spec: Step, config: PipelineSettings, home: Path, run_id: str
) -> dict[str, Ref]:
    """Pull the step's upstream (``cluster.storage_uri``) and read their references."""
    pull_for_step(config, pipeline, spec.name, home, run_id)
    inputs: dict[str, Ref] = {}
    for arg, source in spec.inputs.items():
        try:
            inputs[arg] = load_step_result(home, pipeline.name, run_id, source).ref
        except FileNotFoundError:
            raise ConfigError(
                f"step '{spec.name}' needs '{source}' of run {run_id} first (no result under "
                f"{home})"
            ) from None
    return inputs


def run_pod_step(
    pipeline: Pipeline,
    step: str,
    config: PipelineSettings,
    *,
    home: Path,
    run_id: str,
    use_cache: bool | None = None,
    runner: str = "step",
    shard: int | None = None,
) -> StepRun:
    """Run one step of a run whose earlier steps already ran (in other pods, perhaps); with
    ``shard``, only that shard of a map step (its pod's record is the shard's)."""
    spec = _step(pipeline, step, mapped="--shard" if shard is not None else None)
    inputs = _inputs(pipeline, spec, config, home, run_id)
    # a shard alone in its pod uses all the pod's cores, not a share of them
    with shard_threads(1) if shard is not None else contextlib.nullcontext():
        result = run_step(
            pipeline,
            step,
            config,
            inputs,
            home=home,
            run_id=run_id,
            use_cache=use_cache,
            tags={"runner": runner},
            shard=shard,
        )
    push_for_step(config, pipeline, step, home, run_id, result.ref)
    return result


def plan_pod_step(
    pipeline: Pipeline, step: str, config: PipelineSettings, *, home: Path, run_id: str
) -> list[int]:
    """The shard numbers a map step runs over in this run (``[0, 1, ...]``): what the
    orchestrator fans out over, one pod per shard."""
    spec = _step(pipeline, step, mapped="--plan")
    return list(range(shard_count(spec, _inputs(pipeline, spec, config, home, run_id))))


def gather_pod_step(
    pipeline: Pipeline, step: str, config: PipelineSettings, *, home: Path, run_id: str
) -> StepRun:
    """After every shard's pod: the map step's ``result.json`` (its shards' outputs in order),
    or the failed shard's error. The count comes from the upstream again, so a shard that never
    ran is reported, never skipped."""
    spec = _step(pipeline, step, mapped="--gather")
    count = shard_count(spec, _inputs(pipeline, spec, config, home, run_id))
    directory = step_dir(home, pipeline.name, run_id, step)
    store = open_store(config, home)
    if store is not None:
        store.pull(directory)  # the shards' records and outputs, pushed by their pods
    result = gather_shards(pipeline, step, home=home, run_id=run_id, count=count)
    if store is not None:
        store.push(directory / RESULT)  # the shards' files are in the store already
    return result
