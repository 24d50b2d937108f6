"""mlpipe's core: configs, references, the nine steps, the pipelines, plugins and runners.

No orchestrator, integration or plugin is imported here. Notebooks and scripts use this package
directly::

    from mlpipe.core import TRAINING, load_config, run_pipeline, resolve_home
    run = run_pipeline(TRAINING, load_config("configs/tiny/training.yaml"), home=resolve_home())
    run = run_pipeline(TRAINING, config, runner="dagster")  # any registered runner

Each name is imported on first use (PEP 562): a task's process imports ``mlpipe.core.<module>``
for its step, and must not pay for the runners, the registry and every config model first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlpipe.core.lazy import lazy_exports

if TYPE_CHECKING:
    from mlpipe.core.config import (
        BuiltinConfig,
        InferenceConfig,
        PipelineSettings,
        TrainingConfig,
        config_from_json,
        load_config,
    )
    from mlpipe.core.errors import (
        ChecksumError,
        ConfigError,
        DataError,
        MlpipeError,
        ModelNotFoundError,
        QualityGateError,
        StepFailedError,
    )
    from mlpipe.core.execution import (
        PipelineRun,
        Runner,
        StepRun,
        get_runner,
        run_pipeline,
        run_step,
    )
    from mlpipe.core.paths import new_run_id, resolve_home
    from mlpipe.core.pipeline import Pipeline, Step, StepContext, resolve_pipeline
    from mlpipe.core.pipelines import INFERENCE, TRAINING
    from mlpipe.core.refs import (
        ArtifactsRef,
        CheckResult,
        DatasetRef,
        ModelRef,
        ModelVersionRef,
        PredictionsRef,
        Ref,
        ResultsRef,
        ShardsRef,
        ref_from_json,
    )
    from mlpipe.core.registry import Registry, open_registry

#: public name -> the module that defines it
_WHERE = {
    **dict.fromkeys(("InferenceConfig", "BuiltinConfig", "PipelineSettings", "TrainingConfig",
                     "config_from_json", "load_config"), "config"),
    **dict.fromkeys(("ChecksumError", "ConfigError", "DataError", "MlpipeError",
                     "ModelNotFoundError", "QualityGateError", "StepFailedError"), "errors"),
    **dict.fromkeys(("PipelineRun", "Runner", "StepRun", "get_runner", "run_pipeline",
                     "run_step"), "execution"),
    **dict.fromkeys(("new_run_id", "resolve_home"), "paths"),
    **dict.fromkeys(("Pipeline", "Step", "StepContext", "resolve_pipeline"), "pipeline"),
    **dict.fromkeys(("INFERENCE", "TRAINING"), "pipelines"),
    **dict.fromkeys(("ArtifactsRef", "CheckResult", "DatasetRef", "ModelRef", "ModelVersionRef",
                     "PredictionsRef", "Ref", "ResultsRef", "ShardsRef", "ref_from_json"),
                    "refs"),
    **dict.fromkeys(("Registry", "open_registry"), "registry"),
}

__all__ = [
    "INFERENCE",
    "TRAINING",
    "ArtifactsRef",
    "BuiltinConfig",
    "CheckResult",
    "ChecksumError",
    "ConfigError",
    "DataError",
    "DatasetRef",
    "InferenceConfig",
    "MlpipeError",
    "ModelNotFoundError",
    "ModelRef",
    "ModelVersionRef",
    "Pipeline",
    "PipelineRun",
    "PipelineSettings",
    "PredictionsRef",
    "QualityGateError",
    "Ref",
    "Registry",
    "ResultsRef",
    "Runner",
    "ShardsRef",
    "Step",
    "StepContext",
    "StepFailedError",
    "StepRun",
    "TrainingConfig",
    "config_from_json",
    "get_runner",
    "load_config",
    "new_run_id",
    "open_registry",
    "ref_from_json",
    "resolve_home",
    "resolve_pipeline",
    "run_pipeline",
    "run_step",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
