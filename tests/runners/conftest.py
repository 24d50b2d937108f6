"""Runners tier: real orchestrators (Airflow dag.test, kfp.local, Dagster materialize);
one folder per runner, cross-runner contracts at this level."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.markers import mark_tier
from tests.support.shared_runs import SharedRuns, seed_home


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tier(items, Path(__file__).parent, "runners")


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose registry has v1 as production (also as ONNX) and v2 as staging."""
    return seed_home(tmp_path_factory.mktemp("seeded") / "home")


@pytest.fixture(scope="session")
def shared_runs(seeded_home: Path, tmp_path_factory: pytest.TempPathFactory) -> SharedRuns:
    """``shared_runs(runner)``: that runner's shared training, cached rerun, fused inference and
    example run (tests/support/shared_runs.py), once per worker, for every file here that asserts
    on them (the runner contract, each runner's own tests, the progress logs). Defined here, once:
    a fixture imported into several modules would be several definitions, and several runs."""
    return SharedRuns(seeded_home, tmp_path_factory)
