"""Experiment tracking behind one small interface; off by default.

Steps log through a ``Tracker``; which backend sits behind it is a config choice
(``tracking.backend``) naming a tracker plugin (entry-point group ``mlpipe.trackers``), imported
only when chosen. A tracker class has a ``config_type`` (its ``tracking:`` section), is built as
``Tracker(cfg, TrackedStep(...))`` and may have a ``preflight(cfg)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

from mlpipe.core import plugins
from mlpipe.core.config import TrackingConfig, validate_section


@dataclass(frozen=True)
class TrackedStep:
    """What a tracker is told about the step it tracks; every backend is built from this."""

    name: str  # the tracking run's name
    job_type: str  # "train", "inference"
    config: Mapping[str, Any]  # logged as the run's parameters
    tags: Mapping[str, str]  # the runner, the orchestrator's own run id, the step
    home: Path | None = None  # where local tracking files go when nothing else says


class Tracker(Protocol):
    """What a step may do with a tracker. Also a context manager that finishes the run."""

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def summary(self, metrics: Mapping[str, Any]) -> None: ...

    def __enter__(self) -> Tracker: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Finishing:
    """A tracker's context manager: the tracking run ends when the step does, marked failed
    when the step raised. A backend implements ``finish``."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(failed=exc_type is not None)

    def finish(self, *, failed: bool) -> None:
        raise NotImplementedError


class NullTracker(Finishing):
    """Tracking disabled (``tracking.backend: none``): every call is a no-op."""

    config_type: ClassVar[type[TrackingConfig]] = TrackingConfig

    def __init__(self, cfg: TrackingConfig | None = None, step: TrackedStep | None = None) -> None:
        return None

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        return None

    def summary(self, metrics: Mapping[str, Any]) -> None:
        return None

    def finish(self, *, failed: bool) -> None:
        return None


def open_tracker(cfg: TrackingConfig, step: TrackedStep) -> Tracker:
    """A tracker for one step (``tracking.backend``)."""
    if cfg.backend == "none":
        return NullTracker()
    backend: Any = plugins.load("tracker", cfg.backend)
    if not isinstance(cfg, backend.config_type):  # a bare TrackingConfig(backend="wandb")
        cfg = validate_section(backend.config_type, cfg.model_dump(), "tracking")  # type: ignore[assignment]
    tracker: Tracker = backend(cfg, step)
    return tracker


def preflight_tracker(cfg: TrackingConfig) -> None:
    """The tracker's own checks that need no work done (credentials, a reachable server)."""
    check = getattr(plugins.load("tracker", cfg.backend), "preflight", None)
    if check is not None:
        check(cfg)
