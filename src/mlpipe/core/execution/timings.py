"""Where a step's time went: the marks ``run_step`` takes, turned into phases.

Kept apart from ``step.py`` so the step runner itself stays a few lines longer only: it takes
epoch marks (entered, function start and end, end) and counts import time; this module adds the
process's creation time and the upstream step's end and names the phases (:data:`PHASES`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlpipe.core.paths import run_dir, step_dir

#: The phases of a step, in order: each is seconds in ``StepRun.timings``.
PHASES = ("wait_s", "start_s", "inputs_s", "imports_s", "work_s", "outputs_s")


def process_started() -> float:
    """When this process was created (epoch seconds), as the kernel recorded it.

    On Linux from the process's start in clock ticks since boot, against the boot clock now:
    psutil adds those ticks to ``/proc/stat``'s boot time, which is whole seconds, so its
    answer is off by up to a second (a second that ``start_s`` would show as imports).
    """
    import os

    try:
        with open("/proc/self/stat", "rb") as stat:
            ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
        return time.time() - (since_boot - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, AttributeError, ValueError, IndexError):  # not Linux
        pass
    import psutil

    try:
        return float(psutil.Process().create_time())
    except psutil.Error:  # pragma: no cover - a platform without process times
        return 0.0


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (MiB): a shard's own peak when it ran in a
    process of its own; the whole process's when several steps shared one."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes there, KiB here


def step_timings(marks: Mapping[str, float], upstream_ended: float | None) -> dict[str, float]:
    """Where a step's time went, from the marks ``run_step`` takes and the process start.

    ``wait_s``: from the last upstream step's end (the run's start for a first step) until this
    step's process was created, or (a warm process that ran earlier work) until the step was
    entered: the orchestrator's scheduling and queueing. ``start_s``: from the process's creation
    to the step's entry, when the process was created for this step: interpreter start and
    every import before mlpipe's step code (the orchestrator's and mlpipe's). ``inputs_s``: config
    and input references parsed, cache looked up. ``imports_s``: imports while the step ran
    (torch, transformers...). ``work_s``: the step function's own time less those imports (its
    reading of input artifacts included). ``outputs_s``: from the function's return to the
    record (the cache entry, which hashes the outputs, is written after it). ``peak_rss_mib``:
    the process's peak memory when the step ended (:func:`peak_rss_mib`).
    """
    created = process_started()
    entered = marks["entered"]
    fresh = upstream_ended is not None and created >= upstream_ended
    begun = created if fresh else entered
    fn_s = marks["fn_ended"] - marks["fn_started"]
    imports_s = min(marks.get("imports_s", 0.0), fn_s)
    timings = {
        "process_started": created,
        **{k: v for k, v in marks.items() if k != "imports_s"},
        "wait_s": max(begun - upstream_ended, 0.0) if upstream_ended is not None else 0.0,
        "start_s": entered - created if fresh else 0.0,
        "inputs_s": marks["fn_started"] - entered,
        "imports_s": imports_s,
        "work_s": fn_s - imports_s,
        "outputs_s": marks["ended"] - marks["fn_ended"],
        "peak_rss_mib": peak_rss_mib(),
    }
    if upstream_ended is not None:
        timings["upstream_ended"] = upstream_ended
    return timings


def upstream_ended(
    pipeline: str, upstream: tuple[str, ...], home: Path, run_id: str
) -> float | None:
    """When the step could first have started: its last upstream's end, else the run's start
    (``run.json``'s ``started_ts``); None when neither is recorded (a step run on its own)."""
    ends: list[float] = []
    for name in upstream:
        path = step_dir(home, pipeline, run_id, name) / "result.json"
        with contextlib.suppress(OSError, ValueError, TypeError):
            ends.append(float(json.loads(path.read_text())["ended"]))
    if ends:
        return max(ends)
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        record = run_dir(home, pipeline, run_id) / "run.json"
        return float(json.loads(record.read_text())["started_ts"])
    return None


class ImportClock:
    """Seconds spent in ``import`` statements on this thread while entered (not re-entrant
    imports twice): what a step pays to import its libraries, told apart from its work."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0

    def __enter__(self) -> ImportClock:
        import builtins
        import threading

        self._thread = threading.get_ident()
        self._original = original = builtins.__import__

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth or threading.get_ident() != self._thread:
                return original(*args, **kwargs)
            self._depth += 1
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self._depth -= 1

        builtins.__import__ = timed
        return self

    def __exit__(self, *exc_info: object) -> None:
        import builtins

        builtins.__import__ = self._original
