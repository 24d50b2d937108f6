"""Issue 31 point 8: an MLflow publish cut by the server going down is all-or-nothing for readers.

A real ``mlflow server`` (sqlite backend store, local artifact root) is SIGKILLed, with its
workers, in the middle of a publish: right after one of the MLflow client's own requests has
reached it (the request is wrapped, never mocked). It is then restarted on the same store and
port, and the registry is read back: ``latest`` and the aliases still name the previous complete
version, the alias history is unchanged, the failure is exit 1 naming what happened, and a retry
of the same bytes adds exactly one complete version.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlpipe.core import MlpipeError
from mlpipe.core.config import plugin_section
from mlpipe.core.registry import open_registry
from tests.support import TINY_TRAINING, make_artifact, venv_env
from tests.system.test_registry_contract import start_mlflow_server

pytestmark = pytest.mark.slow
mlflow = pytest.importorskip("mlflow")


class Server:
    """One ``mlflow server`` that a test may bring down and back up on the same store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc, self.uri = start_mlflow_server(root, own_session=True)
        self.port = int(self.uri.rsplit(":", 1)[1])

    def stop(self) -> None:
        """SIGKILL the server and its workers (nothing answers on its port afterwards)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def start(self) -> None:
        if self.proc.poll() is None:
            return
        self.proc, uri = start_mlflow_server(self.root, port=self.port, own_session=True)
        assert uri == self.uri


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("mlflow-faults"))
    yield running
    running.stop()


@pytest.fixture
def up(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """The server, running (started again if a test left it down: a start takes seconds, so a
    test that needs no server afterwards leaves it down); a failing request gives up at once
    instead of retrying for seconds (the server is gone: retries only add to the test's time)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    server.start()
    return server


def _registry(uri: str, prefix: str, home: Path) -> Any:
    section = {"backend": "mlflow", "tracking_uri": uri, "registered_model_prefix": prefix}
    return open_registry(plugin_section("registry", section, "registry"), home)


def _stop_after(monkeypatch: pytest.MonkeyPatch, server: Server, request: str) -> None:
    """The MLflow client's ``request`` reaches the server, then the server goes down."""
    real = getattr(mlflow.MlflowClient, request)

    def then_stop(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = real(self, *args, **kwargs)
        server.stop()
        return out

    monkeypatch.setattr(mlflow.MlflowClient, request, then_stop)


def _stored(uri: str, model: str) -> dict[int, dict[str, str]]:
    """Every model version MLflow holds (complete or not): number -> tags."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.search_model_versions(f"name='{model}'")
    return {int(mv.version): dict(mv.tags) for mv in found}


def _moves(reg: Any, alias: str) -> list[tuple[int | None, int]]:
    return [(e["from"], e["to"]) for e in reg.history("m") if e["alias"] == alias]


_CUT = textwrap.dedent(
    """
    import os, signal, sys
    import mlflow

    real = mlflow.MlflowClient.create_model_version

    def then_stop(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        os.killpg(int(os.environ["CUT_SERVER_PGID"]), signal.SIGKILL)
        return out

    mlflow.MlflowClient.create_model_version = then_stop
    sys.argv = ["mlpipe", *sys.argv[1:]]
    from mlpipe.cli import main
    main()
    """
)


def test_8_mlpipe_train_cut_by_the_server_exits_1_moves_nothing_and_its_retry_adds_one(
    up: Server, tmp_path: Path
) -> None:
    """The command a user runs: ``mlpipe train`` loses the server while publishing. Trained
    once: the retry is served from the step cache and publishes the same bytes."""
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    home = tmp_path / "home"
    reg = _registry(up.uri, prefix, home)
    reg.publish(make_artifact(tmp_path, "a"), "tiny-sentiment", ["staging"])
    cfg = yaml.safe_load(TINY_TRAINING.read_text())
    cfg["data"]["generated"]["n_samples"] = 120
    cfg["training"]["epochs"] = 1
    cfg["registry"].update(
        {"backend": "mlflow", "tracking_uri": up.uri, "registered_model_prefix": prefix}
    )
    config = tmp_path / "training.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**venv_env(), "MLPIPE_HOME": str(home), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "CUT_SERVER_PGID": str(up.proc.pid)}  # fmt: skip

    started = time.monotonic()
    cut = subprocess.run([sys.executable, "-c", _CUT, "train", "-c", str(config)],
                         capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert cut.returncode == 1, cut.stderr[-3000:]
    up.proc.wait(timeout=30)

    up.start()
    assert reg.resolve("tiny-sentiment:latest").version == 1
    assert reg.resolve("tiny-sentiment:staging").version == 1
    assert [v.version for v in reg.versions("tiny-sentiment")] == [1]
    stored = _stored(up.uri, f"{prefix}tiny-sentiment")
    assert sorted(stored) == [1, 2] and "mlpipe.complete" not in stored[2]
    assert "publishing tiny-sentiment failed" in cut.stderr and up.uri in cut.stderr
    assert "nothing was published" in cut.stderr and "v2 is hidden" in cut.stderr

    retry = subprocess.run([sys.executable, "-m", "mlpipe", "train", "-c", str(config)],
                           capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert retry.returncode == 0, retry.stderr[-3000:]
    assert reg.resolve("tiny-sentiment:staging").version == 3
    assert [v.version for v in reg.versions("tiny-sentiment")] == [1, 3]
    assert sorted(_stored(up.uri, f"{prefix}tiny-sentiment")) == [1, 3]
    runs = [json.loads(p.read_text()) for p in sorted((home / "runs").glob("training/*/run.json"))]
    assert sorted(r["status"] for r in runs) == ["failed", "succeeded"]
    print(f"train cut + retry: {time.monotonic() - started:.1f} s")


def test_8_a_publish_cut_after_its_version_is_created_moves_nothing_and_a_retry_adds_one(
    up: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    home = tmp_path / "home"
    first = _registry(up.uri, prefix, home).publish(
        make_artifact(tmp_path, "a"), "m", ["staging"], {"run_id": "r1"}
    )
    art = make_artifact(tmp_path, "b", accuracy=0.9)

    _stop_after(monkeypatch, up, "create_model_version")
    with pytest.raises(MlpipeError) as info:
        _registry(up.uri, prefix, home).publish(art, "m", ["staging"], {"run_id": "r2"})
    monkeypatch.undo()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert info.value.exit_code == 1

    up.start()  # the same sqlite store
    reg = _registry(up.uri, prefix, home)
    assert reg.resolve("m:latest").version == first.version == 1
    assert reg.resolve("m:staging").version == 1
    assert [v.version for v in reg.versions("m")] == [1]
    with pytest.raises(MlpipeError, match="no version 2"):
        reg.resolve("m:v2")
    assert _moves(reg, "staging") == [(None, 1)]
    assert sorted(_stored(up.uri, f"{prefix}m")) == [1, 2]  # the leftover is there, unseen
    message = str(info.value)
    assert "publishing m failed" in message and up.uri in message
    assert "nothing was published" in message and "v2 is hidden" in message

    retried = reg.publish(art, "m", ["staging"], {"run_id": "r2"})
    assert retried.version == 3 and "staging" in retried.aliases and "latest" in retried.aliases
    assert reg.resolve("m:latest").version == reg.resolve("m:staging").version == 3
    assert [v.version for v in reg.versions("m")] == [1, 3]
    assert sorted(_stored(up.uri, f"{prefix}m")) == [1, 3]  # the leftover was replaced
    assert _moves(reg, "staging") == [(None, 1), (1, 3)]
    again = reg.publish(art, "m", ["staging"], {"run_id": "r2"})  # the same bytes once more
    assert again.version == 3 and sorted(_stored(up.uri, f"{prefix}m")) == [1, 3]
    assert _moves(reg, "staging") == [(None, 1), (1, 3)]


def test_8_a_publish_whose_server_dies_after_the_alias_moved_never_fails_half_done(
    up: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last request of a publish is its alias move: nothing after it may fail, so the
    command never exits 1 with ``staging`` moved (main: 'reading m v2' failed after the move)."""
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    home = tmp_path / "home"
    _registry(up.uri, prefix, home).publish(make_artifact(tmp_path, "a"), "m", ["staging"])

    _stop_after(monkeypatch, up, "set_registered_model_alias")
    second = _registry(up.uri, prefix, home).publish(
        make_artifact(tmp_path, "b"), "m", ["staging"], {"run_id": "r2"}
    )
    monkeypatch.undo()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert second.version == 2 and set(second.aliases) == {"latest", "staging"}

    # read back from the server's own store (what it serves once restarted), no restart
    store = f"sqlite:///{up.root / 'mlflow.db'}"
    reg = _registry(store, prefix, home)
    assert reg.resolve("m:latest").version == reg.resolve("m:staging").version == 2
    assert _moves(reg, "staging") == [(None, 1), (1, 2)]  # recorded before the move
    assert sorted(_stored(store, f"{prefix}m")) == [1, 2]
