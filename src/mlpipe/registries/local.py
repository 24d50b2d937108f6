"""The embedded registry: a directory of versions, aliases in one JSON file, a file lock.

Layout under ``<root>/<name>/``: ``v<N>/`` (model files + manifest.json), ``aliases.json``,
``lineage/v<N>.json`` (what produced each version), ``history.json`` (every alias move: from,
to, when, by which run) and ``last_version`` (numbers are never reused after a delete).
Publishing links (or copies) into a hidden staging directory, verifies it, then under a file lock
takes the next number and renames the staging directory into place: a crash or a concurrent
publisher never leaves a partial or lost version. Files are hardlinked from the published
directory where the filesystem allows, so a run's weights exist once on disk.
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
from mlpipe.core.config import PromoteIf, RegistryConfig
from mlpipe.core.errors import ModelNotFoundError
from mlpipe.core.faults import fault_point
from mlpipe.core.refs import ModelVersionRef
from mlpipe.core.registry import (
    LATEST,
    VERSION,
    alias_in_use,
    decide_aliases,
    lineage_of,
    link_or_copy_tree,
    parse_spec,
    utc_now,
)


class LocalRegistryConfig(RegistryConfig):
    """``registry.backend: local`` (the default): versions in a directory under the mlpipe home."""

    backend: str = "local"
    root: Path | None = Field(None, description="registry directory; default <home>/registry")


class LocalRegistry:
    """The embedded default: a directory of versions, aliases in one JSON file, a file lock."""

    backend = "local"
    config_type: ClassVar[type[RegistryConfig]] = LocalRegistryConfig

    def __init__(
        self,
        cfg: RegistryConfig | str | Path,
        home: Path | None = None,
        *,
        promote_if: PromoteIf | None = None,
    ) -> None:
        if isinstance(cfg, RegistryConfig):
            root = getattr(cfg, "root", None) or Path(home or ".mlpipe") / "registry"
            promote_if = promote_if or cfg.promote_if
        else:
            root = cfg
        self.root = Path(root)
        self.promote_if = promote_if

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

    def _lineage(self, name: str, version: int) -> dict[str, Any]:
        path = self._model_dir(name) / "lineage" / f"v{version}.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def _ref(self, name: str, version: int, aliases: dict[str, int]) -> ModelVersionRef:
        vdir = self._model_dir(name) / f"v{version}"
        manifest = artifacts.read_manifest(vdir)
        lineage = self._lineage(name, version)
        return ModelVersionRef(
            uri=str(vdir),
            sha256=artifacts.manifest_sha256(vdir),
            name=name,
            version=version,
            aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
            backend=self.backend,
            metrics=manifest.get("metrics", {}),
            created_at=str(lineage.get("created_at", "")),
            run_id=str(lineage.get("run_id", "")),
            lineage=lineage,
        )

    def _metrics(self, name: str, version: int) -> dict[str, float]:
        try:
            return dict(artifacts.read_manifest(self._model_dir(name) / f"v{version}")["metrics"])
        except Exception:
            return {}

    def publish(
        self,
        directory: Path,
        name: str,
        aliases: Sequence[str],
        metadata: dict[str, Any] | None = None,
    ) -> ModelVersionRef:
        """Publish ``directory`` as the next version; identical content reuses its version.

        The configured aliases move to it unless ``promote_if`` says it does not beat the version
        holding them; ``latest`` always names the highest version.
        """
        manifest = artifacts.verify(directory)
        digest = artifacts.manifest_sha256(directory)
        lineage = lineage_of(directory, metadata)
        base = self._model_dir(name)
        base.mkdir(parents=True, exist_ok=True)
        staging = base / f".staging-{uuid.uuid4().hex}"
        try:
            link_or_copy_tree(directory, staging)
            artifacts.verify(staging)
            with self._lock(name):
                numbers = self._numbers(name)
                existing = [
                    v for v in numbers if artifacts.manifest_sha256(base / f"v{v}") == digest
                ]
                if existing:
                    version = existing[-1]
                else:
                    version = max([*numbers, self._last_version(name)], default=0) + 1
                    artifacts.write_json(base / "lineage" / f"v{version}.json", lineage)
                    fault_point("publish.before_rename")
                    staging.rename(base / f"v{version}")
                    (base / "last_version").write_text(f"{version}\n")
                    fault_point("publish.after_rename")
                table = self._aliases(name)
                holders = {a: (v, self._metrics(name, v)) for a, v in table.items()}
                granted, withheld, notes = decide_aliases(
                    name, version, manifest.get("metrics", {}), aliases, holders, self.promote_if
                )
                events = []
                if version >= table.get(LATEST, 0):
                    granted = [LATEST, *granted]
                for alias in granted:
                    if table.get(alias) != version:
                        events.append(self._event(alias, table.get(alias), version, metadata))
                        table[alias] = version
                self._write_aliases(name, table)
                fault_point("publish.after_aliases")
                self._append_history(name, events)
                ref = self._ref(name, version, table)
                return ref.model_copy(
                    update={"aliases_withheld": tuple(withheld), "notes": tuple(notes)}
                )
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _last_version(self, name: str) -> int:
        try:
            return int((self._model_dir(name) / "last_version").read_text().strip())
        except (OSError, ValueError):
            return 0

    @staticmethod
    def _event(
        alias: str, old: int | None, new: int | None, metadata: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {
            "alias": alias,
            "from": old,
            "to": new,
            "at": utc_now(),
            "run_id": str((metadata or {}).get("run_id", "")),
        }

    def _write_aliases(self, name: str, table: dict[str, int]) -> None:
        artifacts.write_json(self._model_dir(name) / "aliases.json", dict(sorted(table.items())))

    def _append_history(self, name: str, events: list[dict[str, Any]]) -> None:
        if events:
            path = self._model_dir(name) / "history.json"
            artifacts.write_json(path, [*self.history(name), *events])

    def history(self, name: str) -> list[dict[str, Any]]:
        path = self._model_dir(name) / "history.json"
        try:
            data: list[dict[str, Any]] = json.loads(path.read_text())
        except (OSError, ValueError):
            return []
        return data

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
            if version not in numbers:
                raise ModelNotFoundError(
                    f"{name}:{which} points at v{version}, which is no longer in the registry "
                    f"at {self.root} (removed by hand?); point it at a version that exists: "
                    f"mlpipe registry promote {name} <version> {which}"
                )
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

    def dangling(self, name: str) -> dict[str, int]:
        """Aliases that point at a version no longer on disk."""
        numbers = set(self._numbers(name))
        return {a: v for a, v in self._aliases(name).items() if v not in numbers}

    def promote(self, name: str, version: int, alias: str) -> ModelVersionRef:
        """Point ``alias`` at ``version`` (moving it from wherever it was)."""
        names.alias(alias)
        with self._lock(name):
            if version not in self._numbers(name):
                raise ModelNotFoundError(f"{name} has no version {version}")
            table = self._aliases(name)
            old = table.get(alias)
            table[alias] = version
            self._write_aliases(name, table)
            fault_point("promote.after_aliases")
            if old != version:
                self._append_history(name, [self._event(alias, old, version, None)])
            return self._ref(name, version, table)

    def delete(self, name: str, version: int) -> None:
        """Remove ``version``; refused while an alias other than ``latest`` points at it."""
        with self._lock(name):
            numbers = self._numbers(name)
            if version not in numbers:
                raise ModelNotFoundError(
                    f"{name} has no version {version} "
                    f"(versions: {', '.join(f'v{n}' for n in numbers) or 'none'})"
                )
            table = self._aliases(name)
            holding = sorted(a for a, v in table.items() if v == version and a != LATEST)
            if holding:
                raise alias_in_use(name, version, holding)
            vdir = self._model_dir(name) / f"v{version}"
            trash = self._model_dir(name) / f".deleted-v{version}-{uuid.uuid4().hex[:8]}"
            vdir.rename(trash)  # gone for readers at once; the files go next
            events = []
            if table.get(LATEST) == version:
                rest = [n for n in numbers if n != version]
                if rest:
                    table[LATEST] = rest[-1]
                else:
                    table.pop(LATEST)
                events.append(self._event(LATEST, version, table.get(LATEST), None))
                self._write_aliases(name, table)
            self._append_history(name, events)
            (self._model_dir(name) / "lineage" / f"v{version}.json").unlink(missing_ok=True)
            shutil.rmtree(trash, ignore_errors=True)
