"""Kubeflow Pipelines (kfp v2) adapter: one generated component per pipeline step.

``compile_pipeline`` writes the pipeline YAML a KFP cluster takes; ``runner.KubeflowRunner`` (the
``kubeflow`` runner) runs the same pipeline offline with ``kfp.local``. Attributes load lazily: the
component bodies import ``mlpipe.adapters.kubeflow.task`` inside kfp's executor, which must not
pull in kfp's compiler (a circular import there), while
``from mlpipe.adapters.kubeflow import compile_pipeline`` still raises ImportError at once when
kfp is missing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlpipe.adapters.kubeflow.compiler import (
        DEFAULT_BASE_IMAGE,
        build_pipeline,
        compile_pipeline,
    )

__all__ = ["DEFAULT_BASE_IMAGE", "build_pipeline", "compile_pipeline"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mlpipe.adapters.kubeflow import compiler

        return getattr(compiler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
