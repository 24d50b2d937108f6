"""Pydantic configs for both pipelines: one model per concern, strict, JSON round-trippable.

A config is validated once at the edge (file + ``--set`` overrides) and then travels to every step,
process and container as JSON, so all runners see exactly the same values.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlpipe.core.errors import ConfigError

PipelineName = Literal["training", "inference"]
TaskName = Literal["text-classification", "text-to-sql"]
TASKS: tuple[str, ...] = ("text-classification", "text-to-sql")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TaskOptions(_Strict):
    """Base of a task's own config section (e.g. ``sql:`` for text-to-sql)."""


class GeneratedDataConfig(_Strict):
    """The built-in synthetic sentiment set: deterministic by seed, offline, with label noise."""

    n_samples: Annotated[int, Field(ge=10, le=5_000_000)] = 4000
    seed: int = 13
    label_noise: Annotated[float, Field(ge=0.0, le=0.5)] = 0.03


class HubDataConfig(_Strict):
    """A Hugging Face dataset, e.g. ``name: glue, subset: sst2`` (needs network)."""

    name: str = "glue"
    subset: str | None = "sst2"
    split: str = "train"


class DataConfig(_Strict):
    """Where the rows come from and how to read them."""

    source: Literal["generated", "files", "hub"] = "generated"
    path: Path | None = Field(None, description="csv, jsonl or parquet file (source: files)")
    eval_path: Path | None = Field(None, description="optional separate eval file")
    hub: HubDataConfig = HubDataConfig()
    generated: GeneratedDataConfig = GeneratedDataConfig()
    text_column: str = "text"
    label_column: str = "label"
    label_names: Annotated[list[str], Field(min_length=2)] = ["negative", "positive"]
    eval_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    max_rows: Annotated[int | None, Field(ge=1)] = None
    seed: int = 13

    @model_validator(mode="after")
    def _source_needs_path(self) -> DataConfig:
        if self.source == "files" and self.path is None:
            raise ValueError("data.path is required when data.source is 'files'")
        return self


class TinyModelConfig(_Strict):
    """Dimensions of the tiny BERT built from scratch for tests (no download, seconds to train)."""

    hidden_size: Annotated[int, Field(ge=8)] = 32
    num_layers: Annotated[int, Field(ge=1)] = 2
    num_heads: Annotated[int, Field(ge=1)] = 2
    intermediate_size: Annotated[int, Field(ge=8)] = 64


class ModelConfig(_Strict):
    """The base model: ``tiny``, ``minilm`` (offline package), a local directory, or a hub id."""

    base: str = "minilm"
    max_length: Annotated[int, Field(ge=8, le=4096)] = 64
    tiny: TinyModelConfig = TinyModelConfig()


class TrainConfig(_Strict):
    """Fine-tuning hyper-parameters. The same values and data give the same weights."""

    epochs: Annotated[float, Field(gt=0)] = 1.0
    batch_size: Annotated[int, Field(ge=1)] = 32
    learning_rate: Annotated[float, Field(gt=0)] = 1e-4
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.06
    max_grad_norm: Annotated[float, Field(gt=0)] = 1.0
    max_steps: Annotated[int | None, Field(ge=1)] = None
    group_by_length: bool = True
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16: autocast matmuls (about 1.3x on CPUs with AVX512-BF16)"
    )
    seed: int = 42
    num_threads: Annotated[int | None, Field(ge=1)] = None
    min_eval_accuracy: Annotated[float | None, Field(ge=0, le=1)] = None


class LoraConfig(_Strict):
    """LoRA adapters (needs the ``peft`` extra); merged into the weights before saving."""

    r: Annotated[int, Field(ge=1)] = 8
    alpha: Annotated[float, Field(gt=0)] = 16.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    target_modules: list[str] | None = Field(
        None, description="module names to adapt; none = peft's default for the architecture"
    )


class SqlConfig(_Strict):
    """Text-to-SQL settings (``task: text-to-sql``): input columns and generation length."""

    question_column: str = "question"
    context_column: str = Field("context", description="the CREATE TABLE statements")
    answer_column: str = Field("answer", description="the gold SQL (optional for inference)")
    max_new_tokens: Annotated[int, Field(ge=1, le=2048)] = 128


class SqlTrainConfig(SqlConfig):
    """Text-to-SQL training: LoRA, the tiny tokenizer, generation-based eval.

    ``training.min_eval_accuracy`` is the floor on eval execution accuracy for this task.
    """

    lora: LoraConfig | None = None
    tokenizer_vocab_size: Annotated[int, Field(ge=300, le=100_000)] = Field(
        1024, description="byte-level BPE trained on the data (model.base: tiny only)"
    )
    eval_max_rows: Annotated[int | None, Field(ge=1)] = Field(
        200, description="eval rows scored by generating SQL (slow); none = all"
    )


