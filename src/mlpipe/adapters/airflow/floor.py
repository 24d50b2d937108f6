"""Airflow's floor: the plan's shape as a TaskFlow DAG of no-op tasks, ``dag.test()`` in a fresh
process on a migrated sqlite DB, as ``AirflowRunner`` runs mlpipe's DAG. Written in Airflow's API
directly, on purpose: it must not share the adapter's translation, whose cost it measures.

``python -m mlpipe.adapters.airflow.floor TASKS_JSON`` is the child (``AIRFLOW_HOME`` set).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlpipe.core.execution.floor import Floor, FloorTask, listing_of


def airflow_floor(tasks: list[FloorTask], name: str, airflow_home: Path) -> Floor:
    """Run the no-op DAG in a child process, as ``AirflowRunner`` runs mlpipe's DAG."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for key in ("AIRFLOW_CONFIG", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                "AIRFLOW__CORE__DAGS_FOLDER"):
        env.pop(key, None)
    env.update(AIRFLOW_HOME=str(airflow_home), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    request = json.dumps({"tasks": [t.__dict__ for t in tasks], "name": name})
    proc = subprocess.run([sys.executable, "-m", __name__, request], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("FLOOR ")), None)
    if proc.returncode != 0 or line is None:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"airflow floor failed (exit {proc.returncode}): {tail}")
    seconds, count = line.removeprefix("FLOOR ").split()
    return Floor(float(seconds), int(count))


def _child(tasks: list[FloorTask], name: str) -> Floor:
    import pendulum
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.sdk import DAG, task
    from airflow.utils import db
    from airflow.utils.session import create_session

    db.upgradedb()  # idempotent; mlpipe's runner migrates once per Airflow home, untimed too

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
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    bag = DagBag(dag_folder=os.devnull)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    started = time.perf_counter()
    run = dag.test()
    seconds = time.perf_counter() - started
    if str(run.state) != "success":
        raise RuntimeError(f"airflow floor DAG ended {run.state}")
    ran = [ti for ti in run.get_task_instances() if str(ti.state) == "success"]
    return Floor(seconds, len(ran))


if __name__ == "__main__":
    data = json.loads(sys.argv[1])
    floor = _child([FloorTask(**t) for t in data["tasks"]], data["name"])
    print(f"FLOOR {floor.seconds} {floor.tasks}", flush=True)
