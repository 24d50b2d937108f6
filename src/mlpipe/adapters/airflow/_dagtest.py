"""Child of ``AirflowRunner`` (core's ``run_child``, fresh or kept: ``main`` once per run): migrate
the metadata DB once, then ``dag.test()``. The steps record their own outcomes, so the report is
Airflow's view: the DAG run's id and state, each task instance (a mapped task one per map index)
as core's :class:`~mlpipe.core.execution.facts.Instance`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def ensure_db(airflow_home: Path) -> float:
    """Create/migrate the metadata DB once per Airflow version (core's marker); returns seconds."""
    import airflow
    from airflow.utils import db

    from mlpipe.core.execution.metadb import migrate_once

    return migrate_once(airflow_home, airflow.__version__, db.upgradedb)


def register(dag: Any) -> None:
    """Store the in-memory DAG serialized, as the dag processor would (``dag.test`` needs it)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    bag = DagBag(dag_folder=os.devnull)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def serve_only_the_sdks_api_version() -> list[str]:
    """Build ``dag.test()``'s in-process Execution API for the Task SDK's own version only.

    The in-process server and its one client are the same Airflow install, so they always speak
    the SDK's version; Cadwyn would otherwise generate routers and schemas for every dated API
    version on the first request, the largest fixed cost of a ``dag.test()`` run. The newest
    dated version is the head schema, so it is served with no version changes, and the routes
    that exist only in older versions (which Cadwyn would make an older version restore) are
    left out of the router. When the SDK's version is not the server's newest (a mismatched
    install), nothing is changed. Returns the dated versions served.
    """
    from airflow.api_fastapi.execution_api import versions
    from airflow.api_fastapi.execution_api.routes import execution_api_router
    from airflow.sdk.api.datamodels._generated import API_VERSION
    from cadwyn import HeadVersion, Version, VersionBundle
    from cadwyn.route_generation import _DELETED_ROUTE_TAG

    dated = versions.bundle.versions
    if dated[0].value != API_VERSION or len(dated) == 1:  # a mismatch, or done (a kept child)
        return [v.value for v in dated]
    execution_api_router.routes[:] = [
        r for r in execution_api_router.routes if _DELETED_ROUTE_TAG not in getattr(r, "tags", ())]
    versions.bundle = VersionBundle(HeadVersion(), Version(API_VERSION))
    return [v.value for v in versions.bundle.versions]


def main(request_path: str, result_path: str) -> int:
    request = json.loads(Path(request_path).read_text())
    started = time.perf_counter()
    migrate_s = ensure_db(Path(os.environ["AIRFLOW_HOME"]))

    from mlpipe.adapters.airflow.dags import build_dag
    from mlpipe.adapters.airflow.spec import CONF_RUN_ID, CONF_USE_CACHE
    from mlpipe.core.execution.child import read_request
    from mlpipe.core.execution.teardown import skip_teardown_at_exit

    conf: dict[str, Any] = {}
    if "floor" in request:  # the runner's floor: the plan's shape as no-op tasks
        from mlpipe.adapters.airflow.floor import floor_dag
        from mlpipe.core.execution.floor import FloorTask

        noops = [FloorTask(**t) for t in request["floor"]["tasks"]]
        dag = floor_dag(noops, request["floor"]["name"])
    else:
        run = read_request(request)
        dag = build_dag(run.pipeline, run.config, home=run.home)
        conf = {CONF_RUN_ID: run.run_id, CONF_USE_CACHE: run.use_cache}
    register(dag)
    api_versions = serve_only_the_sdks_api_version()
    setup_s = time.perf_counter() - started

    started = time.perf_counter()
    dag_run = dag.test(run_conf=conf)
    test_s = time.perf_counter() - started

    tasks = [{  # core's Instance fields
        "task": ti.task_id, "index": ti.map_index, "state": str(ti.state) if ti.state else None,
        "tries": ti.try_number, "max_tries": ti.max_tries + 1, "seconds": ti.duration,
        "started": ti.start_date.timestamp() if ti.start_date else None,
        "ended": ti.end_date.timestamp() if ti.end_date else None,
    } for ti in sorted(dag_run.get_task_instances(),  # in the plan's order
                       key=lambda t: (dag.task_ids.index(t.task_id), t.map_index))]
    report = {"dag_run_id": dag_run.run_id, "state": str(dag_run.state), "tasks": tasks,
              "dag_test_seconds": test_s, "extra": {  # the runner's extra, as it is
                  "dag_id": dag.dag_id, "child_pid": os.getpid(), "setup_seconds": setup_s,
                  "migrate_seconds": migrate_s, "execution_api_versions": api_versions}}
    Path(result_path).write_text(json.dumps(report, indent=2))
    skip_teardown_at_exit()  # this child is the runs' own process: end it once it is done
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
