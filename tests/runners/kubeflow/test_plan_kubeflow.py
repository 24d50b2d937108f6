"""The plan on kfp.local: the test pipeline with a fused group and two map steps gives the local
runner's outputs, and a map step without shards exits 2 naming it (kfp failed with a KeyError
there before the shard list became core's ``shard_list`` task)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpipe.core.errors import StepFailedError
from mlpipe.core.execution import get_runner
from tests.support.plan_pipelines import FUSED, PLAN_PIPELINE, PlanConfig

pytest.importorskip("kfp")


def _config(**changes: object) -> PlanConfig:
    return PlanConfig.model_validate({"runtime": {"fuse": FUSED}, **changes})


@pytest.mark.slow
def test_kubeflow_runs_the_plan_as_the_local_runner_does(home: Path) -> None:
    local = get_runner("local").run(PLAN_PIPELINE, _config(), home=home, run_id="local-1")
    run = get_runner("kubeflow").run(PLAN_PIPELINE, _config(), home=home, run_id="kfp-1",
                                     use_cache=False)
    assert {s.step: s.ref.sha256 for s in run.steps} == {s.step: s.ref.sha256
                                                         for s in local.steps}
    assert [len(s.ref.refs) for s in run.steps if s.step in ("square", "add_one")] == [3, 3]


@pytest.mark.slow
@pytest.mark.parametrize("parts", [0, -1])
def test_kubeflow_no_shards_exits_2_naming_the_step(home: Path, parts: int) -> None:
    cfg = _config(parts=parts)
    with pytest.raises(StepFailedError) as err:
        get_runner("kubeflow").run(PLAN_PIPELINE, cfg, home=home, run_id="none-1")
    assert err.value.exit_code == 2 and err.value.step == "square"
    record = json.loads((home / "runs" / "plan_test" / "none-1" / "run.json").read_text())
    assert record["failed_step"] == "square" and record["error"]["exit_code"] == 2
