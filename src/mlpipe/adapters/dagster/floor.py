"""Dagster's floor: the plan's shape as no-op assets (a map step: a graph-backed asset whose
shard-list op yields one ``DynamicOutput`` per shard, the shard op mapped over them and a gather
op collecting them), ``execute_in_process`` on an ephemeral instance. Written in Dagster's API
directly: it must not share the adapter's translation, whose cost it measures."""

from __future__ import annotations

import inspect
import time
from typing import Any

from mlpipe.core.execution.floor import Floor, FloorTask


def dagster_floor(tasks: list[FloorTask], name: str) -> Floor:
    import dagster as dg

    # a map step's three tasks come in a row: the shard list and the shards live in the
    # gather's graph-backed asset
    asset_of = {t.name: tasks[i + {"shard_list": 2, "shard": 1}.get(t.kind, 0)].name
                for i, t in enumerate(tasks)}
    assets = []
    for i, spec in enumerate(tasks):
        outer = sorted({asset_of[u] for u in spec.upstream} - {asset_of[spec.name]})
        if spec.kind in ("step", "group"):
            @dg.asset(name=spec.name, deps=[dg.AssetKey(u) for u in outer],
                      group_name=f"floor_{name}")
            def noop() -> None:
                return None

            assets.append(noop)
        elif spec.kind == "shard_list":
            assets.append(_mapped(spec, tasks[i + 1], tasks[i + 2], outer, name))
    job = dg.define_asset_job(f"floor_{name}", selection=dg.AssetSelection.all())
    defs = dg.Definitions(assets=assets, jobs=[job], executor=dg.in_process_executor)
    resolved = defs.resolve_job_def(f"floor_{name}")
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        result = resolved.execute_in_process(instance=instance, raise_on_error=True)
        seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError("dagster floor job failed")
    return Floor(seconds, len(result.get_step_success_events()))


def _mapped(listing: FloorTask, shard: FloorTask, gathering: FloorTask, upstream: list[str],
            name: str) -> Any:
    import dagster as dg

    @dg.op(name=listing.name, ins={u: dg.In(dg.Nothing) for u in upstream}, out=dg.DynamicOut())
    def list_shards() -> Any:
        for i in range(listing.shards):
            yield dg.DynamicOutput(i, mapping_key=f"shard_{i:04d}")

    @dg.op(name=shard.name)
    def noop_shard(shard: int) -> int:
        return shard

    @dg.op(name=f"{gathering.name}__gather")  # "<step>" is the asset's graph here
    def gather(shard_results: list[int]) -> None:
        return None

    def compose(**inputs: Any) -> Any:
        return gather(list_shards(**inputs).map(noop_shard).collect())

    compose.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(u, inspect.Parameter.POSITIONAL_OR_KEYWORD) for u in upstream])
    return dg.graph_asset(name=gathering.name, group_name=f"floor_{name}",
                          ins={u: dg.AssetIn(key=dg.AssetKey(u), dagster_type=dg.Nothing)
                               for u in upstream})(compose)
