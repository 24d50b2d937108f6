"""W&B tracking and registry: offline runs checked through what W&B wrote to disk.

W&B's servers are not reachable in CI, so every test here runs with ``WANDB_MODE=offline`` and
reads back the run files (``run-*.wandb``: a leveldb-style log of protobuf records) and the staged
artifact files. What needs a server (download, promote, server-side versions) is exercised by
``test_online_round_trip``, skipped unless ``WANDB_API_KEY`` is set.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlpipe.core import ChecksumError, ConfigError, ModelNotFoundError, load_config
from mlpipe.core.artifacts import verify
from mlpipe.core.errors import MlpipeError
from mlpipe.core.tracking import TrackedStep, open_tracker
from mlpipe.integrations.wandb import WandbRegistryConfig, WandbTrackingConfig
from tests.support import ROOT, TINY_INFERENCE, TINY_TRAINING, make_artifact, venv_env

WANDB_DIRS = ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR")
CLEARED = ("WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY", "MLPIPE_WANDB_REGISTRY_COLLECTION")
FAST = ["--set", "data.generated.n_samples=300", "--set", "training.epochs=1"]
WANDB_ON = ["--set", "tracking.backend=wandb", "--set", "registry.backend=wandb"]


# -- reading what W&B wrote ---------------------------------------------------------------------


def wandb_records(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield (record type, record) from a ``run-*.wandb`` file (W&B's leveldb-log format)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        chunk, pos = data[pos : pos + length], pos + length
        if len(chunk) < length:  # still being written
            return
        if kind in (1, 4):  # FULL, LAST
            record = pb.Record()
            record.ParseFromString(pending + chunk)
            pending = b""
            yield record.WhichOneof("record_type") or "", record
        elif kind in (2, 3):  # FIRST, MIDDLE
            pending += chunk


def read_run(run_file: Path) -> dict[str, Any]:
    """One offline run as plain data: config, tags, group, job type, history keys, summary."""
    out: dict[str, Any] = {"history": {}, "summary": {}, "artifacts": []}
    for kind, rec in wandb_records(run_file):
        if kind == "run":
            out["config"] = {u.key: json.loads(u.value_json) for u in rec.run.config.update}
            out.update(tags=list(rec.run.tags), group=rec.run.run_group, job_type=rec.run.job_type)
        elif kind == "history":
            for item in rec.history.item:
                key = item.key or "/".join(item.nested_key)
                out["history"].setdefault(key, []).append(json.loads(item.value_json))
        elif kind == "summary":
            for upd in rec.summary.update:
                out["summary"][upd.key or "/".join(upd.nested_key)] = json.loads(upd.value_json)
        elif kind == "artifact":
            out["artifacts"].append(rec.artifact)
    return out


def run_files(wandb_dir: Path, timeout: float = 30.0) -> list[Path]:
    """The finished runs' files; W&B's service may still be flushing just after ``finish()``."""
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(wandb_dir.glob("wandb/offline-run-*/run-*.wandb"))
        kinds = [[kind for kind, _ in wandb_records(f)] for f in files]
        if all("run" in k and k[-1] == "exit" for k in kinds):
            return files
        if time.monotonic() > deadline:
            raise AssertionError(f"W&B did not finish writing {files}")
        time.sleep(0.2)


def offline_runs(wandb_dir: Path) -> dict[str, dict[str, Any]]:
    """Every offline run under ``WANDB_DIR``, keyed by job type (one run per job type here)."""
    runs = [read_run(f) for f in run_files(wandb_dir)]
    return {r["job_type"]: r for r in runs}


# -- fixtures -----------------------------------------------------------------------------------


def _wandb_env(root: Path) -> dict[str, str]:
    env = {name: str(root / name.lower()) for name in WANDB_DIRS}
    for path in env.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    return {**env, "WANDB_MODE": "offline"}


@pytest.fixture
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """W&B offline, every W&B directory inside this test's tmp dir, no key or project set."""
    env = _wandb_env(tmp_path / "w")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    return env


def wandb_registry(home: Path) -> Any:
    from mlpipe.core.registry import open_registry

    return open_registry(WandbRegistryConfig(), home)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the CLI, end to end, offline, with a fake key -------------------------------------------------


