"""Dagster's floor: the plan's shape as the no-op assets a Dagster user writes by hand (an
``@asset`` per step with its run's checks as blocking asset checks, a graph-backed asset per map
step, values in memory), run with ``execute_in_process`` on the run's kind of instance. Written in
Dagster's API directly: it must not share the adapter's translation, whose cost it measures."""

# No ``from __future__ import annotations``: Dagster reads the ops' annotations at runtime.

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlpipe.core.execution.floor import Floor, FloorTask, listing_of


def dagster_floor(tasks: list[FloorTask], name: str, work_dir: Path) -> Floor:
    import dagster as dg

    def step_asset(spec: FloorTask) -> Any:
        checks = [dg.AssetCheckSpec(c, asset=spec.name, blocking=True) for c in spec.checks]

        @dg.asset(name=spec.name, ins={u: dg.AssetIn(key=u) for u in spec.upstream},
                  check_specs=checks)
        def noop(context: dg.AssetExecutionContext, **_: Any) -> Iterator[Any]:
            yield dg.Output(None)
            yield from (dg.AssetCheckResult(check_name=c, passed=True) for c in spec.checks)

        return noop

    def map_asset(gather: FloorTask) -> Any:
        shard = next(t for t in tasks if t.name in gather.upstream and t.kind == "shard")
        listing, sources = listing_of(shard, tasks), [u for u in gather.upstream if u != shard.name]
        ins = {u: dg.In() for u in sources}

        @dg.op(name=listing.name, ins=ins, out=dg.DynamicOut())
        def list_shards(context: dg.OpExecutionContext, **_: Any) -> Iterator[Any]:
            yield from (dg.DynamicOutput(i, mapping_key=f"shard_{i:04d}")
                        for i in range(listing.shards))

        # the graph-backed asset takes the step's name: its gather op needs another
        @dg.op(name=f"{gather.name}__gather", ins={"done": dg.In(), **ins})
        def run_gather(context: dg.OpExecutionContext, **_: Any) -> int:  # None: no output
            return 0

        def compose(**values: Any) -> Any:
            done = list_shards(**values).map(dg.op(name=shard.name)(lambda listed: listed))
            return run_gather(done=done.collect(), **values)

        return dg.graph_asset(name=gather.name, ins={u: dg.AssetIn(key=u) for u in sources})(
            compose)

    assets = [map_asset(t) if t.kind == "gather" else step_asset(t)
              for t in tasks if t.kind in ("step", "gather")]
    job = dg.Definitions(
        assets=assets, jobs=[dg.define_asset_job(f"floor_{name}", selection="*")],
        resources={"io_manager": dg.mem_io_manager}, executor=dg.in_process_executor,
    ).resolve_job_def(f"floor_{name}")
    instance = (dg.DagsterInstance.local_temp(str(work_dir)) if os.environ.get("DAGSTER_HOME")
                else dg.DagsterInstance.ephemeral())  # the run's kind: sqlite, else in memory
    with instance:
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, raise_on_error=True)
        seconds = time.perf_counter() - started
    return Floor(seconds, len(result.get_step_success_events()))
