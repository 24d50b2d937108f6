"""The ``sql:`` config section of ``task: text-to-sql`` and the one place the task reads it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mlpipe.core.config import InferenceConfig, TaskOptions, TrainingConfig


class LoraConfig(TaskOptions):
    """LoRA adapters (needs the ``peft`` extra); merged into the weights before saving."""

    r: Annotated[int, Field(ge=1)] = 8
    alpha: Annotated[float, Field(gt=0)] = 16.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    target_modules: list[str] | None = Field(
        None, description="module names to adapt; none = peft's default for the architecture"
    )


class SqlOptions(TaskOptions):
    """Text-to-SQL settings (``task: text-to-sql``): input columns and generation length."""

    question_column: str = "question"
    context_column: str = Field("context", description="the CREATE TABLE statements")
    answer_column: str = Field("answer", description="the gold SQL (optional for inference)")
    max_new_tokens: Annotated[int, Field(ge=1, le=2048)] = 128


class SqlTrainOptions(SqlOptions):
    """Text-to-SQL training: LoRA, the tiny tokenizer, generation-based eval.

    ``training.min_eval_accuracy`` is the floor on eval execution accuracy for this task.
    """

    lora: LoraConfig | None = None
    tokenizer_vocab_size: Annotated[int, Field(ge=300, le=100_000)] = Field(
        1024, description="byte-level BPE trained on the data (model.base: tiny only)"
    )
    eval_max_rows: Annotated[int | None, Field(ge=1)] = Field(
        200, description="eval rows scored by generating SQL (slow); none = all"
    )


def sql_options(config: InferenceConfig | TrainingConfig) -> SqlOptions:
    """The ``sql:`` section of any text-to-sql config (defaults when the file has none)."""
    options = config.task_options
    if isinstance(options, SqlOptions):
        return options
    return SqlTrainOptions() if isinstance(config, TrainingConfig) else SqlOptions()


def sql_train_options(config: TrainingConfig) -> SqlTrainOptions:
    """The ``sql:`` section of a text-to-sql training config (defaults when the file has none)."""
    options = config.task_options
    return options if isinstance(options, SqlTrainOptions) else SqlTrainOptions()
