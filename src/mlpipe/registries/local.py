"""The embedded registry: a directory of versions and one state file, changed under a file lock.

Layout under ``<root>/<name>/``: ``v<N>/`` (model files + manifest.json), ``lineage/v<N>.json``
(what produced each version) and ``state.json``: the versions that exist, the aliases, the last
number handed out (numbers are never reused after a delete) and every alias move.

``state.json`` is the one source of truth and every change is one atomic rename of it (the
commit): publishing copies the files into a hidden staging directory, verifies them, then under the
lock renames them to ``v<N>/`` and commits a state that lists ``v<N>`` with its aliases. A crash
before the commit leaves an orphan ``v<N>/`` that no reader sees (the state does not list it) and
that the next change under the lock removes; a crash after it leaves a finished version. So a
version and its aliases appear together or not at all, whatever is killed when. A copy of the
state is kept as ``state.backup.json`` so ``mlpipe registry repair`` can rebuild a damaged one.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from mlpipe.core import artifacts, names
from mlpipe.core.config import PromoteIf, RegistryConfig
from mlpipe.core.errors import (
    ChecksumError,
    ConfigError,
    ModelNotFoundError,
    RegistryDamagedError,
)
from mlpipe.core.faults import fault_point
from mlpipe.core.files import exclusive, is_dead_temp, sweep_temp, temp_name, write_json
from mlpipe.core.refs import ModelVersionRef
from mlpipe.core.registry import (
    LATEST,
    VERSION,
    alias_in_use,
    decide_aliases,
    lineage_of,
    parse_spec,
    pick_version,
    utc_now,
)

if TYPE_CHECKING:
    from mlpipe.core.storage import ArtifactStore

log = logging.getLogger(__name__)

STATE = "state.json"
BACKUP = "state.backup.json"
_LEGACY = ("aliases.json", "last_version", "history.json")  # the layout before state.json
_VERSION_DIR = re.compile(r"^v(\d+)$")


class LocalRegistryConfig(RegistryConfig):
    """``registry.backend: local`` (the default): versions in a directory under the mlpipe home."""

    backend: str = "local"
    root: Path | None = Field(None, description="registry directory; default <home>/registry")


@dataclass(frozen=True)
class State:
    """What ``state.json`` holds: the committed versions, aliases, numbering and alias history."""

    versions: tuple[int, ...] = ()
    aliases: dict[str, int] = field(default_factory=dict)
    last_version: int = 0
    history: tuple[dict[str, Any], ...] = ()
    dropped: int = 0  # history entries that were not objects (ignored; verify reports them)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "versions": list(self.versions),
            "aliases": dict(sorted(self.aliases.items())),
            "last_version": self.last_version,
            "history": list(self.history),
        }

    @classmethod
    def from_json(cls, data: Any) -> State:
        """Parse and check the shape; ``ValueError`` says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        versions, aliases = data.get("versions"), data.get("aliases")
        if not isinstance(versions, list) or not all(type(v) is int for v in versions):
            raise ValueError("'versions' is not a list of numbers")
        if not isinstance(aliases, dict) or not all(type(v) is int for v in aliases.values()):
            raise ValueError("'aliases' is not a table of alias -> version number")
        last, history = data.get("last_version", 0), data.get("history", [])
        if type(last) is not int or not isinstance(history, list):
            raise ValueError("'last_version' or 'history' has the wrong type")
        events = tuple(e for e in history if isinstance(e, dict))
        return cls(
            tuple(sorted(set(versions))), dict(aliases), last, events, len(history) - len(events)
        )


