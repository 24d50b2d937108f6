"""Shared fixtures: an isolated mlpipe home and the tiny configs every test builds on.

Helpers to import live in :mod:`tests.support`; each tier (unit, integration, runners, system)
has its own conftest that marks its tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipe.core import InferenceConfig, TrainingConfig, load_config
from tests.support import (  # noqa: F401  (re-exported: older test files import them from here)
    ROOT,
    TINY_INFERENCE,
    TINY_TRAINING,
    assert_failed_run,
    make_artifact,
    venv_env,
)
from tests.support.homes import migrated_airflow_home
from tests.support.markers import make_scheduler, mark_runners, order_by_group


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Runner markers (``-m airflow``) from the folder or the runner parameter; the tier
    markers come from each tier's own conftest. Then the longest work units first."""
    mark_runners(items)
    order_by_group(items)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Work units of :func:`tests.support.markers.group_of`: one per runner, else the file."""
    return make_scheduler(config, log)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never touch the network: hub lookups fail fast, W&B stays local."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def airflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated Airflow metadata DB per worker, built on its first Airflow test."""
    return migrated_airflow_home(tmp_path_factory.mktemp("airflow-template"))


@pytest.fixture(autouse=True)
def _airflow_db_from_template(request: pytest.FixtureRequest,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """An Airflow test's fresh Airflow homes start from a copy of the worker's migrated DB
    (``MLPIPE_AIRFLOW_DB_TEMPLATE``; subprocesses inherit it) instead of migrating each time."""
    if request.node.get_closest_marker("airflow") is not None:
        template = request.getfixturevalue("airflow_db_template")
        monkeypatch.setenv("MLPIPE_AIRFLOW_DB_TEMPLATE", str(template))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty mlpipe home for this test (also exported as MLPIPE_HOME for subprocesses)."""
    path = tmp_path / "home"
    monkeypatch.setenv("MLPIPE_HOME", str(path))
    return path


@pytest.fixture
def tiny_training() -> TrainingConfig:
    cfg = load_config(TINY_TRAINING, ["data.generated.n_samples=300", "training.epochs=1"])
    assert isinstance(cfg, TrainingConfig)
    return cfg


@pytest.fixture
def tiny_inference() -> InferenceConfig:
    cfg = load_config(TINY_INFERENCE, ["data.generated.n_samples=100"])
    assert isinstance(cfg, InferenceConfig)
    return cfg
