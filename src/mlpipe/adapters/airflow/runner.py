"""The Airflow runner: each run is a real DAG run (``dag.test()`` on a real metadata DB).

Airflow fixes ``AIRFLOW_HOME`` and its database when it is first imported, and configures global
logging, so each run happens in a fresh child process (``_dagtest``) with the environment set
for it. That costs ~1-2 s of imports per run but makes repeated calls with different homes in one
process (tests, notebooks) behave exactly like one CLI call, and keeps Airflow out of the caller.
This module itself imports no Airflow.

The Airflow home defaults to ``<mlpipe home>/airflow`` (``$MLPIPE_AIRFLOW_HOME`` overrides); its
sqlite database is created and migrated on first use, or copied from
``$MLPIPE_AIRFLOW_DB_TEMPLATE`` (an Airflow home mlpipe has migrated) where many fresh homes would
each migrate their own: a copy takes milliseconds, a migration seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from mlpipe.core.config import PipelineSettings
from mlpipe.core.execution import Launch, Runner, read_step
from mlpipe.core.execution.floor import Floor, FloorTask
from mlpipe.core.execution.honours import Level
from mlpipe.core.execution.runner import RunRequest, TaskFacts
from mlpipe.core.paths import run_dir
from mlpipe.core.pipeline import Pipeline, portable_ref

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
    """Environment for an Airflow process that uses only ``airflow_home`` (its cfg and sqlite).

    The caller's import path goes along, so a user pipeline importable here is importable there.
    """
    env = dict(os.environ if base is None else base)
    for key in FOREIGN_ENV:
        env.pop(key, None)
    env["AIRFLOW_HOME"] = str(airflow_home)
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    paths = [os.path.abspath(p or os.curdir) for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(filter(os.path.isdir, paths)))
    return env


def seed_db(airflow_home: Path) -> bool:
    """Copy the migrated DB of ``$MLPIPE_AIRFLOW_DB_TEMPLATE`` into a home that has none yet.

    The child still checks the copy's migration marker against its Airflow version and migrates
    if they differ, so a stale template costs a migration, never a wrong schema. Returns whether
    it copied.
    """
    import shutil

    from mlpipe.adapters.airflow._dagtest import MARKER
    from mlpipe.core.errors import ConfigError
    from mlpipe.core.files import exclusive

    template = os.environ.get(TEMPLATE_ENV)
    if not template:
        return False
    source = Path(template).expanduser()
    if not (source / "airflow.db").is_file() or not (source / MARKER).is_file():
        raise ConfigError(
            f"{TEMPLATE_ENV}={template}: no migrated Airflow DB there (airflow.db and {MARKER}); "
            "point it at an Airflow home mlpipe has run in, or unset it")
    if source.resolve() == airflow_home:
        return False
    airflow_home.mkdir(parents=True, exist_ok=True)
    with exclusive(airflow_home / ".mlpipe-db.lock", what="airflow metadata DB migration"):
        if (airflow_home / "airflow.db").exists():
            return False
        partial = airflow_home / ".airflow.db.copy"
        shutil.copyfile(source / "airflow.db", partial)
        os.replace(partial, airflow_home / "airflow.db")
        shutil.copyfile(source / MARKER, airflow_home / MARKER)
    return True


class AirflowRunner(Runner):
    """Runs the pipeline as one Airflow DAG run, under the mlpipe run id (conf ``mlpipe_run_id``).

    ``Launch.seconds`` is the wall time of ``dag.test()``; ``Launch.tasks`` each task's state,
    try number, start and Airflow-measured seconds, a mapped task's states per map index (one per
    shard of a map step); ``extra`` the DAG id and the Airflow home; the log of the child
    (Airflow's and the tasks' output) is the run's own ``<run>/airflow.log``.
    """

    name = "airflow"
    #: dag.test() on this machine; a deployed scheduler or cluster mode differs
    honours: ClassVar[Mapping[str, tuple[Level, str]]] = {
        "resources": ("ignored", "dag.test() runs tasks as local processes (cluster mode: pods)"),
        "gpu": ("ignored", "dag.test() requests no GPU (cluster mode: pod limits)"),
        "retries": ("applied", "Airflow task retries"),
        "timeout": ("applied", "Airflow execution_timeout"),
        "side_by_side_shards": ("ignored", "dag.test() runs mapped task instances one after "
                                "another (a scheduler with workers runs them side by side)"),
    }

    def __init__(self, airflow_home: str | Path | None = None) -> None:
        self.airflow_home = airflow_home

    def launch(self, request: RunRequest) -> Launch:
        pipeline, config, home, run_id = (request.pipeline, request.config, request.home,
                                          request.run_id)
        use_cache = request.use_cache
        child = {
            "pipeline": portable_ref(pipeline),
            "config": config.model_dump(mode="json"),
            "home": str(home),
            "run_id": run_id,
            "use_cache": use_cache,
        }
        af_home = airflow_home_for(home, self.airflow_home)
        seed_db(af_home)
        log_path = run_dir(home, pipeline.name, run_id) / f"{self.name}.log"  # this run's own
        started = time.perf_counter()
        report, code = _dag_test(child, af_home, log_path)
        if report is None:
            return Launch(log=str(log_path), failure=(
                f"airflow: running the {pipeline.name} DAG failed (exit {code}) before Airflow "
                f"reported the run; log {log_path}:\n{_tail(log_path)}"))
        tasks = {t["task_id"]: t for t in report["tasks"]}
        mapped = _map_states(report["tasks"])
        facts = {n: TaskFacts(
            state=t["state"], seconds=t["duration"], tries=t["try_number"],
            started=datetime.fromisoformat(t["start"]).timestamp() if t.get("start") else None,
            map_states=tuple(mapped.get(n, ()))) for n, t in tasks.items()}
        extra = {
            "dag_id": report["dag_id"],
            "process_seconds": time.perf_counter() - started,
            "setup_seconds": report["setup_seconds"],
            "migrate_seconds": report["migrate_seconds"],
            "execution_api_versions": report["execution_api_versions"],
            "airflow_home": str(af_home),
            "log": str(log_path),
        }
        ok = report["state"] == "success"
        states = ", ".join(f"{n}={t['state']}" for n, t in tasks.items())
        return Launch(
            orchestrator_run_id=report["dag_run_id"],
            seconds=float(report["dag_test_seconds"]),
            tasks=facts,
            extra=extra,
            failure=None if ok else (
                f"airflow: DAG run {report['dag_run_id']} ended {report['state']} ({states}); "
                f"log {log_path}"),
            note=self._failed_try(request, report, log_path),
            log=str(log_path),
        )

    @staticmethod
    def _failed_try(request: RunRequest, report: dict[str, Any], log_path: Path) -> str:
        """``airflow task D.T failed on try N of M, run R; log P`` for the first failed task,
        naming ``runtime.timeout_s`` when Airflow's execution timeout stopped the step."""
        failed = [t for t in report["tasks"] if t["state"] == "failed"]
        if not failed:
            return ""
        task = failed[0]
        index = task.get("map_index", -1)
        mapped = f"[{index}]" if index >= 0 else ""
        note = (f"airflow task {report['dag_id']}.{task['task_id']}{mapped} failed on try "
                f"{task['try_number']} of {task['max_tries'] + 1}, run {report['dag_run_id']}; "
                f"log {log_path}")
        steps = request.plan.task(task["task_id"]).steps  # a group's, or the map step's
        recorded = [read_step(request.home, request.pipeline.name, request.run_id, s)
                    for s in steps]
        if any("AirflowTaskTimeout" in str(getattr(r, "cause", "")) for r in recorded):
            timeout = request.config.runtime.timeout_s
            note = f"ran longer than runtime.timeout_s={timeout:g}s; {note}"
        return note

    def floor(self, tasks: list[FloorTask], name: str, work_dir: Path) -> Floor:
        """The plan's shape as no-op tasks (:mod:`.floor`), run by the same child as a run."""
        request = {"floor": {"tasks": [t.__dict__ for t in tasks], "name": name}}
        af_home = work_dir.resolve() / "airflow"
        log_path = af_home / "logs" / f"{name}.log"
        report, code = _dag_test(request, af_home, log_path)
        if report is None or report["state"] != "success":
            raise RuntimeError(f"airflow floor failed (exit {code}): {_tail(log_path, 5)}")
        ran = [t for t in report["tasks"] if t["state"] == "success"]
        return Floor(float(report["dag_test_seconds"]), len(ran))

    def render_cluster(self, pipeline: Pipeline, config: PipelineSettings, out_dir: Path
                       ) -> list[Path]:
        from mlpipe.adapters.airflow.render import render_cluster

        return render_cluster(pipeline, config, out_dir)


def _dag_test(request: dict[str, Any], af_home: Path, log_path: Path
              ) -> tuple[dict[str, Any] | None, int]:
    """Run the child (``_dagtest``) on ``request``, its output appended to ``log_path`` (a
    resumed run keeps the first try's): (its report or None, exit code)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlpipe-airflow-") as tmp:
        request_path, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request_path.write_text(json.dumps(request))
        with log_path.open("ab") as log_file:
            proc = subprocess.run(
                [sys.executable, "-m", CHILD, str(request_path), str(result)],
                env=airflow_env(af_home), stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, check=False,
            )
        ok = proc.returncode == 0 and result.is_file()
        return (json.loads(result.read_text()) if ok else None), proc.returncode


def _map_states(tasks: list[dict[str, Any]]) -> dict[str, list[str | None]]:
    """A mapped task's instances' states in map index order (one per shard of a map step):
    ``task_states`` holds one state per task id, which says nothing about a single shard."""
    mapped: dict[str, list[str | None]] = {}
    for task in tasks:  # sorted by map index
        if task.get("map_index", -1) >= 0:
            mapped.setdefault(task["task_id"], []).append(task["state"])
    return mapped


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
