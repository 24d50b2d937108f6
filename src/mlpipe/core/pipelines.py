"""The two pipelines mlpipe ships, declared once; every runner translates these.

They are registered as plugins (``mlpipe.pipelines`` entry points ``training`` and ``inference``)
exactly as a user's own pipelines can be. The quality checks each step reports come from the task
the config names (``Task.checks``), so they are not listed here.
"""

from __future__ import annotations

from mlpipe.core import steps
from mlpipe.core.config import InferenceConfig, TrainingConfig
from mlpipe.core.pipeline import Pipeline, Step

TRAINING = Pipeline(
    name="training",
    config_type=TrainingConfig,
    description="Load training data, fine-tune, save artifacts, publish to the registry.",
    schedule="0 3 * * 0",  # retrain weekly (orchestrators create schedules stopped / paused)
    steps=(
        Step(
            "load_training_data",
            steps.load_training_data,
            asset="training_data",
            description="Prepared train/eval splits (parquet) and data-quality checks",
            config_sections=("task", "task_options", "data"),
        ),
        Step(
            "train_model",
            steps.train_model,
            asset="trained_model",
            description="Fine-tuned model and its eval metrics",
            inputs={"dataset": "load_training_data"},
            config_sections=("task", "task_options", "model", "training"),
        ),
        Step(
            "save_artifacts",
            steps.save_artifacts,
            asset="model_artifacts",
            description="Safetensors weights, tokenizer, config, metrics and manifest",
            inputs={"model": "train_model", "dataset": "load_training_data"},
            config_sections=("task", "task_options", "data", "model", "training", "artifacts"),
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
    schedule="0 5 * * *",  # score daily
    steps=(
        Step(
            "load_inference_data",
            steps.load_inference_data,
            asset="inference_data",
            description="Input rows as parquet (labels optional)",
            config_sections=("task", "task_options", "data", "inference"),
        ),
        Step(
            "split_inference_data",
            steps.split_inference_data,
            asset="inference_shards",
            description="The rows cut into inference.shards shards, in order (one: no copy)",
            inputs={"dataset": "load_inference_data"},
            config_sections=("inference",),
        ),
        Step(
            "load_model",
            steps.fetch_model,
            asset="loaded_model",
            description="The registry version resolved and checksum-verified",
            config_sections=("inference", "registry"),
            cacheable=False,
        ),
        Step(
            "run_inference",
            steps.run_inference,
            asset="predictions",
            description="Predicted label and score per row (SQL for text-to-sql), per shard",
            inputs={"dataset": "split_inference_data", "model": "load_model"},
            config_sections=("task", "task_options", "inference"),
            map_over="split_inference_data",
        ),
        Step(
            "save_results",
            steps.save_results,
            asset="inference_report",
            description="Shards' predictions gathered in order, joined to inputs, and metrics",
            inputs={"dataset": "load_inference_data", "predictions": "run_inference"},
            config_sections=("task", "task_options", "inference"),
        ),
    ),
)
