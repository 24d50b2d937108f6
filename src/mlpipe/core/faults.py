"""Fault injection for tests: stop the process dead at a named point of a write.

``fault_point("cache.put")`` SIGKILLs the process when the environment variable
``MLPIPE_FAULT`` equals that name, so the fault-injection suite
(tests/integration/test_faults.py) can check that whatever a killed process leaves behind is
never served, never misreported and is cleaned up. Unset (always, outside tests) it costs one
dict lookup. Every point is listed in ``POINTS``.
``raise:<name>`` makes :func:`fault_raise` points raise instead (a step that fails cleanly, e.g.
one shard of a map step: ``MLPIPE_FAULT=raise:shard:run_inference:1``).
"""

from __future__ import annotations

import fnmatch
import os
import signal

ENV = "MLPIPE_FAULT"

#: the named points, for the suite to iterate over; ``replace:<file name>`` (every atomic write,
#: after the temp file is complete and before it is renamed into place) matches any file name.
POINTS = (
    "cache.put",  # the step's outputs and result.json exist; its cache entry does not yet
    "run.start",  # before run.json is first written
    "run.finish",  # every step done; run.json still says "running"
    "replace:run.json",
    "replace:result.json",
    # the embedded registry (registries/local.py): a change is one commit of state.json
    "publish.before_rename",  # lineage written; the files still in the staging directory
    "publish.after_rename",  # v<N>/ in place, not yet listed in state.json
    "replace:state.json",  # the commit itself, its temp file complete
    "publish.after_commit",
    "promote.before_commit",
    "promote.after_commit",
    "delete.after_commit",  # the version is gone from state.json; its directory not yet
)


def fault_point(name: str) -> None:
    """SIGKILL this process if ``$MLPIPE_FAULT`` is ``name`` or a glob matching it
    (``replace:*.json``); a no-op, one environment lookup, otherwise."""
    wanted = os.environ.get(ENV)
    if wanted and (wanted == name or fnmatch.fnmatchcase(name, wanted)):
        os.kill(os.getpid(), signal.SIGKILL)


class InjectedFault(RuntimeError):
    """What a ``raise:`` fault raises: an ordinary step failure, recorded like any other."""


def fault_raise(name: str) -> None:
    """Raise ``InjectedFault`` if ``$MLPIPE_FAULT`` is ``raise:<name>`` (or a glob matching it)."""
    wanted = os.environ.get(ENV)
    if wanted and wanted.startswith("raise:") and fnmatch.fnmatchcase(name, wanted[6:]):
        raise InjectedFault(f"injected fault at {name} ({ENV})")
