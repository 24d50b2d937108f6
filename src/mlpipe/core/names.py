"""One validator for every name that becomes a path: model names, aliases, run ids.

Names arrive from configs, the command line, orchestrators and pods; all of them go through
here, so ``../..``, absolute paths and version-like aliases are refused the same way everywhere.
"""

from __future__ import annotations

import re

from mlpipe.core.errors import ConfigError

MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
ALIAS = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
RUN_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$"
_VERSION_LIKE = re.compile(r"^[vV]?\d+$")


def _check(kind: str, value: str, pattern: str, hint: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(pattern, value) or ".." in value:
        raise ConfigError(f"{kind} {value!r}: {hint}")
    return value


def model_name(value: str) -> str:
    """A registry model name: letters, digits, ``_ . -``; never a path."""
    return _check(
        "model name", value, MODEL_NAME, "use letters, digits, '_', '.', '-' (no '..' or '/')"
    )


def alias(value: str) -> str:
    """An alias such as ``staging``: starts with a letter, and is never version-like (``v2``)."""
    _check("alias", value, ALIAS, "use letters, digits, '_', '.', '-' and start with a letter")
    if _VERSION_LIKE.match(value):
        raise ConfigError(f"alias {value!r}: looks like a version number; pick a name like 'prod'")
    return value


def run_id(value: str) -> str:
    """A run id as given by a user (``--run-id``, ``--resume``): a single safe path segment."""
    return _check("run id", value, RUN_ID, "use letters, digits, '_', '.', '-' (no '..' or '/')")


def sanitize_run_id(raw: str, fallback: str) -> str:
    """An orchestrator's run id (``manual__2026-01-01T00:00:00+00:00``) as a safe directory name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("_.")
    cleaned = re.sub(r"\.{2,}", "_", cleaned)[:200]
    return cleaned or fallback
