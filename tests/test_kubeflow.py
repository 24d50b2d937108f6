"""Kubeflow adapter: the compiled kfp v2 YAML, and real kfp.local runs of both pipelines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("kfp")

from mlpipe.adapters.kubeflow import compile_pipeline
from mlpipe.adapters.kubeflow.compiler import plan
from mlpipe.adapters.kubeflow.runner import run_pipeline
from mlpipe.core import (
    INFERENCE,
    TRAINING,
    ConfigError,
    InferenceConfig,
    StepFailedError,
    TrainingConfig,
    config_from_json,
    load_config,
)
from mlpipe.core import run_pipeline as run_local
from mlpipe.core.runner import load_step_result
from tests.conftest import TINY_TRAINING


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
    tasks = {p.task_name: p for p in plan(pipeline)}
    assert set(spec["components"]) == {f"comp-{t}" for t in tasks}
    assert set(spec["root"]["dag"]["tasks"]) == set(tasks)
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"config_json", "mlpipe_home", "run_id"}
    assert config_from_json(params["config_json"]["defaultValue"]) == cfg
    for name, item in tasks.items():
        task = spec["root"]["dag"]["tasks"][name]
        # upstream steps arrive as typed artifacts, in the order core declares them
        arts = task["inputs"].get("artifacts", {})
        assert {a: arts[a]["taskOutputArtifact"]["producerTask"] for a in arts} == {
            a: s.replace("_", "-") for a, s in item.step.inputs.items()}
        assert task["inputs"]["parameters"]["job_name"]["runtimeValue"]["constant"] == (
            "{{$.pipeline_job_name}}")
        assert task["cachingOptions"].get("enableCache", False) is item.step.cacheable
        # the body is a call into the adapter's run_component -> execute_step, nothing else
        source = _executor_source(spec, name)
        assert f"run_component({pipeline.name!r}, {item.step.name!r}" in source
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


@pytest.mark.slow
def test_local_kfp_runs_training_then_inference(
    home: Path, tiny_training: TrainingConfig, tiny_inference: InferenceConfig, tmp_path: Path
) -> None:
    run = run_pipeline(TRAINING, tiny_training, home=home)
    assert run.runner == "kubeflow"
    assert [s.step for s in run.steps] == list(TRAINING.step_names)
    assert run.run_id == run.extra["orchestrator_run_id"]  # kfp's run name is the run id
    assert run.run_id.startswith("mlpipe-training-")
    assert set(run.extra["task_seconds"]) == set(TRAINING.step_names)
    assert all(t["state"] == "SUCCESS" for t in run.extra["tasks"].values())
    assert not any(s.cached for s in run.steps)
    for s in run.steps:  # what kfp passed along is what the step recorded in the mlpipe run dir
        assert load_step_result(home, "training", run.run_id, s.step).ref == s.ref
    version = run.final
    assert version.kind == "model_version" and version.version == 1

    # metrics as a kfp Metrics artifact, the reference in the model artifact's file + metadata
    train = run.extra["tasks"]["train_model"]["artifacts"]
    assert {"eval_accuracy", "eval_f1", "eval_loss", "train_loss"} <= set(
        train["metrics"]["metadata"])
    model_art = train["trained_model"]
    assert json.loads(Path(model_art["uri"]).read_text())["sha256"] == run.steps[1].ref.sha256
    assert model_art["metadata"]["sha256"] == run.steps[1].ref.sha256

    # no ML logic in the adapter: the same config trains the same weights as the local runner
    local = run_local(TRAINING, tiny_training, home=tmp_path / "local-home", use_cache=False)
    assert local.steps[1].ref.sha256 == run.steps[1].ref.sha256

    # a second run serves the cacheable steps from mlpipe's step cache; upload_model always runs
    # (the registry sees identical artifacts and keeps v1)
    again = run_pipeline(TRAINING, tiny_training, home=home, run_id="second run")
    assert again.run_id == "second_run"
    assert [s.cached for s in again.steps] == [True, True, True, False]
    assert again.final.version == 1 and again.final.sha256 == version.sha256

    inf = run_pipeline(INFERENCE, tiny_inference, home=home)
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
    assert inf.final.kind == "results" and inf.final.rows == 100
    assert (inf.run_dir / "run.json").is_file()


@pytest.mark.slow
def test_bad_data_fails_naming_the_component_and_publishes_nothing(
    home: Path, tmp_path: Path
) -> None:
    csv = tmp_path / "no_label.csv"
    csv.write_text("text,sentiment\n" + "great film,1\nawful film,0\n" * 20)
    cfg = load_config(TINY_TRAINING, ["data.source=files", f"data.path={csv}"])
    with pytest.raises(StepFailedError) as info:
        run_pipeline(TRAINING, cfg, home=home)
    err = info.value
    assert err.step == "load_training_data"
    assert err.exit_code == 2
    assert "label" in str(err) and type(err.cause).__name__ == "DataError"
    assert not (home / "registry").exists() or not any((home / "registry").rglob("*.json"))
    assert not (home / "runs").exists()  # no half-written run left behind
