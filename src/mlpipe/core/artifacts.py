"""The publishable model directory: safetensors weights, tokenizer, config, metrics, manifest.

``manifest.json`` records the sha256 of every file plus the hashes of the data and config that
produced them. It holds no timestamps, so the same inputs give a byte-identical manifest.

A manifest only ever vouches for what was hashed when the directory was produced: training seals
its model directory (:func:`seal`), :func:`assemble` copies only what that seal lists and checks
every copy against it, and :func:`verify` refuses a directory with a file its manifest does not
list, a file missing, or a file changed.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpipe.core.errors import ChecksumError, DivergedError
from mlpipe.core.files import write_json
from mlpipe.core.hashing import file_hashes, sha256_file

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "assemble",
    "listed_files",
    "manifest_sha256",
    "read_manifest",
    "seal",
    "verify",
    "write_json",
]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


def seal(model_dir: Path) -> dict[str, str]:
    """Write ``manifest.json`` over every file of a freshly trained model directory.

    Called by training right after the files are written, so what :func:`assemble` publishes
    later is checked against hashes taken when the model was produced, not when it was copied.
    """
    files = file_hashes(model_dir, exclude=(MANIFEST,))
    write_json(model_dir / MANIFEST, {"format": MANIFEST_FORMAT, "files": files})
    return files


def check_finite(metrics: dict[str, float], where: str) -> None:
    """Refuse NaN or infinite metrics: a diverged training is never saved or published."""
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(float(v)))
    if bad:
        raise DivergedError(
            f"{where}: {', '.join(f'{k}={metrics[k]}' for k in bad)} is not finite; the "
            "training diverged and nothing was published (lower training.learning_rate, "
            "set training.max_grad_norm or check the data)"
        )


def assemble(
    model_dir: Path,
    out_dir: Path,
    *,
    metrics: dict[str, float],
    provenance: dict[str, Any],
    derive: Callable[[Path], object] | None = None,
) -> dict[str, Any]:
    """Copy the model files into ``out_dir``, add metrics and provenance, write the manifest.

    ``derive(out_dir)`` may add files made from the copied ones (an ONNX export) before the
    manifest is written, so the manifest covers them too.

    A sealed model directory (one with a manifest, as training writes) is verified first and
    only the files it lists are copied, each checked against its recorded hash after the copy.
    """
    check_finite(metrics, f"{model_dir}: metrics")
    sealed: dict[str, str] | None = None
    if (model_dir / MANIFEST).is_file():
        sealed = dict(verify(model_dir)["files"])
        sources = [model_dir / name for name in sorted(sealed)]
    else:  # a directory from a third-party task: hashed as found (it was never sealed)
        sources = [p for p in sorted(model_dir.iterdir()) if p.is_file()]
    out_dir.mkdir(parents=True, exist_ok=True)
    for src in sources:
        if src.suffix in (".bin", ".pt", ".pkl", ".pickle"):
            raise ChecksumError(f"{src}: refusing to publish a pickled file; use safetensors")
        rel = src.relative_to(model_dir).as_posix()
        if rel in ("metrics.json", "provenance.json"):
            continue  # written below
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
        if sealed is not None and sha256_file(target) != sealed[rel]:
            raise ChecksumError(f"{target}: the copy does not match {src} (disk error?)")
    if derive is not None:
        derive(out_dir)
    write_json(out_dir / "metrics.json", metrics)
    write_json(out_dir / "provenance.json", provenance)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "files": file_hashes(out_dir, exclude=(MANIFEST,)),
        "metrics": metrics,
        **{
            k: provenance[k]
            for k in ("data_sha256", "config_sha256", "base_model")
            if k in provenance
        },
    }
    write_json(out_dir / MANIFEST, manifest)
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of ``directory``; ``ChecksumError`` naming the file when it is unusable."""
    path = directory / MANIFEST
    if not path.is_file():
        raise ChecksumError(f"{directory}: no {MANIFEST}; this is not an mlpipe model directory")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChecksumError(f"{path}: not valid JSON ({exc}); the manifest is damaged") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise ChecksumError(f"{path}: has no 'files' table of sha256 hashes; it is damaged")
    result: dict[str, Any] = data
    return result


def verify(directory: Path) -> dict[str, Any]:
    """Check every file against the manifest; raise ``ChecksumError`` naming what differs.

    Files the manifest does not list are refused too: the manifest vouches for nothing else.
    """
    manifest = read_manifest(directory)
    problems = []
    for name, expected in manifest["files"].items():
        path = directory / name
        if any(q.is_symlink() for q in (path, *path.parents) if directory in q.parents):
            problems.append(f"{name} is a symlink (refused: a model's files are its own)")
        elif not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != expected:
            problems.append(f"{name} does not match its sha256")
    listed = set(manifest["files"]) | {MANIFEST}
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if path.is_symlink() and rel not in listed:
            problems.append(f"{rel} is a symlink (refused: a model's files are its own)")
        elif path.is_file() and rel not in listed:
            problems.append(f"{rel} is not listed in the manifest")
    if problems:
        raise ChecksumError(
            f"{directory}: " + "; ".join(problems) + " (the model files were changed or damaged)"
        )
    return manifest


def manifest_sha256(directory: Path) -> str:
    return sha256_file(directory / MANIFEST)


def listed_files(directory: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file of a sealed directory as its manifest records them,
    the manifest's own added: what hashing the folder gives while it is intact, without reading
    its files again (:func:`verify` is what says whether it still is)."""
    return {**read_manifest(directory)["files"], MANIFEST: manifest_sha256(directory)}
