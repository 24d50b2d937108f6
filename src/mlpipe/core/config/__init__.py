"""Pydantic configs for every pipeline: validated once at the edge (file + ``--set``
overrides), then carried to every step, process and container as JSON, so all runners see
exactly the same values.

``schemas``: the sections and the pipeline configs; ``kubernetes``: the ``cluster`` section and
its Kubernetes checks; ``loading``: YAML, ``--set`` and JSON in; ``base``: strict models and
error reports. Import from here.
"""

from mlpipe.core.config.base import StrictModel, format_validation_error, validate_section
from mlpipe.core.config.kubernetes import (
    ClusterConfig,
    ResourcesConfig,
    SecretEnvConfig,
    looks_secret,
)
from mlpipe.core.config.loading import (
    MAX_YAML_NODES,
    config_from_json,
    config_type_of,
    load_config,
    parse_config,
    read_yaml,
)
from mlpipe.core.config.schemas import (
    BACKEND_SECTIONS,
    ArtifactsSettings,
    BuiltinConfig,
    DataConfig,
    GeneratedDataConfig,
    HubDataConfig,
    InferenceConfig,
    InferenceSettings,
    ModelConfig,
    PipelineSettings,
    PromoteIf,
    RegistryConfig,
    RuntimeConfig,
    TaskOptions,
    TinyModelConfig,
    TrackingConfig,
    TrainConfig,
    TrainingConfig,
    plugin_section,
)
from mlpipe.core.errors import ConfigError

__all__ = [
    "BACKEND_SECTIONS",
    "MAX_YAML_NODES",
    "ArtifactsSettings",
    "BuiltinConfig",
    "ClusterConfig",
    "ConfigError",
    "DataConfig",
    "GeneratedDataConfig",
    "HubDataConfig",
    "InferenceConfig",
    "InferenceSettings",
    "ModelConfig",
    "PipelineSettings",
    "PromoteIf",
    "RegistryConfig",
    "ResourcesConfig",
    "RuntimeConfig",
    "SecretEnvConfig",
    "StrictModel",
    "TaskOptions",
    "TinyModelConfig",
    "TrackingConfig",
    "TrainConfig",
    "TrainingConfig",
    "config_from_json",
    "config_type_of",
    "format_validation_error",
    "load_config",
    "looks_secret",
    "parse_config",
    "plugin_section",
    "read_yaml",
    "validate_section",
]
