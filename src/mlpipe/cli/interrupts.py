"""Ctrl-C and SIGTERM as a KeyboardInterrupt that unwinds the run and is never lost.

The handler raises KeyboardInterrupt wherever the main thread is, so every step's and run
record's cleanup runs on the way out. When that is inside a finaliser (a ``__del__`` or weakref
callback the garbage collector runs, e.g. while a tokenizer frees its regex objects mid-training),
Python prints the exception as "ignored" and drops it: the run would go on, publish its model
and exit 0. Such a dropped interrupt is raised again at the next line of the code the finaliser
interrupted.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

#: the signals the CLI turns into an interrupt, and the words it ends with for each
SIGNALS: dict[int, str] = {
    signal.SIGINT: "interrupted (Ctrl-C)",
    signal.SIGTERM: "terminated (SIGTERM)",
}


class Interrupts:
    """The signals this process received since :meth:`catch`, in the order they came."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._unraisable_hook = sys.unraisablehook

    def catch(self) -> None:
        """Raise KeyboardInterrupt on each of :data:`SIGNALS`, and again where one was dropped."""
        for signum in SIGNALS:
            signal.signal(signum, self._on_signal)
        self._unraisable_hook = sys.unraisablehook
        sys.unraisablehook = self._on_unraisable

    def ignore(self) -> None:
        """From now on the signals change nothing (the run is over, its status decided)."""
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        raise KeyboardInterrupt

    def _on_unraisable(self, unraisable: Any) -> None:
        tb = unraisable.exc_traceback
        interrupted = tb.tb_frame.f_back if tb is not None else None  # below the finaliser
        if self.received and isinstance(unraisable.exc_value, KeyboardInterrupt) and interrupted:
            _raise_at_next_line(interrupted)
        else:
            self._unraisable_hook(unraisable)


def _raise_at_next_line(frame: FrameType) -> None:
    """Raise KeyboardInterrupt in ``frame`` when it next starts a line or returns (a local
    trace function; tracing is switched on for this thread until then)."""
    global_trace = sys.gettrace()
    local_trace = frame.f_trace

    def raise_here(traced: FrameType, event: str, arg: Any) -> None:
        traced.f_trace = local_trace
        sys.settrace(global_trace)
        raise KeyboardInterrupt

    frame.f_trace = raise_here
    frame.f_trace_lines = True
    if global_trace is None:
        sys.settrace(_trace_no_new_frames)


def _trace_no_new_frames(frame: FrameType, event: str, arg: Any) -> None:
    return None
