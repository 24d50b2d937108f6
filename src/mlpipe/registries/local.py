"""The embedded registry: a directory of versions, aliases in one JSON file, a file lock.

Layout: ``<root>/<name>/v<N>/`` (model files + manifest.json) and ``<root>/<name>/aliases.json``.
Publishing copies into a hidden staging directory, verifies it, then under a file lock takes the
next number and renames the staging directory into place: a crash or a concurrent publisher never
leaves a partial or lost version.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from mlpipe.core import artifacts, names
from mlpipe.core.config import RegistryConfig
from mlpipe.core.errors import ModelNotFoundError
from mlpipe.core.refs import ModelVersionRef
from mlpipe.core.registry import LATEST, VERSION, parse_spec


class LocalRegistryConfig(RegistryConfig):
    """``registry.backend: local`` (the default): versions in a directory under the mlpipe home."""

    backend: str = "local"
    root: Path | None = Field(None, description="registry directory; default <home>/registry")


class LocalRegistry:
    """The embedded default: a directory of versions, aliases in one JSON file, a file lock."""

    backend = "local"
    config_type: ClassVar[type[RegistryConfig]] = LocalRegistryConfig

    def __init__(self, cfg: RegistryConfig | str | Path, home: Path | None = None) -> None:
        if isinstance(cfg, RegistryConfig):
            root = getattr(cfg, "root", None) or Path(home or ".mlpipe") / "registry"
        else:
            root = cfg
        self.root = Path(root)

    def _model_dir(self, name: str) -> Path:
        return self.root / names.model_name(name)

    def _lock(self, name: str) -> Any:
        from filelock import FileLock

        self._model_dir(name).mkdir(parents=True, exist_ok=True)
        return FileLock(str(self._model_dir(name) / ".lock"), timeout=300)

    def _aliases(self, name: str) -> dict[str, int]:
        path = self._model_dir(name) / "aliases.json"
        return (
            {k: int(v) for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}
        )

    def _numbers(self, name: str) -> list[int]:
        base = self._model_dir(name)
        if not base.is_dir():
            return []
        return sorted(
            int(m.group(1))
            for p in base.iterdir()
            if p.is_dir() and (m := re.fullmatch(r"v(\d+)", p.name))
        )

    def _ref(self, name: str, version: int, aliases: dict[str, int]) -> ModelVersionRef:
        vdir = self._model_dir(name) / f"v{version}"
        manifest = artifacts.read_manifest(vdir)
        return ModelVersionRef(
            uri=str(vdir),
            sha256=artifacts.manifest_sha256(vdir),
            name=name,
            version=version,
            aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
            backend=self.backend,
            metrics=manifest.get("metrics", {}),
        )

    def publish(
        self,
        directory: Path,
        name: str,
        aliases: Sequence[str],
        metadata: dict[str, Any] | None = None,
    ) -> ModelVersionRef:
        """Publish ``directory`` as the next version; identical content reuses its version."""
        artifacts.verify(directory)
        digest = artifacts.manifest_sha256(directory)
        base = self._model_dir(name)
        base.mkdir(parents=True, exist_ok=True)
        staging = base / f".staging-{uuid.uuid4().hex}"
        try:
            shutil.copytree(directory, staging)
            artifacts.verify(staging)
            with self._lock(name):
                existing = [
                    v
                    for v in self._numbers(name)
                    if artifacts.manifest_sha256(base / f"v{v}") == digest
                ]
                if existing:
                    version = existing[-1]
                else:
                    version = max(self._numbers(name), default=0) + 1
                    staging.rename(base / f"v{version}")
                table = self._aliases(name)
                for alias in (LATEST, *aliases):
                    table[alias] = (
                        version
                        if alias != LATEST or version > table.get(LATEST, 0)
                        else table[LATEST]
                    )
                self._write_aliases(name, table)
                return self._ref(name, version, table)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _write_aliases(self, name: str, table: dict[str, int]) -> None:
        artifacts.write_json(self._model_dir(name) / "aliases.json", dict(sorted(table.items())))

    def resolve(self, spec: str) -> ModelVersionRef:
        name, which = parse_spec(spec)
        numbers = self._numbers(name)
        if not numbers:
            known = ", ".join(self.names()) or "none"
            raise ModelNotFoundError(
                f"model '{name}' is not in the registry at {self.root} (models: {known})"
            )
        aliases = self._aliases(name)
        match = VERSION.match(which)
        if match:
            version = int(match.group(1))
            if version not in numbers:
                raise ModelNotFoundError(
                    f"{name} has no version {version} "
                    f"(versions: {', '.join(f'v{n}' for n in numbers)})"
                )
        elif which in aliases:
            version = aliases[which]
        else:
            raise ModelNotFoundError(
                f"{name} has no alias '{which}' (aliases: {', '.join(sorted(aliases)) or 'none'})"
            )
        return self._ref(name, version, aliases)

    def fetch(self, spec: str, dest: Path | None = None) -> ModelVersionRef:
        """Resolve and verify checksums; local files are used in place (``dest`` is unused)."""
        ref = self.resolve(spec)
        artifacts.verify(Path(ref.uri))
        return ref

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def versions(self, name: str | None = None) -> list[ModelVersionRef]:
        out: list[ModelVersionRef] = []
        for model in [name] if name else self.names():
            aliases = self._aliases(model)
            out.extend(self._ref(model, v, aliases) for v in self._numbers(model))
        return out

    def promote(self, name: str, version: int, alias: str) -> ModelVersionRef:
        """Point ``alias`` at ``version`` (moving it from wherever it was)."""
        names.alias(alias)
        with self._lock(name):
            if version not in self._numbers(name):
                raise ModelNotFoundError(f"{name} has no version {version}")
            table = self._aliases(name)
            table[alias] = version
            self._write_aliases(name, table)
            return self._ref(name, version, table)
