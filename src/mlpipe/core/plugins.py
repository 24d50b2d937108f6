"""Plugins: every runner, registry backend, tracker, task and pipeline is found here by name.

A plugin is a name and a lazily imported target (``"package.module:attribute"``). mlpipe's own
plugins are declared exactly like anyone else's, as entry points in ``pyproject.toml``::

    [project.entry-points."mlpipe.runners"]
    airflow = "mlpipe.adapters.airflow.runner:AirflowRunner"

so core never imports one, and a third-party package adds a runner, a registry backend, a tracker,
a task or a pipeline by declaring an entry point in the matching group (``mlpipe.runners``,
``mlpipe.registries``, ``mlpipe.trackers``, ``mlpipe.tasks``, ``mlpipe.pipelines``).
``register()`` adds one at run time (notebooks, tests). Nothing is imported until ``load()``.
"""

from __future__ import annotations

import functools
import importlib
import re
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Literal

from mlpipe.core.errors import ConfigError

Kind = Literal["runner", "registry", "tracker", "task", "pipeline"]
KINDS: tuple[Kind, ...] = ("runner", "registry", "tracker", "task", "pipeline")
GROUPS: dict[Kind, str] = {
    "runner": "mlpipe.runners",
    "registry": "mlpipe.registries",
    "tracker": "mlpipe.trackers",
    "task": "mlpipe.tasks",
    "pipeline": "mlpipe.pipelines",
}
#: What each kind is called where a user picks one, for error messages.
_FIELDS: dict[Kind, str] = {
    "runner": "--runner",
    "registry": "registry.backend",
    "tracker": "tracking.backend",
    "task": "task",
    "pipeline": "pipeline",
}

_registered: dict[Kind, dict[str, str]] = {kind: {} for kind in KINDS}


@cache
def _all_entry_points() -> dict[str, dict[str, str]]:
    """group -> name -> target, from one scan of the installed packages for every kind (each
    scan reads every package's metadata: ~15 ms here, paid again by each task's process)."""
    installed = entry_points()
    return {group: {ep.name: ep.value for ep in installed.select(group=group)}
            for group in GROUPS.values()}


def _entry_points(kind: Kind) -> dict[str, str]:
    return _all_entry_points()[GROUPS[kind]]


def targets(kind: Kind) -> dict[str, str]:
    """name -> ``module:attribute`` for every plugin of ``kind`` (entry points, then register)."""
    found = {**_entry_points(kind), **_registered[kind]}
    if not found and kind != "pipeline":
        raise ConfigError(
            f"no {kind} plugins are registered: mlpipe's own come from its package metadata, "
            "so install it (pip install -e . or pip install mlpipe) rather than running from src/"
        )
    return found


def names(kind: Kind) -> list[str]:
    """Registered names of ``kind``, sorted (what the CLI offers and errors list)."""
    return sorted(targets(kind))


def register(kind: Kind, name: str, target: str) -> None:
    """Add (or replace) a plugin at run time: ``register("runner", "mine", "pkg.mod:MyRunner")``."""
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r} (kinds: {', '.join(KINDS)})")
    if ":" not in target:
        raise ValueError(f"plugin target {target!r}: expected 'package.module:attribute'")
    _registered[kind][name] = target


def unregister(kind: Kind, name: str) -> None:
    _registered[kind].pop(name, None)


def clear_cache() -> None:
    """Read the entry points again (after installing a plugin package in this process)."""
    _all_entry_points.cache_clear()


def unknown(kind: Kind, name: str) -> ConfigError:
    """The error for a name nobody registered: exit 2, listing what is registered."""
    return ConfigError(
        f"{_FIELDS[kind]}: unknown {kind} {name!r} (registered: {', '.join(names(kind))})"
    )


def load(kind: Kind, name: str) -> Any:
    """Import and return the plugin object (a class, a function, a Pipeline...)."""
    found = targets(kind)
    if name not in found:
        raise unknown(kind, name)
    return import_target(found[name], what=f"{kind} {name!r}")


@functools.cache
def default(kind: Kind) -> str:
    """The registered plugin of ``kind`` whose class declares ``is_default`` (else the first)."""
    found = names(kind)
    for name in found:
        if getattr(load(kind, name), "is_default", False):
            return name
    if not found:
        raise ConfigError(f"no {kind} plugin is registered (reinstall mlpipe)")
    return found[0]


def import_target(target: str, *, what: str = "") -> Any:
    """``package.module:attribute`` -> the attribute; a missing extra says what to install."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top and not module_name.startswith(top):
            hint = extra_for(top) or top
            raise ConfigError(
                f"{what or target} needs {top}, which is not installed: "
                f"pip install 'mlpipe[{hint}]' (or pip install {top})"
            ) from exc
        raise ConfigError(f"{what or target}: cannot import {module_name} ({exc})") from exc
    except Exception as exc:  # the module itself is broken: one line, the traceback under -v
        raise ConfigError(
            f"{what or target}: importing {module_name} failed: {type(exc).__name__}: {exc} "
            "(mlpipe -v ... prints the traceback)"
        ) from exc
    obj: Any = module
    for part in filter(None, attr.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{what or target}: {module_name} has no {attr!r}") from None
    return obj


def import_optional(module: str, what: str) -> Any:
    """A library a plugin imports only when used (``mlflow``, ``wandb``); missing, a
    ``ConfigError`` saying which mlpipe extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = extra_for(module) or module
        raise ConfigError(
            f"{what} needs the {module} package: pip install 'mlpipe[{extra}]' ({exc})"
        ) from exc


def extra_for(module: str) -> str | None:
    """The mlpipe extra whose requirements bring ``module`` (``kfp`` -> ``kubeflow``), read from
    mlpipe's own package metadata so that core names no plugin; None when no extra does."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        required = requires("mlpipe") or []
    except PackageNotFoundError:
        return None
    wanted = module.replace("_", "-").lower()
    for line in required:
        requirement, _, marker = line.partition(";")
        dist = re.split(r"[\s<>=!~\[(]", requirement.strip(), maxsplit=1)[0]
        dist = dist.replace("_", "-").lower()
        extra = re.search(r"extra\s*==\s*[\"']([^\"']+)", marker)
        if extra and (dist == wanted or dist.endswith(f"-{wanted}")):
            return extra.group(1)
    return None
