"""Pipelines as data: named steps, the inputs each takes from earlier steps, the output it makes.

Every runner (local, Airflow, Kubeflow, Dagster) walks this description, so adding a step means
adding it to a ``Pipeline`` and nowhere else. mlpipe's own pipelines and the ones users write are
the same objects::

    PIPELINE = Pipeline("scoring", MyConfig, steps=(Step("load", load, asset="rows"), ...))

and run on every runner with ``mlpipe run my_module:PIPELINE --runner dagster --config F``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipe.core import plugins
from mlpipe.core.config import PipelineSettings
from mlpipe.core.errors import ConfigError
from mlpipe.core.schedule import cron_of

if TYPE_CHECKING:
    from mlpipe.core.refs import Ref


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
        parent = self.out_dir.parent  # a map step's shard writes under <run>/<step>/shard-NNNN
        return parent.parent if parent.name == self.step and self.out_dir.name.startswith(
            "shard-") else parent


@dataclass(frozen=True)
class Step:
    """One step: ``fn(config, ctx, **inputs) -> Ref``.

    ``inputs`` maps the function's argument name to the step whose output it takes. ``asset`` names
    the output as a thing (for asset-based orchestrators); ``config_sections`` are the parts of the
    config the step reads, which is what its cache key covers; ``checks`` names the quality checks
    its reference carries, for orchestrators that declare checks before a run.

    ``map_over`` makes it a map step: it names the upstream step whose output is a ``ShardsRef``,
    and the step runs once per shard (each input from that step gets one shard; every other input
    stays whole), each in its own ``<step>/shard-NNNN/`` directory, cached and resumed per shard.
    Steps after a map step take its output as a ``ShardsRef`` of the shards' outputs, in shard
    order (the gather). The shard count is whatever the upstream produced at run time.
    """

    name: str
    fn: Callable[..., Any]
    asset: str
    description: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    config_sections: tuple[str, ...] = ()
    cacheable: bool = True
    checks: tuple[str, ...] = ()  # quality checks its reference carries (declared up front)
    map_over: str | None = None  # upstream step whose shards this step runs over, one by one

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.inputs.values()))

    @property
    def mapped_inputs(self) -> tuple[str, ...]:
        """The input names that take one shard each (those fed by ``map_over``)."""
        return tuple(arg for arg, src in self.inputs.items() if src == self.map_over)

    @property
    def returns(self) -> type[Ref]:
        """The reference kind ``fn`` is annotated to return, for orchestrators that type outputs
        up front: ``Ref`` itself when the annotation names no kind or does not resolve."""
        import typing

        from mlpipe.core.refs import Ref

        try:
            ref = typing.get_type_hints(self.fn).get("return")
        except Exception:  # e.g. a name only imported under TYPE_CHECKING: the step still runs
            return Ref
        return ref if isinstance(ref, type) and issubclass(ref, Ref) else Ref


def _caller_module() -> str:
    """The module that constructs the Pipeline (the first frame outside this module)."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return str(frame.f_globals.get("__name__", "__main__"))


@dataclass(frozen=True)
class Pipeline:
    """An ordered, validated set of steps and the config type that drives them.

    ``config_type`` is a ``PipelineSettings`` subclass whose ``pipeline`` field is ``name``.
    ``module`` is where the pipeline is defined (found automatically), so a task, component or
    pod in another process can import it again by ``ref``. ``schedule``: the cron string its
    orchestrated runs follow when the config sets no ``runtime.schedule`` (None: manual runs).
    """

    name: str
    config_type: type[PipelineSettings]
    steps: tuple[Step, ...]
    description: str = ""
    schedule: str | None = None
    module: str = field(default_factory=_caller_module, compare=False)

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"pipeline {self.name}: no steps")
        if self.schedule is not None and cron_of(self.schedule) != self.schedule:
            raise ValueError(f"pipeline {self.name}: schedule must be a cron string")
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
            if step.map_over is not None and step.map_over not in step.upstream:
                raise ValueError(
                    f"pipeline {self.name}: step '{step.name}' maps over '{step.map_over}', "
                    "which is not one of its inputs"
                )
            seen.add(step.name)

    def cron(self, config: PipelineSettings) -> str | None:
        """The schedule every orchestrator follows: ``runtime.schedule`` as a cron string, else
        this pipeline's default, else None (manual runs only)."""
        raw = config.runtime.schedule
        return cron_of(raw) if raw else self.schedule

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

    def check_config(self, config: PipelineSettings) -> None:
        """A config names the pipeline it drives: refuse one written for another pipeline."""
        if config.pipeline != self.name:
            raise ConfigError(
                f"pipeline: a '{config.pipeline}' config cannot drive the '{self.name}' pipeline")

    @property
    def ref(self) -> str:
        """How another process finds this pipeline: ``module:ATTRIBUTE``."""
        module = sys.modules.get(self.module)
        attr = next((k for k, v in vars(module).items() if v is self), None) if module else None
        if attr is None or self.module == "__main__":
            raise ConfigError(
                f"pipeline {self.name!r} is defined in {self.module}, which another process "
                "cannot import: define it at the top level of an importable module"
            )
        return f"{self.module}:{attr}"

    def checks_for(self, step: str, config: PipelineSettings) -> tuple[str, ...]:
        """The checks a step reports: its own, plus those its config's task declares."""
        own = self.step(step).checks
        task = getattr(config, "task", None)
        if not isinstance(task, str):
            return own
        declared = getattr(plugins.load("task", task), "checks", {})
        return tuple(dict.fromkeys((*own, *declared.get(step, ()))))


def portable_ref(pipeline: Pipeline) -> str:
    """What another process resolves to this pipeline: its registered name, else module:ATTR."""
    ref = pipeline.ref
    return pipeline.name if plugins.targets("pipeline").get(pipeline.name) == ref else ref


def import_root(pipeline: Pipeline) -> str | None:
    """The folder a user pipeline's module is imported from (None: a registered pipeline, or a
    module without a file)."""
    import os

    file = getattr(sys.modules.get(pipeline.module), "__file__", None)
    try:
        if ":" not in portable_ref(pipeline) or not file:
            return None
    except ConfigError:
        return None
    levels = pipeline.module.count(".") + 1 + (Path(file).stem == "__init__")
    return os.fspath(Path(file).resolve().parents[levels - 1])


def child_env(pipeline: Pipeline, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process (a shard, a task, a component) that must import
    ``pipeline`` again by its ``portable_ref``: ``base`` (default: this process's) with the
    pipeline's import root first on ``PYTHONPATH``. The one way children find a user's module."""
    import os

    env = dict(os.environ if base is None else base)
    root = import_root(pipeline)
    if root is not None:
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
        env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    return env


def resolve_pipeline(ref: str | Pipeline) -> Pipeline:
    """A registered pipeline name (``training``) or ``module:ATTRIBUTE`` -> the Pipeline."""
    if isinstance(ref, Pipeline):
        return ref
    if ":" in ref:
        found = plugins.import_target(ref, what=f"pipeline {ref!r}")
    else:
        found = plugins.load("pipeline", ref)
    if not isinstance(found, Pipeline):
        raise ConfigError(f"pipeline {ref!r} is a {type(found).__name__}, not an mlpipe Pipeline")
    return found
