"""System tier: containers, services (MLflow server, orchestrator UIs) and `bench --deployed`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.markers import mark_tier


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tier(items, Path(__file__).parent, "system")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``mlflow server`` per worker for every file here (test_mlflow, the registry
    contract): defined once, so pytest builds it once (a module importing another module's
    fixture gets a second definition, and a second server)."""
    pytest.importorskip("mlflow")
    from tests.system.test_registry_contract import start_mlflow_server

    proc, uri = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    yield uri
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except Exception:
        proc.kill()
