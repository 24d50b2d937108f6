"""Model registry: the interface every backend implements, spec parsing, and ``open_registry``.

Backends are plugins (entry-point group ``mlpipe.registries``): ``local`` (embedded, a directory,
:mod:`mlpipe.registries.local`) and ``wandb`` ship with mlpipe. A backend class has a
``config_type`` (its ``registry:`` section, a ``RegistryConfig`` subclass), takes
``(config, home)`` and may have a ``preflight(config)`` classmethod that checks credentials
before any step runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from mlpipe.core import plugins
from mlpipe.core.config import RegistryConfig, validate_section
from mlpipe.core.errors import ConfigError
from mlpipe.core.refs import ModelVersionRef

VERSION = re.compile(r"^v?(\d+)$")
LATEST = "latest"


def parse_spec(spec: str) -> tuple[str, str]:
    """``name``, ``name:alias``, ``name:vN`` or ``name:N`` -> (name, alias-or-vN)."""
    name, _, which = spec.partition(":")
    if not name:
        raise ConfigError(f"model reference {spec!r}: expected name:alias or name:vN")
    return name, which or LATEST


class Registry(Protocol):
    """What every backend offers; the steps and the CLI use nothing else."""

    def publish(
        self, directory: Path, name: str, aliases: Sequence[str], metadata: dict[str, Any]
    ) -> ModelVersionRef: ...

    def resolve(self, spec: str) -> ModelVersionRef: ...

    def fetch(self, spec: str, dest: Path) -> ModelVersionRef: ...

    def versions(self, name: str | None = None) -> list[ModelVersionRef]: ...

    def promote(self, name: str, version: int, alias: str) -> ModelVersionRef: ...


def open_registry(cfg: RegistryConfig, home: Path) -> Registry:
    """The registry backend ``cfg.backend`` names (imported only when chosen)."""
    backend: Any = plugins.load("registry", cfg.backend)
    if not isinstance(cfg, backend.config_type):  # a bare RegistryConfig(backend="wandb")
        cfg = validate_section(backend.config_type, cfg.model_dump(), "registry")  # type: ignore[assignment]
    registry: Registry = backend(cfg, home)
    return registry


def preflight_registry(cfg: RegistryConfig) -> None:
    """The backend's own checks that need no work done (credentials, a reachable server)."""
    check = getattr(plugins.load("registry", cfg.backend), "preflight", None)
    if check is not None:
        check(cfg)
