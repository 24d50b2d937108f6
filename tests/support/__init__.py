"""Helpers the tests import: paths, the tiny configs, a subprocess environment, fake artifacts.

Kept out of ``conftest.py`` so that any tier can import them by one name
(``from tests.support import ...``) whatever folder the test lives in.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY_TRAINING = ROOT / "configs" / "tiny" / "training.yaml"
TINY_INFERENCE = ROOT / "configs" / "tiny" / "inference.yaml"


def load_script(path: Path, name: str) -> ModuleType:
    """A script of the repo that is no package module (bench/, docker/, scripts/), imported from
    its file as ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import would: dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def venv_env() -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin directory first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def make_artifact(
    tmp: Path, tag: str, accuracy: float = 0.5, provenance: dict[str, object] | None = None
) -> Path:
    """A small, valid artifact directory (fake weights, config, manifest) for registry tests."""
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
    records = sorted((home / "runs" / pipeline).glob("*/run.json"))
    assert len(records) == 1, records
    record = json.loads(records[0].read_text())
    assert record["status"] == "failed" and record["failed_step"] == step
    assert record["error"]["message"] and record["ended_at"]
    step_dir = records[0].parent / step
    assert sorted(p.name for p in step_dir.iterdir()) == ["error.json"]
    assert not any((home / "registry").rglob("manifest.json"))
    return record


def tiny_config_files(tmp_path: Path) -> dict[str, str]:
    """The tiny configs, shrunk like the fixtures, as files a service's code location reads
    (``MLPIPE_TRAINING_CONFIG`` / ``MLPIPE_INFERENCE_CONFIG``)."""
    files = {}
    for name, src, sets in (
        ("training", TINY_TRAINING, {"n_samples": 300, "epochs": 1}),
        ("inference", TINY_INFERENCE, {"n_samples": 100}),
    ):
        raw = yaml.safe_load(src.read_text())
        raw["data"]["generated"]["n_samples"] = sets["n_samples"]
        if "epochs" in sets:
            raw["training"]["epochs"] = sets["epochs"]
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw))
        files[f"MLPIPE_{name.upper()}_CONFIG"] = str(path)
    return files
