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

    @task
    def list_shards(count: int) -> list[int]:
        return list(range(count))

    @task
    def noop(shard: int | None = None) -> None:
        return None

    with DAG(dag_id=f"floor_{name}", schedule=None, catchup=False,
             start_date=pendulum.datetime(2025, 1, 1, tz="UTC")) as dag:
        made: dict[str, Any] = {}
        for spec in tasks:  # one task function per kind, each task under its plan name
            if spec.kind == "shard_list":
                made[spec.name] = list_shards.override(task_id=spec.name)(spec.shards)
            elif spec.kind == "shard":
                made[spec.name] = noop.override(task_id=spec.name).expand(
                    shard=made[listing_of(spec, tasks).name])
            else:
                made[spec.name] = noop.override(task_id=spec.name)()
            made[spec.name].operator.set_upstream([made[u].operator for u in spec.upstream])
    return dag
