"""A fresh orchestrator home starts from a copy of a migrated DB when its template variable names
one (the test suite's per-worker Airflow template), never over a DB that is already there; a
migration runs once per orchestrator version."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipe.core.errors import ConfigError
from mlpipe.core.execution.metadb import MARKER, migrate_once, seed_home

TEMPLATE_ENV = "MLPIPE_TEST_DB_TEMPLATE"


def seed_db(home: Path) -> bool:
    return seed_home(TEMPLATE_ENV, home, "airflow.db")


def _template(path: Path) -> Path:
    path.mkdir()
    (path / "airflow.db").write_bytes(b"migrated db")
    (path / MARKER).write_text("3.1.0")
    return path


def test_a_fresh_home_gets_a_copy_of_the_template_db_and_its_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TEMPLATE_ENV, str(_template(tmp_path / "template")))
    home = tmp_path / "home" / "airflow"
    assert seed_db(home)
    assert (home / "airflow.db").read_bytes() == b"migrated db"
    assert (home / MARKER).read_text() == "3.1.0"
    assert not list(home.glob(".airflow.db.copy"))


def test_an_existing_db_is_never_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEMPLATE_ENV, str(_template(tmp_path / "template")))
    home = tmp_path / "airflow"
    home.mkdir()
    (home / "airflow.db").write_bytes(b"this home's runs")
    assert not seed_db(home)
    assert (home / "airflow.db").read_bytes() == b"this home's runs"


def test_without_the_variable_nothing_is_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TEMPLATE_ENV, raising=False)
    assert not seed_db(tmp_path / "airflow")
    assert not (tmp_path / "airflow").exists()


def test_a_template_without_a_migrated_db_is_a_config_error_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(TEMPLATE_ENV, str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match=TEMPLATE_ENV):
        seed_db(tmp_path / "airflow")
    assert not (tmp_path / "airflow").exists()


def test_a_migration_runs_once_per_version(tmp_path: Path) -> None:
    runs: list[str] = []
    assert migrate_once(tmp_path, "3.1.0", lambda: runs.append("3.1.0")) >= 0
    assert migrate_once(tmp_path, "3.1.0", lambda: runs.append("again")) == 0.0
    migrate_once(tmp_path, "3.2.0", lambda: runs.append("3.2.0"))  # an upgrade migrates again
    assert runs == ["3.1.0", "3.2.0"] and (tmp_path / MARKER).read_text() == "3.2.0"
