"""The Dagster adapter, run for real: in-process jobs, blocking checks, the CLI. (`dagster dev`
serving the shipped code location is tests/system/test_dagster_dev.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Literal

import pytest

from mlpipe.core import (
    INFERENCE,
    TRAINING,
    CheckResult,
    DataError,
    InferenceConfig,
    Pipeline,
    PipelineSettings,
    QualityGateError,
    Ref,
    Step,
    StepContext,
    StepFailedError,
    TrainingConfig,
    config_from_json,
    get_runner,
    load_config,
    open_registry,
)
from mlpipe.core.hashing import sha256_file
from tests.support import TINY_INFERENCE, TINY_TRAINING, tiny_config_files, venv_env
from tests.support.shared_runs import SharedRuns

dg = pytest.importorskip("dagster")

from mlpipe.adapters.dagster.build import build_definitions  # noqa: E402

MODULE = "mlpipe.adapters.dagster.definitions"
RUNNER = get_runner("dagster")


# -- a user pipeline: its own config, steps, reference type and check; nothing built in ----------


class CountConfig(PipelineSettings):
    pipeline: Literal["dagster_counting"] = "dagster_counting"
    n: int = 5
    max_total: int = 100


class CountRef(Ref):
    kind: Literal["dagster_test_count"] = "dagster_test_count"
    total: int


def _count_ref(ctx: StepContext, value: Any, total: int, *checks: CheckResult) -> CountRef:
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.out_dir / "value.json"
    path.write_text(json.dumps(value))
    return CountRef(uri=str(path), sha256=sha256_file(path), total=total, checks=checks)


def make_numbers(config: CountConfig, ctx: StepContext) -> CountRef:
    return _count_ref(ctx, list(range(config.n)), config.n)


def add_up(config: CountConfig, ctx: StepContext, numbers: CountRef) -> CountRef:
    total = sum(json.loads(Path(numbers.uri).read_text()))
    check = CheckResult(name="total_in_range", passed=total <= config.max_total, blocking=True,
                        message=f"total {total} vs at most {config.max_total}")
    return _count_ref(ctx, total, total, check)


def report(config: CountConfig, ctx: StepContext, numbers: CountRef, total: CountRef) -> CountRef:
    return _count_ref(ctx, {"n": numbers.total, "total": total.total}, total.total)


COUNTING = Pipeline("dagster_counting", CountConfig, steps=(
    Step("make_numbers", make_numbers, "numbers", "0..n-1", config_sections=("n",)),
    Step("add_up", add_up, "number_total", "their sum", inputs={"numbers": "make_numbers"},
         config_sections=("max_total",), checks=("total_in_range",)),
    Step("report", report, "count_report", "both", inputs={"numbers": "make_numbers",
                                                          "total": "add_up"}),
))


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A persistent Dagster instance for this test, so runs and materializations can be read."""
    path = tmp_path / "dagster_home"
    path.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(path))
    return path


def _csv_config(tmp_path: Path, rows: list[tuple[str, str]]) -> TrainingConfig:
    path = tmp_path / "train.csv"
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows))
    sets = ["data.source=files", f"data.path={path}", "training.epochs=1"]
    cfg = load_config(TINY_TRAINING, sets)
    assert isinstance(cfg, TrainingConfig)
    return cfg


# -- definitions: generated from core's Pipeline description ----------------------------------


def test_definitions_mirror_the_pipelines(
    tiny_training: TrainingConfig, tiny_inference: InferenceConfig, home: Path
) -> None:
    pairs = [(TRAINING, tiny_training), (INFERENCE, tiny_inference), (COUNTING, CountConfig())]
    defs = build_definitions(pairs, home=home)
    graph = defs.resolve_asset_graph()
    for pipeline, cfg in pairs:
        for step in pipeline.steps:
            key = dg.AssetKey(step.asset)
            node = graph.get(key)
            assert node.group_name == pipeline.name
            upstream = {pipeline.step(s).asset for s in step.upstream}
            assert {k.to_user_string() for k in node.parent_keys} == upstream
            checks = {c.name: c for c in defs.resolve_assets_def(key).check_specs}
            assert set(checks) == set(pipeline.checks_for(step.name, cfg))
            assert all(c.blocking for c in checks.values())
    assert "label_balance" in TRAINING.checks_for("load_training_data", tiny_training)
    assert TRAINING.checks_for("train_model", tiny_training) == ("min_eval_accuracy",)
    assert COUNTING.checks_for("add_up", CountConfig()) == ("total_in_range",)
    for name in ("training", "inference"):
        job = defs.resolve_job_def(f"mlpipe_{name}")
        assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
            s.asset for s in (TRAINING if name == "training" else INFERENCE).steps
        }
        schedule = defs.resolve_schedule_def(f"mlpipe_{name}_schedule")
        assert schedule.cron_schedule == {"training": "0 3 * * 0", "inference": "0 5 * * *"}[name]
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_job_def("mlpipe_dagster_counting")
    assert not [s for s in defs.schedules or [] if "counting" in s.name]  # no schedule asked for
    resource = defs.resources["mlpipe"]
    for pipeline, cfg in pairs:
        assert config_from_json(resource.config_json(pipeline.name), pipeline.config_type) == cfg
    assert Path(resource.home) == home.resolve()


