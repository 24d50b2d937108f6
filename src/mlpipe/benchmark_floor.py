"""Each orchestrator's own floor: a no-op pipeline of the same shape, written natively.

Same task names, same dependencies, task bodies that do nothing, run the way mlpipe's runner runs
its pipeline (Airflow: ``dag.test()`` in a fresh process on a migrated sqlite DB; kfp.local: the
SubprocessRunner; Dagster: ``execute_in_process`` on an ephemeral instance), and timed over the
same span as the runner's own figure. What mlpipe's run costs above its steps' time and this
floor is mlpipe's adapter overhead. Written in each orchestrator's API directly, on purpose: it
must not share mlpipe's translation, whose cost it measures.

``python -m mlpipe.benchmark_floor airflow SHAPE_JSON`` is the Airflow child (``AIRFLOW_HOME`` set).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: A pipeline's shape: (task name, names of the tasks it depends on), in order.
Shape = list[tuple[str, list[str]]]


def shape_of(pipeline: Any) -> Shape:
    """The shape of an mlpipe ``Pipeline``: its step names and each step's upstream steps."""
    return [(step.name, list(step.upstream)) for step in pipeline.steps]


def floor_seconds(runner: str, shape: Shape, name: str, work_dir: Path) -> float:
    """Seconds the orchestrator behind ``runner`` takes to run a no-op pipeline of ``shape``."""
    work_dir.mkdir(parents=True, exist_ok=True)
    if runner == "airflow":
        return _airflow(shape, name, work_dir / "airflow")
    if runner == "kubeflow":
        return _kubeflow(shape, name, work_dir / "kfp")
    if runner == "dagster":
        return _dagster(shape, name)
    return _local(shape)


def _local(shape: Shape) -> float:
    """The local runner's floor: calling a no-op function per step, in order."""
    started = time.perf_counter()
    done: dict[str, int] = {}
    for task, upstream in shape:
        done[task] = _noop(*(done[u] for u in upstream))
    return time.perf_counter() - started


def _noop(*_: Any) -> int:
    return 0


# -- Airflow: a TaskFlow DAG of no-op tasks, dag.test() in a fresh process -----------------------


def _airflow(shape: Shape, name: str, airflow_home: Path) -> float:
    """Run the no-op DAG in a child process, as ``AirflowRunner`` runs mlpipe's DAG."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for key in ("AIRFLOW_CONFIG", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                "AIRFLOW__CORE__DAGS_FOLDER"):
        env.pop(key, None)
    env.update(AIRFLOW_HOME=str(airflow_home), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", __name__, "airflow", json.dumps({"shape": shape, "name": name})],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("FLOOR ")), None)
    if proc.returncode != 0 or line is None:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"airflow floor failed (exit {proc.returncode}): {tail}")
    return float(line.removeprefix("FLOOR "))


def _airflow_child(shape: Shape, name: str) -> float:
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
        for task_id, upstream in shape:

            @task(task_id=task_id)
            def noop() -> None:
                return None

            made[task_id] = noop()
            for up in upstream:
                made[up] >> made[task_id]
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
    return seconds


# -- kfp.local: lightweight no-op components, SubprocessRunner ---------------------------------


def _kubeflow(shape: Shape, name: str, pipeline_root: Path) -> float:
    import contextlib

    from kfp import dsl, local
    from kfp.local import config as local_config

    @dsl.component(packages_to_install=[], install_kfp_package=False)
    def noop():  # no "-> None": kfp would read it as an output artifact
        return None

    @dsl.pipeline(name=f"floor-{name}")
    def floor_pipeline():  # (as for noop)
        made: dict[str, Any] = {}
        for task_id, upstream in shape:
            made[task_id] = noop().set_display_name(task_id)
            for up in upstream:
                made[task_id].after(made[up])

    pipeline_root.mkdir(parents=True, exist_ok=True)
    previous = local_config.LocalExecutionConfig.instance
    try:
        with contextlib.redirect_stdout(sys.stderr):
            local.init(runner=local.SubprocessRunner(use_venv=False),
                       pipeline_root=str(pipeline_root), raise_on_error=True)
            started = time.perf_counter()
            floor_pipeline()
            return time.perf_counter() - started
    finally:
        local_config.LocalExecutionConfig.instance = previous


# -- Dagster: no-op assets, execute_in_process on an ephemeral instance -------------------------


def _dagster(shape: Shape, name: str) -> float:
    import dagster as dg

    assets = []
    for task_id, upstream in shape:

        @dg.asset(name=task_id, deps=[dg.AssetKey(u) for u in upstream],
                  group_name=f"floor_{name}")
        def noop() -> None:
            return None

        assets.append(noop)
    job = dg.define_asset_job(f"floor_{name}", selection=dg.AssetSelection.all())
    defs = dg.Definitions(assets=assets, jobs=[job], executor=dg.in_process_executor)
    resolved = defs.resolve_job_def(f"floor_{name}")
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        result = resolved.execute_in_process(instance=instance, raise_on_error=True)
        seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError("dagster floor job failed")
    return seconds


def main(argv: Sequence[str]) -> None:
    kind, request = argv
    data = json.loads(request)
    if kind != "airflow":
        raise SystemExit(f"unknown floor child {kind!r}")
    shape = [(t, list(u)) for t, u in data["shape"]]
    print(f"FLOOR {_airflow_child(shape, data['name'])}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
