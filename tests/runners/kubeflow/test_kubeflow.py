"""Kubeflow adapter: the compiled kfp v2 YAML, and real kfp.local runs of both pipelines."""

from __future__ import annotations

import importlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("kfp")

from mlpipe.adapters.kubeflow.compiler import compile_pipeline, step_outputs
from mlpipe.core import (
    INFERENCE,
    TRAINING,
    ConfigError,
    InferenceConfig,
    StepFailedError,
    TrainingConfig,
    config_from_json,
    get_runner,
    load_config,
)
from mlpipe.core.execution import load_step_result
from mlpipe.core.pipeline import portable_ref
from tests.support import TINY_TRAINING
from tests.support.shared_runs import SharedRuns

#: A user pipeline: its own config type (no task/data/registry) and its own reference kinds, one
#: with metrics and one without.
USER_PIPELINE = textwrap.dedent('''
    import json
    from pathlib import Path
    from typing import Literal
    from mlpipe.core.config import PipelineSettings
    from mlpipe.core.errors import DataError
    from mlpipe.core.pipeline import Pipeline, Step
    from mlpipe.core.refs import Ref

    class CountConfig(PipelineSettings):
        pipeline: Literal["counting"] = "counting"
        n: int = 3

    class NumbersRef(Ref):
        kind: Literal["kfp_test_numbers"] = "kfp_test_numbers"
        count: int

    class TotalRef(Ref):
        kind: Literal["kfp_test_total"] = "kfp_test_total"
        total: int
        metrics: dict[str, float] = {}

    def make(config: CountConfig, ctx) -> NumbersRef:
        if config.n < 0:
            raise DataError(f"n: cannot count to {config.n}")
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        path = ctx.out_dir / "numbers.json"
        path.write_text(json.dumps(list(range(config.n))))
        return NumbersRef(uri=str(path), sha256="-", count=config.n)

    def add(config: CountConfig, ctx, numbers: NumbersRef) -> TotalRef:
        total = sum(json.loads(Path(numbers.uri).read_text()))
        return TotalRef(uri=numbers.uri, sha256="-", total=total, metrics={"total": total})

    PIPELINE = Pipeline("counting", CountConfig, steps=(
        Step("make", make, asset="numbers", description="0..n-1"),
        Step("add", add, asset="total", description="their sum", inputs={"numbers": "make"}),
    ))
''')


