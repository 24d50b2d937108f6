"""Atomic writes: a file appears whole under its name or not at all (temp file, then rename).

Temp names carry the writer's host and pid (``.<name>.<host>-<pid>.<hex>.tmp``), so a process
that was killed mid-write leaves a temp file that :func:`sweep_temp` can recognise as dead and
remove, while a live writer's temp file (on this host or another sharing the volume) is kept.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from mlpipe.core.faults import fault_point
from mlpipe.core.liveness import pid_namespace

# the PID namespace is part of the writer's "host": a container sharing this hostname (and the
# volume) is another host here, its pids are never checked against ours
_HOST = (re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host") + (
    f"_ns{pid_namespace()}" if pid_namespace() else "")
_TEMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[0-9a-f]{32}\.tmp$")
#: a temp file whose writer cannot be checked (another host) is stale after this long
STALE_AFTER_S = 24 * 3600.0


def temp_name(stem: str) -> str:
    """A unique hidden name that says which process made it: ``.<stem>.<host>-<pid>.<hex>.tmp``.

    :func:`is_dead_temp` tells from the name alone whether its maker is gone (files or
    directories, e.g. a registry's staging directory).
    """
    return f".{stem}.{_HOST}-{os.getpid()}.{uuid.uuid4().hex}.tmp"


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temp path beside ``target`` that replaces it when the block succeeds.

    The temp name is unique (never shared by two writers) and is removed if the block fails, so
    readers never see half a file and a failed write leaves nothing behind.
    """
    tmp = target.with_name(temp_name(target.name))
    try:
        yield tmp
        fault_point(f"replace:{target.name}")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically, sorted and indented (same object, same bytes); makes its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_temp(path: Path) -> bool:
    """Whether ``path`` is named by :func:`temp_name` (its writer can be looked up)."""
    return _TEMP.match(path.name) is not None


def is_dead_temp(path: Path, *, now: float | None = None) -> bool:
    """Whether ``path`` is a temp file of :func:`atomic_path` whose writer is gone."""
    match = _TEMP.match(path.name)
    if match is None:
        return False
    if match["host"] == _HOST:
        return not _pid_alive(int(match["pid"]))
    return age(path, now=now) > STALE_AFTER_S


def age(path: Path, *, now: float | None = None) -> float:
    """Seconds since ``path`` was last written *or moved here*: a copy keeps its source's mtime
    (copytree), its ctime is the copy's own. 0 when it cannot be read."""
    try:
        st = path.lstat()
    except OSError:
        return 0.0
    return (now or time.time()) - max(st.st_mtime, st.st_ctime)


def sweep_temp(directory: Path) -> list[Path]:
    """Remove the temp files killed writers left directly in ``directory``; return them."""
    removed: list[Path] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for path in entries:
        if path.name.endswith(".tmp") and is_dead_temp(path):
            with suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


#: how long a lock is waited for unless the caller says (seconds; ``MLPIPE_LOCK_TIMEOUT_S``)
LOCK_TIMEOUT_ENV = "MLPIPE_LOCK_TIMEOUT_S"
DEFAULT_LOCK_TIMEOUT_S = 300.0


def lock_timeout(default: float = DEFAULT_LOCK_TIMEOUT_S) -> float:
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        from mlpipe.core.errors import ConfigError

        raise ConfigError(f"{LOCK_TIMEOUT_ENV}={raw!r}: give a number of seconds") from None
    return value if value >= 0 and value == value else default


def _holder_text(info_path: Path) -> str:
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return "another process (no holder recorded)"
    pid, host = info.get("pid"), info.get("host")
    alive = ""
    if host == _HOST and isinstance(pid, int):
        alive = "" if _pid_alive(pid) else ", which is no longer running"
    return f"pid {pid} on {host} since {info.get('since')} ({info.get('command', '?')}){alive}"


@contextmanager
def exclusive(
    lock_path: Path,
    *,
    what: str,
    timeout_s: float | None = None,
    on_wait: Any = None,
) -> Iterator[None]:
    """Hold an exclusive file lock at ``lock_path``; record who holds it beside it.

    A waiter is told (``on_wait(message)``, once, after a second) who holds the lock; after
    ``timeout_s`` (default ``$MLPIPE_LOCK_TIMEOUT_S`` or 300) it gives up with an
    ``MlpipeError`` (exit 1) naming the holder and what to do, instead of a traceback.
    """
    import sys
    from datetime import UTC, datetime

    from filelock import FileLock, Timeout

    from mlpipe.core.errors import MlpipeError

    limit = lock_timeout() if timeout_s is None else timeout_s
    info_path = lock_path.with_name(lock_path.name + ".holder")
    lock = FileLock(str(lock_path))
    started = time.monotonic()
    told = False
    while True:
        try:
            lock.acquire(timeout=min(1.0, max(limit - (time.monotonic() - started), 0.0)))
            break
        except Timeout:
            waited = time.monotonic() - started
            if waited >= limit:
                raise MlpipeError(
                    f"{what}: gave up after {limit:.0f}s waiting for the lock {lock_path}, held "
                    f"by {_holder_text(info_path)}; wait for it to finish, or stop it (if it "
                    f"is stuck), or raise {LOCK_TIMEOUT_ENV}"
                ) from None
            if not told and on_wait is not None:
                on_wait(f"{what}: waiting for {lock_path}, held by {_holder_text(info_path)}")
                told = True
    try:
        with suppress(OSError):
            write_json(
                info_path,
                {
                    "pid": os.getpid(),
                    "host": _HOST,
                    "since": datetime.now(UTC).isoformat(timespec="seconds"),
                    "command": " ".join(sys.argv)[:200],
                },
            )
        yield
    finally:
        with suppress(OSError):
            info_path.unlink()
        lock.release()
