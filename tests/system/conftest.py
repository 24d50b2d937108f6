"""System tier: containers, services (MLflow server, orchestrator UIs) and `bench --deployed`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.markers import mark_tier


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tier(items, Path(__file__).parent, "system")
