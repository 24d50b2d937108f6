"""Plan facts adapters read instead of deriving them again: which tasks an orchestrator's own
cache may serve, the upstream order shard and gather tasks are translated by, and the reference
kind a step declares."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mlpipe.core.execution.plan import TaskSpec, plan
from mlpipe.core.pipeline import Pipeline, Step
from mlpipe.core.refs import ModelRef, Ref, ShardsRef
from tests.support.plan_pipelines import FUSED, PLAN_PIPELINE, PlanConfig, ValuesRef

if TYPE_CHECKING:
    from mlpipe.core.refs import DatasetRef


def _tasks(pipeline: Pipeline = PLAN_PIPELINE) -> dict[str, TaskSpec]:
    cfg = PlanConfig.model_validate({"runtime": {"fuse": FUSED}})
    return {t.name: t for t in plan(pipeline, cfg)}


def test_an_orchestrator_cache_may_serve_only_whole_work_of_cacheable_steps() -> None:
    cacheable = {name: t.cacheable for name, t in _tasks().items()}
    assert cacheable == {
        "numbers__split": True, "square__shards": False, "square__shard": True, "square": False,
        "add_one__shards": False, "add_one__shard": True, "add_one": False, "total": True}
    # one step that always runs takes its group (or its shards) out of any cache
    steps = tuple(replace(s, cacheable=False) if s.name in ("split", "square") else s
                  for s in PLAN_PIPELINE.steps)
    tasks = _tasks(Pipeline("plan_test", PlanConfig, steps))
    assert not tasks["numbers__split"].cacheable
    assert not tasks["square__shard"].cacheable
    assert tasks["add_one__shard"].cacheable


def test_a_shard_follows_its_list_alone_and_a_gather_lists_its_shards_last() -> None:
    tasks = _tasks()
    for step in ("square", "add_one"):
        assert tasks[f"{step}__shard"].upstream == (f"{step}__shards",)
        assert tasks[step].upstream[-1] == f"{step}__shard"
    assert tasks["add_one"].upstream == ("numbers__split", "square", "add_one__shard")


def made_model(config: object, ctx: object) -> ModelRef:
    raise AssertionError("never run")


def made_nothing_typed(config: object, ctx: object):  # no return annotation: the case
    raise AssertionError("never run")


def made_unresolvable(config: object, ctx: object) -> DatasetRef:  # only under TYPE_CHECKING
    raise AssertionError("never run")


def test_a_step_declares_the_reference_kind_it_returns() -> None:
    returns = {s.name: s.returns for s in PLAN_PIPELINE.steps}
    assert returns == {"numbers": ValuesRef, "split": Ref, "square": ValuesRef,
                       "add_one": ValuesRef, "total": ValuesRef}
    assert Step("m", made_model, "m", "").returns is ModelRef
    # no annotation, one that names no Ref, one that does not resolve: Ref itself, still runnable
    assert Step("n", made_nothing_typed, "n", "").returns is Ref
    assert Step("s", lambda c, x: ShardsRef, "s", "").returns is Ref
    assert Step("u", made_unresolvable, "u", "").returns is Ref
