"""MLflow for real: a tiny training tracked and published to a running ``mlflow server``
(sqlite backend store, local artifact root), credentials that never leave the environment, a
server that is down, a URI with a password in it. The registry contract for MLflow (server, file
store, server-less sqlite) is in tests/system/test_registry_contract.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import TINY_TRAINING, venv_env

pytestmark = pytest.mark.slow
mlflow = pytest.importorskip("mlflow")

SECRET = "mlpipe-planted-secret-7f3a9c"


def _config(tmp: Path, uri: str, **registry: Any) -> Path:
    cfg = yaml.safe_load(TINY_TRAINING.read_text())
    cfg["data"]["generated"]["n_samples"] = 200
    cfg["training"]["epochs"] = 2
    cfg["registry"] = {
        "backend": "mlflow",
        "tracking_uri": uri,
        "model_name": "tiny-sentiment",
        "aliases": ["staging"],
        "registered_model_prefix": f"{tmp.name}-",
        **registry,
    }
    cfg["tracking"] = {"backend": "mlflow", "tracking_uri": uri, "experiment": tmp.name}
    path = tmp / "training.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _mlpipe(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlpipe", *args], capture_output=True, text=True, env=env,
        timeout=600, cwd=cwd,
    )  # fmt: skip


def test_training_is_tracked_and_published_and_the_token_goes_nowhere(
    mlflow_server: str,
    tmp_path: Path,
) -> None:
    env = {**venv_env(), "MLFLOW_TRACKING_TOKEN": SECRET, "MLPIPE_HOME": str(tmp_path / "home")}
    config = _config(tmp_path, mlflow_server)
    result = _mlpipe("train", "-c", str(config), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    shown = _mlpipe("registry", "show", "tiny-sentiment:staging", "-c", str(config), "--json",
                    env=env)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    ref = json.loads(shown.stdout)
    assert ref["backend"] == "mlflow" and ref["version"] == 1
    assert ref["lineage"]["runner"] == "local" and ref["lineage"]["pipeline"] == "training"
    run_id = ref["lineage"]["run_id"]
    assert ref["lineage"]["orchestrator_run_id"] and ref["lineage"]["config_sha256"]
    assert [e["alias"] for e in ref["alias_history"]] == ["staging"]

    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name(tmp_path.name)
    runs = client.search_runs([exp.experiment_id])
    train = next(r for r in runs if r.data.tags.get("mlpipe.step") == "train_model")
    assert train.data.tags["runner"] == "local"
    assert train.data.tags["mlpipe.mlpipe_run_id"] == run_id
    assert train.data.tags["mlpipe.data_sha256"] == ref["lineage"]["data_sha256"]
    assert float(train.data.params["training.epochs"]) == 2
    assert "eval_accuracy" in train.data.metrics  # the eval metrics
    history = client.get_metric_history(train.info.run_id, "train/loss")
    assert len(history) >= 2 and len({m.step for m in history}) == len(history)  # per step
    assert train.info.status == "FINISHED"

    fetched = tmp_path / "fetched"
    from mlpipe.core.config import plugin_section
    from mlpipe.core.registry import open_registry

    section = yaml.safe_load(config.read_text())["registry"]
    reg = open_registry(plugin_section("registry", section, "registry"), tmp_path / "home")
    got = reg.fetch("tiny-sentiment:staging", fetched)
    assert got.sha256 == ref["sha256"] and (fetched / "model.safetensors").is_file()

    render = _mlpipe("render", "kubeflow", "--pipeline", "training", "-c", str(config), "-o",
                     str(tmp_path / "rendered"), env=env)  # fmt: skip
    written = [tmp_path, Path(mlflow_server_root(client))]
    leaks = [
        str(p)
        for root in written
        for p in root.rglob("*")
        if p.is_file() and SECRET.encode() in p.read_bytes()
    ]
    assert leaks == []
    for out in (result, shown, render):
        assert SECRET not in out.stdout + out.stderr


def mlflow_server_root(client: Any) -> str:
    """The server's directory (its sqlite store, artifacts and log), from an artifact URI."""
    exp = client.get_experiment("0")
    return str(Path(exp.artifact_location.removeprefix("file://")).parents[0])


def test_a_server_that_is_down_fails_in_seconds_naming_the_uri(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    uri = f"http://127.0.0.1:{port}"
    env = {**venv_env(), "MLPIPE_HOME": str(tmp_path / "home")}
    started = time.monotonic()
    result = _mlpipe("train", "-c", str(_config(tmp_path, uri)), env=env)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 60  # the import of the CLI included; the check is 3 s
    assert f"MLflow server at {uri} is not reachable" in result.stderr
    assert not (tmp_path / "home" / "registry").exists()
    listing = _mlpipe("registry", "list", "-c", str(_config(tmp_path, uri)), env=env)
    assert listing.returncode == 1 and uri in listing.stderr


def test_a_password_in_the_uri_is_refused(tmp_path: Path) -> None:
    env = {**venv_env(), "MLPIPE_HOME": str(tmp_path / "home")}
    config = _config(tmp_path, "http://me:hunter2@127.0.0.1:1")
    result = _mlpipe("train", "-c", str(config), env=env)
    assert result.returncode == 2
    assert "MLFLOW_TRACKING_PASSWORD" in result.stderr and "hunter2" not in result.stderr
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*.json"))


def test_the_file_store_without_a_server(tmp_path: Path) -> None:
    env = {**venv_env(), "MLPIPE_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    store = (tmp_path / "mlruns").as_uri()
    config = _config(tmp_path, store)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    result = _mlpipe("train", "-c", str(config), env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    listed = _mlpipe("registry", "list", "-c", str(config), "--json", env=env, cwd=cwd)
    assert list(cwd.iterdir()) == []  # MLflow's default ./mlflow.db is never created
    [row] = json.loads(listed.stdout)
    assert row["backend"] == "mlflow" and set(row["aliases"]) == {"latest", "staging"}
    assert (tmp_path / "mlruns").is_dir()
    assert os.environ.get("MLFLOW_TRACKING_TOKEN", "") == ""
