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


#: Files that stay one unit whatever runner their tests are given: their session fixtures (the
#: rendered specs, a local reference run) serve every runner's tests, none of which uses a runner's
#: warm per-worker state, so split per runner they were built once per unit and worker.
FILE_UNITS = ("tests/runners/test_cluster.py",)
#: Files that share one unit: a session fixture they both use (a service) starts once per run,
#: not once on each worker that runs one of them.
SHARED_UNITS = {
    "tests/system/test_registry_contract.py": "mlflow server",
    "tests/system/test_mlflow.py": "mlflow server",
}


def group_of(nodeid: str) -> str:
    """The xdist work unit of a test, from its node id alone (the scheduler sees nothing else).

    Tests that drive Airflow, Kubeflow or Dagster outside the system tier form one unit per
    runner, so the worker that runs them keeps that runner's warm per-worker state (the
    migrated Airflow DB, the Dagster home); every other test stays with its file, as
    ``--dist loadfile`` kept it, so module fixtures (the container image, a service) are built
    once. A file in :data:`FILE_UNITS` is one unit; files of :data:`SHARED_UNITS` share one.
    """
    path, _, name = nodeid.partition("::")
    if path in SHARED_UNITS:
        return SHARED_UNITS[path]
    if path in FILE_UNITS:
        return path
    parts = path.split("/")
    if parts[:2] == ["tests", "runners"] and len(parts) > 3 and parts[2] in RUNNERS:
        runner: str | None = parts[2]
    else:
        params = name[name.find("[") + 1 : -1].split("-") if name.endswith("]") else []
        runner = next((p for p in params if p in RUNNERS), None)
    if runner not in (None, "local") and parts[1] != "system":
        return str(runner)
    return path


def order_by_group(items: list[pytest.Item]) -> None:
    """Put the longest work units first, the rest in collection order (the scheduler hands out
    units in the order the workers collected them: ``--no-loadscope-reorder``)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    order = {item.nodeid: i for i, item in enumerate(items)}
    items.sort(key=lambda it: (rank.get(group_of(it.nodeid), len(rank)), order[it.nodeid]))


def make_scheduler(config: pytest.Config, log: object) -> object:
    """xdist's scope scheduling with :func:`group_of` as the scope.

    Not ``--dist loadgroup``: it groups by a suffix xdist appends to ``item._nodeid``, which
    pytest 9 no longer reads, so every test silently became a unit of its own.
    """
    from xdist.scheduler import LoadScopeScheduling

    class RunnerScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return RunnerScheduling(config, log)  # type: ignore[arg-type]
