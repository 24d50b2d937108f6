"""Pipelines as data: named steps, the inputs each takes from earlier steps, the output it makes.

Every runner (local, Airflow, Kubeflow, Dagster) walks this description, so adding a step means
adding it here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpipe.core.config import InferenceConfig, TrainingConfig


@dataclass(frozen=True)
class StepContext:
    """Where a step writes and what run it belongs to; passed to every step function."""

    home: Path
    run_id: str
    pipeline: str
    step: str
    out_dir: Path
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.out_dir.parent


@dataclass(frozen=True)
class Step:
    """One step: ``fn(config, ctx, **inputs) -> Ref``.

    ``inputs`` maps the function's argument name to the step whose output it takes. ``asset`` names
    the output as a thing (for asset-based orchestrators); ``config_sections`` are the parts of the
    config the step reads, which is what its cache key covers; ``checks`` names the quality checks
    its reference carries, for orchestrators that declare checks before a run.
    """

    name: str
    fn: Callable[..., Any]
    asset: str
    description: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    config_sections: tuple[str, ...] = ()
    cacheable: bool = True
    checks: tuple[str, ...] = ()  # quality checks its reference carries (declared up front)

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.inputs.values()))


@dataclass(frozen=True)
class Pipeline:
    """An ordered, validated set of steps and the config type that drives them."""

    name: str
    config_type: type[TrainingConfig] | type[InferenceConfig]
    steps: tuple[Step, ...]
    description: str = ""

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for step in self.steps:
            if step.name in seen:
                raise ValueError(f"pipeline {self.name}: duplicate step '{step.name}'")
            for arg, source in step.inputs.items():
                if source not in seen:
                    raise ValueError(
                        f"pipeline {self.name}: step '{step.name}' input '{arg}' comes from "
                        f"'{source}', which is not an earlier step"
                    )
            seen.add(step.name)

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps)

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(
            f"pipeline '{self.name}' has no step '{name}' (steps: {', '.join(self.step_names)})"
        )

    def downstream(self, name: str) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps if name in s.upstream)
