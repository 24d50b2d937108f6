"""mlpipe's core: configs, references, the eight steps, the pipelines and the local runner.

No orchestrator is imported here. Notebooks and scripts use this package directly::

    from mlpipe.core import TRAINING, load_config, run_pipeline, resolve_home
    run = run_pipeline(TRAINING, load_config("configs/tiny/training.yaml"), home=resolve_home())
"""

from mlpipe.core.config import (
    InferenceConfig,
    PipelineConfig,
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
from mlpipe.core.pipeline import Pipeline, Step, StepContext
from mlpipe.core.pipelines import INFERENCE, PIPELINES, TRAINING, get_pipeline
from mlpipe.core.refs import (
    ArtifactsRef,
    CheckResult,
    DatasetRef,
    ModelRef,
    ModelVersionRef,
    PredictionsRef,
    Ref,
    ResultsRef,
    ref_from_json,
)
from mlpipe.core.registry import LocalRegistry, Registry, open_registry
from mlpipe.core.runner import (
    PipelineRun,
    StepRun,
    execute_step,
    new_run_id,
    resolve_home,
    run_pipeline,
    run_step,
)

__all__ = [
    "INFERENCE",
    "PIPELINES",
    "TRAINING",
    "ArtifactsRef",
    "CheckResult",
    "ChecksumError",
    "ConfigError",
    "DataError",
    "DatasetRef",
    "InferenceConfig",
    "LocalRegistry",
    "MlpipeError",
    "ModelNotFoundError",
    "ModelRef",
    "ModelVersionRef",
    "Pipeline",
    "PipelineConfig",
    "PipelineRun",
    "PredictionsRef",
    "QualityGateError",
    "Ref",
    "Registry",
    "ResultsRef",
    "Step",
    "StepContext",
    "StepFailedError",
    "StepRun",
    "TrainingConfig",
    "config_from_json",
    "execute_step",
    "get_pipeline",
    "load_config",
    "new_run_id",
    "open_registry",
    "ref_from_json",
    "resolve_home",
    "run_pipeline",
    "run_step",
]
