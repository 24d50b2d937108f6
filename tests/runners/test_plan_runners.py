"""The plan on every orchestrator: the test pipeline with a fused group and two map steps gives
the local runner's outputs (``use_cache=False`` recomputes them, a rerun is served from the
cache), and a map step without shards (none, or not a shard list) exits 2 naming it, never
tried again whatever ``runtime.retries`` says (kfp failed with a KeyError there, Airflow and
Dagster gathered nothing and succeeded, before core owned the shard list)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpipe.core.errors import StepFailedError
from mlpipe.core.execution import get_runner
from tests.support.plan_pipelines import FUSED, PLAN_PIPELINE, PlanConfig

RUNNERS = ["airflow", "dagster", "kubeflow"]
PLAN_TASKS = {"numbers__split", "square__shards", "square__shard", "square",
              "add_one__shards", "add_one__shard", "add_one", "total"}


def _config(**changes: object) -> PlanConfig:
    return PlanConfig.model_validate({"runtime": {"fuse": FUSED}, **changes})


@pytest.mark.slow
@pytest.mark.parametrize("runner", RUNNERS)
def test_the_plan_runs_as_the_local_runner_runs_it(home: Path, runner: str) -> None:
    local = get_runner("local").run(PLAN_PIPELINE, _config(), home=home, run_id="local-1")
    run = get_runner(runner).run(PLAN_PIPELINE, _config(), home=home, run_id=f"{runner}-1",
                                 use_cache=False)
    assert {s.step: s.ref.sha256 for s in run.steps} == {s.step: s.ref.sha256
                                                         for s in local.steps}
    assert [len(s.ref.refs) for s in run.steps if s.step in ("square", "add_one")] == [3, 3]
    states = run.extra["task_states"]
    assert set(states) == PLAN_TASKS and set(states.values()) == {"success"}
    assert not any(s.cached for s in run.steps)  # use_cache=False: the local run's entries unused
    again = get_runner(runner).run(PLAN_PIPELINE, _config(), home=home, run_id=f"{runner}-2")
    assert all(s.cached for s in again.steps)
    assert {s.step: s.ref.sha256 for s in again.steps} == {s.step: s.ref.sha256 for s in run.steps}


@pytest.mark.slow
@pytest.mark.parametrize("parts", [0, -1])
@pytest.mark.parametrize("runner", RUNNERS)
def test_no_shards_exits_2_naming_the_step_without_retries(home: Path, runner: str,
                                                           parts: int) -> None:
    cfg = _config(parts=parts, runtime={"fuse": FUSED, "retries": 1, "retry_delay_s": 0})
    with pytest.raises(StepFailedError) as err:
        get_runner(runner).run(PLAN_PIPELINE, cfg, home=home, run_id="none-1")
    assert err.value.exit_code == 2 and err.value.step == "square"
    record = json.loads((home / "runs" / "plan_test" / "none-1" / "run.json").read_text())
    assert record["failed_step"] == "square" and record["error"]["exit_code"] == 2
    if runner == "airflow":  # the one runner that reports its tries in the message
        assert "try 1 of 2" in str(err.value)
