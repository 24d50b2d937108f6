"""Pydantic configs for both pipelines: one model per concern, strict, JSON round-trippable.

A config is validated once at the edge (file + ``--set`` overrides) and then travels to every step,
process and container as JSON, so all runners see exactly the same values.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache, partial
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from mlpipe.core import inputs, plugins
from mlpipe.core.errors import ConfigError
from mlpipe.core.inputs import InputFile


class _Strict(BaseModel):
    """Unknown fields, NaN/infinity and ``true`` for a number are errors, not guesses."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bools_for_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if isinstance(value, bool) and field is not None and _numeric(field.annotation):
                    raise ValueError(f"{name}: expected a number, got {value!r}")
        return data


def _numeric(annotation: Any) -> bool:
    """Whether a field takes numbers and not booleans (``int``, ``float | None``...)."""
    import typing

    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Annotated:
        return _numeric(args[0])
    if args:
        return bool(args) and any(_numeric(a) for a in args) and bool not in args
    return annotation in (int, float)


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
    path: InputFile | None = Field(None, description="csv, jsonl or parquet file (source: files)")
    eval_path: InputFile | None = Field(None, description="optional separate eval file")
    hub: HubDataConfig = HubDataConfig()
    generated: GeneratedDataConfig = GeneratedDataConfig()
    text_column: str = "text"
    label_column: str = "label"
    label_names: Annotated[list[str], Field(min_length=2)] = ["negative", "positive"]
    eval_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    max_rows: Annotated[int | None, Field(ge=1)] = None
    seed: int = 13

    @property
    def cacheable(self) -> bool:
        """Hub data can change under the same name: a step reading it is not cached."""
        return self.source != "hub"

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

    def input_keys(self) -> dict[str, str]:
        """A local ``base`` directory is keyed by its bytes, not its path (hub ids by name)."""
        content = inputs.dir_key(self.base) if self.base not in ("minilm", "tiny") else None
        return {} if content is None else {"base": content}


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


class PromoteIf(_Strict):
    """``registry.promote_if``: move the configured aliases to a new version only if it beats
    the version holding them on ``metric`` (``max``: higher is better) by at least ``min_delta``."""

    metric: Annotated[str, Field(min_length=1)]
    mode: Literal["max", "min"] = "max"
    min_delta: Annotated[float, Field(ge=0)] = 0.0


class RegistryConfig(_Strict):
    """What every registry backend takes; a backend subclasses it with its own fields.

    ``backend`` names a registry plugin (``mlpipe.registries``); its ``config_type`` validates
    the section, so each backend's settings live with that backend.
    """

    backend: str = "local"
    model_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = "sentiment"
    aliases: list[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")]] = ["staging"]
    promote_if: PromoteIf | None = Field(
        None, description="aliases move only to a better version; default: always (with a warning)"
    )


class TrackingConfig(_Strict):
    """Experiment tracking; ``backend`` names a tracker plugin (``mlpipe.trackers``).

    Off (``none``) by default so the demo needs no account; a tracker subclasses this with its
    own fields.
    """

    backend: str = "none"


def plugin_section(kind: plugins.Kind, value: Any, where: str) -> BaseModel:
    """Validate a backend's section with the schema its plugin declares (``config_type``).

    Errors name the field under ``where`` (``registry.wandb_mode: ...``) and exit 2.
    """
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of settings (got {value!r})")
    default = "none" if kind == "tracker" else "local"
    name = value.get("backend", default)
    if not isinstance(name, str):
        raise ConfigError(f"{where}.backend: expected a name (got {name!r})")
    schema = getattr(plugins.load(kind, name), "config_type", None)
    if schema is None:
        raise ConfigError(f"{where}.backend: {kind} {name!r} declares no config_type")
    try:
        return validate_section(schema, value, where)
    except ConfigError as exc:
        hints = _other_backends(kind, name, set(value) - set(schema.model_fields))
        raise ConfigError("\n".join([str(exc), *hints])) from None


def _other_backends(kind: plugins.Kind, chosen: str, unknown: set[str]) -> list[str]:
    """For settings the chosen backend lacks: which registered backend has them (what to do)."""
    hints = []
    for other in plugins.names(kind):
        if other == chosen or not unknown:
            continue
        try:
            fields = set(plugins.load(kind, other).config_type.model_fields)
        except (ConfigError, AttributeError):
            continue  # a backend whose extra is not installed: nothing to suggest
        mine = sorted(unknown & fields)
        if mine:
            hints.append(f"  ({', '.join(mine)}: setting(s) of backend {other!r}; set backend: "
                         f"{other} to use them, or remove them)")
            unknown -= set(mine)
    return hints


def validate_section(schema: type[BaseModel], value: Any, where: str) -> BaseModel:
    """``schema.model_validate(value)`` with errors reported under the section's name."""
    try:
        return schema.model_validate(value)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, schema, prefix=where)) from None


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
    fuse: list[list[str]] = Field(
        default_factory=list,
        description="groups of consecutive steps each run as one orchestrator task",
    )