class CliRuns:
    """One CLI session: its tmp root, environment, fake key and everything it printed."""

    trained: subprocess.CompletedProcess[str]
    inferred: subprocess.CompletedProcess[str]

    def __init__(self, root: Path, key: str) -> None:
        self.root = root
        self.key = key
        self.home = root / "home"
        self.env = {**venv_env(), **_wandb_env(root / "w"), "WANDB_API_KEY": key}
        for name in CLEARED[1:]:
            self.env.pop(name, None)
        self.outputs: list[str] = []

    def mlpipe(
        self, *args: str, env: dict[str, str] | None = None, home: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "mlpipe", *args, "--home", str(home or self.home)]
        run_env = env or self.env
        done = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=300)
        self.outputs += [done.stdout, done.stderr]
        return done


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> CliRuns:
    """``mlpipe train`` then ``mlpipe infer`` with both W&B backends, offline, fake key set."""
    runs = CliRuns(tmp_path_factory.mktemp("wandb-cli"), "fk" + secrets.token_hex(19))
    runs.trained = runs.mlpipe("train", "--config", str(TINY_TRAINING), *FAST, *WANDB_ON, "--json")
    runs.inferred = runs.mlpipe(
        "infer", "--config", str(TINY_INFERENCE), "--set", "data.generated.n_samples=100",
        *WANDB_ON, "--json",
    )  # fmt: skip
    return runs


@pytest.mark.slow
def test_cli_trains_publishes_and_infers_through_wandb_offline(cli: CliRuns) -> None:
    assert cli.trained.returncode == 0, cli.trained.stderr
    assert cli.inferred.returncode == 0, cli.inferred.stderr
    published = json.loads(cli.trained.stdout)["steps"][-1]["ref"]
    # Offline, W&B has not assigned a version: the ref says so and numbers from a local counter.
    assert published["backend"] == "wandb-offline"
    assert (published["name"], published["version"]) == ("tiny-sentiment", 0)
    assert set(published["aliases"]) == {"latest", "staging"}
    verify(Path(published["uri"]))
    steps = {s["step"]: s["ref"] for s in json.loads(cli.inferred.stdout)["steps"]}
    loaded = steps["load_model"]
    assert loaded["version"] == 0 and loaded["sha256"] == published["sha256"]
    # The model was copied into the inference run's own directory and verified there.
    assert Path(loaded["uri"]).parent.name == "load_model"
    verify(Path(loaded["uri"]))
    assert not [p for p in Path(loaded["uri"]).parent.iterdir() if p.name.startswith(".")]
    assert steps["save_results"]["model"] == "tiny-sentiment:v0"


@pytest.mark.slow
def test_offline_runs_hold_config_metrics_data_hash_and_the_model_artifact(cli: CliRuns) -> None:
    assert cli.trained.returncode == 0, cli.trained.stderr
    runs = offline_runs(Path(cli.env["WANDB_DIR"]))
    assert set(runs) == {"train", "upload_model", "inference"}
    train, upload, infer = runs["train"], runs["upload_model"], runs["inference"]
    trained = json.loads(cli.trained.stdout)
    run_id = trained["run_id"]
    dataset = trained["steps"][0]["ref"]

    assert train["config"]["training"]["epochs"] == 1 and train["config"]["model"]["base"] == "tiny"
    assert train["config"]["mlpipe"] == {
        "mlpipe_run_id": run_id, "pipeline": "training", "step": "train_model", "runner": "local",
    }  # fmt: skip
    assert "runner:local" in train["tags"] and train["group"] == f"training-{run_id}"
    assert len(train["history"]["train/loss"]) >= 2  # per-step loss
    assert train["summary"]["data_sha256"] == dataset["sha256"]
    assert 0 <= train["summary"]["eval_accuracy"] <= 1
    assert train["history"]["final/train_samples_per_second"][0] > 0  # throughput

    (art,) = upload["artifacts"]
    assert (art.name, art.type) == ("tiny-sentiment", "model")
    assert set(art.aliases) == {"latest", "staging"}
    staged = {e.path: Path(e.local_path) for e in art.manifest.contents}
    assert {"manifest.json", "model.safetensors", "config.json"} <= set(staged)
    source = Path(trained["steps"][2]["ref"]["uri"])  # save_artifacts' directory
    assert staged["manifest.json"].read_bytes() == (source / "manifest.json").read_bytes()
    assert staged["manifest.json"].is_relative_to(cli.env["WANDB_DATA_DIR"])
    manifest = json.loads(staged["manifest.json"].read_text())
    for name, path in staged.items():
        if name != "manifest.json":
            assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["files"][name]
    meta = json.loads(art.metadata)
    digest = hashlib.sha256((source / "manifest.json").read_bytes()).hexdigest()
    assert meta["manifest_sha256"] == digest and meta["mlpipe"]["run_id"] == run_id

    assert infer["summary"]["model"] == "tiny-sentiment:v0"
    assert infer["history"]["inference/accuracy"][0] >= 0
    assert infer["history"]["inference/throughput"][0] > 0


