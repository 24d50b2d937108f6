"""mlpipe.core and mlpipe.core.execution export their names lazily (PEP 562): every listed
name resolves to the object its module defines, and nothing unlisted does."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

import mlpipe.core
import mlpipe.core.execution


@pytest.mark.parametrize("package", [mlpipe.core, mlpipe.core.execution])
def test_every_exported_name_resolves_to_its_modules_object(package: Any) -> None:
    where = package._WHERE
    assert set(where) <= set(package.__all__)
    for name in package.__all__:
        value = getattr(package, name)
        if name in where:
            module = importlib.import_module(f"{package.__name__}.{where[name]}")
            assert value is getattr(module, name)
        assert name in dir(package)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        package.nope  # noqa: B018


def test_plan_is_the_function_even_after_its_submodule_is_imported() -> None:
    importlib.import_module("mlpipe.core.execution.plan")
    from mlpipe.core.execution import plan

    assert callable(plan) and plan.__module__ == "mlpipe.core.execution.plan"
