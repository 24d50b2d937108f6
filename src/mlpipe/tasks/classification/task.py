"""The ``text-classification`` task: fine-tune a sequence classifier on (text, label) rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlpipe.core.config import InferenceConfig, TaskOptions, TrainingConfig
from mlpipe.core.errors import DataError
from mlpipe.core.quality import check_min_accuracy
from mlpipe.core.refs import CheckResult, DatasetRef
from mlpipe.core.task import LogFn, check_model_task
from mlpipe.tasks.classification.checks import CHECKS
from mlpipe.tasks.classification.metrics import Confusion

if TYPE_CHECKING:  # pyarrow and the data module load where a step reads data, not with the task
    import pyarrow as pa


class ConfusionResults:
    """Accuracy and F1 of the ``pred_id`` column against ``label``, streamed chunk by chunk."""

    def __init__(self, num_labels: int, has_labels: bool) -> None:
        self.confusion = Confusion(num_labels)
        self.has_labels = has_labels

    def update(self, inputs: pa.Table, predictions: pa.Table) -> None:
        if self.has_labels:
            self.confusion.update(
                inputs.column("label").to_pylist(), predictions.column("pred_id").to_pylist()
            )

    def metrics(self) -> dict[str, float]:
        return self.confusion.metrics() if self.has_labels else {}


class ClassificationTask:
    """Fine-tune a sequence classifier; predict a label and its probability per text."""

    name: ClassVar[str] = "text-classification"
    prediction_columns: ClassVar[tuple[str, ...]] = ("pred_label", "pred_id", "score")
    checks: ClassVar[Mapping[str, tuple[str, ...]]] = CHECKS
    config_section: ClassVar[str | None] = None  # uses data.label_names etc., no section
    training_options: ClassVar[type[TaskOptions] | None] = None
    inference_options: ClassVar[type[TaskOptions] | None] = None
    #: what ``mlpipe predict --output`` adds to the user's columns (keys of ``predict_texts``)
    file_outputs: ClassVar[tuple[str, ...]] = ("label", "score")
    #: ``inference.backend`` values this task runs (onnx needs ``artifacts.onnx`` at training)
    backends: ClassVar[tuple[str, ...]] = ("torch", "onnx")
    #: a config without ``task:``, and a model without a task file, are classification
    is_default: ClassVar[bool] = True
    provenance_sections: ClassVar[tuple[str, ...]] = ("data", "model", "training")
    watched_metric: ClassVar[str] = "eval_accuracy"
    summary_metrics: ClassVar[tuple[str, ...]] = ("eval_accuracy", "eval_f1")
    packages: ClassVar[tuple[str, ...]] = ("torch", "transformers", "tokenizers", "safetensors")

    def file_inputs(
        self, training_config: Mapping[str, Any], text_column: str | None
    ) -> dict[str, str]:
        """The user's text column in ``mlpipe predict --input``: the one the model trained on."""
        data_cfg = training_config.get("data") or {}
        return {"text": text_column or data_cfg.get("text_column") or "text"}

    def load_training_data(self, config: TrainingConfig, out_dir: Path) -> DatasetRef:
        from mlpipe.tasks.classification import data

        return data.prepare_training_data(config.data, out_dir)

    def load_inference_data(self, config: InferenceConfig, out_dir: Path) -> DatasetRef:
        from mlpipe.tasks.classification import data

        return data.prepare_inference_data(
            config.data, out_dir, chunk_rows=config.inference.chunk_rows
        )

    def train(
        self, config: TrainingConfig, dataset: DatasetRef, model_dir: Path, *, on_log: LogFn
    ) -> tuple[dict[str, float], tuple[CheckResult, ...]]:
        from mlpipe.core.data import read_split
        from mlpipe.tasks.classification.train import train_classifier

        train = read_split(dataset, "train")
        eval_ = read_split(dataset, "eval")
        metrics = train_classifier(
            config.model,
            config.training,
            train.column("text").to_pylist(),
            train.column("label").to_pylist(),
            eval_.column("text").to_pylist(),
            eval_.column("label").to_pylist(),
            dataset.label_names,
            model_dir,
            on_log=on_log,
        )
        floor = config.training.min_eval_accuracy
        return metrics, (check_min_accuracy(metrics["eval_accuracy"], floor),)

    def predict_file(
        self, config: InferenceConfig, model_dir: Path, dataset: DatasetRef, out_path: Path
    ) -> tuple[int, float]:
        from mlpipe.tasks.classification.predict import predict_file

        check_model_task(model_dir, self.name)
        settings = config.inference
        predictor = predictor_class(settings.backend)(
            model_dir,
            max_length=settings.max_length,
            batch_size=settings.batch_size,
            quantize=settings.quantize,
            fallback_gap=settings.int8_fallback_gap,
            num_threads=settings.num_threads,
        )
        if list(dataset.label_names) != predictor.label_names and dataset.has_labels:
            raise DataError(
                f"data.label_names {list(dataset.label_names)} differ from the model's labels "
                f"{predictor.label_names}; set data.label_names to match the model"
            )
        return predict_file(
            predictor,
            Path(dataset.uri) / dataset.files["data"],
            out_path,
            chunk_rows=settings.chunk_rows,
        )

    def results(self, config: InferenceConfig, dataset: DatasetRef) -> ConfusionResults:
        return ConfusionResults(len(dataset.label_names), dataset.has_labels)

    def export_onnx(self, model_dir: Path) -> list[str]:
        """``model.onnx`` and ``model.int8.onnx`` beside the weights (``artifacts.onnx``)."""
        from mlpipe.tasks.classification.onnx_backend import export_onnx

        return export_onnx(model_dir)

    def predict_texts(
        self,
        model_dir: Path,
        rows: Sequence[Mapping[str, Any]],
        *,
        batch_size: int = 32,
        backend: str = "torch",
    ) -> list[dict[str, Any]]:
        from mlpipe.tasks.classification.predict import predict_texts

        check_model_task(model_dir, self.name)
        return predict_texts(
            model_dir, rows, batch_size=batch_size, predictor=predictor_class(backend)
        )


def predictor_class(backend: str) -> Any:
    """The predictor of ``inference.backend``; the onnx one never imports torch."""
    if backend == "onnx":
        from mlpipe.tasks.classification.onnx_backend import OnnxPredictor

        return OnnxPredictor
    from mlpipe.tasks.classification.predict import Predictor

    return Predictor
