"""Markers from where a test lives: its tier (folder under tests/) and the runner it drives.

Each tier's ``conftest.py`` marks its own items with :func:`mark_tier`; the root conftest marks
runners with :func:`mark_runners`, from the folder (``tests/runners/<runner>/``) or from the
runner a parametrised test was given (``runner``, ``orch`` or ``adapter``), so ``-m airflow``
selects every test that starts Airflow, wherever it lives.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TIERS = ("unit", "integration", "runners", "system")
RUNNERS = ("local", "airflow", "kubeflow", "dagster")
#: Parameter names under which a parametrised test receives the runner it drives.
RUNNER_PARAMS = ("runner", "orch", "adapter")


def mark_tier(items: list[pytest.Item], folder: Path, tier: str) -> None:
    """Add the ``tier`` marker to every collected item under ``folder``."""
    marker = getattr(pytest.mark, tier)
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(marker)


def runner_of(item: pytest.Item) -> str | None:
    """The runner an item drives: its folder under tests/runners/, else its runner parameter."""
    parts = item.path.parts
    for name in RUNNERS:
        if f"{name}" in parts and "runners" in parts:
            return name
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        for param in RUNNER_PARAMS:
            value = callspec.params.get(param)
            if isinstance(value, str) and value in RUNNERS:
                return value
    return None


def mark_runners(items: list[pytest.Item]) -> None:
    """Add the runner's marker (``airflow``, ``kubeflow``, ``dagster``, ``local``)."""
    for item in items:
        runner = runner_of(item)
        if runner is not None:
            item.add_marker(getattr(pytest.mark, runner))
