import multiprocessing as mp
from pathlib import Path

import pytest

from mlpipe.core import ChecksumError, ConfigError, ModelNotFoundError
from mlpipe.registries.local import LocalRegistry
from tests.conftest import make_artifact


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
    with mp.get_context("spawn").Pool(4) as pool:
        versions = pool.map(_publish, [(str(tmp_path / "reg"), str(a), "m") for a in arts])
    assert sorted(versions) == list(range(1, 9))
    reg = LocalRegistry(tmp_path / "reg")
    assert [v.version for v in reg.versions("m")] == list(range(1, 9))
    assert reg.resolve("m:latest").version == 8
    for v in reg.versions("m"):
        reg.fetch(v.spec)  # every version complete and verified
