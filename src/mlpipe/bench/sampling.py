"""Measuring a child process (wall time, peak memory of its tree, its result line) and the
machine and library versions a figure was measured on."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sampled:
    """A finished child process: exit code, output, wall seconds, peak RSS of its process tree."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_bytes: int


def run_sampled(cmd: Sequence[str], env: dict[str, str] | None = None) -> Sampled:
    """Run ``cmd``, sampling the summed RSS of it and its children every 50 ms.

    Output goes to temporary files, not pipes: a chatty child (kfp.local logs every task) would
    otherwise fill a pipe nobody reads while sampling, and hang.
    """
    import psutil

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, text=True, env=env)
        peak = 0
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(_rss(p) for p in tree))
            time.sleep(0.05)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Sampled(proc.returncode, out.read(), err.read(), wall, peak)


def result_line(stdout: str, marker: str) -> str | None:
    """The JSON after ``marker`` in a child's output. Not anchored at the line's start: kfp.local
    indents what its tasks print, and the child's own final line can come out indented after it."""
    for line in reversed(stdout.splitlines()):
        _, found, rest = line.partition(marker)
        if found:
            return rest
    return None


def _rss(p: Any) -> int:
    try:
        return int(p.memory_info().rss)
    except Exception:
        return 0


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    memory = psutil.virtual_memory().total / 2**30
    return f"{cpu}, {os.cpu_count()} CPUs, {memory:.0f} GiB, {platform.system()}"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("mlpipe", "torch", "transformers", "apache-airflow", "kfp", "dagster"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out
