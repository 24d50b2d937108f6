"""One rule for "is the process that wrote this still alive?": runs list, resume, gc and the
temp-file sweep all ask here.

A process is named by host, boot, PID namespace, pid and the start time the kernel gives it
(``/proc/<pid>/stat``): a pid reused after a kill, a machine rebooted after a power loss and a
run in another container's PID namespace (same hostname, pids not visible here) are told apart,
which (host, pid) alone cannot do. What cannot be judged from here is "unknown", never "dead".
"""

from __future__ import annotations

import fcntl
import functools
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any


@functools.cache
def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@functools.cache
def pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").rstrip("]")
    except OSError:
        return ""


def start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot), "" when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces and ')'
    return fields[19] if len(fields) > 19 else ""


def identity() -> dict[str, Any]:
    """This process, as a run record stores it."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "boot_id": boot_id(),
            "pid_ns": pid_namespace(), "pid_start": start_time(pid)}


def alive(ident: Mapping[str, Any]) -> bool | None:
    """True: that process runs. False: it is gone. None: it cannot be judged from here."""
    pid = ident.get("pid")
    if not isinstance(pid, int) or pid <= 0 or ident.get("host") != socket.gethostname():
        return None  # another machine's process (a pod, a worker)
    if ident.get("boot_id") and boot_id() and ident["boot_id"] != boot_id():
        return False  # this machine rebooted since (power loss): nothing of then still runs
    if ident.get("pid_ns") and pid_namespace() and ident["pid_ns"] != pid_namespace():
        return None  # another container's PID namespace: its pids mean nothing here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = ident.get("pid_start")
    now = start_time(pid)
    return not (started and now and now != started)  # else the pid was reused


class HeldError(Exception):
    """The lock is held by another process."""


def hold(directory: Path) -> int:
    """Lock ``directory`` itself (made if missing; no lock file to leave behind) for as long as
    the returned descriptor stays open or the process lives: the kernel drops the lock on
    SIGKILL, an OOM kill or a power loss. Close it with ``os.close``."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise HeldError(str(directory)) from exc
    return fd


def held(directory: Path) -> bool | None:
    """Whether a process holds the lock on ``directory`` (None: no such directory)."""
    if directory.is_symlink():
        return None
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)
    return False
