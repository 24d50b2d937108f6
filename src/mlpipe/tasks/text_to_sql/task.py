"""The ``text-to-sql`` task: question + CREATE TABLE context -> SQL with a generative model.

Predictions are a ``prediction`` column; metrics are exact match and execution match
(:mod:`mlpipe.tasks.text_to_sql.match`). The task owns the ``sql:`` config section
(:mod:`mlpipe.tasks.text_to_sql.config`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from mlpipe.core.config import InferenceConfig, TaskOptions, TrainingConfig
from mlpipe.core.refs import CheckResult, DatasetRef
from mlpipe.core.task import LogFn, check_model_task
from mlpipe.tasks.text_to_sql import data
from mlpipe.tasks.text_to_sql.checks import CHECKS
from mlpipe.tasks.text_to_sql.config import SqlOptions, SqlTrainOptions, sql_options
from mlpipe.tasks.text_to_sql.data import ANSWER, CONTEXT, PREDICTION, QUESTION
from mlpipe.tasks.text_to_sql.match import SqlMatchCounter


class SqlResults:
    """Exact and execution match of the ``prediction`` column against ``answer``, streamed."""

    def __init__(self, has_answers: bool) -> None:
        self.has_answers = has_answers
        self.counter = SqlMatchCounter()

    def update(self, inputs: pa.Table, predictions: pa.Table) -> None:
        if self.has_answers:
            self.counter.update(
                predictions.column(PREDICTION).to_pylist(),
                inputs.column(ANSWER).to_pylist(),
                inputs.column(CONTEXT).to_pylist(),
            )

    def metrics(self) -> dict[str, float]:
        return self.counter.metrics() if self.has_answers else {}


class TextToSqlTask:
    """Question + CREATE TABLE context -> SQL with a generative model."""

    name: ClassVar[str] = "text-to-sql"
    prediction_columns: ClassVar[tuple[str, ...]] = (PREDICTION,)
    checks: ClassVar[Mapping[str, tuple[str, ...]]] = CHECKS
    config_section: ClassVar[str | None] = "sql"
    training_options: ClassVar[type[TaskOptions] | None] = SqlTrainOptions
    inference_options: ClassVar[type[TaskOptions] | None] = SqlOptions
    #: what ``mlpipe predict --output`` adds to the user's columns (keys of ``predict_texts``)
    file_outputs: ClassVar[tuple[str, ...]] = ("sql",)
    is_default: ClassVar[bool] = False
    provenance_sections: ClassVar[tuple[str, ...]] = (
        "data", "model", "training", "task", "task_options")
    watched_metric: ClassVar[str] = "eval_exact_match"
    summary_metrics: ClassVar[tuple[str, ...]] = ("eval_exact_match", "eval_execution_match")
    packages: ClassVar[tuple[str, ...]] = ("torch", "transformers", "tokenizers", "safetensors",
                                           "peft")

    def file_inputs(
        self, training_config: Mapping[str, Any], text_column: str | None
    ) -> dict[str, str]:
        """The question and context columns of ``mlpipe predict --input`` (``text_column``
        renames the question): the training config's names unless told otherwise."""
        opts = training_config.get("task_options") or training_config.get("sql") or {}
        return {
            QUESTION: text_column or opts.get("question_column") or QUESTION,
            CONTEXT: opts.get("context_column") or CONTEXT,
        }

    def load_training_data(self, config: TrainingConfig, out_dir: Path) -> DatasetRef:
        return data.prepare_training_data(config.data, sql_options(config), out_dir)

    def load_inference_data(self, config: InferenceConfig, out_dir: Path) -> DatasetRef:
        return data.prepare_inference_data(
            config.data, sql_options(config), out_dir, chunk_rows=config.inference.chunk_rows
        )

    def train(
        self, config: TrainingConfig, dataset: DatasetRef, model_dir: Path, *, on_log: LogFn
    ) -> tuple[dict[str, float], tuple[CheckResult, ...]]:
        from mlpipe.tasks.text_to_sql.train import train_text_to_sql

        return train_text_to_sql(config, dataset, model_dir, on_log=on_log)

    def predict_file(
        self, config: InferenceConfig, model_dir: Path, dataset: DatasetRef, out_path: Path
    ) -> tuple[int, float]:
        from mlpipe.core.data import write_predictions
        from mlpipe.core.modeling import quantize_int8, set_threads
        from mlpipe.tasks.text_to_sql.model import SqlGenerator

        check_model_task(model_dir, self.name)
        settings = config.inference
        set_threads(settings.num_threads)
        generator = SqlGenerator.load(
            model_dir,
            batch_size=settings.batch_size,
            max_new_tokens=sql_options(config).max_new_tokens,
            max_length=settings.max_length,
        )
        if settings.quantize == "int8":
            generator.model = quantize_int8(generator.model)

        def predict(chunk: pa.Table) -> dict[str, pa.Array]:
            sql = generator.generate(
                chunk.column(QUESTION).to_pylist(), chunk.column(CONTEXT).to_pylist()
            )
            return {PREDICTION: pa.array(sql, pa.string())}

        return write_predictions(
            Path(dataset.uri) / dataset.files["data"],
            out_path,
            predict,
            schema=pa.schema([("row_id", pa.int64()), (PREDICTION, pa.string())]),
            chunk_rows=settings.chunk_rows,
            columns=[QUESTION, CONTEXT],
        )

    def results(self, config: InferenceConfig, dataset: DatasetRef) -> SqlResults:
        return SqlResults(dataset.has_labels)

    def predict_texts(
        self, model_dir: Path, rows: Sequence[Mapping[str, Any]], *, batch_size: int = 32
    ) -> list[dict[str, Any]]:
        """``{"sql": ...}`` per row (rows carry ``question`` and ``context``), in order.

        Generates up to ``sql.max_new_tokens``' default number of tokens per query.
        """
        from mlpipe.tasks.text_to_sql.model import SqlGenerator

        check_model_task(model_dir, self.name)
        if not rows:
            return []
        generator = SqlGenerator.load(
            model_dir, batch_size=batch_size, max_new_tokens=SqlOptions().max_new_tokens
        )
        sql = generator.generate(
            [str(row[QUESTION]) for row in rows], [str(row[CONTEXT]) for row in rows]
        )
        return [{"sql": s} for s in sql]
