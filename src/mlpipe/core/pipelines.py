"""The two pipelines mlpipe ships, declared once; every runner translates these."""

from __future__ import annotations

from mlpipe.core import steps
from mlpipe.core.config import InferenceConfig, TrainingConfig
from mlpipe.core.pipeline import Pipeline, Step

TRAINING = Pipeline(
    name="training",
    config_type=TrainingConfig,
    description="Load training data, fine-tune, save artifacts, publish to the registry.",
    steps=(
        Step(
            "load_training_data",
            steps.load_training_data,
            asset="training_data",
            description="Prepared train/eval splits (parquet) and data-quality checks",
            config_sections=("task", "sql", "data"),
            checks=(),  # checks come from the task
        ),
        Step(
            "train_model",
            steps.train_model,
            asset="trained_model",
            description="Fine-tuned model and its eval metrics",
            inputs={"dataset": "load_training_data"},
            config_sections=("task", "sql", "model", "training"),
            checks=(),  # checks come from the task
        ),
        Step(
            "save_artifacts",
            steps.save_artifacts,
            asset="model_artifacts",
            description="Safetensors weights, tokenizer, config, metrics and manifest",
            inputs={"model": "train_model", "dataset": "load_training_data"},
            config_sections=("task", "sql", "data", "model", "training"),
        ),
        Step(
            "upload_model",
            steps.upload_model,
            asset="registered_model",
            description="A new version in the model registry",
            inputs={"artifacts_ref": "save_artifacts"},
            config_sections=("registry",),
            cacheable=False,
        ),
    ),
)

INFERENCE = Pipeline(
    name="inference",
    config_type=InferenceConfig,
    description="Load inference data and a model version, predict in batches, save results.",
    steps=(
        Step(
            "load_inference_data",
            steps.load_inference_data,
            asset="inference_data",
            description="Input rows as parquet (labels optional)",
            config_sections=("task", "sql", "data", "inference"),
            checks=(),  # checks come from the task
        ),
        Step(
            "load_model",
            steps.load_model,
            asset="loaded_model",
            description="The registry version resolved and checksum-verified",
            config_sections=("inference", "registry"),
            cacheable=False,
        ),
        Step(
            "run_inference",
            steps.run_inference,
            asset="predictions",
            description="Predicted label and score per row (SQL for text-to-sql)",
            inputs={"dataset": "load_inference_data", "model": "load_model"},
            config_sections=("task", "sql", "inference"),
        ),
        Step(
            "save_results",
            steps.save_results,
            asset="inference_report",
            description="Predictions joined to inputs, and metrics when labels exist",
            inputs={"dataset": "load_inference_data", "predictions": "run_inference"},
            config_sections=("task", "sql", "inference"),
        ),
    ),
)

PIPELINES: dict[str, Pipeline] = {p.name: p for p in (TRAINING, INFERENCE)}


def get_pipeline(name: str) -> Pipeline:
    try:
        return PIPELINES[name]
    except KeyError:
        raise KeyError(f"unknown pipeline '{name}' (choose from {', '.join(PIPELINES)})") from None
