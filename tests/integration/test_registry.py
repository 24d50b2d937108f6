import json
import multiprocessing as mp
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from mlpipe.core import ChecksumError, ConfigError, ModelNotFoundError, TrainingConfig, run_pipeline
from mlpipe.core.config import PromoteIf
from mlpipe.core.hashing import sha256_file
from mlpipe.core.pipelines import TRAINING
from mlpipe.registries.local import LocalRegistry
from tests.support import TINY_TRAINING, make_artifact, venv_env


def test_versions_are_numbered_and_aliases_move(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "reg")
    v1 = reg.publish(make_artifact(tmp_path, "a"), "m", ["staging"])
    v2 = reg.publish(make_artifact(tmp_path, "b"), "m", [])
    assert (v1.version, v2.version) == (1, 2)
    assert reg.resolve("m").version == 2  # bare name means latest
    assert reg.resolve("m:staging").version == 1
    assert reg.resolve("m:v1").version == 1 and reg.resolve("m:1").version == 1
    promoted = reg.promote("m", 2, "production")
    assert "production" in promoted.aliases
    reg.promote("m", 2, "staging")
    assert reg.resolve("m:staging").version == 2
    assert [v.version for v in reg.versions("m")] == [1, 2]


def test_identical_content_reuses_its_version(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "reg")
    art = make_artifact(tmp_path, "a")
    assert reg.publish(art, "m", []).version == reg.publish(art, "m", ["x"]).version == 1
    assert reg.resolve("m:x").version == 1


def test_unknown_model_version_and_alias_are_clear(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "reg")
    with pytest.raises(ModelNotFoundError, match="model 'm' is not in the registry"):
        reg.resolve("m:latest")
    reg.publish(make_artifact(tmp_path, "a"), "m", [])
    with pytest.raises(ModelNotFoundError, match="no version 9"):
        reg.resolve("m:v9")
    with pytest.raises(ModelNotFoundError, match="no alias 'prod'"):
        reg.resolve("m:prod")
    with pytest.raises(ModelNotFoundError):
        reg.promote("m", 4, "prod")
    with pytest.raises(ConfigError):
        reg.promote("m", 1, "bad alias")


def test_checksum_failure_is_detected_on_load(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "reg")
    ref = reg.publish(make_artifact(tmp_path, "a"), "m", [])
    (Path(ref.uri) / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match=r"model\.safetensors does not match"):
        reg.fetch("m:v1")
    (Path(ref.uri) / "config.json").unlink()
    with pytest.raises(ChecksumError, match=r"config\.json is missing"):
        reg.fetch("m:v1")


def test_publish_refuses_damaged_source(tmp_path: Path) -> None:
    art = make_artifact(tmp_path, "a")
    (art / "config.json").write_text("{}")
    reg = LocalRegistry(tmp_path / "reg")
    with pytest.raises(ChecksumError):
        reg.publish(art, "m", [])
    assert reg.versions() == []


def test_interrupted_publish_leaves_no_version(tmp_path: Path) -> None:
    """A crash before the rename leaves only a hidden staging dir, never a partial version."""
    reg = LocalRegistry(tmp_path / "reg")
    staging = tmp_path / "reg" / "m" / ".staging-crashed"
    staging.mkdir(parents=True)
    (staging / "model.safetensors").write_bytes(b"half")
    assert reg.versions("m") == []
    assert reg.publish(make_artifact(tmp_path, "a"), "m", []).version == 1


def _publish(args: tuple[str, str, str]) -> int:
    root, artifact, name = args
    return LocalRegistry(root).publish(Path(artifact), name, ["staging"]).version


def test_concurrent_publishers_get_distinct_versions(tmp_path: Path) -> None:
    arts = [make_artifact(tmp_path, str(i)) for i in range(8)]
    # an executor, not ``with Pool``: Pool's exit terminates its workers and can wait forever on
    # one caught mid-shutdown (seen once in CI); the executor joins workers that have finished
    with ProcessPoolExecutor(4, mp_context=mp.get_context("spawn")) as pool:
        jobs = [(str(tmp_path / "reg"), str(a), "m") for a in arts]
        versions = list(pool.map(_publish, jobs, timeout=600))
    assert sorted(versions) == list(range(1, 9))
    reg = LocalRegistry(tmp_path / "reg")
    assert [v.version for v in reg.versions("m")] == list(range(1, 9))
    assert reg.resolve("m:latest").version == 8
    for v in reg.versions("m"):
        reg.fetch(v.spec)  # every version complete and verified


# -- lineage, one copy of the weights, promotion, show / diff / delete on the CLI ----------------


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mlpipe", *args, "--home", str(home)]
    return subprocess.run(cmd, capture_output=True, text=True, env=venv_env(), timeout=300)


def _artifact(tmp: Path, tag: str, accuracy: float) -> Path:
    provenance = {"data_sha256": f"data-{tag}", "config": {"training": {"epochs": len(tag)}}}
    return make_artifact(tmp, tag, accuracy, provenance)


