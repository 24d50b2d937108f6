"""A fresh Airflow home starts from a copy of a migrated DB when ``MLPIPE_AIRFLOW_DB_TEMPLATE``
names one (the test suite's per-worker template), never over a DB that is already there."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipe.adapters.airflow._dagtest import MARKER
from mlpipe.adapters.airflow.runner import TEMPLATE_ENV, seed_db
from mlpipe.core.errors import ConfigError


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