# Kubernetes' syntax for what ends up in pod specs, so a typo fails at load time (exit 2), not when
# the API server rejects the pod: resource quantities (what both Kubernetes and kfp's
# set_cpu/memory_* accept: kfp takes no fractional memory, no exponent, no decimal "k"), DNS-1123
# labels (namespaces) and subdomains (object names), env var names and image references.
_QUANTITIES = {
    "cpu": (re.compile(r"^([0-9]*\.)?[0-9]+m?$"), "'500m', '0.5' or '2'"),
    "memory": (re.compile(r"^[0-9]+([KMGTPE]i|[MGTPE])?$"), "'512Mi' or '2Gi'"),
}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IMAGE = re.compile(
    r"^((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


def _k8s_syntax(value: str, pattern: re.Pattern[str], what: str, example: str) -> str:
    if not pattern.match(value):
        raise ValueError(f"{value!r} is not {what}, e.g. {example}")
    return value


class ResourcesConfig(_Strict):
    """Kubernetes requests/limits for one step's pod."""

    cpu: str | None = "1"
    memory: str | None = "2Gi"
    gpu: Annotated[int, Field(ge=0)] = 0
    gpu_resource: str = "nvidia.com/gpu"

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        pattern, example = _QUANTITIES[str(info.field_name)]
        return _k8s_syntax(value, pattern, f"a Kubernetes {info.field_name} quantity", example)


class SecretEnvConfig(_Strict):
    """An environment variable filled from a Kubernetes Secret (never an inline value)."""

    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    secret: str
    key: str

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        return _k8s_syntax(value, _DNS_SUBDOMAIN, "a Secret name (DNS-1123)", "'wandb'")


# Words that mark an env name as a credential (TOKENIZERS_PARALLELISM is not one): a name part
# equal to one of these, or ending with one (APITOKEN, DBPASS), or starting with one of the
# prefixes (PASSWD, AUTHORIZATION, CREDS).
_SECRET_WORDS = {
    "KEY",
    "KEYS",
    "APIKEY",
    "TOKEN",
    "TOKENS",
    "SECRET",
    "SECRETS",
    "PASS",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "PWD",
    "PIN",
    "AUTH",
    "CRED",
    "CREDS",
    "CREDENTIAL",
    "CREDENTIALS",
    "PRIVATE",
    "SESSION",
    "COOKIE",
    "SIGNATURE",
    "CERT",
    "DSN",
}
_SECRET_SUFFIXES = ("KEY", "TOKEN", "SECRET", "PASS", "PASSWORD", "PASSWD", "PWD", "AUTH")
_SECRET_PREFIXES = ("PASS", "AUTH", "CRED", "SECRET", "APIKEY", "PRIVATE")


_URL_CREDENTIALS = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def looks_secret(env_name: str) -> bool:
    """Whether an environment variable's name says it holds a credential."""
    parts = [p for p in re.split(r"[^A-Z0-9]+", env_name.upper()) if p]
    return any(
        p in _SECRET_WORDS or p.endswith(_SECRET_SUFFIXES) or p.startswith(_SECRET_PREFIXES)
        for p in parts
    )


class ClusterConfig(_Strict):
    """Cluster mode: every step runs as ``mlpipe step`` in one image, as a Kubernetes pod."""

    image: str = "mlpipe:latest"
    inference_image: str | None = Field(
        None,
        description="the slim image (docker/Dockerfile.inference, no torch) run_inference runs "
        "in when inference.backend is onnx; unset, every step uses image",
    )
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

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _k8s_syntax(value, _DNS_LABEL, "a namespace (DNS-1123 label)", "'ml-team'")

    @field_validator("service_account", "volume_claim")
    @classmethod
    def _object_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _k8s_syntax(value, _DNS_SUBDOMAIN, "a Kubernetes name (DNS-1123)", "'mlpipe-data'")

    @field_validator("image", "inference_image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _k8s_syntax(value, _IMAGE, "an image reference", "'registry.example/ml/mlpipe:1.2'")

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            _k8s_syntax(name, _ENV_NAME, "an env var name", "'HF_HUB_OFFLINE'")
        return value

    @model_validator(mode="after")
    def _no_secrets_in_env(self) -> ClusterConfig:
        secretish = [k for k in self.env if looks_secret(k)]
        # whatever its name, a plain value equal to a declared secret's value here is a leak
        values = {os.environ.get(s.env) for s in self.secrets} - {None, ""}
        secretish += [k for k, v in self.env.items() if v in values and k not in secretish]
        secretish += [  # user:password@ in a URL (a proxy, a database DSN)
            k for k, v in self.env.items() if _URL_CREDENTIALS.search(v) and k not in secretish
        ]
        if secretish:
            raise ValueError(
                f"cluster.env: {', '.join(secretish)} look like secrets; plain env values are "
                "written into pod specs and compiled pipelines. Use cluster.secrets "
                "(env/secret/key: a Kubernetes Secret reference) instead"
            )
        return self

    def resources_for(self, step: str) -> ResourcesConfig:
        return self.step_resources.get(step, self.resources)


class ArtifactsSettings(_Strict):
    """What ``save_artifacts`` publishes beside the safetensors weights."""

    onnx: bool = Field(
        False,
        description="also export model.onnx (opset 17, any batch and length) and its int8 "
        "twin, so inference.backend: onnx runs without torch",
    )


class InferenceSettings(_Strict):
    """Which model to load and how to batch."""

    model: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*(:[A-Za-z0-9_.-]+)?$")] = (
        "sentiment:latest"
    )
    batch_size: Annotated[int, Field(ge=1)] = 64
    max_length: Annotated[int | None, Field(ge=8)] = None
    backend: Literal["torch", "onnx"] = Field(
        "torch",
        description="onnx: the exported graph on onnxruntime (needs artifacts.onnx at training); "
        "imports neither torch nor transformers",
    )
    quantize: Literal["none", "int8"] = "none"
    int8_fallback_gap: Annotated[float, Field(ge=0, le=1)] = Field(
        0.4,
        description="int8: rows whose top-two probabilities differ by less are re-scored in fp32",
    )
    chunk_rows: Annotated[int, Field(ge=1)] = 10_000  # rows in memory at once; peak RSS follows
    num_threads: Annotated[int | None, Field(ge=1)] = None
    shards: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        1,
        description="run_inference runs once per shard, in parallel; 'auto': rows_per_shard "
        "rows each. Shards are cut at multiples of chunk_rows (so the batches, and the "
        "predictions, are those of one shard), so there are never more shards than chunks",
    )
    rows_per_shard: Annotated[int, Field(ge=1)] = 100_000


