"""The Airflow runner: each run is a real DAG run (``dag.test()`` on a real metadata DB).

Airflow fixes ``AIRFLOW_HOME``, its database and logging when first imported, so runs go to a
child (``_dagtest``, core's ``run_child``), kept between runs (``keep_child``); this module imports
no Airflow. The Airflow home defaults to ``<mlpipe home>/airflow`` (``$MLPIPE_AIRFLOW_HOME``); its
sqlite DB is core's :mod:`~mlpipe.core.execution.metadb` (``$MLPIPE_AIRFLOW_DB_TEMPLATE``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlpipe.core.config import PipelineSettings
from mlpipe.core.execution import Launch, Runner
from mlpipe.core.execution.child import log_tail, request_json, run_child
from mlpipe.core.execution.facts import Instance, failed_try_note, task_facts
from mlpipe.core.execution.floor import Floor, FloorTask
from mlpipe.core.execution.honours import on_this_machine
from mlpipe.core.execution.metadb import seed_home
from mlpipe.core.execution.runner import RunRequest
from mlpipe.core.paths import run_dir
from mlpipe.core.pipeline import Pipeline, child_env

#: Inherited settings that would point the child at another Airflow installation.
FOREIGN_ENV = (
    "AIRFLOW_CONFIG", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__DAGS_FOLDER",
)
CHILD = "mlpipe.adapters.airflow._dagtest"
#: An Airflow home whose migrated DB a fresh Airflow home starts from (a copy, not a migration).
TEMPLATE_ENV = "MLPIPE_AIRFLOW_DB_TEMPLATE"


def airflow_home_for(home: Path, airflow_home: str | Path | None = None) -> Path:
    """``airflow_home``, else ``$MLPIPE_AIRFLOW_HOME``, else ``<home>/airflow``."""
    chosen = airflow_home or os.environ.get("MLPIPE_AIRFLOW_HOME") or Path(home) / "airflow"
    return Path(chosen).expanduser().resolve()


def airflow_env(airflow_home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for an Airflow process that uses only ``airflow_home`` (its cfg and sqlite)
    and this interpreter's tools."""
    env = dict(os.environ if base is None else base)
    for key in FOREIGN_ENV:
        env.pop(key, None)
    env["AIRFLOW_HOME"] = str(airflow_home)
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


class AirflowRunner(Runner):
    """One Airflow DAG run per pipeline run, under the mlpipe run id (conf ``mlpipe_run_id``);
    its log (Airflow's and the tasks' output) is the run's own ``<run>/airflow.log``."""

    name = "airflow"
    #: dag.test() on this machine; a deployed scheduler or cluster mode differs
    honours = on_this_machine(
        retries=("applied", "Airflow task retries"),
        timeout=("applied", "Airflow execution_timeout"),
        side_by_side_shards=("ignored", "dag.test() runs mapped task instances one after "
                             "another (a scheduler with workers runs them side by side)"),
    )

    def __init__(self, airflow_home: str | Path | None = None, keep_child: bool = True) -> None:
        """``keep_child=False``: a fresh child per run, not one kept while its DB file stays."""
        self.airflow_home = airflow_home
        self.keep_child = keep_child

    def _keep(self, af_home: Path) -> list[Path] | None:  # a kept child is bound to its DB
        return [af_home / "airflow.db"] if self.keep_child else None

    def launch(self, request: RunRequest) -> Launch:
        pipeline = request.pipeline
        af_home = airflow_home_for(request.home, self.airflow_home)
        seed_home(TEMPLATE_ENV, af_home, "airflow.db")  # a copy, not a migration, if set
        log = run_dir(request.home, pipeline.name, request.run_id) / f"{self.name}.log"
        env = child_env(pipeline, airflow_env(af_home))  # the child imports a user's module too
        report, code = run_child(CHILD, request_json(request), env, log, self._keep(af_home))
        if report is None:
            return Launch(log=str(log), failure=(
                f"airflow: running the {pipeline.name} DAG failed (exit {code}) before Airflow "
                f"reported the run; log {log}:\n{log_tail(log)}"))
        instances = [Instance(**t) for t in report["tasks"]]
        run, dag_id = report["dag_run_id"], report["extra"]["dag_id"]
        states = ", ".join(f"{i.task}={i.state}" for i in instances if i.index < 1)
        return Launch(
            orchestrator_run_id=run, seconds=float(report["dag_test_seconds"]),
            tasks=task_facts(instances), log=str(log),
            extra={**report["extra"], "airflow_home": str(af_home)},
            failure=None if report["state"] == "success" else (
                f"airflow: DAG run {run} ended {report['state']} ({states}); log {log}"),
            note=failed_try_note(request, instances, label=f"airflow task {dag_id}.", run=run,
                                 log=log, timeout_error="AirflowTaskTimeout"),
        )

    def floor(self, tasks: list[FloorTask], name: str, work_dir: Path) -> Floor:
        """The plan's shape as no-op tasks (:mod:`.floor`), run as runs are: several in one
        ``work_dir``, in the runs' order, pay Airflow's first-run set-up once, as the runs do."""
        request = {"floor": {"tasks": [t.__dict__ for t in tasks], "name": name}}
        af_home = work_dir.resolve() / "airflow"
        log = af_home / "logs" / f"{name}.log"
        report, code = run_child(CHILD, request, airflow_env(af_home), log, self._keep(af_home))
        if report is None or report["state"] != "success":
            raise RuntimeError(f"airflow floor failed (exit {code}): {log_tail(log, 5)}")
        ran = sum(t["state"] == "success" for t in report["tasks"])
        return Floor(float(report["dag_test_seconds"]), ran)

    def render_cluster(self, pipeline: Pipeline, config: PipelineSettings, out_dir: Path
                       ) -> list[Path]:
        from mlpipe.adapters.airflow.render import render_cluster

        return render_cluster(pipeline, config, out_dir)