@dataclass
class Finding:
    """One thing ``verify`` or ``repair`` found: where, what, and what to do about it."""

    model: str
    path: str
    problem: str
    fix: str = ""
    damage: bool = True  # False: a leftover that is harmless and removed on the next change

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class LocalRegistry:
    """The embedded default: versions in directories, one state file, a file lock."""

    backend = "local"
    config_type: ClassVar[type[RegistryConfig]] = LocalRegistryConfig
    is_default: ClassVar[bool] = True  # a config without registry.backend gets this one
    #: resolving a spec reads one local file, so a run checks its model exists before any step
    resolve_at_preflight: ClassVar[bool] = True

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

    # -- pods without a shared volume: the files this backend keeps move through the store -----

    @staticmethod
    def sync_pull(store: ArtifactStore, models: Sequence[str], spec: str | None) -> int:
        """Before a step that reads the registry: each model's index (aliases and every
        version's manifest) and the version ``spec`` names, from the store; files copied."""
        copied = 0
        for name in models:
            model_dir = store.registry_root / name
            for index in (STATE, "aliases.json"):  # aliases.json: registries before state.json
                copied += store.pull(model_dir / index)
            remote = store.remote(model_dir)
            if remote is None or not store.fs.exists(remote):
                continue
            for entry in store.fs.ls(remote, detail=False):
                version = str(entry).rstrip("/").rsplit("/", 1)[-1]
                if _VERSION_DIR.match(version):
                    copied += store.pull(model_dir / version / "manifest.json")
        if spec is not None:
            try:
                ref = LocalRegistry(store.registry_root).resolve(spec)
            except (ConfigError, ModelNotFoundError):
                return copied  # load_model reports the missing model with the registry's message
            copied += store.pull(Path(ref.uri))
        return copied

    @staticmethod
    def sync_push(store: ArtifactStore, ref: ModelVersionRef) -> int:
        """After a publish: the new version (manifest last) and the state that lists it."""
        version_dir = Path(ref.uri)
        return store.push(version_dir, last="manifest.json") + store.push(
            version_dir.parent / STATE
        )

    # -- reading: no lock; state.json is replaced atomically, so a reader sees one commit ------

    def _model_dir(self, name: str) -> Path:
        return self.root / names.model_name(name)

    def _version_dir(self, name: str, version: int) -> Path:
        return self._model_dir(name) / f"v{version}"

    def _state(self, name: str) -> State:
        """The committed state; ``RegistryDamagedError`` naming the file if it is unreadable."""
        base = self._model_dir(name)
        path = base / STATE
        if not path.exists():
            if (base / BACKUP).exists() and not any((base / f).exists() for f in _LEGACY):
                raise RegistryDamagedError(
                    f"{path} is missing but {BACKUP} is there: the aliases and history are "
                    f"lost until you run `mlpipe registry repair {name}`, which restores them "
                    f"from {BACKUP} and the versions on disk"
                )
            return self._legacy_state(name)
        try:
            return State.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise RegistryDamagedError(
                f"{path} is damaged ({reason}); the version directories are not affected: run "
                f"`mlpipe registry repair {name}` to rebuild it from {BACKUP} and the "
                f"versions on disk (or restore the file from a backup)"
            ) from None

    def _legacy_state(self, name: str) -> State:
        """A registry written before state.json: versions are the directories with a manifest."""
        base = self._model_dir(name)
        if not base.is_dir():
            return State()
        versions = tuple(
            sorted(
                int(m.group(1))
                for p in base.iterdir()
                if (m := _VERSION_DIR.match(p.name)) and (p / artifacts.MANIFEST).is_file()
            )
        )
        aliases: dict[str, int] = {}
        path = base / "aliases.json"
        if path.exists():
            try:
                aliases = {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                raise RegistryDamagedError(
                    f"{path} is damaged ({type(exc).__name__}); run `mlpipe registry repair "
                    f"{name}` to rebuild the aliases from the versions on disk"
                ) from None
        try:
            last = int((base / "last_version").read_text().strip())
        except (OSError, ValueError):
            last = 0
        try:
            history = tuple(json.loads((base / "history.json").read_text()))
        except (OSError, ValueError, TypeError):
            history = ()
        return State(versions, aliases, max([last, *versions]), history)

    def _lineage(self, name: str, version: int) -> dict[str, Any]:
        path = self._model_dir(name) / "lineage" / f"v{version}.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def _ref(self, name: str, version: int, aliases: dict[str, int]) -> ModelVersionRef:
        vdir = self._version_dir(name, version)
        manifest = artifacts.read_manifest(vdir)
        lineage = self._lineage(name, version)
        return ModelVersionRef(
            uri=str(vdir),
            sha256=artifacts.manifest_sha256(vdir),
            name=name,
            version=version,
            aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
            backend=self.backend,
            metrics=_numbers(manifest.get("metrics")),
            created_at=str(lineage.get("created_at", "")),
            run_id=str(lineage.get("run_id", "")),
            lineage=lineage,
        )

    def _metrics(self, name: str, version: int) -> dict[str, float]:
        try:
            return _numbers(
                artifacts.read_manifest(self._version_dir(name, version)).get("metrics")
            )
        except ChecksumError:
            return {}

    def _digest(self, name: str, version: int) -> str | None:
        try:
            return artifacts.manifest_sha256(self._version_dir(name, version))
        except OSError:
            return None

    def _present(self, name: str, state: State) -> list[int]:
        return [v for v in state.versions if self._version_dir(name, v).is_dir()]

    def resolve(self, spec: str) -> ModelVersionRef:
        name, which = parse_spec(spec)
        match = VERSION.match(which)
        try:
            state = self._state(name)
        except RegistryDamagedError:
            # the aliases are unknown, but an explicit version is still its own verified files
            if match and (self._version_dir(name, int(match.group(1))) / "manifest.json").is_file():
                return self._checked_ref(name, int(match.group(1)), {})
            raise
        if not state.versions:
            known = ", ".join(self.names()) or "none"
            raise ModelNotFoundError(
                f"model '{name}' is not in the registry at {self.root} (models: {known})"
            )
        version = pick_version(name, which, self._present(name, state), state.aliases,
                               where=f" at {self.root} (removed by hand?)")
        return self._checked_ref(name, version, state.aliases)

    def _checked_ref(self, name: str, version: int, aliases: dict[str, int]) -> ModelVersionRef:
        try:
            return self._ref(name, version, aliases)
        except ChecksumError as exc:
            raise ChecksumError(
                f"{name}:v{version} is damaged: {exc}; the rest of the registry is fine. "
                f"Check it with `mlpipe registry verify {name}`, then delete it "
                f"(`mlpipe registry delete {name} {version}`) or publish the model again"
            ) from None

    def fetch(self, spec: str, dest: Path | None = None) -> ModelVersionRef:
        """Resolve and verify checksums; local files are used in place (``dest`` is unused)."""
        ref = self.resolve(spec)
        try:
            artifacts.verify(Path(ref.uri))
        except ChecksumError as exc:
            raise ChecksumError(
                f"{exc}; run `mlpipe registry verify {ref.name}`, then delete "
                f"{ref.name}:v{ref.version} or publish the model again"
            ) from None
        return ref

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def versions(self, name: str | None = None) -> list[ModelVersionRef]:
        """Every readable version; damaged ones are left out (``verify`` names them)."""
        out: list[ModelVersionRef] = []
        for model in [name] if name else self.names():
            try:
                state = self._state(model)
            except RegistryDamagedError as exc:
                if name:
                    raise
                log.warning("%s", exc)
                continue
            for version in self._present(model, state):
                with suppress(ChecksumError):
                    out.append(self._ref(model, version, state.aliases))
        return out

    def history(self, name: str) -> list[dict[str, Any]]:
        try:
            return list(self._state(name).history)
        except RegistryDamagedError:
            return []

    def dangling(self, name: str) -> dict[str, int]:
        """Aliases that point at a version no longer on disk."""
        state = self._state(name)
        present = set(self._present(name, state))
        return {a: v for a, v in state.aliases.items() if v not in present}

    # -- changing: under the lock, one commit each ---------------------------------------------

    @contextmanager
    def _locked(self, name: str, what: str) -> Iterator[State]:
        """Hold the model's lock, clean what crashed writers left, and yield the state."""
        base = self._model_dir(name)
        base.mkdir(parents=True, exist_ok=True)
        with exclusive(base / ".lock", what=f"registry {name}: {what}", on_wait=log.warning):
            state = self._state(name)
            restorable = self._restorable(name, state)
            if restorable:
                raise RegistryDamagedError(
                    f"{base / STATE} does not list {', '.join(f'v{v}' for v in restorable)}, "
                    f"complete versions newer than it or in {BACKUP} (was it restored from an "
                    f"older snapshot?); run `mlpipe registry repair {name}` to restore them, "
                    f"then retry"
                )
            self._clean(name, state)
            yield state

    def _commit(self, name: str, state: State) -> None:
        """The one atomic step of every change: replace state.json, then its backup copy."""
        base = self._model_dir(name)
        write_json(base / STATE, state.as_json())
        with suppress(OSError):  # a backup one commit behind is still a good start for repair
            write_json(base / BACKUP, state.as_json())
        for legacy in _LEGACY:  # the state now holds what these held
            with suppress(OSError):
                (base / legacy).unlink(missing_ok=True)

    def _discard(self, name: str, version: int) -> None:
        """Remove a version directory no state lists: gone for readers at once, files next."""
        vdir = self._version_dir(name, version)
        if vdir.exists():
            trash = self._model_dir(name) / temp_name(f"deleted-v{version}")
            vdir.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        (self._model_dir(name) / "lineage" / f"v{version}.json").unlink(missing_ok=True)

    def _backup(self, name: str) -> State | None:
        try:
            return State.from_json(json.loads((self._model_dir(name) / BACKUP).read_text()))
        except (OSError, ValueError, UnicodeDecodeError):
            return None

    def _restorable(self, name: str, state: State) -> list[int]:
        """Complete versions the state does not list but must not be thrown away: listed in the
        backup, or numbered after the state but within the backup's (an older state snapshot)."""
        base = self._model_dir(name)
        if not base.is_dir():
            return []
        backup = self._backup(name) or State()
        found = []
        for path in base.iterdir():
            m = _VERSION_DIR.match(path.name)
            if not m or path.is_symlink() or not (path / artifacts.MANIFEST).is_file():
                continue
            version = int(m.group(1))
            if version in state.versions:
                continue
            # a publish killed before its commit is newer than the state too, but the backup
            # (written right after each commit) never counted it
            if version in backup.versions or state.last_version < version <= backup.last_version:
                found.append(version)
        return sorted(found)

    def _leftovers(self, name: str, state: State | None) -> list[Path]:
        """What crashed writers left: orphan versions (only known when the state is readable),
        their lineage, dead staging and trash directories, dead temp files."""
        base = self._model_dir(name)
        found: list[Path] = []
        if not base.is_dir():
            return found
        keep = set(self._restorable(name, state)) if state is not None else set()
        for path in base.iterdir():
            m = _VERSION_DIR.match(path.name)
            orphan = (
                m is not None
                and state is not None
                and int(m.group(1)) not in state.versions
                and int(m.group(1)) not in keep
            )
            dead = path.name.startswith((".staging", ".deleted")) and (
                is_dead_temp(path) or not path.name.endswith(".tmp")  # or named before tagging
            )
            if orphan or dead:
                found.append(path)
        lineage = base / "lineage"
        if state is not None and lineage.is_dir():
            for path in lineage.glob("v*.json"):
                m = re.fullmatch(r"v(\d+)\.json", path.name)
                if (
                    m
                    and int(m.group(1)) not in state.versions
                    and int(m.group(1)) not in keep
                    and not (base / path.stem).is_dir()
                ):
                    found.append(path)
        return found

    def _clean(self, name: str, state: State) -> list[Path]:
        removed = self._leftovers(name, state)
        for path in removed:
            m = _VERSION_DIR.match(path.name)
            if path.is_symlink():
                path.unlink(missing_ok=True)  # the link goes, never what it points at
            elif m and path.parent == self._model_dir(name):
                self._discard(name, int(m.group(1)))
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        removed += sweep_temp(self._model_dir(name)) + sweep_temp(self._model_dir(name) / "lineage")
        return removed

    def publish(
        self,
        directory: Path,
        name: str,
        aliases: Sequence[str],
        metadata: dict[str, Any] | None = None,
    ) -> ModelVersionRef:
        """Publish ``directory`` as the next version; identical content reuses its version.

        The configured aliases move to it unless ``promote_if`` says it does not beat the version
        holding them; ``latest`` always names the highest version. The version and its aliases
        become visible together, in one commit, or not at all.
        """
        for alias in aliases:
            names.alias(alias)
        manifest = artifacts.verify(directory)
        digest = artifacts.manifest_sha256(directory)
        lineage = lineage_of(directory, metadata)
        base = self._model_dir(name)
        base.mkdir(parents=True, exist_ok=True)
        staging = base / temp_name("staging")
        try:
            # a copy, never hardlinks: an edit in the run folder must not reach the version
            shutil.copytree(directory, staging)
            artifacts.verify(staging)
            with self._locked(name, "publish") as state:
                present = self._present(name, state)
                existing = [v for v in present if self._digest(name, v) == digest]
                intact = [v for v in existing if self._verifies(name, v)]
                created = not existing
                if intact:
                    version = intact[-1]
                elif existing:  # same content, damaged on disk: repaired from the fresh files
                    version = existing[-1]
                    self._replace_files(name, version, staging)
                else:
                    version = max([*state.versions, state.last_version], default=0) + 1
                    write_json(base / "lineage" / f"v{version}.json", lineage)
                    fault_point("publish.before_rename")
                    staging.rename(self._version_dir(name, version))
                    fault_point("publish.after_rename")
                try:
                    holders = {a: (v, self._metrics(name, v)) for a, v in state.aliases.items()}
                    granted, withheld, notes = decide_aliases(
                        name,
                        version,
                        manifest.get("metrics", {}),
                        aliases,
                        holders,
                        self.promote_if,
                    )
                    if version >= state.aliases.get(LATEST, 0):
                        granted = [LATEST, *granted]
                    table = dict(state.aliases)
                    events = []
                    for alias in dict.fromkeys(granted):
                        if table.get(alias) != version:
                            events.append(self._event(alias, table.get(alias), version, metadata))
                            table[alias] = version
                    ref = self._ref(name, version, table)
                    self._commit(
                        name,
                        State(
                            tuple(sorted({*state.versions, version})),
                            table,
                            max(state.last_version, version),
                            (*state.history, *events),
                        ),
                    )
                except BaseException:
                    if created:  # never committed: the version goes with the failure
                        self._discard(name, version)
                    raise
                fault_point("publish.after_commit")
                return ref.model_copy(
                    update={"aliases_withheld": tuple(withheld), "notes": tuple(notes)}
                )
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _verifies(self, name: str, version: int) -> bool:
        try:
            artifacts.verify(self._version_dir(name, version))
        except (OSError, ValueError, ChecksumError):
            return False
        return True

    def _replace_files(self, name: str, version: int, staging: Path) -> None:
        """Swap a damaged version's folder for verified fresh files of the same content."""
        vdir = self._version_dir(name, version)
        damaged = self._model_dir(name) / temp_name("damaged")
        vdir.rename(damaged)
        staging.rename(vdir)
        shutil.rmtree(damaged, ignore_errors=True)
        log.warning("registry: %s v%d failed verification; repaired from the new run", name,
                    version)

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

    def promote(self, name: str, version: int, alias: str) -> ModelVersionRef:
        """Point ``alias`` at ``version`` (moving it from wherever it was).

        The target is checked first (it exists and every file matches its manifest); nothing
        moves unless the whole change commits.
        """
        names.alias(alias)
        with self._locked(name, "promote") as state:
            present = self._present(name, state)
            if version not in present:
                raise ModelNotFoundError(
                    f"{name} has no version {version} "
                    f"(versions: {', '.join(f'v{n}' for n in present) or 'none'})"
                )
            try:
                artifacts.verify(self._version_dir(name, version))
            except ChecksumError as exc:
                raise ChecksumError(
                    f"not promoting {name}:v{version}: {exc}; promote another version, or "
                    f"delete this one and publish again"
                ) from None
            table = {**state.aliases, alias: version}
            old = state.aliases.get(alias)
            events = [self._event(alias, old, version, None)] if old != version else []
            ref = self._ref(name, version, table)
            fault_point("promote.before_commit")
            self._commit(name, replace(state, aliases=table, history=(*state.history, *events)))
            fault_point("promote.after_commit")
            return ref

    def delete(self, name: str, version: int) -> None:
        """Remove ``version``; refused while an alias other than ``latest`` points at it."""
        with self._locked(name, "delete") as state:
            if version not in state.versions:
                raise ModelNotFoundError(
                    f"{name} has no version {version} "
                    f"(versions: {', '.join(f'v{n}' for n in state.versions) or 'none'})"
                )
            holding = sorted(a for a, v in state.aliases.items() if v == version and a != LATEST)
            if holding:
                raise alias_in_use(name, version, holding)
            rest = tuple(v for v in state.versions if v != version)
            table = dict(state.aliases)
            events = []
            if table.get(LATEST) == version:
                if rest:
                    table[LATEST] = rest[-1]
                else:
                    table.pop(LATEST)
                events.append(self._event(LATEST, version, table.get(LATEST), None))
            self._commit(
                name,
                replace(state, versions=rest, aliases=table, history=(*state.history, *events)),
            )
            fault_point("delete.after_commit")
            self._discard(name, version)

    # -- checking and repairing ------------------------------------------------------------------

    def verify(self, name: str | None = None, *, deep: bool = True) -> list[Finding]:
        """Check every file of every version against its manifest, the state and the aliases.

        Damage is named with what to do; leftovers of crashed writers are listed as harmless
        (no reader sees them; the next change or ``repair`` removes them). ``deep=False`` only
        reads the manifests (fast enough for every ``registry list``).
        """
        found: list[Finding] = []
        for model in [name] if name else self.names():
            base = self._model_dir(model)
            repair = f"mlpipe registry repair {model}"
            state: State | None = None
            try:
                state = self._state(model)
            except RegistryDamagedError as exc:
                found.append(Finding(model, str(base / STATE), str(exc), repair))
            if state is not None:
                found += self._check_versions(model, state, deep)
                found += self._check_records(model, state)
                for version in self._restorable(model, state):
                    problem = (
                        f"v{version} is complete but not listed in {STATE} (newer than it, or in "
                        f"{BACKUP}: the state was restored from an older snapshot?)"
                    )
                    fix = f"mlpipe registry repair {model} (restores it with its aliases)"
                    found.append(
                        Finding(model, str(self._version_dir(model, version)), problem, fix)
                    )
            for path in self._leftovers(model, state):
                problem = "left by an interrupted write; no reader sees it"
                fix = f"{repair} (or the next publish) removes it"
                found.append(Finding(model, str(path), problem, fix, damage=False))
        return found

    def _check_versions(self, model: str, state: State, deep: bool) -> list[Finding]:
        found = []
        for version in state.versions:
            vdir = self._version_dir(model, version)
            if not vdir.is_dir():
                problem = f"v{version} is listed in {STATE} but its directory is gone"
                found.append(Finding(model, str(vdir), problem, f"mlpipe registry repair {model}"))
                continue
            try:
                artifacts.verify(vdir) if deep else artifacts.read_manifest(vdir)
            except ChecksumError as exc:
                fix = f"mlpipe registry delete {model} {version} (move its aliases first)"
                found.append(Finding(model, str(vdir), str(exc), fix + ", then publish again"))
        present = set(self._present(model, state))
        for alias, version in sorted(state.aliases.items()):
            if version not in present:
                problem = f"alias '{alias}' points at v{version}, which is not in the registry"
                fix = f"mlpipe registry promote {model} <version> {alias}"
                found.append(Finding(model, str(self._model_dir(model) / STATE), problem, fix))
        return found

    def _check_records(self, model: str, state: State) -> list[Finding]:
        """Valid JSON of the wrong shape: reported, never a crash."""
        found = []
        fix = f"mlpipe registry repair {model}"
        if state.dropped:
            problem = f"{state.dropped} 'history' entries are not objects (ignored)"
            found.append(Finding(model, str(self._model_dir(model) / STATE), problem, fix))
        for version in state.versions:
            path = self._model_dir(model) / "lineage" / f"v{version}.json"
            try:
                data = json.loads(path.read_text())
            except FileNotFoundError:
                continue
            except (OSError, ValueError, UnicodeDecodeError):
                data = None
            if not isinstance(data, dict):
                problem = "not a JSON object (ignored: the version has no lineage)"
                found.append(Finding(model, str(path), problem, "restore it or delete the file"))
            with suppress(ChecksumError):
                metrics = artifacts.read_manifest(self._version_dir(model, version)).get("metrics")
                if metrics is not None and (
                    not isinstance(metrics, dict) or len(_numbers(metrics)) != len(metrics)
                ):
                    where = str(self._version_dir(model, version) / artifacts.MANIFEST)
                    problem = "'metrics' holds values that are not numbers (ignored)"
                    found.append(Finding(model, where, problem, "publish the model again"))
        return found

    def repair(self, name: str | None = None) -> list[Finding]:
        """Remove leftovers; rebuild a damaged state from its backup copy and the versions on
        disk; drop versions whose directory is gone (and aliases that pointed at them).

        Damaged version directories are reported, not removed: deleting a model is the user's
        call (``mlpipe registry delete``).
        """
        done: list[Finding] = []
        for model in [name] if name else self.names():
            base = self._model_dir(model)
            with exclusive(base / ".lock", what=f"registry {model}: repair", on_wait=log.warning):
                try:
                    state = self._state(model)
                except RegistryDamagedError:
                    state = self._rebuild(model)
                    self._commit(model, state)
                    what = f"rebuilt from the versions on disk and {BACKUP}"
                    done.append(Finding(model, str(base / STATE), what, damage=False))
                restorable = self._restorable(model, state)
                if restorable:
                    state = self._restore(model, state, restorable)
                    self._commit(model, state)
                    what = f"restored {', '.join(f'v{v}' for v in restorable)} into {STATE}"
                    done.append(Finding(model, str(base / STATE), what, damage=False))
                if state.dropped:
                    state = replace(state, dropped=0)
                    self._commit(model, state)
                present = self._present(model, state)
                if len(present) != len(state.versions):
                    state = self._drop_missing(state, present)
                    self._commit(model, state)
                    what = "dropped the versions whose directory is gone"
                    done.append(Finding(model, str(base / STATE), what, damage=False))
                for path in self._clean(model, state):
                    done.append(Finding(model, str(path), "removed", damage=False))
                done += [f for f in self._check_versions(model, state, True) if f.damage]
        return done

    def _restore(self, name: str, state: State, restorable: list[int]) -> State:
        """``state`` plus the restorable versions; aliases from the backup when it is newer."""
        versions = tuple(sorted({*state.versions, *restorable}))
        aliases = dict(state.aliases)
        history = state.history
        backup = self._backup(name)
        if backup is not None and backup.last_version >= max(restorable):
            aliases.update({a: v for a, v in backup.aliases.items() if v in versions})
            seen = {json.dumps(e, sort_keys=True) for e in history}
            history = (
                *history,
                *(e for e in backup.history if json.dumps(e, sort_keys=True) not in seen),
            )
        aliases[LATEST] = max(versions)
        last = max(state.last_version, *versions)
        return State(versions, aliases, last, history)

    def _rebuild(self, name: str) -> State:
        """A state from the versions on disk that have a manifest, and the aliases of the backup
        that still point at one of them (``latest`` is the highest)."""
        base = self._model_dir(name)
        versions = []
        for path in sorted(base.iterdir()):
            m = _VERSION_DIR.match(path.name)
            # every version with a manifest: a damaged one is reported by verify, never dropped
            if m and not path.is_symlink() and (path / artifacts.MANIFEST).is_file():
                versions.append(int(m.group(1)))
        backup = self._backup(name) or State()
        aliases = {a: v for a, v in backup.aliases.items() if v in versions}
        if versions:
            aliases[LATEST] = max(versions)
        event = {"alias": "*", "from": None, "to": None, "at": utc_now(), "run_id": "repair"}
        last = max([backup.last_version, *versions])
        return State(tuple(sorted(versions)), aliases, last, (*backup.history, event))

    @staticmethod
    def _drop_missing(state: State, present: list[int]) -> State:
        aliases = {a: v for a, v in state.aliases.items() if v in present}
        if present:
            aliases[LATEST] = max(present)
        return replace(state, versions=tuple(present), aliases=aliases)


def _numbers(metrics: Any) -> dict[str, float]:
    """The numeric entries of a manifest's metrics (wrong-shaped data is ignored, not a crash)."""
    if not isinstance(metrics, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
