"""The shipped Dagster code location: ``dagster dev -m mlpipe.adapters.dagster.definitions``.

Serves the built-in pipelines, plus any named in ``MLPIPE_PIPELINES`` (comma-separated
``module:ATTR`` refs or registered names). Each pipeline's config comes from the YAML file named
by ``MLPIPE_<NAME>_CONFIG`` (``MLPIPE_TRAINING_CONFIG``...), else its config type's defaults; the
mlpipe home from ``MLPIPE_HOME`` (else ``./.mlpipe``).
"""

from __future__ import annotations

import os

import dagster as dg

from mlpipe.core.config import PipelineSettings, load_config
from mlpipe.core.pipeline import Pipeline, resolve_pipeline

from .assets import BUILT_IN, config_env
from .build import build_definitions

PIPELINES_ENV = "MLPIPE_PIPELINES"


def configs_from_env() -> list[tuple[Pipeline, PipelineSettings]]:
    """Each served pipeline with its config (validated, paths made absolute) or defaults."""
    extra = [r.strip() for r in os.environ.get(PIPELINES_ENV, "").split(",") if r.strip()]
    pairs: list[tuple[Pipeline, PipelineSettings]] = []
    for ref in dict.fromkeys((*BUILT_IN, *extra)):
        pipeline = resolve_pipeline(ref)
        path = os.environ.get(config_env(pipeline.name))  # none: the config type's defaults
        pairs.append((pipeline, load_config(path, pipeline=pipeline.name,
                                            config_type=pipeline.config_type)))
    return pairs


def load_definitions() -> dg.Definitions:
    return build_definitions(configs_from_env())


defs = load_definitions()
