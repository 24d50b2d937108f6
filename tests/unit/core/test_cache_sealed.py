"""A sealed output (a folder with a manifest) is recorded in the step cache from its manifest,
not hashed again, and is still a miss the moment a file differs from what the manifest says."""

from __future__ import annotations

from pathlib import Path

from mlpipe.core import artifacts
from mlpipe.core.cache import StepCache
from mlpipe.core.hashing import file_hashes, sha256_file
from mlpipe.core.refs import ArtifactsRef, ModelRef


def _sealed(folder: Path) -> Path:
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    artifacts.seal(folder)
    return folder


def test_a_sealed_folder_lists_what_hashing_it_gives(tmp_path: Path) -> None:
    folder = _sealed(tmp_path / "model")
    ref = ModelRef(uri=str(folder), sha256=sha256_file(folder / "model.safetensors"))
    assert ref.output_files() == (folder, file_hashes(folder))
    arts = ArtifactsRef(uri=str(folder), sha256=artifacts.manifest_sha256(folder), files={})
    assert arts.output_files() == (folder, file_hashes(folder))


def test_a_changed_or_added_file_is_a_miss_though_the_manifest_is_unchanged(
    tmp_path: Path,
) -> None:
    folder = _sealed(tmp_path / "model")
    ref = ArtifactsRef(uri=str(folder), sha256=artifacts.manifest_sha256(folder), files={})
    cache = StepCache(tmp_path / "cache")
    cache.put("k", ref, run_id="r1")
    assert cache.get("k") == ref
    (folder / "tokenizer" / "vocab.txt").write_text("a\nc\n")  # same size, other bytes
    assert cache.get("k") is None
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    assert cache.get("k") == ref
    (folder / "extra.bin").write_bytes(b"x")
    assert cache.get("k") is None
