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
TESTS = Path(__file__).resolve().parents[1]


def mark_tier(items: list[pytest.Item], folder: Path, tier: str) -> None:
    """Add the ``tier`` marker to every collected item under ``folder``."""
    marker = getattr(pytest.mark, tier)
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(marker)


def runner_of(item: pytest.Item) -> str | None:
    """The runner an item drives: its folder under tests/runners/, else its runner parameter."""
    parts = item.path.resolve().relative_to(TESTS).parts
    if len(parts) > 2 and parts[0] == "runners" and parts[1] in RUNNERS:
        return parts[1]
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


#: Work units that run longest, started first so that no long one is left for the end of a
#: parallel run (xdist otherwise starts the units with the most tests first). Group names as
#: :func:`group_of` gives them; the rest follow in collection order.
LONGEST_FIRST = (
    "tests/system/test_containers.py",
    "airflow",
    "tests/system/test_bench.py",
    "dagster",
    "kubeflow",
)


def group_of(item: pytest.Item) -> str:
    """The xdist work unit (``--dist loadgroup``) of an item.

    Tests that drive Airflow, Kubeflow or Dagster outside the system tier form one unit per
    runner, so the worker that runs them keeps that runner's warm per-worker state (the
    migrated Airflow DB, the Dagster home); every other test stays with its file, as
    ``--dist loadfile`` kept it, so module fixtures are built once.
    """
    runner = runner_of(item)
    rel = item.path.resolve().relative_to(TESTS.parent).as_posix()
    if runner not in (None, "local") and not rel.startswith("tests/system/"):
        return str(runner)
    return rel


def group_by_runner(items: list[pytest.Item]) -> None:
    """Add the ``xdist_group`` mark to every item and put the longest units first."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    groups = {}
    for item in items:
        groups[item.nodeid] = group_of(item)
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    order = {nodeid: i for i, nodeid in enumerate(groups)}
    items.sort(key=lambda it: (rank.get(groups[it.nodeid], len(rank)), order[it.nodeid]))