def test_a_training_run_publishes_one_copy_of_the_weights_with_its_lineage(
    home: Path, tiny_training: TrainingConfig
) -> None:
    result = run_pipeline(TRAINING, tiny_training, home=home)
    version = result.outputs["upload_model"]
    weights = [
        result.run_dir / "train_model" / "model" / "model.safetensors",
        result.run_dir / "save_artifacts" / "artifacts" / "model.safetensors",
        Path(version.uri) / "model.safetensors",
    ]
    digests = {sha256_file(p) for p in weights}
    assert len(digests) == 1 and version.metrics  # same bytes everywhere...
    inodes = [(p.stat().st_dev, p.stat().st_ino) for p in weights]
    assert inodes[0] == inodes[1] and weights[0].stat().st_nlink >= 2  # once in the run...
    assert inodes[2] != inodes[0]  # ...and the published version is its own copy (immutable)
    lineage = LocalRegistry(home / "registry").resolve(version.spec).lineage
    record = json.loads((result.run_dir / "run.json").read_text())
    assert lineage["run_id"] == result.run_id == version.run_id
    assert lineage["pipeline"] == "training" and lineage["runner"] == "local"
    assert lineage["orchestrator_run_id"] == record.get("orchestrator_run_id", result.run_id)
    provenance = json.loads((Path(version.uri) / "provenance.json").read_text())
    for key in ("data_sha256", "config_sha256", "base_model", "mlpipe_version"):
        assert lineage[key] == provenance[key], key
    assert lineage["data_source"] == "generated:n_samples=300,seed=13"
    assert lineage["metrics"] == version.metrics
    assert lineage["created_at"].endswith("Z")
    shown = _cli("registry", "show", f"{version.name}:staging", "--json", home=home)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["lineage"]["run_id"] == result.run_id
    moves = {(e["alias"], e["from"], e["to"], e["run_id"]) for e in data["alias_history"]}
    assert moves == {("latest", None, 1, result.run_id), ("staging", None, 1, result.run_id)}
    listed = _cli("registry", "list", "--json", home=home)
    [row] = json.loads(listed.stdout)
    assert row["run_id"] == result.run_id and row["created_at"] == lineage["created_at"]


def test_promote_if_keeps_staging_on_the_better_model(tmp_path: Path) -> None:
    policy = PromoteIf(metric="eval_accuracy", mode="max")
    reg = LocalRegistry(tmp_path / "reg", promote_if=policy)
    good = reg.publish(_artifact(tmp_path, "good", 1.0), "m", ["staging"], {"run_id": "r1"})
    bad = reg.publish(_artifact(tmp_path, "bad", 0.4), "m", ["staging"], {"run_id": "r2"})
    assert bad.aliases == ("latest",) and bad.aliases_withheld == ("staging",)
    assert reg.resolve("m:staging").version == good.version
    assert "does not beat v1's 1.0000" in bad.notes[0]
    better = reg.publish(_artifact(tmp_path, "better", 1.0 + 1e-9), "m", ["staging"])
    assert "staging" in better.aliases
    minimise = LocalRegistry(tmp_path / "reg", promote_if=PromoteIf(metric="eval_accuracy",
                                                                      mode="min"))
    low = minimise.publish(_artifact(tmp_path, "low", 0.1), "m", ["staging"])
    assert "staging" in low.aliases


def test_the_default_policy_warns_on_a_worse_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = LocalRegistry(tmp_path / "reg")
    reg.publish(_artifact(tmp_path, "good", 1.0), "m", ["staging"])
    with caplog.at_level("WARNING", logger="mlpipe.registry"):
        worse = reg.publish(_artifact(tmp_path, "bad", 0.4), "m", ["staging"])
    assert "staging" in worse.aliases  # today's behaviour...
    assert "a worse model" in caplog.text and "v1" in caplog.text  # ...said plainly


def test_promote_if_is_validated_with_the_field_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(TINY_TRAINING.read_text() + "  promote_if: {metric: acc, mode: best}\n")
    result = _cli("train", "-c", str(cfg), home=tmp_path / "h")
    assert result.returncode == 2
    assert "registry.promote_if.mode" in result.stderr
    assert not (tmp_path / "h" / "registry").exists()


def test_show_diff_delete_on_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    reg = LocalRegistry(home / "registry")
    reg.publish(_artifact(tmp_path, "a", 0.8), "m", ["staging"], {"run_id": "r1"})
    reg.publish(_artifact(tmp_path, "bb", 0.9), "m", [], {"run_id": "r2"})
    diff = _cli("registry", "diff", "m:v1", "m:v2", "--json", home=home)
    assert diff.returncode == 0, diff.stderr
    data = json.loads(diff.stdout)
    assert data["metrics"]["eval_accuracy"]["delta"] == pytest.approx(0.1)
    assert data["config"] == {"training.epochs": {"a": 1, "b": 2}}
    assert data["same_data"] is False and data["lineage"]["data_sha256"]["b"] == "data-bb"
    text = _cli("registry", "diff", "m:staging", "m:latest", home=home)
    assert "+0.1000" in text.stdout and "different data" in text.stdout
    refused = _cli("registry", "delete", "m", "v1", home=home)
    assert refused.returncode == 2 and "staging" in refused.stderr
    assert (home / "registry" / "m" / "v1").is_dir()
    assert _cli("registry", "promote", "m", "2", "staging", home=home).returncode == 0
    gone = _cli("registry", "delete", "m", "v1", home=home)
    assert gone.returncode == 0, gone.stderr
    assert not (home / "registry" / "m" / "v1").exists()
    missing = _cli("registry", "delete", "m", "v1", home=home)
    assert missing.returncode == 2 and "no version 1" in missing.stderr
    shown = _cli("registry", "show", "m:staging", home=home)
    assert shown.returncode == 0 and "alias history" in shown.stdout
    assert "r1" in shown.stdout or "r2" in shown.stdout


def test_a_version_removed_by_hand_is_named_not_dangled(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "reg")
    reg.publish(make_artifact(tmp_path, "a"), "m", ["production"])
    reg.publish(make_artifact(tmp_path, "b"), "m", [])
    shutil.rmtree(tmp_path / "reg" / "m" / "v1")
    with pytest.raises(ModelNotFoundError, match=r"m:production points at v1, which is no longer"):
        reg.resolve("m:production")
    assert reg.dangling("m") == {"production": 1}
