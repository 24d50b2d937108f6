"""Core owns the plan: task names, kinds, upstream and jobs come from ``plan`` for every runner,
and ``execute`` is the one way a task runs (a map step with no shards: exit 2 naming it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlpipe.core import INFERENCE, InferenceConfig
from mlpipe.core.errors import ConfigError, MlpipeError, StepFailedError
from mlpipe.core.execution import get_runner
from mlpipe.core.execution.execute import execute, retryable
from mlpipe.core.execution.plan import plan
from mlpipe.core.pipeline import child_env
from tests.conftest import ROOT
from tests.support.plan_pipelines import FUSED, PLAN_PIPELINE, PlanConfig

NAMES = ["numbers__split", "square__shards", "square__shard", "square",
         "add_one__shards", "add_one__shard", "add_one", "total"]


def _config(**changes: object) -> PlanConfig:
    cfg = PlanConfig.model_validate({"runtime": {"fuse": FUSED, "retries": 2}, **changes})
    return cfg


def test_plan_names_kinds_and_upstream() -> None:
    tasks = plan(PLAN_PIPELINE, _config())
    assert list(tasks.names) == NAMES
    assert [t.kind for t in tasks] == ["group", "shard_list", "shard", "gather",
                                      "shard_list", "shard", "gather", "step"]
    up = {t.name: t.upstream for t in tasks}
    assert up["square__shards"] == ("numbers__split",)
    assert up["square__shard"] == ("square__shards",)
    assert up["square"] == ("numbers__split", "square__shard")
    assert up["add_one__shards"] == ("numbers__split", "square")
    assert up["total"] == ("add_one",)
    assert tasks.task("numbers__split").steps == ("numbers", "split")
    assert all(t.retries == 2 for t in tasks)
    assert tasks.task("total").sources == {"add_one": "add_one"}
    assert tasks.task("add_one__shard").sources == {"square": "square",
                                                    "numbers": "numbers__split"}


def test_plan_describes_each_task_and_refuses_another_pipelines_config() -> None:
    """What every orchestrator's UI shows per task comes from the plan."""
    tasks = plan(INFERENCE, InferenceConfig())
    step = INFERENCE.step("run_inference").description
    assert step and tasks.task("run_inference__shard").description == step
    assert tasks.task("save_results").description == INFERENCE.step("save_results").description
    assert tasks.task("run_inference__shards").description == "The shards run_inference runs over"
    with pytest.raises(ConfigError, match="a 'counting' config cannot drive the 'inference'"):
        plan(INFERENCE, InferenceConfig.model_construct(pipeline="counting"))


def test_plan_without_fuse_and_for_inference() -> None:
    assert plan(PLAN_PIPELINE, PlanConfig()).names[:2] == ("numbers", "split")
    cfg = InferenceConfig.model_validate(
        {"runtime": {"fuse": [["load_inference_data", "split_inference_data", "load_model"]]}})
    assert list(plan(INFERENCE, cfg).names) == [
        "load_inference_data__split_inference_data__load_model", "run_inference__shards",
        "run_inference__shard", "run_inference", "save_results"]


def test_select_finds_tasks_and_fused_steps_and_refuses_unknown_names() -> None:
    tasks = plan(PLAN_PIPELINE, _config())
    assert [t.name for t in tasks.select(["total", "split"])] == ["numbers__split", "total"]
    assert tasks.task_of("square").kind == "gather"
    with pytest.raises(ConfigError, match="no task 'nope'") as err:
        tasks.select(["nope"])
    assert err.value.exit_code == 2


def test_job_is_json_and_a_shard_number_goes_with_shard_tasks_only() -> None:
    tasks = plan(PLAN_PIPELINE, _config())
    job = tasks.task("square__shard").job("r1", runner="x", shard=2, attempt=3,
                                          orchestrator_run_id="o1")
    assert json.loads(json.dumps(job)) == job
    assert job["pipeline"] == "tests.support.plan_pipelines:PLAN_PIPELINE"
    assert (job["kind"], job["steps"], job["shard"], job["attempt"]) == ("shard", ["square"], 2, 3)
    assert PlanConfig.model_validate(job["config"]) == _config()
    with pytest.raises(ValueError):
        tasks.task("square__shard").job("r1")
    with pytest.raises(ValueError):
        tasks.task("total").job("r1", shard=0)


