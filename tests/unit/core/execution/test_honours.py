"""Each runner declares, as data, what it does with every setting it may not honour; a config
that uses one it ignores is named before a run (the benchmark prints it as not honoured here)."""

from __future__ import annotations

import pytest

from mlpipe.core import plugins
from mlpipe.core.execution.honours import SETTINGS, declared, not_honoured, on_this_machine
from tests.support.plan_pipelines import PLAN_PIPELINE, PlanConfig


@pytest.mark.parametrize("runner", plugins.names("runner"))
def test_every_runner_declares_every_setting(runner: str) -> None:
    honours = plugins.load("runner", runner).honours
    assert set(honours) == set(SETTINGS), runner
    for level, why in honours.values():
        assert level in ("applied", "approximated", "ignored") and why
    assert set(declared(honours)) == set(SETTINGS)


def test_a_config_using_an_ignored_setting_is_named() -> None:
    honours = {"retries": ("ignored", "no retries here"), "side_by_side_shards": ("applied", "")}
    cfg = PlanConfig.model_validate({"runtime": {"retries": 2}})
    found = {name: level for name, level, _ in not_honoured(honours, PLAN_PIPELINE, cfg)}
    assert found == {"retries": "ignored"}  # resources/timeout/gpu: left at their defaults
    plain = PlanConfig.model_validate({})
    assert not_honoured({"side_by_side_shards": ("applied", "")}, PLAN_PIPELINE, plain) == []
    # the plan pipeline has map steps: a runner that runs shards one after another says so
    assert [n for n, *_ in not_honoured({}, PLAN_PIPELINE, plain)] == ["side_by_side_shards"]


def test_a_runner_declares_only_what_differs_from_every_runner_on_this_machine() -> None:
    honours = on_this_machine(retries=("applied", "the orchestrator's retries"))
    assert set(honours) == {"resources", "gpu", "retries"}
    assert honours["retries"] == ("applied", "the orchestrator's retries")
    assert honours["resources"][0] == honours["gpu"][0] == "ignored"
    with pytest.raises(ValueError, match="unknown settings \\['retry'\\]"):
        on_this_machine(retry=("applied", "a typo"))
