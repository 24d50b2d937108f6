import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mlpipe.core import (
    INFERENCE,
    TRAINING,
    InferenceConfig,
    Pipeline,
    Step,
    StepFailedError,
    TrainingConfig,
    run_pipeline,
)
from mlpipe.core.steps import load_training_data
from mlpipe.registries.local import LocalRegistry
from tests.support import assert_failed_run


def test_pipeline_description_is_validated() -> None:
    with pytest.raises(ValueError, match="not an earlier step"):
        Pipeline("p", TrainingConfig, (Step("a", load_training_data, "x", "", inputs={"d": "b"}),))
    with pytest.raises(ValueError, match="duplicate step"):
        Pipeline("p", TrainingConfig, (Step("a", load_training_data, "x", ""),) * 2)
    assert TRAINING.step_names == (
        "load_training_data",
        "train_model",
        "save_artifacts",
        "upload_model",
    )
    assert INFERENCE.downstream("load_model") == ("run_inference",)


def test_fuse_groups_are_validated_before_anything_is_written(
    home: Path, tiny_training: TrainingConfig
) -> None:
    from mlpipe.core.config import ConfigError
    from mlpipe.core.execution.plan import group_inputs, task_groups

    fused = tiny_training.model_copy(update={"runtime": tiny_training.runtime.model_copy(
        update={"fuse": [["save_artifacts", "upload_model"]]})})
    assert task_groups(TRAINING, fused) == [
        ("load_training_data",), ("train_model",), ("save_artifacts", "upload_model")]
    assert group_inputs(TRAINING, ("save_artifacts", "upload_model")) == (
        "load_training_data", "train_model")
    for groups, message in (
        ([["train_model", "nope"]], "no step nope"),
        ([["load_training_data", "save_artifacts"]], "consecutive"),
        ([["train_model"]], "at least two"),
        ([["load_training_data", "train_model"], ["train_model", "save_artifacts"]], "twice"),
    ):
        bad = tiny_training.model_copy(update={"runtime": tiny_training.runtime.model_copy(
            update={"fuse": groups})})
        with pytest.raises(ConfigError, match=message) as err:
            run_pipeline(TRAINING, bad, home=home)
        assert "runtime.fuse" in str(err.value) and err.value.exit_code == 2
    assert not (home / "runs").exists()


@pytest.mark.slow
def test_training_then_inference_end_to_end(
    home: Path, tiny_training: TrainingConfig, tiny_inference: InferenceConfig
) -> None:
    train = run_pipeline(TRAINING, tiny_training, home=home)
    version = train.outputs["upload_model"]
    assert version.kind == "model_version" and version.version == 1
    assert set(version.aliases) == {"latest", "staging"}
    files = set(Path(version.uri).iterdir())
    names = {p.name for p in files}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "metrics.json",
        "manifest.json",
    } <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    for step in TRAINING.step_names:
        assert (train.run_dir / step / "result.json").is_file()

    infer = run_pipeline(INFERENCE, tiny_inference, home=home)
    results = infer.final
    assert results.kind == "results" and results.rows == 100
    table = pq.read_table(results.predictions_uri)
    assert {"text", "label", "pred_label", "pred_id", "score"} <= set(table.column_names)
    data = pq.read_table(Path(infer.outputs["load_inference_data"].uri) / "data.parquet")
    assert table.column("text").to_pylist() == data.column("text").to_pylist()  # input order kept
    assert 0.0 <= results.metrics["accuracy"] <= 1.0
    assert results.model == "tiny-sentiment:v1"


@pytest.mark.slow
def test_same_seed_gives_same_weights(tmp_path: Path, tiny_training: TrainingConfig) -> None:
    a = run_pipeline(TRAINING, tiny_training, home=tmp_path / "a")
    b = run_pipeline(TRAINING, tiny_training, home=tmp_path / "b")
    assert a.outputs["train_model"].sha256 == b.outputs["train_model"].sha256
    assert a.outputs["save_artifacts"].sha256 == b.outputs["save_artifacts"].sha256
    other = tiny_training.model_copy(
        update={"training": tiny_training.training.model_copy(update={"seed": 7})}
    )
    c = run_pipeline(TRAINING, other, home=tmp_path / "c")
    assert c.outputs["train_model"].sha256 != a.outputs["train_model"].sha256


