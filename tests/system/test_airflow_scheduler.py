"""The shipped DAGs file in a real Airflow: `airflow standalone` (scheduler, dag processor, API
server) parses it, and a training then an inference run triggered over the REST API succeed.

A service test (system tier): it starts Airflow's own processes, polls their API, and stops the
whole process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from mlpipe.core import TRAINING
from mlpipe.core.execution import load_step_result
from mlpipe.core.paths import safe_run_id
from mlpipe.registries.local import LocalRegistry
from tests.support import ROOT, TINY_INFERENCE, TINY_TRAINING, venv_env

pytest.importorskip("airflow")

TRAINING_SET = ["data.generated.n_samples=300", "training.epochs=1"]
INFERENCE_SET = ["data.generated.n_samples=100"]

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Api:
    """The few Airflow REST v2 calls the test needs, with a JWT from /auth/token."""

    def __init__(self, base: str) -> None:
        self.base, self.token = base, ""

    def call(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.base + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json",
                     **({"Authorization": f"Bearer {self.token}"} if self.token else {})})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def wait(self, what: str, check: Any, timeout: float, log: Path) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = check()
                if value:
                    return value
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise AssertionError(f"timed out waiting for {what}; airflow log tail:\n{tail}")


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[tuple[Api, Path, Path]]:
    """`airflow standalone` with the shipped dags file pointed at the tiny configs."""
    airflow_home, dags, home = tmp_path / "airflow", tmp_path / "dags", tmp_path / "mlpipe"
    dags.mkdir()
    shutil.copy(ROOT / "dags" / "mlpipe_dags.py", dags / "mlpipe_dags.py")
    port = _free_port()
    env = venv_env()
    env.pop("AIRFLOW_CONFIG", None)
    env.update({
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "mlpipe:admin",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "MLPIPE_HOME": str(home),
        "MLPIPE_TRAINING_CONFIG": str(TINY_TRAINING),
        "MLPIPE_TRAINING_OVERRIDES": " ".join(TRAINING_SET),
        "MLPIPE_INFERENCE_CONFIG": str(TINY_INFERENCE),
        "MLPIPE_INFERENCE_OVERRIDES": " ".join(INFERENCE_SET),
    })
    log = tmp_path / "standalone.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        api = Api(f"http://127.0.0.1:{port}")
        api.wait("the API server", lambda: api.call("GET", "/api/v2/monitor/health"), 120, log)
        passwords = airflow_home / "simple_auth_manager_passwords.json.generated"
        api.wait("the generated password", passwords.is_file, 30, log)
        password = json.loads(passwords.read_text())["mlpipe"]
        api.token = api.call("POST", "/auth/token",
                             {"username": "mlpipe", "password": password})["access_token"]
        yield api, home, log
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """TERM the whole process group, wait for all of it to exit, KILL what is left after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.2)
        try:
            os.killpg(proc.pid, 0)  # anyone left in the group?
        except ProcessLookupError:
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _trigger_and_wait(api: Api, dag_id: str, log: Path, timeout: float = 120) -> dict[str, Any]:
    api.wait(f"DAG {dag_id} to be parsed", lambda: _dag_exists(api, dag_id), 60, log)
    api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    run_id = api.call("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                      {"logical_date": None})["dag_run_id"]
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"

    def finished() -> dict[str, Any] | None:
        run = api.call("GET", path)
        return run if run["state"] in ("success", "failed") else None

    started = time.perf_counter()
    run = api.wait(f"{dag_id} run {run_id}", finished, timeout, log)
    run["_wall_s"] = time.perf_counter() - started
    tis = api.call("GET", f"{path}/taskInstances")["task_instances"]
    states = {ti["task_id"]: ti["state"] for ti in tis}
    assert run["state"] == "success", f"{dag_id} {run_id} ended {run['state']}: {states}"
    run["_task_states"] = states
    return run


def _dag_exists(api: Api, dag_id: str) -> bool:
    try:
        return bool(api.call("GET", f"/api/v2/dags/{dag_id}"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_standalone_scheduler_runs_shipped_dags(standalone: tuple[Api, Path, Path]) -> None:
    api, home, log = standalone
    training = _trigger_and_wait(api, "mlpipe_training", log)
    assert set(training["_task_states"]) == set(TRAINING.step_names)
    assert set(training["_task_states"].values()) == {"success"}
    mlpipe_run = safe_run_id(training["dag_run_id"])
    version = load_step_result(home, "training", mlpipe_run, "upload_model").ref
    assert version.spec == "tiny-sentiment:v1"  # type: ignore[attr-defined]
    assert LocalRegistry(home / "registry").resolve("tiny-sentiment:staging").version == 1

    inference = _trigger_and_wait(api, "mlpipe_inference", log)
    assert set(inference["_task_states"].values()) == {"success"}
    results = load_step_result(home, "inference", safe_run_id(inference["dag_run_id"]),
                               "save_results").ref
    assert results.model == "tiny-sentiment:v1"  # type: ignore[attr-defined]
    assert pq.read_table(results.predictions_uri).num_rows == 100  # type: ignore[attr-defined]
    print(f"\nstandalone wall: training {training['_wall_s']:.1f}s, "
          f"inference {inference['_wall_s']:.1f}s")
