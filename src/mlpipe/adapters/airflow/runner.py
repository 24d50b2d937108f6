"""The Airflow runner: each run is a real DAG run (``dag.test()`` on a real metadata DB).

Airflow fixes ``AIRFLOW_HOME`` and its database when it is first imported, and configures global
logging, so each run happens in a fresh child process (``_dagtest``) with the environment set
for it. That costs ~1-2 s of imports per run but makes repeated calls with different homes in one
process (tests, notebooks) behave exactly like one CLI call, and keeps Airflow out of the caller.
This module itself imports no Airflow.

The Airflow home defaults to ``<mlpipe home>/airflow`` (``$MLPIPE_AIRFLOW_HOME`` overrides); its
sqlite database is created and migrated on first use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlpipe.core.config import PipelineSettings
from mlpipe.core.execution import Launch, Runner, read_step
from mlpipe.core.execution.runner import StepCallback
from mlpipe.core.paths import run_dir
from mlpipe.core.pipeline import Pipeline, portable_ref

#: Inherited settings that would point the child at another Airflow installation.
FOREIGN_ENV = (
    "AIRFLOW_CONFIG", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__DAGS_FOLDER",
)
CHILD = "mlpipe.adapters.airflow._dagtest"


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


class AirflowRunner(Runner):
    """Runs the pipeline as one Airflow DAG run, under the mlpipe run id (conf ``mlpipe_run_id``).

    ``Launch.seconds`` is the wall time of ``dag.test()``; ``extra`` holds the DAG id, each task's
    state, try number and Airflow-measured seconds, a mapped task's states per map index
    (``map_states``: one per shard of a map step), and the Airflow home; the log of the child
    (Airflow's and the tasks' output) is the run's own ``<run>/airflow.log``.
    """

    name = "airflow"

    def __init__(self, airflow_home: str | Path | None = None) -> None:
        self.airflow_home = airflow_home

    def launch(
        self,
        pipeline: Pipeline,
        config: PipelineSettings,
        *,
        home: Path,
        run_id: str,
        use_cache: bool | None,
        on_step: StepCallback | None,
    ) -> Launch:
        request = {
            "pipeline": portable_ref(pipeline),
            "config": config.model_dump(mode="json"),
            "home": str(home),
            "run_id": run_id,
            "use_cache": use_cache,
        }
        af_home = airflow_home_for(home, self.airflow_home)
        (af_home / "dags").mkdir(parents=True, exist_ok=True)
        log_path = run_dir(home, pipeline.name, run_id) / f"{self.name}.log"  # this run's own
        log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="mlpipe-airflow-") as tmp:
            request_path, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
            request_path.write_text(json.dumps(request))
            with log_path.open("ab") as log_file:  # appended: --resume keeps the first try's
                proc = subprocess.run(
                    [sys.executable, "-m", CHILD, str(request_path), str(result)],
                    env=airflow_env(af_home), stdin=subprocess.DEVNULL, stdout=log_file,
                    stderr=subprocess.STDOUT, check=False,
                )
            if proc.returncode != 0 or not result.is_file():
                return Launch(log=str(log_path), failure=(
                    f"airflow: running the {pipeline.name} DAG failed (exit {proc.returncode}) "
                    f"before Airflow reported the run; log {log_path}:\n{_tail(log_path)}"))
            report: dict[str, Any] = json.loads(result.read_text())
        tasks = {t["task_id"]: t for t in report["tasks"]}
        extra = {
            "dag_id": report["dag_id"],
            "task_seconds": {n: t["duration"] for n, t in tasks.items()},
            "task_states": {n: t["state"] for n, t in tasks.items()},
            "try_numbers": {n: t["try_number"] for n, t in tasks.items()},
            "map_states": _map_states(report["tasks"]),
            "task_started": _task_started(tasks, pipeline),
            "process_seconds": time.perf_counter() - started,
            "setup_seconds": report["setup_seconds"],
            "migrate_seconds": report["migrate_seconds"],
            "airflow_home": str(af_home),
            "log": str(log_path),
        }
        ok = report["state"] == "success"
        states = ", ".join(f"{n}={t['state']}" for n, t in tasks.items())
        return Launch(
            orchestrator_run_id=report["dag_run_id"],
            seconds=float(report["dag_test_seconds"]),
            extra=extra,
            failure=None if ok else (
                f"airflow: DAG run {report['dag_run_id']} ended {report['state']} ({states}); "
                f"log {log_path}"),
            note=self._failed_try(pipeline, config, home, run_id, report, log_path),
            log=str(log_path),
        )

    @staticmethod
    def _failed_try(pipeline: Pipeline, config: PipelineSettings, home: Path, run_id: str,
                    report: dict[str, Any], log_path: Path) -> str:
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
        recorded = read_step(home, pipeline.name, run_id, task["task_id"])
        if "AirflowTaskTimeout" in str(getattr(recorded, "cause", "")):
            note = f"ran longer than runtime.timeout_s={config.runtime.timeout_s:g}s; {note}"
        return note

    def render_cluster(self, pipeline: Pipeline, config: PipelineSettings, out_dir: Path
                       ) -> list[Path]:
        from mlpipe.adapters.airflow.render import render_cluster

        return render_cluster(pipeline, config, out_dir)


def _map_states(tasks: list[dict[str, Any]]) -> dict[str, list[str | None]]:
    """A mapped task's instances' states in map index order (one per shard of a map step):
    ``task_states`` holds one state per task id, which says nothing about a single shard."""
    mapped: dict[str, list[str | None]] = {}
    for task in tasks:  # sorted by map index
        if task.get("map_index", -1) >= 0:
            mapped.setdefault(task["task_id"], []).append(task["state"])
    return mapped


def _task_started(tasks: dict[str, Any], pipeline: Pipeline) -> dict[str, float]:
    """step -> epoch seconds Airflow started its task (a fused group's steps share theirs)."""
    from datetime import datetime

    started: dict[str, float] = {}
    for task_id, task in tasks.items():
        if task.get("start"):
            at = datetime.fromisoformat(task["start"]).timestamp()
            steps = [s for s in task_id.split("__") if s in pipeline.step_names]
            started.update(dict.fromkeys(steps, at))
    return started


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
