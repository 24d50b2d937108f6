"""The suite's xdist work units (tests/support/markers.py): a runner's tests stay on one worker,
every other test with its file (a file of FILE_UNITS whatever its runner parameters)."""

from __future__ import annotations

import pytest

from tests.support.markers import group_of


@pytest.mark.parametrize(("nodeid", "unit"), [
    ("tests/runners/airflow/test_airflow.py::test_x", "airflow"),
    ("tests/runners/test_shards.py::test_y[kubeflow]", "kubeflow"),
    ("tests/runners/test_cache_any_pipeline.py::test_z[dagster]", "dagster"),
    ("tests/integration/test_text_to_sql.py::test_t[airflow]", "airflow"),
    ("tests/runners/test_shards.py::test_y[local]", "tests/runners/test_shards.py"),
    ("tests/system/test_bench.py::test_floor[kubeflow]", "tests/system/test_bench.py"),
    ("tests/system/test_registry_contract.py::test_p[mlflow-server]", "mlflow server"),
    ("tests/system/test_mlflow.py::test_training_is_tracked", "mlflow server"),
    ("tests/runners/test_cluster.py::test_rendered_pod_specs[training-airflow]",
     "tests/runners/test_cluster.py"),
    ("tests/runners/test_cluster.py::test_refused[kubeflow]", "tests/runners/test_cluster.py"),
    ("tests/integration/test_faults.py::test_i[2-130-interrupted (Ctrl-C)]",
     "tests/integration/test_faults.py"),
])  # fmt: skip
def test_a_runner_is_one_unit_any_other_test_stays_with_its_file(nodeid: str, unit: str) -> None:
    assert group_of(nodeid) == unit
