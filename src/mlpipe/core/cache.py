"""Content-addressed step cache: same step, config sections, inputs and code -> same outputs.

The key covers the step name, the config sections the step reads, the sha256 of every input
reference and a hash of the code that computes it: mlpipe's core, the step function's module and
the task package the config names; a local ``model.base`` directory is keyed by its content,
not its path. Each entry records the sha256 of every file of the output it points to, taken when
it was stored: a hit is only served when that output still holds exactly those files with exactly
those bytes (and its reference's own checksums agree); anything else is a miss, never a failure.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlpipe.core import artifacts, plugins
from mlpipe.core.errors import MlpipeError
from mlpipe.core.faults import fault_point
from mlpipe.core.files import sweep_temp
from mlpipe.core.hashing import file_hashes, sha256_file, sha256_json
from mlpipe.core.pipeline import Step
from mlpipe.core.refs import (
    ArtifactsRef,
    DatasetRef,
    ModelRef,
    ModelVersionRef,
    PredictionsRef,
    Ref,
    ResultsRef,
    ShardsRef,
    ref_from_json,
)


@functools.cache
def code_version() -> str:
    """Hash of every source file of mlpipe's core: editing a step invalidates its cache.

    Runners, the CLI and integrations are left out: they do not change what a step computes.
    """
    root = Path(__file__).parent
    files = sorted(root.rglob("*.py"))
    return sha256_json({p.relative_to(root).as_posix(): sha256_file(p) for p in files})


@functools.cache
def module_version(module_name: str) -> str:
    """Hash of a module's source; for a module inside a package, of that whole package."""
    module = importlib.import_module(module_name)
    path = Path(getattr(module, "__file__", "") or "")
    if not path.is_file():
        return ""
    files = sorted(path.parent.rglob("*.py")) if module_name.count(".") >= 2 else [path]
    return sha256_json({p.name + str(i): sha256_file(p) for i, p in enumerate(files)})


def _code(step: Step, config: Any) -> dict[str, str]:
    modules = {step.fn.__module__}
    task = getattr(config, "task", None)
    if isinstance(task, str):
        modules.add(plugins.load("task", task).__module__)
    return {"core": code_version(), **{m: module_version(m) for m in sorted(modules)}}


def step_key(pipeline: str, step: Step, config: Any, inputs: Mapping[str, Ref]) -> str | None:
    """The cache key, or None when the step's result cannot be keyed (data from the Hub, whose
    contents can change under the same name)."""
    from mlpipe.core.config import DataConfig

    sections = config.model_dump(mode="json", include=set(step.config_sections))
    source: dict[str, str] = {}
    data = getattr(config, "data", None)
    if "data" in step.config_sections and isinstance(data, DataConfig):
        if data.source == "hub":
            return None
        if data.source == "files":  # the files' bytes, not just their names
            paths = {"path": data.path, "eval_path": data.eval_path}
            source = {k: sha256_file(p) for k, p in paths.items() if p is not None}
    model = getattr(config, "model", None)
    base = getattr(model, "base", None)
    if "model" in step.config_sections and isinstance(base, str):
        from mlpipe.core.modeling import base_content_key

        content = base_content_key(base)  # a local directory: its bytes, not its path
        if content is not None:
            source["model.base"] = content
    return sha256_json(
        {
            "pipeline": pipeline,
            "step": step.name,
            "config": sections,
            "source": source,
            "inputs": {name: ref.sha256 for name, ref in sorted(inputs.items())},
            "code": _code(step, config),
        }
    )


def still_valid(ref: Ref) -> bool:
    """True when every file the reference points to exists and matches its recorded hash."""
    try:
        if isinstance(ref, ShardsRef):
            return all(still_valid(shard) for shard in ref.refs)
        if isinstance(ref, DatasetRef):
            from mlpipe.core.data import dataset_sha256

            return dataset_sha256(Path(ref.uri), ref.files, ref.label_names) == ref.sha256
        if isinstance(ref, ModelRef):
            if (Path(ref.uri) / artifacts.MANIFEST).is_file():  # sealed by training
                artifacts.verify(Path(ref.uri))
            return sha256_file(Path(ref.uri) / "model.safetensors") == ref.sha256
        if isinstance(ref, ArtifactsRef | ModelVersionRef):
            artifacts.verify(Path(ref.uri))
            return artifacts.manifest_sha256(Path(ref.uri)) == ref.sha256
        if isinstance(ref, PredictionsRef):
            return sha256_file(ref.uri) == ref.sha256
        if isinstance(ref, ResultsRef):
            return sha256_file(ref.predictions_uri) == ref.sha256
        # any other reference (user pipelines): a file whose hash it recorded
        return Path(ref.uri).is_file() and sha256_file(ref.uri) == ref.sha256
    except (OSError, ValueError, artifacts.ChecksumError):
        return False


#: what a cache entry holds; entries of another format are misses
ENTRY_FORMAT = 2


def output_files(ref: Ref) -> tuple[Path, dict[str, str]]:
    """Where ``ref``'s output lives and the sha256 of every file there (a directory's files, or
    the one file a file reference names; for shards, every shard's files as ``<i>/<file>``)."""
    if isinstance(ref, ShardsRef):
        files: dict[str, str] = {}
        for i, shard in enumerate(ref.refs):
            root, shard_files = output_files(shard)
            files.update({f"{i}/{root.name}/{name}": h for name, h in shard_files.items()})
        return Path(ref.uri), files
    path = Path(ref.predictions_uri) if isinstance(ref, ResultsRef) else Path(ref.uri)
    if path.is_dir():
        return path, file_hashes(path)
    return path, {path.name: sha256_file(path)}


class StepCache:
    """Cache entries are small JSON files under ``<home>/cache``; outputs stay in their run dirs.

    An entry is ``{"format", "run_id", "ref", "root", "files"}``: ``files`` lists every file of
    the output as it was when the step produced it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, key: str) -> Ref | None:
        path = self.root / f"{key}.json"
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text())
            if entry.get("format") != ENTRY_FORMAT:
                return None
            ref = ref_from_json(entry["ref"])
            files = entry["files"]
            root, current = output_files(ref)
            if str(root) != entry["root"] or current != files:
                return None  # a file added, removed or changed since it was produced
        except (ValueError, KeyError, TypeError, AttributeError, OSError, MlpipeError):
            return None
        return ref if still_valid(ref) else None

    def put(self, key: str, ref: Ref, *, run_id: str) -> None:
        """Record ``ref`` under ``key`` with the hash of every file of its output.

        A cache that cannot be written (a full or read-only disk) only costs a rerun later: the
        step that produced ``ref`` has succeeded, so that is not a failure.
        """
        try:
            root, files = output_files(ref)
            self.root.mkdir(parents=True, exist_ok=True)
            sweep_temp(self.root)  # what writers killed mid-put left behind
            fault_point("cache.put")
            artifacts.write_json(
                self.root / f"{key}.json",
                {
                    "format": ENTRY_FORMAT,
                    "run_id": run_id,
                    "ref": ref.model_dump(mode="json"),
                    "root": str(root),
                    "files": files,
                },
            )
        except OSError:
            return
