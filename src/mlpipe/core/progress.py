"""Progress of long loops (training steps, batched inference) wherever a step runs.

On a terminal it is a bar (rich) on stderr. Anywhere else (a pipe, an Airflow task, a kfp
component, a Dagster op) it is a plain line every ``MLPIPE_PROGRESS_INTERVAL`` seconds (10) or
every 10 %, whichever comes first, logged by the ``mlpipe.progress`` logger to stderr, which the
orchestrators capture into their task logs; :func:`forward_to` also sends the lines elsewhere
(Dagster's ``context.log``, i.e. its event log), and every step's lines also go to
``<run>/.progress/<step>.log``, which the runner that started the run tails to its console.
``MLPIPE_PROGRESS=bar|plain|off`` overrides the terminal detection.

A line reads ``train_model: step 40/120 (33%) loss 0.6012, 212.4 samples/s, ETA 0:00:09``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

LOGGER_NAME = "mlpipe.progress"
MODES = ("bar", "plain", "off")
DEFAULT_INTERVAL_S = 10.0

_step: contextvars.ContextVar[str] = contextvars.ContextVar("mlpipe_progress_step", default="")
_active: contextvars.ContextVar[Progress | None] = contextvars.ContextVar(
    "mlpipe_progress_active", default=None
)
_sink: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "mlpipe_progress_sink", default=None
)
#: where a run's steps leave their progress lines, under the run's directory
PROGRESS_DIR = ".progress"


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a line is emitted (tasks redirect it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # a closed stream must never fail a training step
            self.handleError(record)


class _FileSink(logging.Handler):
    """Appends each line to the file the running step set (:func:`to_file`), if any: the
    step's process may be an orchestrator's task whose stderr only its own log sees."""

    def emit(self, record: logging.LogRecord) -> None:
        path = _sink.get()
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as file:
                file.write(record.getMessage() + "\n")
        except Exception:  # progress must never fail a step
            self.handleError(record)


def progress_file(run: Path, step: str) -> Path:
    """``<run>/.progress/<step>.log``: a step's plain progress lines, which the runner that
    started the run prints as they come (``StepWatcher``)."""
    return run / PROGRESS_DIR / f"{step}.log"


@contextlib.contextmanager
def to_file(path: Path) -> Iterator[None]:
    """Also append the progress lines of this block (this thread's step) to ``path``."""
    logger()
    token = _sink.set(path)
    try:
        yield
    finally:
        _sink.reset(token)


def logger() -> logging.Logger:
    """The ``mlpipe.progress`` logger, writing plain lines to stderr (set up once)."""
    log = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.addHandler(_FileSink())
        log.setLevel(logging.INFO)
        log.propagate = False  # one copy per line, not another from the root logger
    return log


def mode() -> str:
    """``bar`` on a terminal, else ``plain``; ``MLPIPE_PROGRESS`` overrides (``off`` too)."""
    chosen = os.environ.get("MLPIPE_PROGRESS", "").strip().lower()
    if chosen in MODES:
        return chosen
    try:
        return "bar" if sys.stderr.isatty() else "plain"
    except (AttributeError, ValueError):
        return "plain"


def interval_s() -> float:
    raw = os.environ.get("MLPIPE_PROGRESS_INTERVAL", "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Name the step the progress lines inside this block belong to."""
    token = _step.set(name)
    try:
        yield
    finally:
        _step.reset(token)


@contextlib.contextmanager
def forward_to(emit: Callable[[str], Any]) -> Iterator[None]:
    """Also send every progress line to ``emit`` while the block runs (Dagster's context.log)."""

    class _Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                emit(record.getMessage())
            except Exception:
                self.handleError(record)

    log = logger()
    handler = _Forward()
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)


def _clock(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class Progress:
    """Counts ``total`` units of ``what`` (steps, rows); rate is samples (or units) per second."""

    def __init__(self, total: int, *, what: str = "step", rate_unit: str = "samples") -> None:
        self.total = max(0, int(total))
        self.what = what
        self.rate_unit = rate_unit
        self.step_name = _step.get() or what
        self.mode = mode()
        self.interval = interval_s()
        self.done = 0
        self.samples = 0
        self.loss: float | None = None
        self.started = time.perf_counter()
        self.last_line = self.started
        self.next_pct = 10
        self.bar: Any = None
        self.task: Any = None
        self._token: contextvars.Token[Progress | None] | None = None
        if self.mode == "bar":
            self._open_bar()

    def _open_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self.bar = Bar(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True,
        )  # fmt: skip
        self.bar.start()
        self.task = self.bar.add_task(self.step_name, total=self.total or None, info="")

    def __enter__(self) -> Progress:
        self._token = _active.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _active.reset(self._token)
            self._token = None
        self.close(finished=exc[0] is None)

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        count = self.samples or self.done
        return count / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        elapsed = time.perf_counter() - self.started
        if not self.done or not self.total:
            return None
        return elapsed / self.done * (self.total - self.done)

    def line(self) -> str:
        """The plain progress line for where the loop is now."""
        pct = f" ({100 * self.done // self.total}%)" if self.total else ""
        parts = [f"{self.step_name}: {self.what} {self.done}/{self.total or '?'}{pct}"]
        details = []
        if self.loss is not None:
            details.append(f"loss {self.loss:.4f}")
        details.append(f"{self.rate():.1f} {self.rate_unit}/s")
        eta = self.eta_s()
        details.append(f"ETA {_clock(eta) if eta is not None else '?'}")
        return parts[0] + " " + ", ".join(details)

    def update(self, n: int = 1, *, samples: int = 0, loss: float | None = None) -> None:
        """``n`` more units done (``samples`` rows in them); ``loss`` is the running loss."""
        self.done += n
        self.samples += samples
        if loss is not None:
            self.loss = loss
        if self.mode == "bar" and self.bar is not None:
            shown = f"loss {self.loss:.4f}, " if self.loss is not None else ""
            info = f"{shown}{self.rate():.1f} {self.rate_unit}/s"
            self.bar.update(self.task, completed=self.done, info=info)
        elif self.mode == "plain":
            now = time.perf_counter()
            pct = 100 * self.done / self.total if self.total else 0.0
            due = now - self.last_line >= self.interval or pct >= self.next_pct
            if due and self.done < self.total:
                self._emit(now, pct)

    def _emit(self, now: float, pct: float) -> None:
        self.last_line = now
        while self.next_pct <= pct:
            self.next_pct += 10
        logger().info(self.line())

    def close(self, *, finished: bool = True) -> None:
        """Stop the bar; in plain mode a last line at 100 % (not when the loop failed)."""
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        elif self.mode == "plain" and finished and self.done and self.next_pct <= 100:
            self.next_pct = 110
            logger().info(self.line())


def advance(n: int = 1, *, samples: int = 0, loss: float | None = None) -> None:
    """Tick the progress of the loop running now (a no-op outside one): inner loops such as a
    predictor's batches report through this without being handed the reporter."""
    current = _active.get()
    if current is not None:
        current.update(n, samples=samples, loss=loss)
