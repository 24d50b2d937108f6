"""Shared fixtures: an isolated mlpipe home and the tiny configs every test builds on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlpipe.core import InferenceConfig, TrainingConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAINING = ROOT / "configs" / "tiny" / "training.yaml"
TINY_INFERENCE = ROOT / "configs" / "tiny" / "inference.yaml"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never touch the network: hub lookups fail fast, W&B stays local."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty mlpipe home for this test (also exported as MLPIPE_HOME for subprocesses)."""
    path = tmp_path / "home"
    monkeypatch.setenv("MLPIPE_HOME", str(path))
    return path


@pytest.fixture
def tiny_training() -> TrainingConfig:
    cfg = load_config(TINY_TRAINING, ["data.generated.n_samples=300", "training.epochs=1"])
    assert isinstance(cfg, TrainingConfig)
    return cfg


@pytest.fixture
def tiny_inference() -> InferenceConfig:
    cfg = load_config(TINY_INFERENCE, ["data.generated.n_samples=100"])
    assert isinstance(cfg, InferenceConfig)
    return cfg


def venv_env() -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin directory first on PATH."""
    import sys

    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def make_artifact(
    tmp: Path, tag: str, accuracy: float = 0.5, provenance: dict[str, object] | None = None
) -> Path:
    """A small, valid artifact directory (fake weights, config, manifest) for registry tests."""
    import json

    from mlpipe.core.artifacts import assemble

    model = tmp / f"model-{tag}"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(f"weights {tag}".encode())
    (model / "config.json").write_text(json.dumps({"tag": tag}))
    out = tmp / f"artifact-{tag}"
    assemble(model, out, metrics={"eval_accuracy": accuracy},
             provenance=provenance or {"data_sha256": tag})  # fmt: skip
    return out


def assert_failed_run(home: Path, pipeline: str, step: str) -> dict[str, object]:
    """A failed run leaves its record and the step's error, and nothing half-written:
    no registry version, no outputs of the failed step or of any later step."""
    import json

    records = sorted((home / "runs" / pipeline).glob("*/run.json"))
    assert len(records) == 1, records
    record = json.loads(records[0].read_text())
    assert record["status"] == "failed" and record["failed_step"] == step
    assert record["error"]["message"] and record["ended_at"]
    step_dir = records[0].parent / step
    assert sorted(p.name for p in step_dir.iterdir()) == ["error.json"]
    assert not any((home / "registry").rglob("manifest.json"))
    return record
