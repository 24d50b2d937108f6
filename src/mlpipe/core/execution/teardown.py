"""End a finished step's process without tearing the interpreter down.

A task process that imported torch and transformers spends ~1 s after its last line freeing
thousands of modules and objects one by one, memory the OS reclaims at once anyway. Every kfp
task, pod and ``mlpipe`` command pays it after its work is written, and the orchestrator waits
for the process to end before it starts the next task. :func:`skip_teardown_at_exit` is called
by code that owns its process (the kfp component body, the CLI's ``main``, Airflow's ``dag.test``
child) once it has succeeded: the interpreter then exits as usual up to its exit handlers
(non-daemon threads joined, every ``atexit`` function run: logging flushed, trackers finished),
and ends with ``os._exit(0)`` instead of the teardown. Never call it from a library function that
may run inside someone else's process (a notebook, a test session): it ends that process at exit
with status 0.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys

_armed = False


def skip_teardown_at_exit() -> None:
    """When this process next exits normally, run its exit handlers, then end it at once (0)."""
    global _armed
    if not _armed:
        atexit.register(_exit_now)  # registered last, so it runs first, then runs the others
        _armed = True


def _exit_now() -> None:
    if getattr(sys, "last_value", None) is not None:  # an uncaught exception after all: its
        return  # status (1) stands and the interpreter exits as usual
    atexit.unregister(_exit_now)
    exit_now(0)


def exit_now(code: int) -> None:
    """Run the exit handlers, flush, and end this process with ``code``, skipping the teardown.

    The status is then exactly ``code``: nothing the teardown does (a library's finaliser, a
    KeyboardInterrupt the interpreter still remembers from a caught Ctrl-C) can change it.
    """
    atexit._run_exitfuncs()  # the other handlers, each once, in the usual (reverse) order
    flush_streams()
    os._exit(code)


def flush_streams() -> None:
    """Flush ``sys.stdout`` and ``sys.stderr`` before their file descriptors change hands."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or gone: nothing left to lose
            stream.flush()
