"""Fast paths of inference: int8 with fp32 fallback, bounded chunks, shape-rounded padding."""

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlpipe.core import TRAINING, TrainingConfig, run_pipeline
from mlpipe.core.batching import pad_batch
from mlpipe.tasks.classification.predict import Predictor, predict_file
from mlpipe.tasks.classification.synthetic import generate_rows


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlpipe.core import load_config
    from tests.support import TINY_TRAINING

    cfg = load_config(TINY_TRAINING, ["data.generated.n_samples=300", "training.epochs=1"])
    assert isinstance(cfg, TrainingConfig)
    run = run_pipeline(TRAINING, cfg, home=tmp_path_factory.mktemp("home"))
    return Path(run.outputs["upload_model"].uri)


TEXTS = [t for t, _ in generate_rows(120, seed=3)]


def test_pad_width_rounds_up_to_the_multiple() -> None:
    batch = pad_batch([[1, 2, 3], [4]], pad_id=0, multiple_of=8)
    assert tuple(batch["input_ids"].shape) == (2, 8)
    assert batch["attention_mask"].sum().item() == 4
    assert tuple(pad_batch([[1, 2, 3]], pad_id=0)["input_ids"].shape) == (1, 3)


def test_int8_with_full_fallback_equals_fp32(model_dir: Path) -> None:
    fp32 = Predictor(model_dir, num_threads=1).predict(TEXTS)
    everything = Predictor(model_dir, quantize="int8", fallback_gap=1.01, num_threads=1)
    assert everything.predict(TEXTS) == fp32
    assert everything.rescored == len(TEXTS)


def test_int8_without_fallback_is_quantized_and_close(model_dir: Path) -> None:
    import torch

    fp32_labels, _ = Predictor(model_dir, num_threads=1).predict(TEXTS)
    pure = Predictor(model_dir, quantize="int8", fallback_gap=0.0, num_threads=1)
    assert pure.fallback is None
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in pure.model.modules())
    labels, scores = pure.predict(TEXTS)
    assert pure.rescored == 0 and all(0.5 <= s <= 1.0 for s in scores)
    agreement = sum(a == b for a, b in zip(labels, fp32_labels, strict=True)) / len(TEXTS)
    assert agreement >= 0.9


def test_chunked_prediction_keeps_order_and_bounds_rows_in_memory(
    model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data.parquet"
    pq.write_table(pa.table({"text": TEXTS}), data)
    predictor = Predictor(model_dir, num_threads=1)
    seen: list[int] = []
    original = predictor.predict

    def spy(texts: list[str]) -> Any:
        seen.append(len(texts))
        return original(texts)

    predictor.predict = spy  # type: ignore[method-assign]
    rows, _ = predict_file(predictor, data, tmp_path / "chunked.parquet", chunk_rows=7)
    assert rows == len(TEXTS) and max(seen) == 7 and sum(seen) == len(TEXTS)
    predict_file(predictor, data, tmp_path / "whole.parquet", chunk_rows=10_000)
    chunked = pq.read_table(tmp_path / "chunked.parquet")
    assert chunked.column("row_id").to_pylist() == list(range(len(TEXTS)))
    whole = pq.read_table(tmp_path / "whole.parquet")
    assert chunked.column("pred_id").to_pylist() == whole.column("pred_id").to_pylist()
    # Scores may differ in the last bits: batches (and their padded width) are composed per chunk.
    for a, b in zip(
        chunked.column("score").to_pylist(), whole.column("score").to_pylist(), strict=True
    ):
        assert a == pytest.approx(b, abs=1e-5)


def test_predict_texts_labels_each_row_like_predict_file(model_dir: Path, tmp_path: Path) -> None:
    from mlpipe.core.task import get_task

    texts = TEXTS[:30]
    out = get_task("text-classification").predict_texts(
        model_dir, [{"text": t} for t in texts], batch_size=64
    )
    data = tmp_path / "data.parquet"
    pq.write_table(pa.table({"text": texts}), data)
    predict_file(Predictor(model_dir), data, tmp_path / "p.parquet", chunk_rows=1000)
    table = pq.read_table(tmp_path / "p.parquet")
    assert [o["label_id"] for o in out] == table.column("pred_id").to_pylist()
    assert [o["label"] for o in out] == table.column("pred_label").to_pylist()
    for o, score in zip(out, table.column("score").to_pylist(), strict=True):
        assert o["score"] == pytest.approx(score, abs=1e-5)
        assert set(o["scores"]) == {"negative", "positive"}
        assert sum(o["scores"].values()) == pytest.approx(1.0)
        assert o["scores"][o["label"]] == o["score"] == max(o["scores"].values())


def test_inference_takes_label_names_from_the_model(tmp_path: Path) -> None:
    """A model trained with its own label names (neg/pos) infers on string labels without the
    inference config repeating them; a config that sets data.label_names still wins."""
    import pyarrow.csv as pacsv

    from mlpipe.core import INFERENCE, load_config
    from mlpipe.core.errors import StepFailedError
    from tests.support import TINY_INFERENCE, TINY_TRAINING

    def write(path: Path, n: int, seed: int) -> Path:
        rows = list(generate_rows(n, seed, 0.0))
        pacsv.write_csv(pa.table({"review": [t for t, _ in rows],
                                  "sentiment": [("neg", "pos")[y] for _, y in rows]}), path)
        return path

    home = tmp_path / "home"
    columns = ["data.source=files", "data.text_column=review", "data.label_column=sentiment",
               "registry.model_name=reviews"]
    train = load_config(TINY_TRAINING, [*columns, f"data.path={write(tmp_path / 't.csv', 300, 1)}",
                                        "data.label_names=[neg, pos]", "training.epochs=1"])
    run_pipeline(TRAINING, train, home=home)
    sets = [*columns, f"data.path={write(tmp_path / 'i.csv', 60, 2)}",
            "inference.model=reviews:staging"]
    run = run_pipeline(INFERENCE, load_config(TINY_INFERENCE, sets), home=home)
    results = run.final
    assert results.rows == 60 and "accuracy" in results.metrics  # type: ignore[attr-defined]
    table = pq.read_table(results.predictions_uri)  # type: ignore[attr-defined]
    assert set(table.column("pred_label").to_pylist()) <= {"neg", "pos"}
    assert run.outputs["load_inference_data"].label_names == ("neg", "pos")  # type: ignore[attr-defined]

    override = load_config(TINY_INFERENCE, [*sets, "data.label_names=[bad, good]"])
    with pytest.raises(StepFailedError, match="outside the labels") as info:
        run_pipeline(INFERENCE, override, home=home)
    assert info.value.exit_code == 2


def test_steps_run_with_passive_openmp_waits_unless_the_user_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spinning OpenMP threads steal a shared machine's cores; a step's process sleeps them, and
    a user's own OMP_WAIT_POLICY is kept (checked in a fresh process, as a step's starts)."""
    import subprocess
    import sys

    probe = ("import os, mlpipe.core.execution.step as s; from mlpipe.core.modeling import "
             "passive_thread_waits as p; p(); print(os.environ['OMP_WAIT_POLICY'])")
    for given, expected in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if given:
            env["OMP_WAIT_POLICY"] = given
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                             text=True, check=True, timeout=300).stdout.strip()
        assert out == expected
