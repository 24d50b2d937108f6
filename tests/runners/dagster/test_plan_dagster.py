"""The plan on Dagster (``materialize`` in process): the test pipeline with a fused group and two
map steps gives the local runner's outputs, and a map step without shards exits 2 naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpipe.core.errors import StepFailedError
from mlpipe.core.execution import get_runner
from tests.support.plan_pipelines import FUSED, PLAN_PIPELINE, PlanConfig

pytest.importorskip("dagster")


def _config(**changes: object) -> PlanConfig:
    return PlanConfig.model_validate({"runtime": {"fuse": FUSED}, **changes})


@pytest.mark.slow
def test_dagster_runs_the_plan_as_the_local_runner_does(home: Path) -> None:
    local = get_runner("local").run(PLAN_PIPELINE, _config(), home=home, run_id="local-1")
    run = get_runner("dagster").run(PLAN_PIPELINE, _config(), home=home, run_id="dagster-1",
                                    use_cache=False)
    assert {s.step: s.ref.sha256 for s in run.steps} == {s.step: s.ref.sha256
                                                         for s in local.steps}
    states = run.extra["task_states"]
    assert set(states) == {"numbers__split", "square__shards", "square__shard", "square",
                           "add_one__shards", "add_one__shard", "add_one", "total"}
    assert set(states.values()) == {"success"}
    assert run.extra["map_states"]["add_one__shard"] == ["success"] * 3


@pytest.mark.slow
def test_dagster_no_shards_exits_2_naming_the_step_without_retries(home: Path) -> None:
    cfg = _config(parts=0, runtime={"fuse": FUSED, "retries": 1, "retry_delay_s": 0})
    with pytest.raises(StepFailedError) as err:
        get_runner("dagster").run(PLAN_PIPELINE, cfg, home=home, run_id="none-1")
    assert err.value.exit_code == 2 and err.value.step == "square"
    assert "made no shards" in str(err.value)
    record = json.loads((home / "runs" / "plan_test" / "none-1" / "run.json").read_text())
    assert record["failed_step"] == "square" and record["error"]["exit_code"] == 2
