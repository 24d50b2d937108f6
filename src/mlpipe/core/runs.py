"""Run history: every run's ``run.json``, whichever runner made it (``mlpipe runs``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpipe.core import names
from mlpipe.core.errors import ConfigError
from mlpipe.core.liveness import alive, boot_id, held

RUN_FILE = "run.json"
STATUSES = ("running", "succeeded", "failed", "killed")


def list_runs(
    home: Path, *, pipeline: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """Run records under ``home``, newest first; damaged records are listed as such."""
    if status is not None and status not in STATUSES:
        raise ConfigError(f"--status {status!r}: one of {', '.join(STATUSES)}")
    root = home / "runs"
    pattern = f"{names.model_name(pipeline)}/*/{RUN_FILE}" if pipeline else f"*/*/{RUN_FILE}"
    records = []
    for path in root.glob(pattern) if root.is_dir() else ():
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("run_id", ""), str):
                raise ValueError(f"{path}: not a run record (a JSON object)")
            record: dict[str, Any] = data
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            # one bad record is listed as such; it never blocks other runs or new ones
            record = {
                "pipeline": path.parent.parent.name,
                "run_id": path.parent.name,
                "status": "unreadable",
                "error": {"message": str(exc)[:500]},
            }
        record.setdefault("run_id", path.parent.name)
        record["path"] = str(path.parent)
        if record.get("status") == "running" and _gone(record):
            # its process ended without recording an outcome, unless run.json could not be
            # rewritten (a full disk) and the preallocated word says how it ended
            record["status"] = _outcome(path.parent) or "killed"
        if status is None or record.get("status") == status:
            records.append(record)
    # started_at is to the second: two runs of one second are ordered by their epoch start
    return sorted(records, key=lambda r: (r.get("started_at") or "", r.get("started_ts") or 0.0,
                                          r["run_id"]), reverse=True)


#: a run's status word, preallocated at start; read when run.json could not be rewritten
OUTCOME_FILE = "outcome"
OUTCOME_SIZE = 16


def run_alive(record: dict[str, Any], *, locked_by_me: bool = False) -> bool | None:
    """Whether a run's process still runs (None: it cannot be told from here). The one rule
    that ``runs list``, ``--resume``, the killed-run sweep and gc share: the lock on its folder
    (held by the kernel while the process lives, in any PID namespace of this machine), then
    its process identity (host, boot, PID namespace, pid and start time). ``locked_by_me``: the
    caller holds the lock, so no other process on this machine does."""
    path = record.get("path")
    if locked_by_me:
        lock: bool | None = False
    else:
        lock = held(Path(path)) if isinstance(path, str) else None
    if lock:
        return True
    if lock is False and record.get("boot_id") and record.get("boot_id") == boot_id():
        return False  # same kernel, lock free: its holder is gone, whatever its namespace
    return alive(record)


def _outcome(run_path: Path) -> str | None:
    try:
        word = (run_path / OUTCOME_FILE).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return word if word in ("succeeded", "failed") else None


def _gone(record: dict[str, Any]) -> bool:
    return run_alive(record) is False


def sweep_killed(home: Path, pipeline: str) -> list[Path]:
    """Remove what killed runs of ``pipeline`` left half-written: step folders with neither
    ``result.json`` nor ``error.json``, and dead temp files. Their ``run.json`` stays (the
    history says they were killed); only runs known dead on this host are touched."""
    import shutil

    from mlpipe.core.files import sweep_temp

    removed: list[Path] = []
    for record in list_runs(home, pipeline=pipeline, status="killed"):
        run_path = Path(record["path"])
        if run_path.is_symlink() or not run_path.resolve().is_relative_to(home.resolve()):
            continue  # never follow a planted link out of the home
        removed += sweep_temp(run_path)
        for step in run_path.iterdir():
            if step.is_symlink() or not step.is_dir():
                continue
            if (step / "result.json").is_file() or (step / "error.json").is_file():
                removed += sweep_temp(step)
            else:
                shutil.rmtree(step, ignore_errors=True)
                removed.append(step)
    return removed


def find_run(home: Path, run_id: str) -> dict[str, Any]:
    """The record of one run, by id (any pipeline); exit 2 when there is none."""
    names.run_id(run_id)
    matches = [r for r in list_runs(home) if r.get("run_id") == run_id]
    if not matches:
        raise ConfigError(
            f"run {run_id!r}: no such run under {home / 'runs'} (see mlpipe runs list)"
        )
    return matches[0]


def step_logs(record: dict[str, Any], step: str | None = None) -> list[tuple[str, str]]:
    """(title, text) for what a run left to read: each step's error and the orchestrator log."""
    out: list[tuple[str, str]] = []
    run_path = Path(record["path"])
    steps = [step] if step else sorted(p.name for p in run_path.iterdir() if p.is_dir())
    for name in steps:
        error = run_path / name / "error.json"
        result = run_path / name / "result.json"
        if error.is_file():
            data = _record(error)
            out.append((f"{name}: failed", str(data.get("traceback") or data.get("message", ""))))
        elif result.is_file():
            data = _record(result)
            cached = " (cached)" if data.get("cached") else ""
            seconds = data.get("seconds", 0)
            seconds = seconds if isinstance(seconds, (int, float)) else 0
            out.append((f"{name}: done in {seconds:.2f}s{cached}", ""))
        elif step:
            raise ConfigError(f"step {step!r}: not in run {record['run_id']} ({', '.join(steps)})")
    log = record.get("log")
    if log and Path(log).is_file() and step is None:
        out.append((f"orchestrator log {log}", Path(log).read_text(errors="replace")[-20_000:]))
    return out


