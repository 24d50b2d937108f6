"""Typed input paths: a config field that names a file or a folder the steps read.

Declare a field as ``InputFile`` or ``InputDir`` in any config section, built-in or yours, and
mlpipe resolves it against the config file's folder at load, names it by its full dotted path
in errors and lineage, and keys the step cache on its content (a file by its sha256, a folder by
its sorted tree of file hashes), never on its name. ``HubSource`` names something fetched by name
that can change under that name: a step reading one is not cached unless it is pinned to a
revision.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import core_schema

from mlpipe.core.errors import ConfigError
from mlpipe.core.hashing import file_hashes, sha256_file, sha256_json


class _InputPath(type(Path())):  # type: ignore[misc]
    """A path the steps read; its subclasses say whether it is a file or a folder."""

    kind = "path"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.union_schema(
                [core_schema.is_instance_schema(Path), core_schema.str_schema()]
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"),
        )

    #: the word errors use, whether the path must be a file, and its content key
    noun = "path"

    def present(self) -> bool:
        raise NotImplementedError

    def key(self) -> str:
        raise NotImplementedError

    def content_key(self, where: str) -> str:
        if not self.present():
            raise ConfigError(f"{where}: {self.noun} not found: {self} (fix the path; relative "
                              f"paths are taken from the config file's folder)")
        return self.key()


class InputFile(_InputPath):
    """A file a step reads: keyed by its sha256."""

    kind, noun = "file", "file"
    present = Path.is_file

    def key(self) -> str:
        return sha256_file(self)


class InputDir(_InputPath):
    """A folder a step reads: keyed by the sorted tree of its files' sha256."""

    kind, noun = "dir", "folder"
    present = Path.is_dir

    def key(self) -> str:
        return sha256_json(file_hashes(self))


class HubSource(BaseModel):
    """Something fetched by name (a Hub dataset or model): uncached unless ``revision`` pins it."""

    model_config = {"extra": "forbid"}

    name: str
    revision: str | None = None

    def content_key(self, where: str) -> str | None:
        return None if self.revision is None else f"{self.name}@{self.revision}"


def dir_key(path: str | Path) -> str | None:
    """The content key of a folder (its sorted tree of file hashes), None if it is not one."""
    folder = Path(path).expanduser()
    return sha256_json(file_hashes(folder)) if folder.is_dir() else None


def _is_input(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, _InputPath)


def _members(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation]


def input_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Dotted paths of every typed input field of a config type, in any section."""
    for name, field in model.model_fields.items():
        for member in _members(field.annotation):
            if _is_input(member):
                yield (*prefix, name)
            elif isinstance(member, type) and issubclass(member, BaseModel):
                yield from input_fields(member, (*prefix, name))


def absolutize(raw: dict[str, Any], model: type[BaseModel], base_dir: Path) -> None:
    """Resolve every typed input path of ``raw`` (as the schema says) against ``base_dir``."""
    for path in input_fields(model):
        node: Any = raw
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(path[-1]), str):
            value = node[path[-1]]
            if "://" not in value:
                node[path[-1]] = str((base_dir / os.path.expanduser(value)).resolve())


def walk(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Every input (typed path or hub source) inside a config value, by dotted path."""
    if isinstance(value, _InputPath | HubSource):
        yield prefix, value
    elif isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            item = getattr(value, name)
            typed = [m for m in _members(field.annotation) if _is_input(m)]
            if typed and isinstance(item, str | Path) and not isinstance(item, _InputPath):
                item = typed[0](item)  # set without validation (model_copy): the schema says
            yield from walk(item, f"{prefix}.{name}" if prefix else name)
    elif isinstance(value, dict):
        for k, v in sorted(value.items(), key=lambda kv: str(kv[0])):
            yield from walk(v, f"{prefix}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from walk(v, f"{prefix}.{i}")


def content_keys(config: Any, sections: list[str] | tuple[str, ...]) -> dict[str, str] | None:
    """The content key of every input the sections name, by dotted path; None if one is a hub
    source that is not pinned (its contents can change under the same name)."""
    keys: dict[str, str] = {}
    for section in sections:
        node = getattr(config, section, None)
        if getattr(node, "cacheable", True) is False:  # e.g. data read from the Hub by name
            return None
        own = getattr(node, "input_keys", None)  # a section whose inputs are not typed paths
        if callable(own):
            keys.update({f"{section}.{k}": v for k, v in own().items()})
        for where, value in walk(node, section):
            key = value.content_key(where)
            if key is None:
                return None
            keys[where] = key
    return keys
