"""What a benchmark runs: the runners, the pipelines' overrides, quick or full."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


#: The runners compared by default: every registered runner (``local`` first: the reference).
def registered_runners() -> tuple[str, ...]:
    from mlpipe.core import plugins

    names = plugins.names("runner")
    return ("local", *(n for n in names if n != "local"))


@dataclass
class BenchSettings:
    """What to run. ``quick`` uses the tiny model and small data."""

    quick: bool = True
    repetitions: int = 3
    task: str = "text-classification"
    #: The pipelines, in order: registered names or ``module:ATTRIBUTE`` (a user's own).
    pipelines: Sequence[str] = ("training", "inference")
    #: Config files, each for the pipeline its ``pipeline:`` key names (a file naming none:
    #: every pipeline), and ``--set`` overrides for every pipeline (as ``mlpipe run``).
    configs: Sequence[Path] = ()
    overrides: list[str] = field(default_factory=list)
    runners: Sequence[str] = field(default_factory=registered_runners)
    out_dir: Path = Path("bench/results")
    training_overrides: list[str] = field(default_factory=list)
    inference_overrides: list[str] = field(default_factory=list)
    #: Also run the pipelines through the services of the chosen runners that have a deployed
    #: mode (``airflow standalone``, ``dagster dev``): see :mod:`mlpipe.bench.deployed`.
    deployed: bool = False
    #: Which of ``pipelines`` go through the services (names or references; empty: all).
    deployed_pipelines: Sequence[str] = ()


def default_overrides(
    quick: bool, task: str = "text-classification"
) -> tuple[list[str], list[str]]:
    """Training / inference overrides on top of the built-in defaults (the demo's config)."""
    if task == "text-to-sql":
        size = (
            ["data.generated.n_samples=400", "training.epochs=1"]
            if quick
            else ["data.generated.n_samples=1500", "training.epochs=5"]
        )
        train = [
            "task=text-to-sql",
            "model.base=tiny",
            "model.max_length=128",
            "model.tiny.hidden_size=128",
            "model.tiny.num_heads=4",
            "model.tiny.intermediate_size=256",
            "data.eval_fraction=0.1",
            *size,
            "training.batch_size=16",
            "training.learning_rate=0.002",
            "training.num_threads=1",
            "sql.max_new_tokens=48",
            "sql.eval_max_rows=20",
            "sql.tokenizer_vocab_size=600",
            "registry.model_name=bench",
        ]
        infer = [
            "task=text-to-sql",
            f"data.generated.n_samples={50 if quick else 200}",
            "inference.model=bench:latest",
            "inference.num_threads=1",
            "sql.max_new_tokens=48",
            "registry.model_name=bench",
        ]
        return train, infer
    if quick:
        train = [
            "model.base=tiny",
            "model.max_length=48",
            "data.generated.n_samples=300",
            "training.epochs=1",
            "training.batch_size=16",
            "training.learning_rate=0.002",
            "training.num_threads=1",
            "registry.model_name=bench",
        ]
        infer = [
            "data.generated.n_samples=200",
            "inference.model=bench:latest",
            "inference.num_threads=1",
            "registry.model_name=bench",
        ]
    else:
        train = [
            "data.generated.n_samples=2000",
            "training.num_threads=2",
            "registry.model_name=bench",
        ]
        infer = [
            "data.generated.n_samples=1000",
            "inference.model=bench:latest",
            "inference.num_threads=2",
            "registry.model_name=bench",
        ]
    return train, infer