class RegistryConfig(_Strict):
    """Where model versions live. ``local`` is a directory under the mlpipe home."""

    backend: Literal["local", "wandb"] = "local"
    root: Path | None = Field(None, description="local registry directory; default <home>/registry")
    model_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = "sentiment"
    aliases: list[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")]] = ["staging"]
    wandb_project: str | None = None
    wandb_entity: str | None = None
    wandb_mode: Literal["online", "offline"] | None = Field(
        None, description="default: WANDB_MODE, else online"
    )
    wandb_collection: str | None = Field(
        None, description="W&B registry collection to link versions to, e.g. wandb-registry-model/x"
    )


class TrackingConfig(_Strict):
    """Experiment tracking; off by default so the demo needs no account."""

    backend: Literal["none", "wandb"] = "none"
    project: str = "mlpipe"
    entity: str | None = None
    mode: Literal["online", "offline", "disabled"] | None = None


class RuntimeConfig(_Strict):
    """How orchestrators run the steps: retries, timeouts, schedule, caching."""

    retries: Annotated[int, Field(ge=0, le=20)] = 0
    retry_delay_s: Annotated[float, Field(ge=0)] = 10.0
    timeout_s: Annotated[float, Field(gt=0)] = 3600.0
    schedule: str | None = Field(None, description="cron or preset like '@weekly'; none = manual")
    cache: bool = True
    mode: Literal["local", "kubernetes"] = Field(
        "local", description="kubernetes: each step is a pod running the image (see cluster)"
    )


class ResourcesConfig(_Strict):
    """Kubernetes requests/limits for one step's pod."""

    cpu: str | None = "1"
    memory: str | None = "2Gi"
    gpu: Annotated[int, Field(ge=0)] = 0
    gpu_resource: str = "nvidia.com/gpu"


class SecretEnvConfig(_Strict):
    """An environment variable filled from a Kubernetes Secret (never an inline value)."""

    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    secret: str
    key: str


# Words that mark an env name as a credential (TOKENIZERS_PARALLELISM is not one).
_SECRET_WORDS = {
    "KEY",
    "APIKEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "CREDENTIALS",
}


class ClusterConfig(_Strict):
    """Cluster mode: every step runs as ``mlpipe step`` in one image, as a Kubernetes pod."""

    image: str = "mlpipe:latest"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    namespace: str = "mlpipe"
    service_account: str | None = None
    resources: ResourcesConfig = ResourcesConfig()
    step_resources: dict[str, ResourcesConfig] = Field(
        default_factory=dict, description="per-step overrides, e.g. train_model: {gpu: 1}"
    )
    volume_claim: str | None = Field("mlpipe-data", description="PVC shared by all step pods")
    mount_path: str = "/data"
    home: str = Field("/data/mlpipe", description="MLPIPE_HOME inside the pods")
    storage_uri: str | None = Field(
        None, description="object storage (s3://, gs://) synced before and after each step"
    )
    secrets: list[SecretEnvConfig] = [
        SecretEnvConfig(env="WANDB_API_KEY", secret="wandb", key="api-key")
    ]
    env: dict[str, str] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_secrets_in_env(self) -> ClusterConfig:
        secretish = [k for k in self.env if _SECRET_WORDS & set(k.upper().split("_"))]
        if secretish:
            raise ValueError(
                f"cluster.env: {', '.join(secretish)} look like secrets; plain env values are "
                "written into pod specs and compiled pipelines. Use cluster.secrets "
                "(env/secret/key: a Kubernetes Secret reference) instead"
            )
        return self

    def resources_for(self, step: str) -> ResourcesConfig:
        return self.step_resources.get(step, self.resources)


class InferenceSettings(_Strict):
    """Which model to load and how to batch."""

    model: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*(:[A-Za-z0-9_.-]+)?$")] = (
        "sentiment:latest"
    )
    batch_size: Annotated[int, Field(ge=1)] = 64
    max_length: Annotated[int | None, Field(ge=8)] = None
    quantize: Literal["none", "int8"] = "none"
    int8_fallback_gap: Annotated[float, Field(ge=0, le=1)] = Field(
        0.4,
        description="int8: rows whose top-two probabilities differ by less are re-scored in fp32",
    )
    chunk_rows: Annotated[int, Field(ge=1)] = 10_000  # rows in memory at once; peak RSS follows
    num_threads: Annotated[int | None, Field(ge=1)] = None


