"""Runners tier: real orchestrators (Airflow dag.test, kfp.local, Dagster materialize);
one folder per runner, cross-runner contracts at this level."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.markers import mark_tier


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tier(items, Path(__file__).parent, "runners")