def test_container_slots_are_filled_per_run_and_shard() -> None:
    cfg = _config(cluster={"volume_claim": "data"})
    tasks = plan(PLAN_PIPELINE, cfg)
    shard = tasks.task("square__shard").container(PLAN_PIPELINE).filled(run_id="r9", shard=1)
    assert shard.args[:6] == ("step", "square", "--pipeline",
                              "tests.support.plan_pipelines:PLAN_PIPELINE", "--run-id", "r9")
    assert shard.args[-2:] == ("--shard", "1") and shard.name == "square-shard-0001"
    group = tasks.task("numbers__split").container(PLAN_PIPELINE).filled(run_id="r9")
    assert group.args[1] == "numbers__split" and group.name == "numbers-split"
    listing = tasks.task("square__shards").container(PLAN_PIPELINE, plan_out="/x.json")
    assert listing.args[-3:] == ("--plan", "--plan-out", "/x.json")


def test_retry_policy_never_retries_bad_input() -> None:
    assert not retryable(ConfigError("x")) and not retryable(2)
    assert retryable(MlpipeError("x")) and retryable(1) and retryable(137)


def test_child_env_puts_the_pipelines_import_root_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = child_env(PLAN_PIPELINE)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(ROOT), "/elsewhere"]
    assert "PYTHONPATH" not in child_env(INFERENCE, {})


# -- the local runner and `python -m ... execute` on the plan ---------------------------------


def _total(run_dir: Path) -> int:
    result = json.loads((run_dir / "total" / "result.json").read_text())
    return int(json.loads(Path(result["ref"]["uri"]).read_text())[0])


#: the local runner's other way to run shards: a process each (their inputs are bytes, not MiB)
PROCESSES = {"runtime": {"in_process_shards_mib": 0}}


def _shard_pids(home: Path, run_id: str, step: str = "square") -> list[int]:
    folder = home / "runs" / "plan_test" / run_id / step
    return [json.loads(p.read_text())["pid"] for p in sorted(folder.glob("shard-*/result.json"))]


def test_local_runner_runs_every_task_kind(home: Path) -> None:
    """Shards that fit in memory run in this process, the others a process each: the same
    outputs and hashes either way."""
    fused = get_runner("local").run(PLAN_PIPELINE, _config(), home=home, run_id="in-process")
    plain = get_runner("local").run(PLAN_PIPELINE, PlanConfig.model_validate(PROCESSES),
                                    home=home, use_cache=False, run_id="processes")
    assert _total(fused.run_dir) == sum(v * v + 1 + 7 for v in range(7)) == 147
    assert [s.step for s in fused.steps] == list(PLAN_PIPELINE.step_names)
    assert {s.step: s.ref.sha256 for s in fused.steps} == {s.step: s.ref.sha256
                                                           for s in plain.steps}
    assert len(list((fused.run_dir / "add_one").glob("shard-*/result.json"))) == 3
    assert _shard_pids(home, "in-process") == [os.getpid()] * 3  # no interpreter started
    assert len(set(_shard_pids(home, "processes"))) == 3
    assert os.getpid() not in _shard_pids(home, "processes")


def test_local_runner_serves_cached_shards_without_starting_a_process(home: Path) -> None:
    config = PlanConfig.model_validate(PROCESSES)  # misses: a process each
    first = get_runner("local").run(PLAN_PIPELINE, config, home=home, run_id="shards-1")
    again = get_runner("local").run(PLAN_PIPELINE, config, home=home, run_id="shards-2")
    assert len(set(_shard_pids(home, "shards-1"))) == 3
    assert os.getpid() not in _shard_pids(home, "shards-1")
    assert _shard_pids(home, "shards-2") == [os.getpid()] * 3  # served here: nothing started
    assert all(s.cached for s in again.steps)
    assert [s.ref.sha256 for s in again.steps] == [s.ref.sha256 for s in first.steps]


