"""The shipped Dagster code location in a real `dagster dev` (webserver and daemon): both jobs
launched over GraphQL succeed. A service test (system tier): it starts Dagster's own processes
in their own process group and always stops the group."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mlpipe.core import load_config, open_registry
from mlpipe.core.paths import safe_run_id
from tests.support import TINY_TRAINING, tiny_config_files, venv_env

pytest.importorskip("dagster")

MODULE = "mlpipe.adapters.dagster.definitions"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _graphql(port: int, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        data: dict[str, Any] = json.loads(response.read())
    assert "errors" not in data, data
    return data["data"]


_REPOS = "{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name " \
         "location { name } } } ... on PythonError { message } } }"
_LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime } } }"


def _wait_for_location(
    port: int, proc: subprocess.Popen[bytes], deadline: float
) -> tuple[str, str]:
    while time.monotonic() < deadline:
        assert proc.poll() is None, "dagster dev exited early"
        try:
            repos = _graphql(port, _REPOS)["repositoriesOrError"]
            if repos.get("nodes"):
                node = repos["nodes"][0]
                return node["location"]["name"], node["name"]
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("dagster dev did not load the code location in time")


def _launch_and_wait(port: int, location: str, repo: str, job: str, deadline: float) -> str:
    params = {"selector": {"repositoryLocationName": location, "repositoryName": repo,
                           "jobName": job}, "runConfigData": {}}
    launched = _graphql(port, _LAUNCH, {"p": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id: str = launched["run"]["runId"]
    while time.monotonic() < deadline:
        run = _graphql(port, _STATUS, {"id": run_id})["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            assert run["status"] == "SUCCESS", f"{job} run {run_id} ended {run['status']}"
            print(f"{job}: run {run_id} took {run['endTime'] - run['startTime']:.1f}s in Dagster")
            return run_id
        time.sleep(0.5)
    raise AssertionError(f"{job} run {run_id} did not finish in time")


@pytest.mark.slow
def test_dagster_dev_runs_both_jobs_over_graphql(tmp_path: Path, home: Path) -> None:
    port = _free_port()
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    env = {**venv_env(), **tiny_config_files(tmp_path), "DAGSTER_HOME": str(dagster_home),
           "MLPIPE_HOME": str(home)}
    log = (tmp_path / "dagster_dev.log").open("wb")
    proc = subprocess.Popen(
        ["dagster", "dev", "-m", MODULE, "-h", "127.0.0.1", "-p", str(port)],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        started = time.monotonic()
        deadline = started + 300  # startup and both jobs, on a busy machine
        location, repo = _wait_for_location(port, proc, deadline)
        print(f"dagster dev loaded the code location in {time.monotonic() - started:.1f}s")
        train_id = _launch_and_wait(port, location, repo, "mlpipe_training", deadline)
        infer_id = _launch_and_wait(port, location, repo, "mlpipe_inference", deadline)
    finally:
        _stop(proc)
        log.close()
    trained = home / "runs" / "training" / safe_run_id(train_id)
    assert (trained / "upload_model" / "result.json").is_file()
    assert open_registry(load_config(TINY_TRAINING).registry, home).versions()[0].version == 1
    report = json.loads((home / "runs" / "inference" / safe_run_id(infer_id) / "save_results"
                         / "result.json").read_text())
    assert report["ref"]["rows"] == 100
    refs = home / "dagster" / "refs"
    assert (refs / "latest" / "inference_report.json").is_file()
    assert (refs / "runs" / infer_id / "inference_report.json").is_file()  # kept per run too


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop dagster dev and everything it started (its own process group)."""
    if proc.poll() is not None:
        return
    pgid = os.getpgid(proc.pid)
    os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # leftover children share the group
        os.killpg(pgid, signal.SIGKILL)