def _default_task() -> str:
    return plugins.default("task")


def _default_section(kind: plugins.Kind) -> Any:
    return plugin_section(kind, {}, "registry" if kind == "registry" else "tracking")


class PipelineSettings(_Strict):
    """Base of every pipeline's config, mlpipe's and yours: the sections every runner reads.

    Subclass it for your own pipeline (``pipeline: Literal["mine"] = "mine"`` plus your own
    sections); runners use ``runtime`` (cache, retries, timeouts, schedule, kubernetes mode),
    ``cluster`` (pods) and ``tracking``.
    """

    pipeline: str
    tracking: SerializeAsAny[TrackingConfig] = Field(
        default_factory=partial(_default_section, "tracker")
    )
    runtime: RuntimeConfig = RuntimeConfig()
    cluster: ClusterConfig = ClusterConfig()

    @model_validator(mode="before")
    @classmethod
    def _plugin_sections(cls, data: Any) -> Any:
        """Backend sections are validated by their plugin's schema (see ``plugin_section``)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for field, kind in (("tracking", "tracker"), ("registry", "registry")):
            if field in cls.model_fields and field in data:
                data[field] = plugin_section(kind, data[field], field)  # type: ignore[arg-type]
        return data


class _TaskPipelineSettings(PipelineSettings):
    """The built-in pipelines: a task (plugin) with its own optional section, data, registry."""

    _options_attr: ClassVar[str]  # which Task ClassVar holds this pipeline's section schema
    task: str = Field(default_factory=lambda: _default_task())
    task_options: SerializeAsAny[TaskOptions] | None = Field(
        None, description="the task's own section, written under the task's section name"
    )
    registry: SerializeAsAny[RegistryConfig] = Field(
        default_factory=partial(_default_section, "registry")
    )
    _section: str | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _task_section(cls, data: Any) -> Any:
        """Move the task's section (``sql:``) into ``task_options``, validated by the task."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        name = data.get("task") or _default_task()
        if not isinstance(name, str):
            raise ConfigError(f"task: expected a task name (got {name!r})")
        task = plugins.load("task", name)
        section: str | None = getattr(task, "config_section", None)
        schema: type[BaseModel] | None = getattr(task, cls._options_attr, None)
        if section and schema is not None:
            raw = data.pop(section, data.pop("task_options", None))
            if not isinstance(raw, TaskOptions) or not isinstance(raw, schema):
                raw = validate_section(schema, raw or {}, section)
            data["task_options"] = raw
        return data

    @model_validator(mode="after")
    def _remember_section(self) -> _TaskPipelineSettings:
        if self.task_options is not None:
            self._section = getattr(plugins.load("task", self.task), "config_section", None)
        return self

    @model_serializer(mode="wrap")
    def _write_section(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        options = data.pop("task_options", None)
        if options is not None and self._section:
            data[self._section] = options
        return data


class TrainingConfig(_TaskPipelineSettings):
    """The training pipeline: load data, train, save artifacts, upload to the registry."""

    _options_attr = "training_options"
    pipeline: Literal["training"] = "training"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    training: TrainConfig = TrainConfig()
    artifacts: ArtifactsSettings = ArtifactsSettings()

    @model_validator(mode="after")
    def _onnx_exportable(self) -> TrainingConfig:
        """``artifacts.onnx`` for a task with no ONNX export is refused when the config loads."""
        if self.artifacts.onnx and not hasattr(plugins.load("task", self.task), "export_onnx"):
            raise ValueError(
                f"artifacts.onnx: the {self.task} task has no ONNX export (the onnx backend "
                "is for text-classification); set artifacts.onnx: false"
            )
        return self


class InferenceConfig(_TaskPipelineSettings):
    """The inference pipeline: load data, load a model version, predict, save results."""

    _options_attr = "inference_options"
    pipeline: Literal["inference"] = "inference"
    data: DataConfig = DataConfig(generated=GeneratedDataConfig(n_samples=1000, seed=7))
    inference: InferenceSettings = InferenceSettings()

    @model_validator(mode="after")
    def _backend_supported(self) -> InferenceConfig:
        """A backend the task cannot run is refused when the config loads, not mid-pipeline."""
        if self.inference.backend != "torch":
            backends = tuple(getattr(plugins.load("task", self.task), "backends", ("torch",)))
            if self.inference.backend not in backends:
                raise ValueError(
                    f"inference.backend: '{self.inference.backend}' is not supported by the "
                    f"{self.task} task (it runs {', '.join(backends)}); set inference.backend: "
                    "torch"
                )
        return self


PipelineConfig = TrainingConfig | InferenceConfig


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    pipeline: str | None = None,
    config_type: type[PipelineSettings] | None = None,
    base: dict[str, Any] | None = None,
) -> Any:
    """Read a YAML config, apply ``dotted.key=value`` overrides, validate, make paths absolute.

    The config type comes from ``config_type``, else from the pipeline the file (or
    ``pipeline``) names. Relative paths in the file are taken relative to the file's own
    directory, so a config works from any working directory; paths given with ``--set`` are
    relative to the current one. ``base`` (a run's recorded config, for ``--resume``) is what
    the overrides apply to when no file is given. Raises ``ConfigError`` naming the field.
    """
    raw: dict[str, Any] = json.loads(json.dumps(base)) if base is not None else {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file} (pass an existing YAML file)")
        raw = read_yaml(file)
    override: dict[str, Any] = {}
    for item in overrides:
        _apply_override(override, item)
    kind = override.get("pipeline", raw.get("pipeline", pipeline))
    if pipeline is not None and kind != pipeline:
        raise ConfigError(
            f"pipeline: this command needs a '{pipeline}' config, the file is '{kind}'"
        )
    if config_type is None:
        config_type = config_type_of(kind)
    if path is not None:
        _absolutize(raw, Path(path).resolve().parent, config_type)
    _absolutize(override, Path.cwd(), config_type)  # paths typed with --set: relative to cwd
    _merge(raw, override)
    raw.setdefault("pipeline", kind)
    return parse_config(raw, config_type)


