"""Core's orchestrator-neutral pieces the adapters share: task instance facts, the reference
store, reference summaries, served pipelines and rendered pod files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipe.core.errors import ConfigError
from mlpipe.core.execution.facts import Instance, task_facts
from mlpipe.core.refs import CheckResult, Ref
from mlpipe.core.refstore import RefStore
from mlpipe.core.served import config_env, listed


def test_instances_fold_into_task_facts() -> None:
    facts = task_facts([
        Instance("load", "success", 10.0, 12.0, seconds=1.5, tries=1),
        Instance("run__shard", "success", 13.0, 15.0, tries=1, index=1),
        Instance("run__shard", "failed", 12.5, 14.0, tries=2, index=0),
    ])
    assert facts["load"].seconds == 1.5 and facts["load"].map_states == ()
    shard = facts["run__shard"]
    assert (shard.state, shard.started, shard.seconds, shard.tries) == ("failed", 12.5, 2.5, 2)
    assert shard.map_states == ("failed", "success")  # map index order


def test_ref_store_reads_its_own_run_first_then_the_latest(tmp_path: Path) -> None:
    store = RefStore(tmp_path)
    store.put("a/b", "run-1", {"uri": "1"})
    store.put("a/b", "run-2", {"uri": "2"})
    assert store.get("a/b", "run-1") == {"uri": "1"}
    assert store.get("a/b", "run-3") == {"uri": "2"}
    with pytest.raises(ConfigError, match="materialize it first"):
        store.get("c", None)


def test_a_reference_summarizes_itself() -> None:
    class Counted(Ref):
        kind: str = "counted_test"
        rows: dict[str, int]
        tags: tuple[str, ...]

    ref = Counted(uri="/x", sha256="s", rows={"train": 3, "eval": 1}, tags=("a",))
    assert ref.summary() == {"kind": "counted_test", "uri": "/x", "sha256": "s",
                             "rows/train": 3, "rows/eval": 1, "tags": ["a"], "row_count": 4}
    check = CheckResult(name="c", passed=True, value=0.5)
    assert check.facts() == {"blocking": False, "value": 0.5}


def test_served_pipeline_settings_are_named_alike_everywhere() -> None:
    assert config_env("my-pipe") == "MLPIPE_MY_PIPE_CONFIG"
    assert listed(" training, ,x:Y ") == ["training", "x:Y"]


def test_a_plan_task_the_orchestrator_never_reported_is_not_run() -> None:
    from mlpipe.core.execution.runner import TaskFacts, _facts
    from tests.support.plan_pipelines import PLAN_PIPELINE, PlanConfig

    extra = _facts(PLAN_PIPELINE, PlanConfig(), {
        "numbers": TaskFacts("success", 1.0, 10.0), "split": TaskFacts("failed", 2.0, 11.0)})
    assert extra["task_states"] == {"numbers": "success", "split": "failed", **dict.fromkeys(
        ("square__shards", "square__shard", "square", "add_one__shards", "add_one__shard",
         "add_one", "total"), "not_run")}
    assert extra["task_started"] == {"numbers": 10.0, "split": 11.0}
    assert _facts(PLAN_PIPELINE, PlanConfig(), {}) == {}  # a runner that reports no tasks