@pytest.mark.slow
def test_api_key_is_never_written_or_printed(cli: CliRuns) -> None:
    assert cli.trained.returncode == 0 and cli.inferred.returncode == 0
    written = [p for p in cli.root.rglob("*") if p.is_file()]
    assert len(written) > 20  # run files, staged artifacts, registry copies, step outputs
    leaks = [str(p) for p in written if cli.key.encode() in p.read_bytes()]
    assert leaks == []
    assert all(cli.key not in text for text in cli.outputs)


@pytest.mark.slow
def test_cli_errors_unknown_alias_and_offline_promote_exit_2(cli: CliRuns) -> None:
    assert cli.trained.returncode == 0, cli.trained.stderr
    bad = cli.mlpipe(
        "infer", "--config", str(TINY_INFERENCE), *WANDB_ON,
        "--set", "inference.model=tiny-sentiment:production",
    )  # fmt: skip
    assert bad.returncode == 2
    assert "no alias 'production'" in bad.stderr and "staging" in bad.stderr
    config = cli.root / "registry.yaml"
    config.write_text("pipeline: inference\nregistry: {backend: wandb}\n")
    listed = cli.mlpipe("registry", "list", "--config", str(config), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(v["name"], v["version"]) for v in json.loads(listed.stdout)] == [("tiny-sentiment", 0)]
    promoted = cli.mlpipe("registry", "promote", "tiny-sentiment", "v0", "prod", "-c", str(config))
    assert promoted.returncode == 2 and "WANDB_MODE=online" in promoted.stderr