@pytest.fixture
def user_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp_path / "kfp_user_pipeline.py").write_text(USER_PIPELINE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module("kfp_user_pipeline")


def _load_yaml(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline spec and the platform (kubernetes) spec of a compiled file."""
    docs = list(yaml.safe_load_all(path.read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else {})


def _executor_source(spec: dict[str, Any], task: str) -> str:
    container = spec["deploymentSpec"]["executors"][f"exec-{task}"]["container"]
    return "\n".join(container["command"])


@pytest.mark.parametrize("pipeline", [TRAINING, INFERENCE], ids=["training", "inference"])
def test_compiled_yaml_has_one_component_per_step_and_config_parameters(
    pipeline: Any, tiny_training: TrainingConfig, tiny_inference: InferenceConfig,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kfp import components

    monkeypatch.setenv("WANDB_API_KEY", "sk-secret-never-in-yaml")
    cfg = tiny_training if pipeline is TRAINING else tiny_inference
    out = compile_pipeline(pipeline, cfg, tmp_path / "p.yaml")
    text = out.read_text()
    assert "sk-secret-never-in-yaml" not in text

    spec, platform = _load_yaml(out)
    tasks = {s.name.replace("_", "-"): s for s in pipeline.steps}  # kfp's task names
    # a map step: <step>-shards lists the shards, a ParallelFor runs <step>-shard, <step> gathers
    mapped = [t for t, s in tasks.items() if s.map_over]
    loops = {f"{t}-shards" for t in mapped} | {f"for-loop-{i + 1}" for i in range(len(mapped))}
    assert set(spec["components"]) == {f"comp-{t}" for t in (*tasks, *loops)} | {
        f"comp-{t}-shard" for t in mapped}
    assert set(spec["root"]["dag"]["tasks"]) == set(tasks) | loops
    for i, name in enumerate(mapped):
        loop = spec["root"]["dag"]["tasks"][f"for-loop-{i + 1}"]
        items = loop["parameterIterator"]["items"]["inputParameter"]
        assert items.endswith(f"{name}-shards-Output")
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"config_json", "mlpipe_home", "run_id"}
    assert config_from_json(params["config_json"]["defaultValue"]) == cfg
    for name, item in tasks.items():
        task = spec["root"]["dag"]["tasks"][name]
        # upstream steps arrive as typed artifacts, in the order core declares them
        arts = task["inputs"].get("artifacts", {})
        producers = {a: arts[a]["taskOutputArtifact"]["producerTask"] for a in arts}
        if name in mapped:  # the gather takes the loop's collected outputs, and is never cached
            assert producers == {"shard_results": f"for-loop-{mapped.index(name) + 1}"}
        else:
            assert producers == {a: s.replace("_", "-") for a, s in item.inputs.items()}
        assert task["inputs"]["parameters"]["job_name"]["runtimeValue"]["constant"] == (
            "{{$.pipeline_job_name}}")
        assert task["cachingOptions"].get("enableCache", False) is (
            item.cacheable and name not in mapped)
        # the body is a call into the adapter's run_task -> core's execute, nothing else
        source = _executor_source(spec, name)
        assert f"run_task({pipeline.name!r}, {item.name!r}" in source
        assert "pip install" not in source
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert {e["activeDeadlineSeconds"] for e in executors.values()} == {"3600"}

    # kfp itself reads the file back as a component with the same parameters
    loaded = components.load_component_from_file(str(out))
    assert set(loaded.component_spec.inputs or {}) == {"config_json", "mlpipe_home", "run_id"}


def test_compiled_artifact_types_and_runtime_policy(
    tiny_training: TrainingConfig, tiny_inference: InferenceConfig, tmp_path: Path
) -> None:
    cfg = tiny_training.model_copy(update={"runtime": tiny_training.runtime.model_copy(
        update={"retries": 2, "retry_delay_s": 5.0, "cache": False})})
    spec, _ = _load_yaml(compile_pipeline(TRAINING, cfg, tmp_path / "t.yaml"))

    def outputs(spec: dict[str, Any], task: str) -> dict[str, str]:
        arts = spec["components"][f"comp-{task}"]["outputDefinitions"]["artifacts"]
        return {k: v["artifactType"]["schemaTitle"] for k, v in arts.items()}

    assert outputs(spec, "load-training-data") == {"training_data": "system.Dataset"}
    assert outputs(spec, "train-model") == {"trained_model": "system.Model",
                                            "metrics": "system.Metrics"}
    assert outputs(spec, "upload-model") == {"registered_model": "system.Model"}
    for task in spec["root"]["dag"]["tasks"].values():
        assert task["retryPolicy"]["maxRetryCount"] == 2
        assert task["retryPolicy"]["backoffDuration"] == "5s"
        assert not task["cachingOptions"].get("enableCache", False)  # runtime.cache: false

    spec, _ = _load_yaml(compile_pipeline(INFERENCE, tiny_inference, tmp_path / "i.yaml"))
    assert outputs(spec, "run-inference") == {"predictions": "system.Dataset",
                                              "metrics": "system.Metrics"}
    assert outputs(spec, "save-results") == {"inference_report": "system.Dataset",
                                             "metrics": "system.Metrics",
                                             "confusion_matrix": "system.ClassificationMetrics"}
    assert "retryPolicy" not in spec["root"]["dag"]["tasks"]["save-results"]  # retries: 0


def test_compile_refuses_a_config_of_the_other_pipeline(
    tiny_inference: InferenceConfig, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="cannot drive the 'training' pipeline"):
        compile_pipeline(TRAINING, tiny_inference, tmp_path / "x.yaml")


def test_user_pipeline_compiles_with_generic_artifacts(
    user_pipeline: Any, tmp_path: Path
) -> None:
    """Any pipeline compiles: unknown reference types are plain kfp Artifacts, with a Metrics
    output only where the reference has metrics; the body imports the pipeline by its ref."""
    pipeline = user_pipeline.PIPELINE
    assert [{k: v.__name__ for k, v in step_outputs(s).items()} for s in pipeline.steps] == [
        {"numbers": "Artifact"}, {"total": "Artifact", "metrics": "Metrics"}]
    cfg = user_pipeline.CountConfig()
    spec, _ = _load_yaml(compile_pipeline(pipeline, cfg, tmp_path / "u.yaml"))
    arts = spec["components"]["comp-add"]["outputDefinitions"]["artifacts"]
    assert {k: v["artifactType"]["schemaTitle"] for k, v in arts.items()} == {
        "total": "system.Artifact", "metrics": "system.Metrics"}
    assert "run_task('kfp_user_pipeline:PIPELINE', 'add'" in _executor_source(spec, "add")
    # the runner's compile() is the same YAML
    again = get_runner("kubeflow").compile(pipeline, cfg, tmp_path / "v.yaml")
    assert _load_yaml(again)[0] == spec

    def untyped(config: Any, ctx: Any) -> Any:
        raise AssertionError("never called")

    from mlpipe.core.pipeline import Pipeline, Step

    loose = Pipeline("loose", user_pipeline.CountConfig,
                     steps=(Step("x", untyped, asset="out", description=""),))
    assert {k: v.__name__ for k, v in step_outputs(loose.steps[0]).items()} == {"out": "Artifact"}


@pytest.mark.slow
def test_local_kfp_runs_training_then_inference(shared_runs: SharedRuns) -> None:
    """On the worker's shared kfp.local runs (tests/support/shared_runs.py): a training that
    publishes v3, its cached rerun, then an inference."""
    runs = shared_runs("kubeflow")
    home, run = runs.home, runs.training
    assert run.runner == "kubeflow"
    assert [s.step for s in run.steps] == list(TRAINING.step_names)
    assert run.extra["warm_tasks"] == 4  # each component's job ran in the run's warm worker
    assert runs.seen == [(s, state) for s in TRAINING.step_names for state in ("running", "done")]
    # kfp's run name is the orchestrator's run id; mlpipe's run id went in as a kfp parameter
    assert run.extra["orchestrator_run_id"].startswith("mlpipe-training-")
    assert run.extra["orchestrator_run_id"] == Path(run.extra["kfp_run_dir"]).name
    assert set(run.extra["task_seconds"]) == set(TRAINING.step_names)
    assert set(run.extra["task_states"].values()) == {"success"}
    assert not any(s.cached for s in run.steps)
    for s in run.steps:  # what kfp passed along is what the step recorded in the mlpipe run dir
        assert load_step_result(home, "training", run.run_id, s.step).ref == s.ref
    version = run.final
    assert version.kind == "model_version" and version.version == 3  # type: ignore[attr-defined]
    record = json.loads((run.run_dir / "run.json").read_text())
    assert record["status"] == "succeeded"
    assert record["orchestrator_run_id"] == run.extra["orchestrator_run_id"]

    # metrics as a kfp Metrics artifact, the reference in the model artifact's file + metadata
    train = run.extra["tasks"]["train_model"]["artifacts"]
    assert {"eval_accuracy", "eval_f1", "eval_loss", "train_loss"} <= set(
        train["metrics"]["metadata"])
    model_art = train["trained_model"]
    assert json.loads(Path(model_art["uri"]).read_text())["sha256"] == run.steps[1].ref.sha256
    assert model_art["metadata"]["sha256"] == run.steps[1].ref.sha256
    assert model_art["metadata"]["run_id"] == run.run_id

    # no ML logic in the adapter: the same config trains the same weights as the local runner
    local = shared_runs("local").training
    assert local.steps[1].ref.sha256 == run.steps[1].ref.sha256

    # a second run serves the cacheable steps from mlpipe's step cache; upload_model always runs
    # (the registry sees identical artifacts and keeps v3)
    again = runs.again
    assert again.run_id == "kubeflow-again"
    assert [s.cached for s in again.steps] == [True, True, True, False]
    assert again.final.version == 3  # type: ignore[attr-defined]
    assert again.final.sha256 == version.sha256  # type: ignore[attr-defined]

    inf = runs.inference
    assert [s.step for s in inf.steps] == list(INFERENCE.step_names)
    report = inf.extra["tasks"]["save_results"]["artifacts"]
    metrics = report["metrics"]["metadata"]
    assert {"accuracy", "f1", "throughput", "rows"} <= set(metrics)
    assert metrics["rows"] == 100
    assert "throughput" in inf.extra["tasks"]["run_inference"]["artifacts"]["metrics"]["metadata"]
    matrix = report["confusion_matrix"]["metadata"]["confusionMatrix"]
    assert [a["displayName"] for a in matrix["annotationSpecs"]] == ["negative", "positive"]
    counts = [row["row"] for row in matrix["rows"]]
    assert sum(map(sum, counts)) == 100
    assert (counts[0][0] + counts[1][1]) / 100 == pytest.approx(metrics["accuracy"])
    assert inf.final.kind == "results" and inf.final.rows == 100  # type: ignore[attr-defined]
    assert (inf.run_dir / "run.json").is_file()


@pytest.mark.slow
def test_bad_data_fails_naming_the_component_and_publishes_nothing(
    home: Path, tmp_path: Path
) -> None:
    csv = tmp_path / "no_label.csv"
    csv.write_text("text,sentiment\n" + "great film,1\nawful film,0\n" * 20)
    cfg = load_config(TINY_TRAINING, ["data.source=files", f"data.path={csv}"])
    with pytest.raises(StepFailedError) as info:
        get_runner("kubeflow").run(TRAINING, cfg, home=home, run_id="bad-data")
    err = info.value
    assert err.step == "load_training_data"
    assert err.exit_code == 2
    assert "label" in str(err) and type(err.cause).__name__ == "DataError"
    assert not (home / "registry").exists() or not any((home / "registry").rglob("*.json"))
    # the run is recorded as failed, naming the step; no step left outputs, only its error
    run_dir = home / "runs" / "training" / "bad-data"
    left = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()}
    assert left == {"run.json", "load_training_data/error.json"}
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed" and record["failed_step"] == "load_training_data"
    assert record["error"]["type"] == "DataError" and record["error"]["exit_code"] == 2
    assert record["orchestrator_run_id"].startswith("mlpipe-training-")
    assert record["extra"]["task_states"]["load_training_data"] == "failure"
    assert record["extra"]["task_states"]["train_model"] == "not_run"


@pytest.mark.slow
def test_user_pipeline_runs_on_kfp_local(user_pipeline: Any, home: Path) -> None:
    """A pipeline importable here runs in kfp's component processes: its own config and refs."""
    pipeline, config_type = user_pipeline.PIPELINE, user_pipeline.CountConfig
    runner = get_runner("kubeflow")
    run = runner.run(pipeline, config_type(n=5), home=home, run_id="sum-1")
    assert [s.step for s in run.steps] == ["make", "add"]
    assert run.extra["warm_tasks"] == 2  # the server imported the user's module too
    assert run.final.kind == "kfp_test_total" and run.final.total == 10  # type: ignore[attr-defined]
    assert run.extra["tasks"]["add"]["artifacts"]["metrics"]["metadata"] == {"total": 10.0}
    assert set(run.extra["task_seconds"]) == {"make", "add"}
    record = json.loads((run.run_dir / "run.json").read_text())
    assert record["pipeline_ref"] == portable_ref(pipeline) == "kfp_user_pipeline:PIPELINE"

    with pytest.raises(StepFailedError) as info:
        runner.run(pipeline, config_type(n=-1), home=home, run_id="sum-bad")
    assert info.value.step == "make" and info.value.exit_code == 2
    assert "cannot count to -1" in str(info.value)
    record = json.loads((home / "runs" / "counting" / "sum-bad" / "run.json").read_text())
    assert record["status"] == "failed" and record["failed_step"] == "make"
