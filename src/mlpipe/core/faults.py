"""Fault injection for tests: stop the process dead at a named point of a write.

``fault_point("cache.put")`` SIGKILLs the process when the environment variable
``MLPIPE_FAULT`` equals that name, so the fault-injection suite (tests/test_faults.py) can check
that whatever a killed process leaves behind is never served, never misreported and is cleaned
up. Unset (always, outside tests) it costs one dict lookup. Every point is listed in ``POINTS``.
"""

from __future__ import annotations

import fnmatch
import os
import signal

ENV = "MLPIPE_FAULT"

#: the named points, for the suite to iterate over; ``replace:<file name>`` (every atomic write,
#: after the temp file is complete and before it is renamed into place) matches any file name.
#: The registry adds its own (``publish.*``, ``promote.*``) when it calls :func:`fault_point`.
POINTS = (
    "cache.put",  # the step's outputs and result.json exist; its cache entry does not yet
    "run.start",  # before run.json is first written
    "run.finish",  # every step done; run.json still says "running"
    "replace:run.json",
    "replace:result.json",
)


def fault_point(name: str) -> None:
    """SIGKILL this process if ``$MLPIPE_FAULT`` is ``name`` or a glob matching it
    (``replace:*.json``); a no-op, one environment lookup, otherwise."""
    wanted = os.environ.get(ENV)
    if wanted and (wanted == name or fnmatch.fnmatchcase(name, wanted)):
        os.kill(os.getpid(), signal.SIGKILL)
