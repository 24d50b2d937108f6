"""The ``Task`` protocol: what an ML task gives the eight task-agnostic steps.

Tasks are plugins (entry-point group ``mlpipe.tasks``): ``text-classification`` and
``text-to-sql`` ship with mlpipe as packages under :mod:`mlpipe.tasks`. A task owns its rows, its
training, its predictions, the quality checks its steps report and, optionally, a config section
of its own (``sql:`` for text-to-sql). Adding a task is one package and one entry point;
pipelines, runners and adapters do not change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from mlpipe.core import plugins
from mlpipe.core.errors import ConfigError
from mlpipe.core.refs import CheckResult, DatasetRef

if TYPE_CHECKING:
    import pyarrow as pa

    from mlpipe.core.config import InferenceConfig, TaskOptions, TrainingConfig

TASK_FILE = "mlpipe_task.json"  # written into every model directory a task saves; says its task
LogFn = Callable[[dict[str, float], int], None]


class ResultsAccumulator(Protocol):
    """Result metrics built up chunk by chunk while predictions are joined to their inputs."""

    def update(self, inputs: pa.Table, predictions: pa.Table) -> None: ...

    def metrics(self) -> dict[str, float]: ...


class Task(Protocol):
    """What an ML task (the config's ``task:``) provides to the steps; not a plan task
    (``execution.plan.TaskSpec``). Every method writes only under the directory it gets."""

    name: ClassVar[str]
    #: appended to the inputs in the results file, in order
    prediction_columns: ClassVar[tuple[str, ...]]
    #: step name -> names of the quality checks that step's reference carries (declared up front
    #: for orchestrators such as Dagster that want checks before a run)
    checks: ClassVar[Mapping[str, tuple[str, ...]]]
    #: the YAML section this task owns (``sql``) and its schema per pipeline, or None
    config_section: ClassVar[str | None]
    training_options: ClassVar[type[TaskOptions] | None]
    inference_options: ClassVar[type[TaskOptions] | None]
    # Optional declarations, read with getattr so a third-party task may leave them out:
    #   is_default: bool -- the task a config without ``task:`` (and a model without a task
    #     file) means; one registered task says so
    #   provenance_sections: tuple[str, ...] -- config sections that shape its weights (default:
    #     data, model, training, task, task_options)
    #   watched_metric: str -- the metric an alias move is judged on
    #   summary_metrics: tuple[str, ...] -- metrics a one-line summary shows
    #   packages: tuple[str, ...] -- distributions its code depends on (in the step cache key)

    def load_training_data(self, config: TrainingConfig, out_dir: Path) -> DatasetRef:
        """Read, normalize, validate and split the rows; write parquet; return checks."""
        ...

    def load_inference_data(self, config: InferenceConfig, out_dir: Path) -> DatasetRef:
        """Stream the rows into ``data.parquet`` in chunks; the gold column is optional."""
        ...

    def train(
        self, config: TrainingConfig, dataset: DatasetRef, model_dir: Path, *, on_log: LogFn
    ) -> tuple[dict[str, float], tuple[CheckResult, ...]]:
        """Fine-tune, evaluate, save to ``model_dir`` (safetensors); return metrics and checks."""
        ...

    def predict_file(
        self, config: InferenceConfig, model_dir: Path, dataset: DatasetRef, out_path: Path
    ) -> tuple[int, float]:
        """Write ``row_id`` + the prediction columns for every row in order; (rows, seconds)."""
        ...

    def results(self, config: InferenceConfig, dataset: DatasetRef) -> ResultsAccumulator:
        """A fresh accumulator for the metrics of this dataset's predictions."""
        ...

    def predict_texts(
        self, model_dir: Path, rows: Sequence[Mapping[str, Any]], *, batch_size: int = 32
    ) -> list[dict[str, Any]]:
        """Predictions for a few rows in memory (``mlpipe predict``, notebooks), in order.

        A task whose ``backends`` (optional class attribute, default ``("torch",)``) lists more
        than torch also takes ``backend=``; core passes it only for a backend other than torch.
        """
        ...


def check_backend(task: str, backend: str) -> None:
    """Refuse an ``inference.backend`` the task does not list in its ``backends``."""
    backends = tuple(getattr(plugins.load("task", task), "backends", ("torch",)))
    if backend not in backends:
        raise ConfigError(
            f"inference.backend: '{backend}' is not supported by the {task} task (it runs "
            f"{', '.join(backends)}); set inference.backend: torch"
        )


#: config sections a task's weights depend on, when the task does not say
PROVENANCE_SECTIONS = ("data", "model", "training", "task", "task_options")


def default_task() -> str:
    """The registered task that declares ``is_default`` (else the first one registered)."""
    return plugins.default("task")


def provenance_sections(name: str) -> tuple[str, ...]:
    """The config sections that shape a task's weights (what its provenance hashes)."""
    return tuple(getattr(task_class(name), "provenance_sections", PROVENANCE_SECTIONS))


def get_task(name: str) -> Task:
    """The task registered as ``name`` (imported on first use; unknown names are exit 2)."""
    cls = plugins.load("task", name)
    task: Task = cls()
    return task


def task_class(name: str) -> type[Task]:
    cls: type[Task] = plugins.load("task", name)
    return cls


def model_task(model_dir: Path) -> str:
    """The task a saved model was trained for (models without a task file are classifiers)."""
    path = Path(model_dir) / TASK_FILE
    if not path.is_file():
        return default_task()
    return str(json.loads(path.read_text()).get("task") or default_task())


def check_model_task(model_dir: Path, task: str) -> None:
    """Refuse to run a model on a task it was not trained for, with the fix in the message."""
    trained = model_task(model_dir)
    if trained != task:
        raise ConfigError(
            f"the model was trained for '{trained}' but this config has task: {task}; "
            f"set task: {trained} or load a {task} model"
        )
