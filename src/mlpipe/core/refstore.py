"""References handed between an orchestrator's tasks as small JSON files, kept per run and as
each key's latest: a task reads its own run's upstream first, so two runs of one job at once
never read each other's references; the latest serves runs that produce only downstream keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpipe.core.errors import ConfigError
from mlpipe.core.files import write_json


class RefStore:
    """``<root>/runs/<run_id>/<key>.json`` and ``<root>/latest/<key>.json`` (atomic writes)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str, run_id: str | None = None) -> Path:
        scope = self.root / "runs" / run_id if run_id else self.root / "latest"
        return scope / f"{key}.json"

    def put(self, key: str, run_id: str | None, value: Any) -> None:
        for path in {self.path(key, run_id), self.path(key)}:
            write_json(path, value)

    def get(self, key: str, run_id: str | None) -> Any:
        for path in dict.fromkeys((self.path(key, run_id), self.path(key))):
            if path.is_file():
                return json.loads(path.read_text())
        raise ConfigError(f"{key}: no stored reference under {self.path(key).parent}: "
                          "materialize it first")