def _record(path: Path) -> dict[str, Any]:
    """A step record; an unreadable or wrong-shaped one becomes a message naming the file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return {"message": f"{path} is unreadable ({type(exc).__name__}); it is damaged"}
    if not isinstance(data, dict):
        return {"message": f"{path} is not a JSON object; it is damaged"}
    return data


def diff_runs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What differs between two run records (any runners): config keys, code and environment,
    each step's seconds side by side and whether its output (every shard's too) has the same
    sha256. ``identical_outputs``: every output both runs produced hashes the same."""
    def changed(x: dict[str, Any], y: dict[str, Any]) -> dict[str, list[Any]]:
        return {k: [x.get(k), y.get(k)] for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)}

    steps_a = {s.get("step"): s for s in a.get("steps") or []}
    steps_b = {s.get("step"): s for s in b.get("steps") or []}
    steps = []
    for name in [*steps_a, *(s for s in steps_b if s not in steps_a)]:
        sa, sb = steps_a.get(name) or {}, steps_b.get(name) or {}
        ha, hb = _output_hashes(sa.get("ref")), _output_hashes(sb.get("ref"))
        steps.append({"step": name, "seconds": [sa.get("seconds"), sb.get("seconds")],
                      "cached": [sa.get("cached"), sb.get("cached")],
                      "same_output": bool(ha) and ha == hb})
    return {
        "runs": [a.get("run_id"), b.get("run_id")],
        "runners": [a.get("runner"), b.get("runner")],
        "pipelines": [a.get("pipeline_ref") or a.get("pipeline"),
                      b.get("pipeline_ref") or b.get("pipeline")],
        "seconds": [a.get("seconds"), b.get("seconds")],
        "config": changed(_flat(a.get("config") or {}), _flat(b.get("config") or {})),
        "code": changed(a.get("code") or {}, b.get("code") or {}),
        "environment": changed(a.get("environment") or {}, b.get("environment") or {}),
        "steps": steps,
        "identical_outputs": bool(steps) and all(s["same_output"] for s in steps),
    }


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: config differences named as ``--set`` takes them."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _output_hashes(ref: Any) -> dict[str, str]:
    """A step's output sha256, and each shard's for a map step's output."""
    if not isinstance(ref, dict):
        return {}
    hashes = {"": str(ref.get("sha256"))}
    for i, shard in enumerate(ref.get("shards") or ()):
        if isinstance(shard, dict):
            hashes[str(i)] = str(shard.get("sha256"))
    return hashes
