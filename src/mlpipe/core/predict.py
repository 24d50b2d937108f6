"""Predict a few rows in memory with a registry version: ``mlpipe.load_model(...).predict``.

The model's own task (recorded in its directory) decides what a prediction is: a label, its
score and every label's probability for classifiers, the SQL for text-to-sql models.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe.core.config import RegistryConfig, plugin_section
from mlpipe.core.paths import resolve_home
from mlpipe.core.refs import ModelVersionRef
from mlpipe.core.registry import open_registry
from mlpipe.core.task import get_task, model_task


@dataclass(frozen=True)
class LoadedModel:
    """A checksum-verified registry version and the task that knows how to run it."""

    version: ModelVersionRef
    directory: Path
    task: str

    def predict(
        self, rows: Iterable[str | Mapping[str, Any]], *, batch_size: int = 32
    ) -> list[dict[str, Any]]:
        """One prediction per row, in order; a plain string is a classifier's ``text``."""
        items = [{"text": r} if isinstance(r, str) else dict(r) for r in rows]
        return get_task(self.task).predict_texts(self.directory, items, batch_size=batch_size)


def load_model(
    spec: str,
    *,
    home: str | Path | None = None,
    registry: RegistryConfig | Mapping[str, Any] | None = None,
) -> LoadedModel:
    """``name:alias`` or ``name:vN`` from the registry (local by default), files verified."""
    cfg = registry if isinstance(registry, RegistryConfig) else plugin_section(
        "registry", dict(registry or {}), "registry"
    )
    root = resolve_home(home)
    assert isinstance(cfg, RegistryConfig)
    fetched = open_registry(cfg, root).fetch(spec, root / "predict" / spec.replace(":", "-"))
    directory = Path(fetched.uri)
    return LoadedModel(version=fetched, directory=directory, task=model_task(directory))
