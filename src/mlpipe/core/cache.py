"""Content-addressed step cache: same step, config sections, inputs and code -> same outputs.

The key covers the step name, the config sections the step reads, the sha256 of every input
reference and a hash of the code that computes it: mlpipe's core, the step function's module and
the task package the config names. A hit is only served when the cached outputs still
exist and still match their checksums; anything else is a miss, never a failure.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlpipe.core import artifacts, plugins
from mlpipe.core.hashing import sha256_file, sha256_json
from mlpipe.core.pipeline import Step
from mlpipe.core.refs import (
    ArtifactsRef,
    DatasetRef,
    ModelRef,
    ModelVersionRef,
    PredictionsRef,
    Ref,
    ResultsRef,
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
        if isinstance(ref, DatasetRef):
            from mlpipe.core.data import dataset_sha256

            return dataset_sha256(Path(ref.uri), ref.files, ref.label_names) == ref.sha256
        if isinstance(ref, ModelRef):
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


class StepCache:
    """Cache entries are small JSON files under ``<home>/cache``; outputs stay in their run dirs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, key: str) -> Ref | None:
        path = self.root / f"{key}.json"
        if not path.is_file():
            return None
        try:
            ref = ref_from_json(json.loads(path.read_text())["ref"])
        except (ValueError, KeyError):
            return None
        return ref if still_valid(ref) else None

    def put(self, key: str, ref: Ref, *, run_id: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        artifacts.write_json(
            self.root / f"{key}.json", {"run_id": run_id, "ref": ref.model_dump(mode="json")}
        )