class TrainingConfig(_Strict):
    """The training pipeline: load data, train, save artifacts, upload to the registry."""

    pipeline: Literal["training"] = "training"
    task: TaskName = "text-classification"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    training: TrainConfig = TrainConfig()
    sql: SqlTrainConfig = SqlTrainConfig()
    registry: RegistryConfig = RegistryConfig()
    tracking: TrackingConfig = TrackingConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    cluster: ClusterConfig = ClusterConfig()


class InferenceConfig(_Strict):
    """The inference pipeline: load data, load a model version, predict, save results."""

    pipeline: Literal["inference"] = "inference"
    task: TaskName = "text-classification"
    data: DataConfig = DataConfig(generated=GeneratedDataConfig(n_samples=1000, seed=7))
    inference: InferenceSettings = InferenceSettings()
    sql: SqlConfig = SqlConfig()
    registry: RegistryConfig = RegistryConfig()
    tracking: TrackingConfig = TrackingConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    cluster: ClusterConfig = ClusterConfig()


PipelineConfig = TrainingConfig | InferenceConfig
CONFIG_TYPES: dict[str, type[TrainingConfig] | type[InferenceConfig]] = {
    "training": TrainingConfig,
    "inference": InferenceConfig,
}


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    pipeline: PipelineName | None = None,
) -> PipelineConfig:
    """Read a YAML config, apply ``dotted.key=value`` overrides, validate, make paths absolute.

    Relative paths in the file are taken relative to the file's own directory, so a config works
    from any working directory; paths given with ``--set`` are relative to the current one.
    Raises ``ConfigError`` naming the field and what is allowed.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file} (pass an existing YAML file)")
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: the top level must be a mapping of sections")
        raw = loaded
        _absolutize(raw, file.resolve().parent)
    override: dict[str, Any] = {}
    for item in overrides:
        _apply_override(override, item)
    _absolutize(override, Path.cwd())  # paths typed on the command line are relative to cwd
    _merge(raw, override)
    kind = raw.get("pipeline", pipeline)
    if pipeline is not None and kind != pipeline:
        raise ConfigError(
            f"pipeline: this command needs a '{pipeline}' config, the file is '{kind}'"
        )
    if kind not in CONFIG_TYPES:
        raise ConfigError(f"pipeline: must be 'training' or 'inference' (got {kind!r})")
    return parse_config(raw, CONFIG_TYPES[kind])


def parse_config(
    raw: dict[str, Any] | str, config_type: type[TrainingConfig] | type[InferenceConfig]
) -> PipelineConfig:
    """Validate a mapping or JSON string; turn pydantic's report into a ``ConfigError``."""
    try:
        if isinstance(raw, str):
            return config_type.model_validate_json(raw)
        return config_type.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, config_type)) from None


def config_from_json(text: str | dict[str, Any]) -> PipelineConfig:
    """Rebuild a config that crossed a process boundary."""
    try:
        data = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config JSON is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("config JSON must be an object with a 'pipeline' field")
    kind = data.get("pipeline")
    if kind not in CONFIG_TYPES:
        raise ConfigError(f"pipeline: must be 'training' or 'inference' (got {kind!r})")
    return parse_config(data, CONFIG_TYPES[kind])


def format_validation_error(exc: ValidationError, root: type[BaseModel]) -> str:
    lines = ["invalid config:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_fields(root, err["loc"][:-1])
            lines.append(f"  {loc}: unknown field; allowed here: {', '.join(allowed)}")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  {loc}: {err['msg']}{shown}")
    return "\n".join(lines)


def _allowed_fields(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    model: Any = root
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}))


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected dotted.key=value, e.g. training.epochs=2")
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item!r}: '{part}' is a value, not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(value) if value != "" else None
    except yaml.YAMLError:
        node[parts[-1]] = value  # not YAML (e.g. @weekly): take it as the plain string it is


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


_PATH_KEYS = {("data", "path"), ("data", "eval_path"), ("registry", "root")}


def _absolutize(raw: dict[str, Any], base_dir: Path) -> None:
    for section, key in _PATH_KEYS:
        node = raw.get(section)
        if isinstance(node, dict) and isinstance(node.get(key), str):
            value = node[key]
            if "://" not in value:
                node[key] = str((base_dir / os.path.expanduser(value)).resolve())
    model = raw.get("model")
    if isinstance(model, dict):
        base = model.get("base")
        if isinstance(base, str) and base.startswith(("./", "../", "~")):  # a path, not a hub id
            model["base"] = str((base_dir / os.path.expanduser(base)).resolve())
