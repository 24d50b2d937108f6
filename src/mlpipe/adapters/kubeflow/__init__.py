"""Kubeflow Pipelines (kfp v2) adapter: one generated component per core step.

``compile_pipeline`` writes the pipeline YAML a KFP cluster takes; ``runner.run_pipeline`` runs
the same pipeline offline with ``kfp.local``. kfp is imported only when one of them is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlpipe.core.config import PipelineConfig
    from mlpipe.core.pipeline import Pipeline

__all__ = ["compile_pipeline"]


def compile_pipeline(
    pipeline: Pipeline, config: PipelineConfig, output: Path, *, base_image: str | None = None
) -> Path:
    """Write the kfp v2 pipeline YAML for ``pipeline``, ``config`` as its default parameters."""
    from mlpipe.adapters.kubeflow import compiler

    return compiler.compile_pipeline(pipeline, config, output,
                                     base_image=base_image or compiler.DEFAULT_BASE_IMAGE)
