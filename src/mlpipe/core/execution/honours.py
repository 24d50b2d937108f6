"""What a runner does with each setting when it runs on this machine: applies it, approximates it
or ignores it. Each runner plugin declares this as data (``Runner.honours``); core checks a config
against it before a run, and the benchmark prints what was not honoured. No runner is named here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

Level = Literal["applied", "approximated", "ignored"]

#: The settings a runner may or may not honour, each with the test "does this config set it"
#: (a value the config sets, or, for shards, a pipeline with a map step).
SETTINGS: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "resources": ("cluster.resources, cluster.step_resources (cpu/memory)",
                  lambda p, c: _set(c.cluster, "resources") or bool(c.cluster.step_resources)),
    "gpu": ("cluster.resources.gpu", lambda p, c: any(
        r.gpu for r in [c.cluster.resources, *c.cluster.step_resources.values()])),
    "retries": ("runtime.retries", lambda p, c: c.runtime.retries > 0),
    "timeout": ("runtime.timeout_s", lambda p, c: _set(c.runtime, "timeout_s")),
    "side_by_side_shards": ("a map step's shards run side by side",
                            lambda p, c: any(s.map_over is not None for s in p.steps)),
}
#: Settings that come from the pipeline's shape, not from anything the config sets.
FROM_SHAPE = frozenset({"side_by_side_shards"})


#: What every runner does with pod settings on this machine: tasks are processes here, with no
#: requests or limits (cluster mode makes them pod requests and limits).
ON_THIS_MACHINE: dict[str, tuple[Level, str]] = {
    "resources": ("ignored", "tasks run as processes on this machine, unlimited "
                  "(cluster mode: pod requests and limits)"),
    "gpu": ("ignored", "no GPU request: a task sees whatever GPU the machine has "
            "(cluster mode: pod limits)"),
}


def on_this_machine(**own: tuple[Level, str]) -> Mapping[str, tuple[Level, str]]:
    """A runner's declaration: what it says for each setting (``retries=("applied", why)``)
    over what every runner does on this machine (:data:`ON_THIS_MACHINE`)."""
    unknown = set(own) - set(SETTINGS)
    if unknown:
        raise ValueError(f"honours: unknown settings {sorted(unknown)} (known: {list(SETTINGS)})")
    return {**ON_THIS_MACHINE, **own}


def _set(model: Any, field: str) -> bool:
    return field in getattr(model, "model_fields_set", set())


def not_honoured(honours: Mapping[str, tuple[Level, str]], pipeline: Any,
                 config: Any) -> list[tuple[str, Level, str]]:
    """``(setting, level, why)`` for each setting ``config`` (or the pipeline's shape) uses that
    the runner only approximates or ignores; an undeclared setting counts as ignored. The
    declarations describe runs on this machine: in cluster mode (``runtime.mode: kubernetes``)
    every step is a pod that carries all of them, so nothing is named."""
    out: list[tuple[str, Level, str]] = []
    if config.runtime.mode == "kubernetes":
        return out
    for name, (_, used) in SETTINGS.items():
        level, why = honours.get(name, ("ignored", "not declared by the runner"))
        if level != "applied" and used(pipeline, config):
            out.append((name, level, why))
    return out


def ignored_settings(honours: Mapping[str, tuple[Level, str]], pipeline: Any,
                     config: Any) -> list[tuple[str, str]]:
    """``(setting as the config names it, why)`` for each setting the config itself sets that
    the runner ignores: what ``mlpipe run`` warns about (an approximation, or a limit that
    follows from the pipeline's shape, is the benchmark's to report, not a warning)."""
    return [(SETTINGS[name][0], why) for name, level, why in not_honoured(honours, pipeline,
                                                                           config)
            if level == "ignored" and name not in FROM_SHAPE]


def declared(honours: Mapping[str, tuple[Level, str]]) -> dict[str, dict[str, str]]:
    """A runner's declarations as JSON (every setting, undeclared ones as ignored)."""
    return {name: dict(zip(("level", "why"), honours.get(name, ("ignored", "not declared")),
                           strict=True)) for name in SETTINGS}