# -- the runner: real in-process Dagster runs ---------------------------------------------------


@pytest.mark.slow
def test_runner_materializes_both_jobs(
    shared_runs: SharedRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the worker's shared Dagster runs (tests/support/shared_runs.py): a training that
    publishes v3, then an inference of v3 under an explicit run id; the instance is theirs."""
    runs = shared_runs("dagster")
    home, train = runs.home, runs.training
    monkeypatch.setenv("DAGSTER_HOME", str(runs.dagster_home))  # the instance the runs wrote
    assert train.runner == "dagster"
    assert [s.step for s in train.steps] == list(TRAINING.step_names)
    dagster_run_id = train.extra["orchestrator_run_id"]
    assert dagster_run_id and train.run_id != dagster_run_id  # mlpipe's run id, passed as a tag
    assert set(train.extra["task_seconds"]) == set(TRAINING.step_names)
    assert all(s > 0 for s in train.extra["task_seconds"].values())
    assert set(train.extra["task_states"].values()) == {"success"}  # Dagster's step stats
    assert train.extra["asset_checks"]["trained_model"] == {"min_eval_accuracy": True}
    assert (train.run_dir / "run.json").is_file()
    version = train.final
    assert version.spec == "tiny-sentiment:v3"

    with dg.DagsterInstance.get() as instance:  # the run and its metadata are in DAGSTER_HOME
        run = instance.get_run_by_id(dagster_run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["mlpipe/run_id"] == train.run_id
        records = instance.get_records_for_run(
            dagster_run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        materialized = {}  # this run's own materializations (later runs made their own)
        for record in records:
            event = record.event_log_entry.dagster_event
            assert event is not None and event.asset_key is not None
            materialized[event.asset_key.to_user_string()] = event.materialization

        def meta(asset: str) -> dict[str, Any]:
            assert asset in materialized, (asset, sorted(materialized))
            return {k: getattr(v, "value", v) for k, v in materialized[asset].metadata.items()}

        data = meta("training_data")
        assert (data["rows/train"], data["rows/eval"], data["dagster/row_count"]) == (225, 75, 300)
        assert data["mlpipe/run_id"] == train.run_id
        model = meta("trained_model")
        assert 0 <= model["metrics/eval_accuracy"] <= 1
        assert meta("model_artifacts")["sha256"] == train.outputs["save_artifacts"].sha256
        registered = meta("registered_model")
        assert (registered["model_version"], registered["version"]) == ("tiny-sentiment:v3", 3)

    infer = runs.inference
    assert infer.run_id == "dagster-infer"  # a passed run id wins; Dagster's is kept in extra
    assert infer.extra["orchestrator_run_id"] != infer.run_id
    assert infer.final.rows == 100
    assert infer.final.model == "tiny-sentiment:v3"
    saved = home / "runs" / "inference" / "dagster-infer" / "save_results" / "result.json"
    assert saved.is_file()


@pytest.mark.slow
@pytest.mark.parametrize(("rows", "check"), [  # one-class data and empty texts are exit 2 now
    ([(f"a fine film number {i}", ["negative", "positive"][i % 2]) for i in range(40)],
     "label_balance"),  # "neutral" has no rows
])
def test_blocking_check_stops_downstream(
    tmp_path: Path, home: Path, dagster_home: Path, rows: list[tuple[str, str]], check: str
) -> None:
    cfg = _csv_config(tmp_path, rows)
    labels = {"label_names": ["negative", "positive", "neutral"]}
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update=labels)})
    with pytest.raises(StepFailedError, match=check) as info:
        RUNNER.run(TRAINING, cfg, home=home, run_id="gated")
    assert info.value.step == "load_training_data"
    assert isinstance(info.value.cause, QualityGateError)
    _assert_failed_run(home / "runs" / "training" / "gated", TRAINING, "load_training_data",
                       check)
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.FAILURE
    record = json.loads((home / "runs" / "training" / "gated" / "run.json").read_text())
    assert record["extra"]["asset_checks"]["training_data"][check] is False  # as Dagster saw it
    states = record["extra"]["task_states"]  # Dagster's step stats, per plan task
    assert states["load_training_data"] == "failed"
    assert all(states[t] in ("skipped", "not_run")
               for t in ("train_model", "save_artifacts", "upload_model"))
    assert open_registry(cfg.registry, home).versions() == []  # nothing published


def test_bad_data_fails_with_its_exit_code(tmp_path: Path, home: Path) -> None:
    cfg = _csv_config(tmp_path, [(f"film {i}", "maybe") for i in range(20)])
    with pytest.raises(StepFailedError, match="outside the labels") as info:
        RUNNER.run(TRAINING, cfg, home=home, run_id="bad")
    assert (info.value.step, info.value.exit_code) == ("load_training_data", 2)
    assert isinstance(info.value.cause, DataError)
    run_dir = home / "runs" / "training" / "bad"
    _assert_failed_run(run_dir, TRAINING, "load_training_data", "outside the labels")
    assert sorted(p.name for p in run_dir.rglob("*") if p.is_file()) == ["error.json", "run.json"]
    assert open_registry(cfg.registry, home).versions() == []


def _assert_failed_run(run_dir: Path, pipeline: Pipeline, step: str, message: str) -> None:
    """run.json says failed and names the step; no step after it left anything behind."""
    record = json.loads((run_dir / "run.json").read_text())
    assert (record["status"], record["failed_step"]) == ("failed", step)
    assert message in record["error"]["message"]
    later = pipeline.step_names[pipeline.step_names.index(step) + 1:]
    assert [s for s in later if (run_dir / s).exists()] == []


# -- a user pipeline on the runner and in the code location --------------------------------------


def test_user_pipeline_runs_and_its_check_gates(home: Path) -> None:
    run = RUNNER.run(COUNTING, CountConfig(n=5), home=home, run_id="ok")
    assert [s.step for s in run.steps] == list(COUNTING.step_names)
    assert isinstance(run.final, CountRef) and run.final.total == 10
    assert run.extra["asset_checks"]["number_total"] == {"total_in_range": True}
    assert set(run.extra["task_seconds"]) == set(COUNTING.step_names)
    with pytest.raises(StepFailedError, match="total_in_range") as info:
        RUNNER.run(COUNTING, CountConfig(n=50), home=home, run_id="too_big")
    assert info.value.step == "add_up" and isinstance(info.value.cause, QualityGateError)
    _assert_failed_run(home / "runs" / "dagster_counting" / "too_big", COUNTING, "add_up",
                       "1225")


def test_code_location_serves_pipelines_named_in_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlpipe.adapters.dagster.definitions import configs_from_env

    path = tmp_path / "counting.yaml"
    path.write_text("pipeline: dagster_counting\nn: 7\n")
    monkeypatch.setenv("MLPIPE_PIPELINES", f"{__name__}:COUNTING")
    monkeypatch.setenv("MLPIPE_DAGSTER_COUNTING_CONFIG", str(path))
    pairs = dict((p.name, c) for p, c in configs_from_env())
    assert list(pairs) == ["training", "inference", "dagster_counting"]
    assert pairs["dagster_counting"] == CountConfig(n=7)
    assert pairs["training"] == TrainingConfig()


# -- the shipped code location --------------------------------------------------------------------


@pytest.mark.slow
def test_definitions_validate(tmp_path: Path, home: Path) -> None:
    env = {**venv_env(), **tiny_config_files(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    ok = subprocess.run(["dagster", "definitions", "validate", "-m", MODULE], env=env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    env["MLPIPE_TRAINING_CONFIG"] = str(TINY_INFERENCE)  # wrong pipeline: a clear load error
    bad = subprocess.run(["dagster", "definitions", "validate", "-m", MODULE], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert "needs a 'training' config" in bad.stdout + bad.stderr


def test_refs_are_kept_per_run_so_concurrent_runs_do_not_mix(tmp_path: Path) -> None:
    """A step reads its own run's upstream reference first, the asset's latest only as fallback."""
    from mlpipe.adapters.dagster.assets import RefIOManager

    manager = RefIOManager(home=str(tmp_path))
    key = dg.AssetKey("training_data")
    for run_id, value in (("run-a", {"uri": "a"}), ("run-b", {"uri": "b"})):
        manager.handle_output(dg.build_output_context(asset_key=key, run_id=run_id), value)
    upstream = dg.build_output_context(asset_key=key, run_id="run-a")
    loaded = manager.load_input(dg.build_input_context(asset_key=key, upstream_output=upstream))
    assert loaded == {"uri": "a"}  # run a's own data, though run b wrote later
    other = dg.build_output_context(asset_key=key, run_id="run-c")
    assert manager.load_input(
        dg.build_input_context(asset_key=key, upstream_output=other)
    ) == {"uri": "b"}  # nothing from run c: the latest


def test_floor_is_native_assets_with_the_runs_checks_on_the_runs_kind_of_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dagster's floor declares each step's checks as asset checks and, with ``DAGSTER_HOME``
    set (the runner then writes to sqlite), runs on a sqlite instance of its own in the work
    folder: the check evaluations are in that instance's event log."""
    from dagster._core.instance.ref import InstanceRef

    from mlpipe.adapters.dagster.floor import dagster_floor
    from mlpipe.bench.floor import Node, plan_shape

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "user-home"))  # no floor run stored there
    tasks = plan_shape([Node("a", [], None, ("rows", "labels")), Node("b", ["a"], 2),
                        Node("c", ["a", "b"])], "fanout")
    floor = dagster_floor(tasks, "fanout", tmp_path)
    assert floor.tasks == 6 and floor.seconds > 0
    assert not (tmp_path / "user-home" / "history").exists()  # (Dagster's telemetry id may be)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path))) as instance:
        (run,) = instance.get_runs()
        evaluations = instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    assert sorted((e.dagster_event.event_specific_data.asset_key.to_user_string(),
                   e.dagster_event.event_specific_data.check_name,
                   e.dagster_event.event_specific_data.passed) for e in evaluations) == [
        ("a", "labels", True), ("a", "rows", True)]
