"""The publishable model directory: safetensors weights, tokenizer, config, metrics, manifest.

``manifest.json`` records the sha256 of every file plus the hashes of the data and config that
produced them. It holds no timestamps, so the same inputs give a byte-identical manifest.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mlpipe.core.errors import ChecksumError
from mlpipe.core.files import write_json
from mlpipe.core.hashing import file_hashes, sha256_file

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "assemble",
    "manifest_sha256",
    "read_manifest",
    "verify",
    "write_json",
]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


def assemble(
    model_dir: Path, out_dir: Path, *, metrics: dict[str, float], provenance: dict[str, Any]
) -> dict[str, Any]:
    """Copy the model files into ``out_dir``, add metrics and provenance, write the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for src in sorted(model_dir.iterdir()):
        if src.is_file():
            if src.suffix in (".bin", ".pt", ".pkl", ".pickle"):
                raise ChecksumError(f"{src}: refusing to publish a pickled file; use safetensors")
            shutil.copy2(src, out_dir / src.name)
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
    path = directory / MANIFEST
    if not path.is_file():
        raise ChecksumError(f"{directory}: no {MANIFEST}; this is not an mlpipe model directory")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def verify(directory: Path) -> dict[str, Any]:
    """Check every file against the manifest; raise ``ChecksumError`` naming what differs."""
    manifest = read_manifest(directory)
    problems = []
    for name, expected in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != expected:
            problems.append(f"{name} does not match its sha256")
    if problems:
        raise ChecksumError(
            f"{directory}: " + "; ".join(problems) + " (the model files were changed or damaged)"
        )
    return manifest


def manifest_sha256(directory: Path) -> str:
    return sha256_file(directory / MANIFEST)
