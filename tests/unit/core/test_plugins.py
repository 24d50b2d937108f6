"""A missing optional library names the mlpipe extra that brings it, read from the package
metadata (core keeps no table of plugin names)."""

from __future__ import annotations

import pytest

from mlpipe.core import plugins
from mlpipe.core.errors import ConfigError


def test_the_extra_for_a_module_comes_from_the_package_metadata() -> None:
    assert plugins.extra_for("kfp") == "kubeflow"
    assert plugins.extra_for("dagster_k8s") == "dagster"
    assert plugins.extra_for("airflow") == "airflow"  # apache-airflow
    assert plugins.extra_for("matplotlib") == "bench"
    assert plugins.extra_for("numpy") is None  # a base requirement, in no extra


def test_a_missing_optional_library_is_a_config_error_naming_what_to_install() -> None:
    with pytest.raises(ConfigError, match=r"the X backend needs the no_such_lib package: "
                                          r"pip install 'mlpipe\[no_such_lib\]'") as info:
        plugins.import_optional("no_such_lib", "the X backend")
    assert info.value.exit_code == 2
    assert plugins.import_optional("json", "anything").dumps([]) == "[]"
