"""Dagster's floor: the plan's shape as a job of no-op ``@op`` s (a shard list op with
``DynamicOut``, the shard op mapped over it, the gather op after ``.collect()``), run with
``execute_in_process`` on an ephemeral instance. Written in Dagster's API directly: it must not
share the adapter's translation, whose cost it measures."""

# No ``from __future__ import annotations``: Dagster reads the ops' annotations at runtime.

import time
from collections.abc import Iterator
from typing import Any

from mlpipe.core.execution.floor import Floor, FloorTask, listing_of


def dagster_floor(tasks: list[FloorTask], name: str) -> Floor:
    import dagster as dg

    def list_shards(count: int, **_: Any) -> Iterator[Any]:  # count: the input's default
        yield from (dg.DynamicOutput(i, mapping_key=f"shard_{i:04d}") for i in range(count))

    def noop(context: dg.OpExecutionContext, **_: Any) -> int:  # the inputs each op declares
        return 0

    after, kind = {"after": dg.In(dg.Nothing)}, {t.name: t.kind for t in tasks}

    @dg.job(name=f"floor_{name}", executor_def=dg.in_process_executor)
    def floor() -> None:
        made: dict[str, Any] = {}
        for spec in tasks:  # a shard task only after its list; its gather after its .collect()
            outer = [made[u] for u in spec.upstream if kind[u] != "shard"]
            deps = {"after": outer} if outer else {}
            if spec.kind == "shard_list":
                count = {"count": dg.In(int, default_value=spec.shards), **after}
                op = dg.op(name=spec.name, ins=count, out=dg.DynamicOut())(list_shards)
                made[spec.name] = op(**deps)
            elif spec.kind == "shard":
                op = dg.op(name=spec.name, ins={"shard": dg.In()})(noop)
                made[spec.name] = made[listing_of(spec, tasks).name].map(op)
            elif spec.kind == "gather":
                shards = next(u for u in spec.upstream if kind[u] == "shard")
                op = dg.op(name=spec.name, ins={"shards": dg.In(), **after})(noop)
                made[spec.name] = op(shards=made[shards].collect(), **deps)
            else:
                made[spec.name] = dg.op(name=spec.name, ins=after)(noop)(**deps)

    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        result = floor.execute_in_process(instance=instance, raise_on_error=True)
        seconds = time.perf_counter() - started
    return Floor(seconds, len(result.get_step_success_events()))
