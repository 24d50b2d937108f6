"""The section schemas and the pipeline configs built from them: one model per concern, strict,
JSON round-trippable. Backend sections (``registry``, ``tracking``) and a task's own section are
validated by the schema their plugin declares."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SerializeAsAny,
    field_validator,
    model_serializer,
    model_validator,
)

from mlpipe.core import inputs, plugins
from mlpipe.core.config.base import StrictModel, validate_section
from mlpipe.core.config.kubernetes import ClusterConfig
from mlpipe.core.errors import ConfigError
from mlpipe.core.inputs import InputFile
from mlpipe.core.schedule import cron_of


class TaskOptions(StrictModel):
    """Base of a task's own config section (e.g. ``sql:`` for text-to-sql)."""


class GeneratedDataConfig(StrictModel):
    """The built-in synthetic sentiment set: deterministic by seed, offline, with label noise."""

    n_samples: Annotated[int, Field(ge=10, le=5_000_000)] = 4000
    seed: int = 13
    label_noise: Annotated[float, Field(ge=0.0, le=0.5)] = 0.03


class HubDataConfig(StrictModel):
    """A Hugging Face dataset, e.g. ``name: glue, subset: sst2`` (needs network)."""

    name: str = "glue"
    subset: str | None = "sst2"
    split: str = "train"


class DataConfig(StrictModel):
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


class TinyModelConfig(StrictModel):
    """Dimensions of the tiny BERT built from scratch for tests (no download, seconds to train)."""

    hidden_size: Annotated[int, Field(ge=8)] = 32
    num_layers: Annotated[int, Field(ge=1)] = 2
    num_heads: Annotated[int, Field(ge=1)] = 2
    intermediate_size: Annotated[int, Field(ge=8)] = 64


class ModelConfig(StrictModel):
    """The base model: ``tiny``, ``minilm`` (offline package), a local directory, or a hub id."""

    base: str = "minilm"
    max_length: Annotated[int, Field(ge=8, le=4096)] = 64
    tiny: TinyModelConfig = TinyModelConfig()

    def input_keys(self) -> dict[str, str]:
        """A local ``base`` directory is keyed by its bytes, not its path (hub ids by name)."""
        content = inputs.dir_key(self.base) if self.base not in ("minilm", "tiny") else None
        return {} if content is None else {"base": content}


class TrainConfig(StrictModel):
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


class PromoteIf(StrictModel):
    """``registry.promote_if``: move the configured aliases to a new version only if it beats
    the version holding them on ``metric`` (``max``: higher is better) by at least ``min_delta``."""

    metric: Annotated[str, Field(min_length=1)]
    mode: Literal["max", "min"] = "max"
    min_delta: Annotated[float, Field(ge=0)] = 0.0


class RegistryConfig(StrictModel):
    """What every registry backend takes; a backend subclasses it with its own fields.

    ``backend`` names a registry plugin (``mlpipe.registries``); its ``config_type`` validates
    the section, so each backend's settings live with that backend.
    """

    #: the registry plugin that declares ``is_default`` (core names none)
    backend: str = Field(default_factory=lambda: plugins.default("registry"))
    model_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = "sentiment"
    aliases: list[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")]] = ["staging"]
    promote_if: PromoteIf | None = Field(
        None, description="aliases move only to a better version; default: always (with a warning)"
    )


class TrackingConfig(StrictModel):
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
    base = TrackingConfig if kind == "tracker" else RegistryConfig
    default = base.model_fields["backend"].get_default(call_default_factory=True)
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

class RuntimeConfig(StrictModel):
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
    in_process_shards_mib: Annotated[float, Field(ge=0)] = Field(
        1.0,
        description="local runner: a map step whose shards' input files total at most this "
        "many MiB runs its shards in the runner's process, one after another (no interpreter "
        "or torch import per shard); a larger one runs a process per shard, one per core at a "
        "time. 0: always a process per shard",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        """Refuse at load what no orchestrator could schedule; kept as written."""
        if value is not None:
            cron_of(value)
        return value

class ArtifactsSettings(StrictModel):
    """What ``save_artifacts`` publishes beside the safetensors weights."""

    onnx: bool = Field(
        False,
        description="also export model.onnx (opset 17, any batch and length) and its int8 "
        "twin, so inference.backend: onnx runs without torch",
    )


class InferenceSettings(StrictModel):
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


#: config section -> the plugin kind whose backend it names
BACKEND_SECTIONS: tuple[tuple[str, plugins.Kind], ...] = (
    ("tracking", "tracker"), ("registry", "registry"))


def _default_task() -> str:
    return plugins.default("task")


def _default_section(kind: plugins.Kind) -> Any:
    return plugin_section(kind, {}, "registry" if kind == "registry" else "tracking")


class PipelineSettings(StrictModel):
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
        for field, kind in BACKEND_SECTIONS:
            if field in cls.model_fields and field in data:
                data[field] = plugin_section(kind, data[field], field)
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
                f"artifacts.onnx: the {self.task} task has no ONNX export (a task declares "
                "one with export_onnx); set artifacts.onnx: false"
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


#: The config of a built-in pipeline (``PipelineSettings`` is the base of every pipeline's).
BuiltinConfig = TrainingConfig | InferenceConfig
