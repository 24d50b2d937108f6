"""mlpipe: write ML training and inference pipelines once, run them on any orchestrator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlpipe.version import __version__

if TYPE_CHECKING:
    from mlpipe.core.predict import load_model

__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> Any:  # keep ``import mlpipe`` light: nothing heavy until used
    if name == "load_model":
        from mlpipe.core.predict import load_model

        return load_model
    raise AttributeError(f"module 'mlpipe' has no attribute {name!r}")
