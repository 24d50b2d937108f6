"""Where mlpipe writes: the home, run ids, the layout ``<home>/runs/<pipeline>/<run_id>/``."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from mlpipe.core import names


def resolve_home(home: str | Path | None = None) -> Path:
    """``--home``, else ``$MLPIPE_HOME``, else ``./.mlpipe``; everything mlpipe writes goes here."""
    return Path(home or os.environ.get("MLPIPE_HOME") or ".mlpipe").expanduser().resolve()


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def safe_run_id(raw: str) -> str:
    """Orchestrator run ids (``manual__2026-01-01T00:00:00+00:00``) made safe as directory names."""
    return names.sanitize_run_id(raw, fallback=new_run_id())


def run_dir(home: Path, pipeline: str, run_id: str) -> Path:
    return home / "runs" / names.model_name(pipeline) / names.run_id(run_id)


def step_dir(home: Path, pipeline: str, run_id: str, step: str) -> Path:
    return run_dir(home, pipeline, run_id) / step
