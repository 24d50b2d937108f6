"""An artifact store the step pods share: a mirror of the mlpipe home in object storage.

With ``cluster.storage_uri`` set (``s3://bucket/mlpipe``, ``gs://...``, ``file:///shared/dir``),
``mlpipe step`` pulls what the step reads from the store into the pod's local home before it
runs, and pushes what it wrote afterwards. Paths map one to one:

    <home>/runs/<pipeline>/<run_id>/<step>/...  <->  <storage_uri>/runs/<pipeline>/<run_id>/<step>/
    <registry root>/<model>/...                 <->  <storage_uri>/registry/<model>/

(the registry root is ``registry.root`` or ``<home>/registry``). References keep their local
paths (``uri`` fields), so every pod must use the same home path (``cluster.home``): a ref written
in one pod is valid in the next once pulled. ``result.json`` is pushed last, so a step counts as
done in the store only when all its files are there. The store has no locks: one training run at
a time should publish to a model name (publishing rewrites the registry's ``state.json``).

fsspec is imported only when a store is used; ``s3://`` needs ``mlpipe[s3]`` (s3fs), ``gs://``
needs ``mlpipe[gcs]`` (gcsfs). Credentials come from the pod's environment (a Secret), as those
libraries read them; nothing here takes a key.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mlpipe.core.config import InferenceConfig, PipelineSettings
from mlpipe.core.errors import ConfigError
from mlpipe.core.paths import run_dir
from mlpipe.core.pipeline import Pipeline
from mlpipe.core.refs import ModelVersionRef, Ref, ref_from_json
from mlpipe.core.registry import declared

log = logging.getLogger(__name__)
RESULT = "result.json"


class ArtifactStore:
    """Copies files between a local home and the same relative paths under ``uri``."""

    def __init__(self, uri: str, home: Path, registry_root: Path | None = None) -> None:
        try:
            import fsspec
        except ImportError as exc:  # pragma: no cover - fsspec ships with datasets
            raise ConfigError(f"cluster.storage_uri: needs fsspec ({exc})") from exc
        try:
            self.fs, root = fsspec.core.url_to_fs(uri)
        except (ImportError, ValueError) as exc:
            extra = {"s3": "s3", "gs": "gcs", "gcs": "gcs"}.get(uri.split("://", 1)[0], "")
            hint = f" (pip install 'mlpipe[{extra}]')" if extra else ""
            raise ConfigError(f"cluster.storage_uri {uri!r}: {exc}{hint}") from exc
        self.uri = uri
        self.root = str(root).rstrip("/")
        self.home = Path(home)
        self.registry_root = Path(registry_root) if registry_root else self.home / "registry"

    def remote(self, local: Path) -> str | None:
        """The store path of a local path, or None when it lives outside home and registry."""
        local = Path(local)
        for base, prefix in ((self.registry_root, "registry"), (self.home, "")):
            if local == base or base in local.parents:
                rel = local.relative_to(base).as_posix()
                parts = [p for p in (self.root, prefix, rel if rel != "." else "") if p]
                return "/".join(parts)
        return None

    def exists(self, local: Path) -> bool:
        remote = self.remote(local)
        return remote is not None and bool(self.fs.exists(remote))

    def pull(self, local: Path) -> int:
        """Copy a file or a directory tree from the store to ``local``; returns files copied."""
        remote = self.remote(local)
        if remote is None or not self.fs.exists(remote):
            return 0
        if self.fs.isfile(remote):
            pairs = [(remote, Path(local))]
        else:
            pairs = [(f, Path(local) / self._rel(f, remote)) for f in self.fs.find(remote)]
        for src, dest in pairs:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(src, str(dest))
        return len(pairs)

    def push(self, local: Path, *, last: str = RESULT) -> int:
        """Copy a file or directory tree to the store; a file named ``last`` goes last."""
        local = Path(local)
        remote = self.remote(local)
        if remote is None:
            raise ConfigError(f"{local}: outside the mlpipe home; cannot map it to {self.uri}")
        if local.is_file():
            files = [local]
        else:
            files = sorted(p for p in local.rglob("*") if p.is_file())
            files.sort(key=lambda p: p.name == last)  # stable: result.json at the end
        for path in files:
            target = remote if path == local else f"{remote}/{path.relative_to(local).as_posix()}"
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(path), target)
        return len(files)

    @staticmethod
    def _rel(path: str, base: str) -> str:
        path, base = path.rstrip("/"), base.rstrip("/")
        return path[len(base) + 1 :] if path.startswith(base + "/") else Path(path).name


def open_store(config: PipelineSettings, home: Path) -> ArtifactStore | None:
    """The store ``cluster.storage_uri`` names, or None when steps share a volume instead."""
    uri = config.cluster.storage_uri
    if not uri:
        return None
    return ArtifactStore(uri, home, getattr(getattr(config, "registry", None), "root", None))


def _ref_paths(ref: Ref) -> list[Path]:
    """The local paths a reference points to (its files live there), with those of the refs it
    holds (a map step's shards, which may live in an earlier step's folder)."""
    return _paths_in(ref.model_dump(mode="json"))


def _paths_in(data: Any) -> list[Path]:
    if isinstance(data, list):
        return [p for item in data for p in _paths_in(item)]
    if not isinstance(data, dict):
        return []
    found = [
        Path(v)
        for k, v in data.items()
        if k in ("uri", "predictions_uri") and isinstance(v, str) and v.startswith("/")
    ]
    return found + [p for k, v in data.items() if isinstance(v, list | dict) for p in _paths_in(v)]


def _model_to_load(config: PipelineSettings) -> str | None:
    """The model spec an inference config loads (``name:alias``), else None."""
    return config.inference.model if isinstance(config, InferenceConfig) else None


def _registry_names(config: PipelineSettings) -> list[str]:
    registry = getattr(config, "registry", None)
    if registry is None:
        return []
    names = [registry.model_name]
    if isinstance(config, InferenceConfig):
        names.append(config.inference.model.partition(":")[0])
    return list(dict.fromkeys(names))


def pull_for_step(
    config: PipelineSettings, pipeline: Pipeline, step_name: str, home: Path, run_id: str
) -> dict[str, Any]:
    """Before a step runs: fetch its upstream steps' directories and whatever their refs point
    to, and for steps that use the registry what its backend needs here (``sync_pull``)."""
    store = open_store(config, home)
    if store is None:
        return {}
    step = pipeline.step(step_name)
    copied = 0
    for source in step.upstream:
        directory = run_dir(home, pipeline.name, run_id) / source
        copied += store.pull(directory)
        result = directory / RESULT
        if not result.is_file():
            continue  # the caller reports the missing upstream step
        ref = ref_from_json(json.loads(result.read_text())["ref"])
        for path in _ref_paths(ref):  # e.g. a registry version, or a cached step's older run
            if not path.exists():
                copied += store.pull(path)
    registry = getattr(config, "registry", None)
    if "registry" in step.config_sections and registry is not None:
        sync = declared(registry.backend, "sync_pull")
        if sync is not None:  # a backend whose files live in the home: it says what to fetch
            copied += sync(store, _registry_names(config), _model_to_load(config))
    log.info("pulled %d files from %s for %s", copied, store.uri, step_name)
    return {"store": store.uri, "pulled": copied}


def push_for_step(
    config: PipelineSettings,
    pipeline: Pipeline,
    step_name: str,
    home: Path,
    run_id: str,
    ref: Ref,
) -> dict[str, Any]:
    """After a step succeeded: its directory (result.json last), and a newly published version
    when its registry backend keeps files in the home (``sync_push``)."""
    store = open_store(config, home)
    if store is None:
        return {}
    copied = 0
    if isinstance(ref, ModelVersionRef):
        sync = declared(ref.backend, "sync_push")
        copied += sync(store, ref) if sync is not None else 0
    copied += store.push(run_dir(home, pipeline.name, run_id) / step_name)
    log.info("pushed %d files to %s for %s", copied, store.uri, step_name)
    return {"store": store.uri, "pushed": copied}