@pytest.mark.slow
def test_cli_online_without_key_exits_2_and_publishes_nothing(cli: CliRuns) -> None:
    env = {k: v for k, v in cli.env.items() if k != "WANDB_API_KEY"}
    home = cli.root / "home-online"
    done = cli.mlpipe(
        "train", "--config", str(ROOT / "configs" / "wandb" / "training.yaml"), *FAST,
        env={**env, "WANDB_MODE": "online"}, home=home,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "WANDB_API_KEY is not set" in done.stderr and "tracking.backend: wandb" in done.stderr
    assert not home.exists()  # caught by preflight, before any step wrote anything


def test_example_configs_select_both_wandb_backends() -> None:
    for name in ("training", "inference"):
        cfg = load_config(ROOT / "configs" / "wandb" / f"{name}.yaml")
        assert (cfg.registry.backend, cfg.tracking.backend) == ("wandb", "wandb")
        assert cfg.tracking.mode is None  # WANDB_MODE decides, so one env var switches both


# -- in-process ---------------------------------------------------------------------------------


def test_importing_core_does_not_import_wandb() -> None:
    code = (
        "import sys, mlpipe.core, mlpipe.core.steps, mlpipe.core.registry, mlpipe.core.tracking;"
        "print('wandb' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=300)
    assert done.stdout.strip() == "False"


def test_tracker_links_the_orchestrator_run_id(wandb_env: dict[str, str]) -> None:
    tags = {
        "mlpipe_run_id": "manual__2026-11-25T07_00_00_00_00",
        "pipeline": "training",
        "step": "train_model",
        "runner": "airflow",
        "orchestrator_run_id": "manual__2026-11-25T07:00:00+00:00",
    }
    cfg = WandbTrackingConfig(project="mlpipe-test")
    with open_tracker(cfg, TrackedStep("t", "train", {"a": 1}, tags)) as tracker:
        tracker.log({"train/loss": 0.5}, step=1)
        tracker.summary({"data_sha256": "abc"})
    (run,) = offline_runs(Path(wandb_env["WANDB_DIR"])).values()
    assert run["config"]["mlpipe"] == tags and run["config"]["a"] == 1
    assert "orchestrator_run_id:manual__2026-11-25T07:00:00+00:00" in run["tags"]
    assert "runner:airflow" in run["tags"]
    assert run["history"]["train/loss"] == [0.5] and run["summary"]["data_sha256"] == "abc"


def test_disabled_mode_writes_nothing(wandb_env: dict[str, str], tmp_path: Path) -> None:
    cfg = WandbTrackingConfig(mode="disabled")
    with open_tracker(cfg, TrackedStep("t", "train", {}, {})) as tracker:
        tracker.log({"x": 1.0})
    assert not list(Path(wandb_env["WANDB_DIR"]).rglob("*.wandb"))
    os.environ["WANDB_MODE"] = "disabled"  # restored by the fixture's monkeypatch
    with pytest.raises(ConfigError, match="WANDB_MODE=disabled"):
        wandb_registry(tmp_path / "home")


def test_online_without_key_is_a_config_error_and_writes_nothing(
    wandb_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    with pytest.raises(ConfigError, match="WANDB_API_KEY is not set") as caught:
        open_tracker(WandbTrackingConfig(), TrackedStep("t", "x", {}, {}))
    assert caught.value.exit_code == 2
    registry = wandb_registry(tmp_path / "home")
    with pytest.raises(ConfigError, match="WANDB_API_KEY"):
        registry.publish(make_artifact(tmp_path, "a"), "m", ["staging"], {})
    with pytest.raises(ConfigError, match="WANDB_API_KEY"):
        registry.fetch("m:staging", tmp_path / "dest")
    assert not (tmp_path / "dest").exists() and not (tmp_path / "home").exists()
    # The config's explicit mode wins over the environment.
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(ConfigError):
        open_tracker(WandbTrackingConfig(mode="online"), TrackedStep("t", "x", {}, {}))


def test_offline_registry_numbers_like_wandb_and_resolves_aliases(
    wandb_env: dict[str, str], tmp_path: Path
) -> None:
    registry = wandb_registry(tmp_path / "home")
    a, b = make_artifact(tmp_path, "a"), make_artifact(tmp_path, "b")
    v0 = registry.publish(a, "m", ["staging"], {"run_id": "r1"})
    v1 = registry.publish(b, "m", [], {"run_id": "r2"})
    assert (v0.version, v1.version) == (0, 1)  # W&B numbering: the first version is v0
    assert v0.backend == "wandb-offline" and v0.spec == "m:v0"
    assert registry.publish(a, "m", [], {}).version == 0  # same content, same version
    assert registry.resolve("m:staging").version == 0
    assert registry.resolve("m").version == registry.resolve("m:latest").version == 1
    assert registry.resolve("m:v1").version == registry.resolve("m:1").version == 1
    assert [v.version for v in registry.versions("m")] == [0, 1]
    with pytest.raises(ModelNotFoundError, match="no alias 'prod'") as caught:
        registry.resolve("m:prod")
    assert caught.value.exit_code == 2
    with pytest.raises(ModelNotFoundError, match=r"no version 7 \(versions: v0, v1\)"):
        registry.resolve("m:v7")
    with pytest.raises(ModelNotFoundError, match="'nope' was not published offline"):
        registry.fetch("nope:latest", tmp_path / "dest")
    with pytest.raises(ConfigError, match="WANDB_MODE=online"):
        registry.promote("m", 0, "production")
    # Both publishes were logged as W&B artifacts for a later `wandb sync`.
    uploads = [read_run(f) for f in run_files(Path(wandb_env["WANDB_DIR"]))]
    logged = sorted(sorted(art.aliases) for run in uploads for art in run["artifacts"])
    assert logged == [["latest"], ["latest"], ["latest", "staging"]]


def test_fetch_verifies_then_renames_and_leaves_nothing_on_failure(
    wandb_env: dict[str, str], tmp_path: Path
) -> None:
    registry = wandb_registry(tmp_path / "home")
    published = registry.publish(make_artifact(tmp_path, "a"), "m", ["staging"], {})
    dest = tmp_path / "run" / "load_model" / "model"
    dest.mkdir(parents=True)
    (dest / "stale.txt").write_text("from an earlier attempt")
    ref = registry.fetch("m:staging", dest)
    assert ref.uri == str(dest) and ref.sha256 == published.sha256
    verify(dest)
    assert not (dest / "stale.txt").exists()
    (Path(published.uri) / "model.safetensors").write_bytes(b"tampered")
    other = tmp_path / "run2" / "model"
    with pytest.raises(ChecksumError, match=r"model\.safetensors does not match"):
        registry.fetch("m:v0", other)
    assert not other.exists() and list(other.parent.iterdir()) == []


def test_wandb_errors_map_to_exit_codes() -> None:
    from wandb.errors import CommError

    from mlpipe.integrations.wandb import classify_error

    missing = classify_error(ValueError("artifact membership 'm:v9' not found in 'e/p'"), "m:v9")
    assert isinstance(missing, ModelNotFoundError) and missing.exit_code == 2
    assert isinstance(classify_error(CommError("project 'p' not found"), "x"), ModelNotFoundError)
    network = classify_error(ConnectionError("connection refused"), "fetching m")
    assert type(network) is MlpipeError and network.exit_code == 1
    assert "connection refused" in str(network) and "WANDB_MODE=offline" in str(network)


@pytest.mark.slow
def test_network_failure_is_a_runtime_error_and_leaves_nothing(
    wandb_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real client against a closed local port: what an unreachable W&B server looks like."""
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "fk" + secrets.token_hex(19))
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("WANDB_HTTP_TIMEOUT", "3")
    dest = tmp_path / "model"
    with pytest.raises(MlpipeError, match="the W&B request failed") as caught:
        wandb_registry(tmp_path / "home").fetch("m:staging", dest)
    assert type(caught.value) is MlpipeError and caught.value.exit_code == 1
    assert not dest.exists()


# -- online only --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("WANDB_API_KEY"),
    reason="needs a W&B account: set WANDB_API_KEY (and optionally WANDB_ENTITY/WANDB_PROJECT) "
    "to publish, download and promote a model artifact on the real server",
)
def test_online_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")  # conftest forces offline for every other test
    for name in WANDB_DIRS[:3]:
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    project = os.environ.get("WANDB_PROJECT") or "mlpipe-ci"
    from mlpipe.core.registry import open_registry

    registry = open_registry(
        WandbRegistryConfig(wandb_project=project), tmp_path / "home"
    )
    name = f"ci-{secrets.token_hex(4)}"
    published = registry.publish(make_artifact(tmp_path, name), name, ["staging"], {"run_id": "ci"})
    assert published.backend == "wandb" and published.version == 0
    assert {"latest", "staging"} <= set(published.aliases)
    ref = registry.fetch(f"{name}:staging", tmp_path / "dest")
    verify(tmp_path / "dest")
    assert ref.sha256 == published.sha256 and ref.version == 0
    assert registry.promote(name, 0, "production").aliases.count("production") == 1
    assert registry.resolve(f"{name}:production").version == 0
    with pytest.raises(ModelNotFoundError):
        registry.resolve(f"{name}:no-such-alias")
    with pytest.raises(ModelNotFoundError):
        registry.fetch(f"{name}:v99", tmp_path / "none")
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["airflow", "kubeflow", "dagster"])
def test_every_orchestrator_links_its_run_id_to_the_wandb_run(
    runner: str, wandb_env: dict[str, str], tmp_path: Path
) -> None:
    """Each adapter tags the W&B training run with its runner and its own run id."""
    from mlpipe.core import TRAINING, load_config
    from mlpipe.core.execution import get_runner

    cfg = load_config(
        ROOT / "configs" / "tiny" / "training.yaml",
        ["data.generated.n_samples=120", "training.epochs=1", "tracking.backend=wandb"],
    )
    run = get_runner(runner).run(TRAINING, cfg, home=tmp_path / "home", use_cache=False)
    (tracked,) = offline_runs(Path(wandb_env["WANDB_DIR"])).values()
    linked = tracked["config"]["mlpipe"]
    assert linked["runner"] == runner
    assert linked["orchestrator_run_id"] == run.extra["orchestrator_run_id"]
    assert linked["mlpipe_run_id"] == run.run_id


@pytest.mark.slow
def test_wandb_writes_only_under_the_mlpipe_home(tmp_path: Path) -> None:
    """Offline, with no W&B directory configured: runs, staging copies of the model, the
    artifact cache and settings all land under ``<home>/wandb``, nothing under ``~``."""
    user_home = tmp_path / "user"
    user_home.mkdir()
    env = {**venv_env(), "HOME": str(user_home), "WANDB_MODE": "offline",
           "WANDB_API_KEY": "fk" + secrets.token_hex(19)}  # fmt: skip
    for name in (*WANDB_DIRS, "WANDB_ARTIFACT_DIR", "XDG_DATA_HOME", "XDG_CACHE_HOME",
                 "XDG_CONFIG_HOME", *CLEARED[1:]):  # fmt: skip
        env.pop(name, None)
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "mlpipe", "train", "--config", str(TINY_TRAINING), *FAST,
           *WANDB_ON, "--home", str(home)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    outside = [p for p in user_home.rglob("*") if p.is_file()]
    assert outside == [], outside
    assert list((home / "wandb").rglob("run-*.wandb"))
