"""Each runner declares, as data, what it does with every setting it may not honour; a config
that uses one it ignores is named before a run (the benchmark prints it as not honoured here).
Every runner's declarations, and whether they hold: tests/runners/test_honours.py."""

from __future__ import annotations

import pytest

from mlpipe.core.execution.honours import SETTINGS, declared, not_honoured, on_this_machine
from tests.support.plan_pipelines import PLAN_PIPELINE, PlanConfig


def test_a_config_using_an_ignored_setting_is_named() -> None:
    honours = {"retries": ("ignored", "no retries here"), "side_by_side_shards": ("applied", "")}
    cfg = PlanConfig.model_validate({"runtime": {"retries": 2}})
    found = {name: level for name, level, _ in not_honoured(honours, PLAN_PIPELINE, cfg)}
    assert found == {"retries": "ignored"}  # resources/timeout/gpu: left at their defaults
    plain = PlanConfig.model_validate({})
    assert not_honoured({"side_by_side_shards": ("applied", "")}, PLAN_PIPELINE, plain) == []
    # the plan pipeline has map steps: a runner that runs shards one after another says so
    assert [n for n, *_ in not_honoured({}, PLAN_PIPELINE, plain)] == ["side_by_side_shards"]


def test_mlpipe_run_warns_only_for_ignored_settings_the_config_sets() -> None:
    from mlpipe.core.execution.honours import ignored_settings

    honours = {"resources": ("ignored", "no limits here"), "timeout": ("ignored", "no deadline"),
               "retries": ("applied", ""), "side_by_side_shards": ("ignored", "in turn")}
    plain = PlanConfig.model_validate({})
    assert ignored_settings(honours, PLAN_PIPELINE, plain) == []  # shape-derived: no warning
    cfg = PlanConfig.model_validate({"cluster": {"resources": {"cpu": "2"}},
                                     "runtime": {"timeout_s": 60, "retries": 2}})
    assert ignored_settings(honours, PLAN_PIPELINE, cfg) == [
        ("cluster.resources, cluster.step_resources (cpu/memory)", "no limits here"),
        ("runtime.timeout_s", "no deadline")]
    steps = PlanConfig.model_validate({"cluster": {"step_resources": {"square": {"gpu": 1}}}})
    assert {n for n, *_ in not_honoured({}, PLAN_PIPELINE, steps)} >= {"resources", "gpu"}
    # in cluster mode every step is a pod that carries them all: nothing to name
    pods = cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update={"mode": "kubernetes"})})
    assert not_honoured({}, PLAN_PIPELINE, pods) == []


def test_declared_lists_every_setting() -> None:
    assert set(declared({"retries": ("applied", "")})) == set(SETTINGS)


def test_a_runner_declares_only_what_differs_from_every_runner_on_this_machine() -> None:
    honours = on_this_machine(retries=("applied", "the orchestrator's retries"))
    assert set(honours) == {"resources", "gpu", "retries"}
    assert honours["retries"] == ("applied", "the orchestrator's retries")
    assert honours["resources"][0] == honours["gpu"][0] == "ignored"
    with pytest.raises(ValueError, match="unknown settings \\['retry'\\]"):
        on_this_machine(retry=("applied", "a typo"))
