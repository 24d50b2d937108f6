"""The shipped code location, ``dagster dev -m mlpipe.adapters.dagster.definitions``: the built-in
pipelines plus those ``MLPIPE_PIPELINES`` names, configured as :mod:`mlpipe.core.served` says; the
mlpipe home from ``MLPIPE_HOME`` (else ``./.mlpipe``)."""

from __future__ import annotations

import os

from mlpipe.core.config import PipelineSettings
from mlpipe.core.pipeline import Pipeline
from mlpipe.core.served import BUILT_IN, PIPELINES_ENV, listed, served_pipelines

from .build import build_definitions


def configs_from_env() -> list[tuple[Pipeline, PipelineSettings]]:
    """The built-in pipelines and core's served ones (:mod:`mlpipe.core.served`), configured."""
    refs = [*BUILT_IN, *listed(os.environ.get(PIPELINES_ENV))]
    return [(s.pipeline, s.config) for s in served_pipelines(refs)]


defs = build_definitions(configs_from_env())
