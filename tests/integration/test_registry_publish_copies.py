"""Published versions are immutable in fact: a copy of the run's files, verified before a new
publish is deduplicated onto them, repaired from fresh files when damaged."""

from __future__ import annotations

from pathlib import Path

from mlpipe.core import artifacts
from mlpipe.registries.local import LocalRegistry
from tests.support import make_artifact


def test_an_edit_in_the_run_folder_never_reaches_the_published_version(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "registry")
    run = make_artifact(tmp_path / "run", "a")
    v1 = reg.publish(run, "m", ["staging"])
    with open(run / "model.safetensors", "r+b") as f:  # edited in place, same inode
        f.write(b"X")
    artifacts.verify(Path(v1.uri))  # the published copy is untouched
    assert reg.verify("m") == []


def test_publishing_onto_a_damaged_identical_version_repairs_it(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "registry")
    v1 = reg.publish(make_artifact(tmp_path / "first", "a"), "m", ["staging"])
    with open(Path(v1.uri) / "model.safetensors", "r+b") as f:  # damage the version in place
        f.write(b"X")
    assert reg.verify("m") != []
    again = reg.publish(make_artifact(tmp_path / "second", "a"), "m", ["production"])
    assert again.version == 1 and "production" in again.aliases  # same content, same version...
    artifacts.verify(Path(again.uri))  # ...whose bytes verify again
    assert reg.verify("m") == []
    assert reg.fetch("m:production").version == 1