def config_type_of(pipeline: Any) -> type[PipelineSettings]:
    """The config type of a registered pipeline (``training``, ``inference``, plugins)."""
    if not isinstance(pipeline, str):
        raise ConfigError(
            f"pipeline: name the pipeline this config drives, one of "
            f"{', '.join(plugins.names('pipeline'))} (got {pipeline!r})"
        )
    config_type: type[PipelineSettings] = plugins.load("pipeline", pipeline).config_type
    return config_type


def parse_config(raw: dict[str, Any] | str, config_type: type[PipelineSettings]) -> Any:
    """Validate a mapping or JSON string; turn pydantic's report into a ``ConfigError``."""
    try:
        if isinstance(raw, str):
            return config_type.model_validate_json(raw)
        return config_type.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, config_type)) from None


def config_from_json(
    text: str | dict[str, Any], config_type: type[PipelineSettings] | None = None
) -> Any:
    """Rebuild a config that crossed a process boundary (type from its ``pipeline`` field)."""
    try:
        data = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config JSON is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("config JSON must be an object with a 'pipeline' field")
    return parse_config(data, config_type or config_type_of(data.get("pipeline")))


#: Upper bound on a YAML document's size once aliases are expanded (an alias bomb is refused).
MAX_YAML_NODES = 100_000