@pytest.mark.slow
def test_cache_hits_invalidates_and_survives_damage(
    home: Path, tiny_training: TrainingConfig
) -> None:
    first = run_pipeline(TRAINING, tiny_training, home=home)
    second = run_pipeline(TRAINING, tiny_training, home=home)
    assert [s.cached for s in second.steps] == [True, True, True, False]
    assert second.outputs["train_model"] == first.outputs["train_model"]  # reused, not retrained
    assert second.outputs["upload_model"].version == 1  # same content, same version

    forced = run_pipeline(TRAINING, tiny_training, home=home, use_cache=False)
    assert not any(s.cached for s in forced.steps)

    changed = tiny_training.model_copy(
        update={"training": tiny_training.training.model_copy(update={"learning_rate": 0.003})}
    )
    third = run_pipeline(TRAINING, changed, home=home)
    assert [s.cached for s in third.steps][:2] == [True, False]  # data reused, training rerun

    # A damaged cached output means a rerun, never a failure downstream.
    (Path(third.outputs["train_model"].uri) / "model.safetensors").write_bytes(b"broken")
    fourth = run_pipeline(TRAINING, changed, home=home)
    assert [s.cached for s in fourth.steps][:2] == [True, False]
    assert fourth.outputs["train_model"].sha256 == third.outputs["train_model"].sha256


def test_failed_step_leaves_nothing_and_names_the_step(
    home: Path, tmp_path: Path, tiny_training: TrainingConfig
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text\nhello\nworld\n")
    cfg = tiny_training.model_copy(
        update={"data": tiny_training.data.model_copy(update={"source": "files", "path": bad})}
    )
    with pytest.raises(StepFailedError) as info:
        run_pipeline(TRAINING, cfg, home=home)
    assert info.value.step == "load_training_data" and info.value.exit_code == 2
    record = assert_failed_run(home, "training", "load_training_data")
    assert record["error"]["exit_code"] == 2 and "DataError" in record["error"]["traceback"]


def test_quality_gate_stops_before_training(
    home: Path, tmp_path: Path, tiny_training: TrainingConfig
) -> None:
    no_neutral = tmp_path / "no_neutral.csv"  # a label with no rows at all blocks training
    no_neutral.write_text("text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(30)))
    data = {"source": "files", "path": no_neutral, "label_names": ["neg", "pos", "neutral"]}
    cfg = tiny_training.model_copy(update={"data": tiny_training.data.model_copy(update=data)})
    with pytest.raises(StepFailedError, match="label_balance"):
        run_pipeline(TRAINING, cfg, home=home)
    assert LocalRegistry(home / "registry").versions() == []


def test_artifacts_do_not_depend_on_hub_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_training: TrainingConfig
) -> None:
    """HF_HUB_OFFLINE leaks into tokenizer_config.json unless mlpipe strips loader settings."""
    small = tiny_training.model_copy(
        update={"data": tiny_training.data.model_copy(update={"max_rows": 60})}
    )
    offline = run_pipeline(TRAINING, small, home=tmp_path / "a")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    online_env = run_pipeline(TRAINING, small, home=tmp_path / "b")
    assert offline.outputs["save_artifacts"].sha256 == online_env.outputs["save_artifacts"].sha256


def test_cache_sees_edited_data_files_and_renamed_labels(
    home: Path, tmp_path: Path, tiny_training: TrainingConfig
) -> None:
    data = tmp_path / "reviews.csv"
    data.write_text(
        "text,label\n"
        + "".join(f"review {i} is {'good' if i % 2 else 'bad'},{i % 2}\n" for i in range(40))
    )
    files = tiny_training.data.model_copy(update={"source": "files", "path": data})
    cfg = tiny_training.model_copy(update={"data": files})
    run_pipeline(TRAINING, cfg, home=home)
    with data.open("a") as fh:
        fh.write("an extra review that is good,1\n")
    edited = run_pipeline(TRAINING, cfg, home=home)
    assert (
        not edited.steps[0].cached and sum(edited.outputs["load_training_data"].rows.values()) == 41
    )

    renamed = cfg.model_copy(
        update={"data": files.model_copy(update={"label_names": ["neg", "pos"]})}
    )
    relabelled = run_pipeline(TRAINING, renamed, home=home)
    assert [s.cached for s in relabelled.steps][:2] == [False, False]
    model_config = json.loads(
        (Path(relabelled.outputs["train_model"].uri) / "config.json").read_text()
    )
    assert model_config["id2label"] == {"0": "neg", "1": "pos"}
