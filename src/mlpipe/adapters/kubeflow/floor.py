"""kfp.local's floor: the plan's shape as lightweight no-op components on the SubprocessRunner,
as ``KubeflowRunner`` runs mlpipe's pipeline (a shard list, a ``ParallelFor`` over it, a gather
on ``Collected``). Written in kfp's API directly: it must not share the adapter's translation,
whose cost it measures."""

# No ``from __future__ import annotations``: kfp reads the components' real types.

import time
from pathlib import Path
from typing import Any, List  # noqa: UP035 (kfp's component source, as mlpipe's compiler writes)

from mlpipe.core.execution.floor import Floor, FloorTask, listing_of


def kubeflow_floor(tasks: list[FloorTask], name: str, pipeline_root: Path) -> Floor:
    from kfp import dsl

    from mlpipe.adapters.kubeflow.session import local_session

    def noop():  # no "-> None": kfp would read it as an output artifact
        return None

    def list_shards(count: int) -> List[int]:  # noqa: UP006 (the component's source: kfp's List)
        return list(range(count))

    def noop_shard(shard: int) -> int:
        return shard

    def gather(shard_results: List[int]):  # noqa: UP006 (as for list_shards and noop)
        return None

    noop_task, lister_task, shard_task, gather_task = (
        dsl.component(fn, packages_to_install=[], install_kfp_package=False)
        for fn in (noop, list_shards, noop_shard, gather))

    @dsl.pipeline(name=f"floor-{name}")
    def floor_pipeline():  # (as for noop)
        made: dict[str, Any] = {}
        kind = {t.name: t.kind for t in tasks}
        for spec in tasks:
            if spec.kind == "shard_list":
                made[spec.name] = lister_task(count=spec.shards)
            elif spec.kind == "shard":
                with dsl.ParallelFor(made[listing_of(spec, tasks).name].output) as shard:
                    made[spec.name] = shard_task(shard=shard)
            elif spec.kind == "gather":
                shards = next(u for u in spec.upstream if kind[u] == "shard")
                made[spec.name] = gather_task(shard_results=dsl.Collected(made[shards].output))
            else:
                made[spec.name] = noop_task()
            made[spec.name].set_display_name(spec.name)
            for up in spec.upstream if spec.kind in ("step", "group", "shard_list") else ():
                made[spec.name].after(made[up])

    pipeline_root.mkdir(parents=True, exist_ok=True)
    before = set(pipeline_root.iterdir())
    with local_session(pipeline_root):
        started = time.perf_counter()
        floor_pipeline()
        seconds = time.perf_counter() - started
    runs = set(pipeline_root.iterdir()) - before  # one folder per task (and ParallelFor item)
    return Floor(seconds, sum(1 for run in runs for _ in run.rglob("executor_output.json")))