class _YamlProblem(Exception):
    """A config file problem found while parsing, with the line it is on."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@cache
def _config_loader() -> type[Any]:
    """``yaml.SafeLoader`` that refuses duplicate keys instead of keeping the last one (made on
    first use: a task's process gets its config as JSON and never imports yaml)."""
    import yaml

    class ConfigLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise _YamlProblem(f"duplicate key {key!r}", key_node.start_mark.line + 1)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return ConfigLoader


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """Nodes in the document with every alias expanded, counted without expanding them."""
    from yaml import MappingNode, SequenceNode

    def size_of(node: Any) -> int:
        if id(node) in memo:
            return memo[id(node)]
        memo[id(node)] = 1  # a recursive alias counts once instead of looping
        size = 1
        if isinstance(node, SequenceNode):
            size += sum(size_of(child) for child in node.value)
        elif isinstance(node, MappingNode):
            size += sum(size_of(k) + size_of(v) for k, v in node.value)
        memo[id(node)] = size
        return size

    return size_of(node)


def read_yaml(file: Path) -> dict[str, Any]:
    """A config file's mapping; empty files, duplicate keys and alias bombs are refused."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read it ({exc.strerror})") from None
    import yaml

    loader = _config_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(
                f"{file}: the config file is empty; write at least its pipeline, e.g. "
                "'pipeline: training' (see configs/tiny/training.yaml)"
            )
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise _YamlProblem(
                f"more than {MAX_YAML_NODES} values once its aliases are expanded; "
                "write the config out instead of nesting anchors"
            )
        loaded = loader.construct_document(node)
    except _YamlProblem as exc:
        where = f" line {exc.line}:" if exc.line else ""
        raise ConfigError(f"{file}:{where} {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(loaded, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of sections")
    return loaded


def format_validation_error(exc: ValidationError, root: type[BaseModel], prefix: str = "") -> str:
    lines = ["invalid config:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in (*([prefix] if prefix else []), *err["loc"])) or "<root>"
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
    import yaml

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


_PATH_KEYS = {("registry", "root")}  # a plugin section: its schema is known once validated


def _absolutize(raw: dict[str, Any], base_dir: Path, config_type: type[BaseModel]) -> None:
    inputs.absolutize(raw, config_type, base_dir)  # typed input paths, in any section
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
