"""The plan on every orchestrator: the test pipeline with a fused group and two map steps gives
the local runner's outputs (``use_cache=False`` recomputes them, a rerun is served from the
cache), and a map step without shards (none, or not a shard list) exits 2 naming it, never
tried again whatever ``runtime.retries`` says (kfp failed with a KeyError there, Airflow and
Dagster gathered nothing and succeeded, before core owned the shard list)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from mlpipe.core.errors import StepFailedError
from mlpipe.core.execution import PipelineRun, get_runner
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
    _assert_shards_as_declared(run, runner)
    again = get_runner(runner).run(PLAN_PIPELINE, _config(), home=home, run_id=f"{runner}-2")
    assert all(s.cached for s in again.steps)
    assert {s.step: s.ref.sha256 for s in again.steps} == {s.step: s.ref.sha256 for s in run.steps}
    if runner == "dagster":  # once: records are records, whichever orchestrator wrote them
        _assert_runs_diff(home, runner)


def _assert_shards_as_declared(run: PipelineRun, runner: str) -> None:
    """The runner's declaration (``Runner.honours``) against what this run did: a runner that
    says it runs a map step's shards one after another must show no two shards' windows
    (step entry to record written, from each shard's result.json) overlapping."""
    level = type(get_runner(runner)).honours["side_by_side_shards"][0]
    run_dir = Path(run.run_dir)
    windows = sorted((r["timings"]["entered"], r["ended"]) for r in (
        json.loads(p.read_text()) for p in run_dir.glob("square/shard-*/result.json")))
    assert len(windows) == 3
    overlap = any(later[0] < earlier[1] for earlier, later in itertools.pairwise(windows))
    if level == "ignored":
        assert not overlap, (runner, windows)


def _assert_runs_diff(home: Path, runner: str) -> None:
    """``mlpipe runs diff`` across two runners, on the runs this test already made: same config,
    code and environment, every step's timings side by side, every output (shards too) equal;
    then against a run whose config differs. No extra orchestrated run."""
    import subprocess
    import sys

    from tests.support import venv_env

    def diff(a: str, b: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mlpipe", "runs", "diff", a, b,
                               "--home", str(home), *extra],
                              capture_output=True, text=True, env=venv_env(), timeout=120)

    proc = diff("local-1", f"{runner}-1", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["runners"] == ["local", runner]
    assert data["config"] == {} and data["code"] == {} and data["environment"] == {}
    assert [s["step"] for s in data["steps"]] == ["numbers", "split", "square", "add_one", "total"]
    assert all(s["same_output"] and None not in s["seconds"] for s in data["steps"])
    assert data["identical_outputs"]
    text = diff("local-1", f"{runner}-2").stdout
    assert f"via {runner})" in text and "config: same" in text and "identical outputs" in text
    assert text.count("c  same") >= 5  # B's steps came from the cache, marked c
    missing = diff("local-1", "nope-1")
    assert missing.returncode == 2 and "nope-1" in missing.stderr


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
