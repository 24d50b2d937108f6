"""The shipped Dagster code location: ``dagster dev -m mlpipe.adapters.dagster.definitions``.

Configs come from the YAML files named by ``MLPIPE_TRAINING_CONFIG`` / ``MLPIPE_INFERENCE_CONFIG``
(else mlpipe's default configs); the mlpipe home from ``MLPIPE_HOME`` (else ``./.mlpipe``).
"""

from __future__ import annotations

import os

import dagster as dg

from mlpipe.core.config import InferenceConfig, TrainingConfig, load_config

from .build import build_definitions

TRAINING_CONFIG_ENV = "MLPIPE_TRAINING_CONFIG"
INFERENCE_CONFIG_ENV = "MLPIPE_INFERENCE_CONFIG"


def configs_from_env() -> tuple[TrainingConfig, InferenceConfig]:
    """Both configs, each from its env var's file (validated, paths made absolute) or defaults."""
    train_path = os.environ.get(TRAINING_CONFIG_ENV)
    infer_path = os.environ.get(INFERENCE_CONFIG_ENV)
    training = load_config(train_path, pipeline="training") if train_path else TrainingConfig()
    inference = load_config(infer_path, pipeline="inference") if infer_path else InferenceConfig()
    assert isinstance(training, TrainingConfig) and isinstance(inference, InferenceConfig)
    return training, inference


def load_definitions() -> dg.Definitions:
    training, inference = configs_from_env()
    return build_definitions(training, inference)


defs = load_definitions()
