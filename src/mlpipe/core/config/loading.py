"""Reading a config: the YAML file (duplicate keys and alias bombs refused), ``--set``
overrides, paths made absolute, then validation against the pipeline's config type; and the
JSON a config travels as between processes."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mlpipe.core import inputs, plugins
from mlpipe.core.config.base import format_validation_error
from mlpipe.core.config.schemas import PipelineSettings
from mlpipe.core.errors import ConfigError


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
