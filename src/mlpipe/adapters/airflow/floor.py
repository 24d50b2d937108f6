"""Airflow's floor: the plan's shape as a TaskFlow DAG of no-op tasks, which ``AirflowRunner``
runs through the same child as mlpipe's DAG (``dag.test()`` on a migrated sqlite DB). Written in
Airflow's API directly, on purpose: it must not share the adapter's translation, whose cost it
measures."""

from __future__ import annotations

from typing import Any

from mlpipe.core.execution.floor import FloorTask, listing_of


def floor_dag(tasks: list[FloorTask], name: str) -> Any:
    import pendulum
    from airflow.sdk import DAG, task

    with DAG(dag_id=f"floor_{name}", schedule=None, catchup=False,
             start_date=pendulum.datetime(2025, 1, 1, tz="UTC")) as dag:
        made: dict[str, Any] = {}
        for spec in tasks:
            if spec.kind == "shard_list":
                @task(task_id=spec.name)
                def list_shards(count: int = spec.shards) -> list[int]:
                    return list(range(count))

                made[spec.name] = list_shards()
            elif spec.kind == "shard":
                @task(task_id=spec.name)
                def noop_shard(shard: int) -> None:
                    return None

                made[spec.name] = noop_shard.expand(shard=made[listing_of(spec, tasks).name])
            else:
                @task(task_id=spec.name)
                def noop() -> None:
                    return None

                made[spec.name] = noop()
            for up in spec.upstream:
                if up not in made[spec.name].operator.upstream_task_ids:
                    made[up] >> made[spec.name]
    return dag
