"""ML tasks beneath the eight steps: each task knows its rows, its training, its predictions.

The steps in :mod:`mlpipe.core.steps` stay task-agnostic: they call ``get_task(config.task)`` and
the task does the work. Adding a task means one module implementing :class:`Task` and one line in
``_TASKS``; pipelines, runners and adapters do not change.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mlpipe.core.config import TASKS, InferenceConfig, TrainingConfig
from mlpipe.core.errors import ConfigError
from mlpipe.core.refs import CheckResult, DatasetRef

if TYPE_CHECKING:
    import pyarrow as pa

TASK_FILE = "mlpipe_task.json"  # written into every generative model directory; says its task
LogFn = Callable[[dict[str, float], int], None]


class ResultsAccumulator(Protocol):
    """Result metrics built up chunk by chunk while predictions are joined to their inputs."""

    def update(self, inputs: pa.Table, predictions: pa.Table) -> None: ...

    def metrics(self) -> dict[str, float]: ...


class Task(Protocol):
    """What a task provides to the steps. Every method writes only under the directory it gets."""

    name: str
    prediction_columns: tuple[str, ...]  # appended to the inputs in the results file, in order

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


_TASKS = {
    "text-classification": "mlpipe.core.tasks.classification:ClassificationTask",
    "text-to-sql": "mlpipe.core.tasks.text_to_sql:TextToSqlTask",
}
assert set(_TASKS) == set(TASKS)


def get_task(name: str) -> Task:
    """The task implementation for ``config.task`` (imported on first use)."""
    try:
        target = _TASKS[name]
    except KeyError:
        raise ConfigError(
            f"task: unknown task {name!r} (choose from {', '.join(_TASKS)})"
        ) from None
    module, _, attr = target.partition(":")
    task: Task = getattr(importlib.import_module(module), attr)()
    return task


def model_task(model_dir: Path) -> str:
    """The task a saved model was trained for (models without a task file are classifiers)."""
    path = Path(model_dir) / TASK_FILE
    if not path.is_file():
        return "text-classification"
    return str(json.loads(path.read_text()).get("task", "text-classification"))


def check_model_task(model_dir: Path, task: str) -> None:
    """Refuse to run a model on a task it was not trained for, with the fix in the message."""
    trained = model_task(model_dir)
    if trained != task:
        raise ConfigError(
            f"the model was trained for '{trained}' but this config has task: {task}; "
            f"set task: {trained} or load a {task} model"
        )
