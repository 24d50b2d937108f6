"""Experiment tracking behind one small interface; off by default.

Steps log through a ``Tracker``; which backend sits behind it is a config choice
(``tracking.backend``) naming a tracker plugin (entry-point group ``mlpipe.trackers``), imported
only when chosen. A tracker class has a ``config_type`` (its ``tracking:`` section), is built as
``Tracker(cfg, name=, job_type=, config=, tags=, home=)`` and may have a ``preflight(cfg)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol

from mlpipe.core import plugins
from mlpipe.core.config import TrackingConfig, validate_section


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


class NullTracker:
    """Tracking disabled (``tracking.backend: none``): every call is a no-op."""

    config_type: ClassVar[type[TrackingConfig]] = TrackingConfig

    def __init__(self, cfg: TrackingConfig | None = None, **_: Any) -> None:
        return None

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        return None

    def summary(self, metrics: Mapping[str, Any]) -> None:
        return None

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


def open_tracker(
    cfg: TrackingConfig,
    *,
    name: str,
    job_type: str,
    config: Mapping[str, Any],
    tags: Mapping[str, str],
    home: Path | None = None,
) -> Tracker:
    """A tracker for one step. ``tags`` carry the runner and the orchestrator's own run id;
    ``home`` is where local tracking files go when nothing else says (``<home>/wandb``)."""
    if cfg.backend == "none":
        return NullTracker()
    backend: Any = plugins.load("tracker", cfg.backend)
    if not isinstance(cfg, backend.config_type):  # a bare TrackingConfig(backend="wandb")
        cfg = validate_section(backend.config_type, cfg.model_dump(), "tracking")  # type: ignore[assignment]
    tracker: Tracker = backend(
        cfg, name=name, job_type=job_type, config=config, tags=tags, home=home
    )
    return tracker


def preflight_tracker(cfg: TrackingConfig) -> None:
    """The tracker's own checks that need no work done (credentials, a reachable server)."""
    check = getattr(plugins.load("tracker", cfg.backend), "preflight", None)
    if check is not None:
        check(cfg)
