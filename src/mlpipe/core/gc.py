"""``mlpipe gc``: remove old runs and stale cache entries, never what a version or alias needs.

Kept: the newest ``keep_last`` runs of each pipeline; every run still ``running``; every run that
published a version an alias points at (its record is that version's lineage); every run whose
outputs a kept run took from the step cache; every registry version (a version holds its own
files, hardlinks or copies: removing a run never touches them). Removed: older runs, cache
entries whose outputs are gone or were in a removed run, and what crashed publishers and
deleters left (``.staging*``, ``.deleted*``) once it is an hour old. A removed directory is
first renamed into ``<home>/.trash`` (gone for readers at once), then deleted. ``dry_run``
reports the same without removing anything.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlpipe.core.errors import ConfigError
from mlpipe.core.runs import list_runs

#: crash leftovers younger than this may belong to a publish in progress
STALE_S = 3600.0


@dataclass
class GcReport:
    runs: list[str] = field(default_factory=list)
    cache_entries: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    kept_for_aliases: list[str] = field(default_factory=list)
    kept_for_runs: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, **asdict(self)}


def aliased_run_ids(home: Path) -> set[str]:
    """Runs that published a version of the home's own registry (the default backend's, under
    ``<home>/registry``) an alias points at; core asks that backend, it names none."""
    from mlpipe.core.config import plugin_section
    from mlpipe.core.errors import MlpipeError
    from mlpipe.core.registry import open_registry

    if not (home / "registry").is_dir():
        return set()
    try:
        default: Any = plugin_section("registry", {}, "registry")
        versions = open_registry(default, home).versions()
    except MlpipeError:
        return set()
    return {v.run_id for v in versions if v.aliases and v.run_id}


def _files(path: Path) -> list[os.stat_result]:
    if path.is_symlink():
        return []  # removing a link frees nothing of its target
    if path.is_file():
        return [path.stat()]
    out = []
    for base, _, files in os.walk(path):
        for name in files:
            try:
                out.append(os.stat(os.path.join(base, name)))
            except OSError:
                continue
    return out


def _referenced(kept: list[Path], candidates: list[Path]) -> list[Path]:
    """The ``candidates`` whose files a step of a ``kept`` run refers to (a cache hit)."""
    texts = []
    for run in kept:
        for result in run.glob("*/result.json"):
            try:
                texts.append(result.read_text())
            except OSError:
                continue
    blob = "\n".join(texts)
    return [c for c in candidates if f"{c}{os.sep}" in blob or f'"{c}"' in blob]


def _remove(home: Path, path: Path) -> None:
    """Delete ``path`` itself: a symlink is unlinked, never followed (lstat only)."""
    if path.is_symlink():
        path.unlink()
        return
    trash = home / ".trash"
    if trash.is_symlink():
        trash.unlink()  # a planted link: its target is not ours to empty
    trash.mkdir(parents=True, exist_ok=True)
    target = path
    if path.parent != trash:
        target = trash / f"{path.name}-{uuid.uuid4().hex[:8]}"
        try:
            path.rename(target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            target = path  # on another filesystem (runs/ mounted apart): delete in place
    if target.is_dir():
        shutil.rmtree(target, ignore_errors=True)
    else:
        target.unlink(missing_ok=True)


def collect(home: Path, *, keep_last: int = 5, dry_run: bool = False) -> GcReport:
    """Remove what is no longer needed under ``home`` (see the module docstring)."""
    if keep_last < 1:
        raise ConfigError(f"--keep-last {keep_last}: keep at least 1 run per pipeline")
    report = GcReport(dry_run=dry_run)
    protected = aliased_run_ids(home)
    doomed: list[Path] = []
    by_pipeline: dict[str, list[dict[str, Any]]] = {}
    for record in list_runs(home):  # newest first
        by_pipeline.setdefault(str(record.get("pipeline")), []).append(record)
    for records in by_pipeline.values():
        for record in records[keep_last:]:
            if record.get("status") == "running":
                continue
            if str(record.get("run_id")) in protected:
                report.kept_for_aliases.append(str(record["path"]))
                continue
            doomed.append(Path(record["path"]))
    # a kept run whose steps took a cached output from an older run needs that run's files
    kept = [
        Path(r["path"]) for rs in by_pipeline.values() for r in rs if Path(r["path"]) not in doomed
    ]
    needed = _referenced(kept, doomed)
    report.kept_for_runs = [str(p) for p in needed]
    doomed = [p for p in doomed if p not in needed]
    report.runs = [str(p) for p in doomed]
    removed_roots = [p.resolve() for p in doomed]

    cache = home / "cache"
    if cache.is_dir():
        for entry in sorted(cache.glob("*.json")):
            try:
                root = Path(json.loads(entry.read_text())["root"]).resolve()
            except (OSError, ValueError, KeyError, TypeError):
                doomed.append(entry)
                report.cache_entries.append(str(entry))
                continue
            gone = not root.exists() or any(root.is_relative_to(r) for r in removed_roots)
            if gone:
                doomed.append(entry)
                report.cache_entries.append(str(entry))

    now = time.time()
    registry = home / "registry"
    if registry.is_dir():
        for model in registry.iterdir():
            if not model.is_dir():
                continue
            for leftover in model.iterdir():
                if re.match(r"^\.(staging|deleted)[-.]", leftover.name) and (
                    now - leftover.stat().st_mtime > STALE_S
                ):
                    doomed.append(leftover)
                    report.leftovers.append(str(leftover))
    trash = home / ".trash"
    if trash.is_symlink():
        doomed.append(trash)  # only the link is removed
        report.leftovers.append(str(trash))
    elif trash.is_dir():
        doomed.extend(trash.iterdir())
        report.leftovers.extend(str(p) for p in trash.iterdir())

    report.bytes_freed = freed_bytes(doomed)
    if not dry_run:
        for path in doomed:
            if path.exists() or path.is_symlink():
                _remove(home, path)
    return report


def freed_bytes(doomed: list[Path]) -> int:
    """Bytes removing ``doomed`` frees: a file counts only if all its hardlinks are among them."""
    seen: dict[tuple[int, int], list[int]] = {}
    for path in doomed:
        for st in _files(path):
            key = (st.st_dev, st.st_ino)
            if key in seen:
                seen[key][0] += 1
            else:
                seen[key] = [1, int(st.st_nlink), int(st.st_size)]
    return sum(size for count, nlink, size in seen.values() if count >= nlink)


def du(path: Path) -> int:
    """Bytes under ``path``, each hardlinked file counted once (what the disk really holds)."""
    seen: dict[tuple[int, int], int] = {}
    for st in _files(path):
        seen[(st.st_dev, st.st_ino)] = int(st.st_size)
    return sum(seen.values())