def test_a_failed_shard_process_fails_the_run_and_resume_reruns_only_it(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shard that fails in its own process fails the run naming it; ``--resume`` (here with
    the shards in this process: the mode is not part of any key) reruns that shard alone."""
    monkeypatch.setenv("MLPIPE_FAULT", "raise:shard:square:1")  # inherited by shard processes
    with pytest.raises(StepFailedError, match=r"shard 1 of 3 \(shard-0001\): injected"):
        get_runner("local").run(PLAN_PIPELINE, PlanConfig.model_validate(PROCESSES), home=home,
                                run_id="fault")
    square = home / "runs" / "plan_test" / "fault" / "square"
    assert (square / "shard-0001" / "error.json").is_file()
    assert not (square / "result.json").exists()
    first = [square / f"shard-000{i}" / "result.json" for i in (0, 2)]
    assert all(p.is_file() for p in first)
    assert os.getpid() not in _shard_pids(home, "fault")
    outputs = [square / f"shard-000{i}" / "values.json" for i in (0, 2)]
    written = [p.stat().st_mtime_ns for p in outputs]
    monkeypatch.delenv("MLPIPE_FAULT")
    resumed = get_runner("local").run(PLAN_PIPELINE, PlanConfig(), home=home, run_id="fault",
                                      resume=True)
    cached = [json.loads((square / f"shard-000{i}" / "result.json").read_text())["cached"]
              for i in range(3)]
    assert cached == [True, False, True]  # shard 1 alone ran again
    assert [p.stat().st_mtime_ns for p in outputs] == written  # the others' outputs untouched
    assert _total(resumed.run_dir) == 147
    assert _shard_pids(home, "fault")[1] == os.getpid()  # the rerun: in this process


def test_ctrl_c_in_a_shard_run_here_records_it_and_stops_the_run(home: Path) -> None:
    """Ctrl-C (the CLI turns SIGTERM into the same) while a shard runs in this process: the
    shard records the interruption (exit 130, no outputs), no later shard starts, the run is
    recorded as failed, and KeyboardInterrupt reaches the caller."""
    from mlpipe.core.pipeline import Pipeline, Step
    from tests.support import plan_pipelines as p

    def square(config: PlanConfig, ctx: Any, part: Any) -> Any:
        if ctx.out_dir.name == "shard-0001":
            raise KeyboardInterrupt
        return p.square(config, ctx, part)

    pipeline = Pipeline("plan_test", PlanConfig, steps=(
        *PLAN_PIPELINE.steps[:2],
        Step("square", square, "plan_squares", "squared", inputs={"part": "split"},
             map_over="split")))
    with pytest.raises(KeyboardInterrupt):
        get_runner("local").run(pipeline, PlanConfig(), home=home, run_id="ctrl-c")
    run = home / "runs" / "plan_test" / "ctrl-c"
    assert (run / "square" / "shard-0000" / "result.json").is_file()
    error = json.loads((run / "square" / "shard-0001" / "error.json").read_text())
    assert error["exit_code"] == 130 and error["error_type"] == "KeyboardInterrupt"
    assert sorted(p.name for p in (run / "square" / "shard-0001").iterdir()) == ["error.json"]
    assert not (run / "square" / "shard-0002").exists()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and record["error"]["exit_code"] == 130


@pytest.mark.parametrize("parts", [0, -1])
def test_a_map_step_without_shards_exits_2_naming_it_locally(home: Path, parts: int) -> None:
    with pytest.raises(MlpipeError) as err:
        get_runner("local").run(PLAN_PIPELINE, _config(parts=parts), home=home)
    assert err.value.exit_code == 2
    assert "step 'square'" in str(err.value)
    record = json.loads(next((home / "runs" / "plan_test").glob("*/run.json")).read_text())
    assert record["status"] == "failed" and record["error"]["exit_code"] == 2


def test_execute_entry_point_runs_a_task_in_a_fresh_process(home: Path) -> None:
    tasks = plan(PLAN_PIPELINE, _config(parts=0))
    first = execute(tasks.task("numbers__split").job("r1", home=str(home)))
    assert set(first.runs) == {"numbers", "split"}
    job = tasks.task("square__shards").job("r1", home=str(home))
    proc = subprocess.run([sys.executable, "-m", "mlpipe.core.execution.execute"],
                          input=json.dumps(job), text=True, capture_output=True,
                          env=child_env(PLAN_PIPELINE), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "step 'square'" in proc.stderr and "no shards" in proc.stderr


def test_floor_protocol_local_floor_and_a_runner_without_one(tmp_path: Path) -> None:
    from mlpipe.core.execution.floor import floor_tasks
    from mlpipe.core.execution.runner import Launch, Runner

    class NoFloor(Runner):
        name = "no-floor"

        def launch(self, *args: object, **kwargs: object) -> Launch:
            return Launch()

    tasks = floor_tasks(plan(PLAN_PIPELINE, _config()), {"square": 3, "add_one": 2})
    assert [(t.name, t.shards) for t in tasks if t.kind == "shard"] == [
        ("square__shard", 3), ("add_one__shard", 2)]
    assert NoFloor().floor(tasks, "plan_test", tmp_path) is None
    floor = get_runner("local").floor(tasks, "plan_test", tmp_path)
    assert floor is not None and floor.tasks == 6 + 3 + 2


def test_mlpipe_step_runs_a_group_by_name_and_a_whole_map_step(home: Path) -> None:
    """`mlpipe step` (what a pod runs) takes any task of the plan: a fused group by its name, a
    map step by its step name (all shards, then the gather), and refuses no shards with exit 2."""
    def step(name: str, cfg: PlanConfig, *flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlpipe", "step", name, *flags, "--pipeline",
             "tests.support.plan_pipelines:PLAN_PIPELINE", "--run-id", "r1", "--config-json",
             cfg.model_dump_json(), "--home", str(home)],
            capture_output=True, text=True, cwd=ROOT, env=child_env(PLAN_PIPELINE), timeout=300)

    group = step("numbers__split", _config())
    assert group.returncode == 0, group.stderr
    assert set(json.loads(group.stdout.splitlines()[-1])) == {"numbers", "split"}
    square = step("square", _config())
    assert square.returncode == 0, square.stderr
    assert len(json.loads(square.stdout.splitlines()[-1])["ref"]["shards"]) == 3
    listing = step("square", _config(), "--plan")
    assert json.loads(listing.stdout.splitlines()[-1]) == [0, 1, 2]
    assert step("numbers__split", _config(parts=0)).returncode == 0
    refused = step("square", _config(parts=0), "--plan")
    assert refused.returncode == 2 and "step 'square'" in refused.stderr


def test_a_module_that_runs_its_pipeline_when_imported_fails_instead_of_forking_forever(
        tmp_path: Path) -> None:
    # every shard process imports the pipeline's module again: without the guard, each import
    # started a whole new run, whose shards imported it again, without end
    (tmp_path / "runs_at_import.py").write_text(
        "import tests.support.plan_pipelines as p\n"
        "from mlpipe.core.execution.runner import run_pipeline\n"
        "from mlpipe.core.pipeline import Pipeline, Step\n"
        "PIPELINE = Pipeline('plan_test', p.PlanConfig, steps=(\n"
        "    Step('numbers', p.numbers, 'plan_numbers', '0..n-1'),\n"
        "    Step('split', p.split, 'plan_parts', 'parts', inputs={'values': 'numbers'}),\n"
        "    Step('square', p.square, 'plan_squares', 'squared', inputs={'part': 'split'},\n"
        "         map_over='split')))\n"
        # a process per shard (the guard's case): shards run in the runner's process import
        # nothing again
        "run_pipeline(PIPELINE, p.PlanConfig(runtime={'in_process_shards_mib': 0}), "
        f"home={str(tmp_path / 'home')!r})\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT),
                                                       os.environ.get("PYTHONPATH", "")])}
    ran = subprocess.run([sys.executable, "-c", "import runs_at_import"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=180, check=False)
    assert ran.returncode != 0
    assert "square" in ran.stderr
    assert 'if __name__ == "__main__"' in ran.stderr + "".join(
        p.read_text(errors="replace") for p in (tmp_path / "home").rglob("*.json"))
