"""Why a step was or was not served from the cache: its key's parts against the closest entry.

Every step run writes its key in named parts (``cache_key.json`` beside its result) and every
cache entry keeps them; a miss is explained by the leaves that differ from the earlier entry of
the same step that shares the most of them (a config field's dotted path, an input, a module, a
package version, the Python version or platform).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpipe.core.cache import KEY_FILE, StepKey
from mlpipe.core.errors import ConfigError


def _leaves(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {f"{part}.{name}": value for part in StepKey.PARTS
            for name, value in (parts.get(part) or {}).items()}


def _label(part: str) -> str:
    return {"config": "config field", "inputs": "input", "upstream": "upstream output",
            "code": "code module", "packages": "package", "env": "environment"}.get(part, part)


def changes(
    before: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """What differs between two keys' parts, leaf by leaf."""
    old, new = _leaves(before), _leaves(now)
    out = []
    for leaf in sorted(set(old) | set(new)):
        if old.get(leaf, "<absent>") != new.get(leaf, "<absent>"):
            part, _, name = leaf.partition(".")
            out.append({"part": part, "what": _label(part), "name": name,
                        "before": old.get(leaf), "now": new.get(leaf)})
    return out


def describe(change: dict[str, Any]) -> str:
    """One line for a change: values for config and versions, 'changed' for content hashes."""
    if change["part"] in ("config", "packages", "env"):
        return f"{change['what']} {change['name']}: {change['before']!r} -> {change['now']!r}"
    if change["before"] is None or change["now"] is None:
        how = "added" if change["before"] is None else "removed"
        return f"{change['what']} {change['name']} {how}"
    return f"{change['what']} {change['name']} changed (content)"


def _entries(cache: Path, pipeline: str, step: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted(cache.glob("*.json")) if cache.is_dir() else []:
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and entry.get("pipeline") == pipeline \
                and entry.get("step") == step and isinstance(entry.get("parts"), dict):
            entry["key"] = path.stem
            found.append(entry)
    return found


def closest(cache: Path, key: dict[str, Any], *, exclude_run: str | None = None
            ) -> dict[str, Any] | None:
    """The earlier cache entry of the same step whose key shares the most leaves with ``key``."""
    mine = _leaves(key["parts"])
    best, score = None, -1
    for entry in _entries(cache, key["pipeline"], key["step"]):
        if entry["key"] == key["digest"] or entry.get("run_id") == exclude_run:
            continue
        theirs = _leaves(entry["parts"])
        same = sum(1 for leaf, value in mine.items() if theirs.get(leaf, object()) == value)
        if same > score:
            best, score = entry, same
    return best


def find_run(home: Path, run_id: str) -> Path:
    """The folder of run ``run_id``, whichever pipeline it belongs to."""
    runs = sorted(p for p in (home / "runs").glob(f"*/{run_id}") if (p / "run.json").is_file())
    if not runs:
        raise ConfigError(f"cache explain: no run {run_id} under {home} (see mlpipe runs list)")
    return runs[0]


def explain(home: Path, run_id: str, step: str | None = None) -> list[dict[str, Any]]:
    """Per step of a run: hit or miss, and for a miss what changed against the closest entry."""
    run = find_run(home, run_id)
    order = [s.get("step") for s in json.loads((run / "run.json").read_text()).get("steps", [])]
    folders = [run / name for name in order if isinstance(name, str)] or sorted(
        p for p in run.iterdir() if (p / KEY_FILE).is_file())
    if step is not None:
        folders = [run / step]
        if not (run / step).is_dir():
            raise ConfigError(f"cache explain: run {run_id} has no step '{step}'")
    report = []
    for folder in folders:
        file = folder / KEY_FILE
        if not file.is_file():
            report.append({"step": folder.name, "status": "uncached",
                           "reason": "the step is not cacheable, or its inputs are not pinned"})
            continue
        key = json.loads(file.read_text())
        record: dict[str, Any] = {"step": folder.name, "key": key["digest"],
                                  "status": "hit" if key.get("cached") else "miss"}
        if key.get("cacheable") is False:
            record.update(status="uncached", reason="the step is not cacheable (it always runs)")
        elif not key.get("cached"):
            earlier = key.get("previous") or closest(home / "cache", key, exclude_run=run_id)
            if earlier is None:
                record["reason"] = "no earlier entry of this step"
            else:
                found = changes(earlier["parts"], key["parts"])
                record["against"] = earlier.get("run_id")
                record["changes"] = found
                record["reason"] = "; ".join(describe(c) for c in found) or (
                    "same key: the cached output was changed or removed since it was stored")
        report.append(record)
    return report
