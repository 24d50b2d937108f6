"""Run a pipeline inside Airflow (``dag.test()`` on a real metadata DB) and report it like core.

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

from mlpipe.core.config import PipelineConfig
from mlpipe.core.errors import MlpipeError, StepFailedError, error_from_record
from mlpipe.core.pipeline import Pipeline
from mlpipe.core.runner import PipelineRun, load_step_result, preflight, run_dir

#: Inherited settings that would point the child at another Airflow installation.
_FOREIGN_ENV = (
    "AIRFLOW_CONFIG", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__DAGS_FOLDER",
)
_CHILD = "mlpipe.adapters.airflow._dagtest"


class AirflowRunError(MlpipeError):
    """Airflow itself failed (import, database, DAG registration), not one of the steps."""


def airflow_home_for(home: Path, airflow_home: str | Path | None = None) -> Path:
    """``airflow_home``, else ``$MLPIPE_AIRFLOW_HOME``, else ``<home>/airflow``."""
    chosen = airflow_home or os.environ.get("MLPIPE_AIRFLOW_HOME") or Path(home) / "airflow"
    return Path(chosen).expanduser().resolve()


def airflow_env(airflow_home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for an Airflow process that uses only ``airflow_home`` (its cfg and sqlite)."""
    env = dict(os.environ if base is None else base)
    for key in _FOREIGN_ENV:
        env.pop(key, None)
    env["AIRFLOW_HOME"] = str(airflow_home)
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def run_pipeline(
    pipeline: Pipeline,
    config: PipelineConfig,
    *,
    home: Path,
    run_id: str | None = None,
    use_cache: bool | None = None,
    airflow_home: str | Path | None = None,
) -> PipelineRun:
    """Run ``pipeline`` as an Airflow DAG run and return what each step produced.

    The DAG run id becomes the mlpipe run id (``safe_run_id``) unless ``run_id`` is given.
    ``seconds`` is the wall time of ``dag.test()``; ``extra`` holds the DAG and run ids, each
    task's state, try number and Airflow-measured seconds, and the path of the Airflow log.
    Raises ``StepFailedError`` naming the first failed task, with its error and exit code.
    """
    from mlpipe.core.cluster import refuse_local_run

    refuse_local_run(config, "airflow")
    preflight(config, Path(home).expanduser().resolve())
    home = Path(home).expanduser().resolve()
    af_home = airflow_home_for(home, airflow_home)
    (af_home / "dags").mkdir(parents=True, exist_ok=True)
    log_dir = af_home / "logs" / "mlpipe"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlpipe-airflow-") as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request.write_text(json.dumps({
            "pipeline": pipeline.name, "config": config.model_dump(mode="json"),
            "home": str(home), "run_id": run_id, "use_cache": use_cache,
        }))
        log_path = log_dir / f"{pipeline.name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        with log_path.open("w") as log_file:
            proc = subprocess.run(
                [sys.executable, "-m", _CHILD, str(request), str(result)],
                env=airflow_env(af_home), stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, check=False,
            )
        if proc.returncode != 0 or not result.is_file():
            raise AirflowRunError(
                f"airflow: running the {pipeline.name} DAG failed (exit {proc.returncode}) before "
                f"any step result was reported; log {log_path}:\n{_tail(log_path)}")
        report: dict[str, Any] = json.loads(result.read_text())
    total = time.perf_counter() - started
    mlpipe_id = str(report["mlpipe_run_id"])
    tasks = {t["task_id"]: t for t in report["tasks"]}
    if report["state"] != "success":
        raise _step_failure(pipeline, report, log_path)

    run = PipelineRun(pipeline=pipeline.name, run_id=mlpipe_id,
                      run_dir=run_dir(home, pipeline.name, mlpipe_id),
                      seconds=float(report["dag_test_seconds"]), runner="airflow")
    run.steps = [load_step_result(home, pipeline.name, mlpipe_id, s) for s in pipeline.step_names]
    run.extra = {
        "orchestrator_run_id": report["dag_run_id"],
        "dag_id": report["dag_id"],
        "task_seconds": {name: tasks[name]["duration"] for name in pipeline.step_names},
        "task_states": {name: tasks[name]["state"] for name in pipeline.step_names},
        "try_numbers": {name: tasks[name]["try_number"] for name in pipeline.step_names},
        "process_seconds": total,
        "setup_seconds": report["setup_seconds"],
        "migrate_seconds": report["migrate_seconds"],
        "airflow_home": str(af_home),
        "log": str(log_path),
    }
    run.write_record(config)
    return run


def _step_failure(pipeline: Pipeline, report: dict[str, Any], log_path: Path) -> MlpipeError:
    """``StepFailedError`` for the first failed task, its cause rebuilt with type and exit code."""
    failed = [t for t in report["tasks"] if t["state"] == "failed"]
    if not failed:
        states = ", ".join(f"{t['task_id']}={t['state']}" for t in report["tasks"])
        return AirflowRunError(f"airflow: DAG run {report['dag_run_id']} ended "
                               f"{report['state']} ({states}); log {log_path}")
    task = failed[0]
    error = task.get("error") or {}
    detail = (f"[airflow task {report['dag_id']}.{task['task_id']} failed on try "
              f"{task['try_number']} of {task['max_tries'] + 1}, run {report['dag_run_id']}; "
              f"log {log_path}]")
    message = f"{error.get('type', 'Error')}: {error.get('message', 'see the log')} {detail}"
    cause = error_from_record({"error_type": error.get("type"), "message": message,
                               "exit_code": error.get("exit_code", 1)})
    return StepFailedError(task["task_id"], cause)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
