"""Content-addressed step cache: same step, config sections, inputs and code -> same outputs.

The key covers the step name, the config sections the step reads, the sha256 of every input
reference and a hash of the code that computes it: mlpipe's core, the step function's module and
the task package the config names; a local ``model.base`` directory is keyed by its content,
not its path. Each entry records the sha256 of every file of the output it points to, taken when
it was stored: a hit is only served when that output still holds exactly those files with exactly
those bytes (and its reference's own checksums agree); anything else is a miss, never a failure.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import json
import os
import platform
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from mlpipe.core import artifacts, plugins
from mlpipe.core.errors import MlpipeError
from mlpipe.core.faults import fault_point
from mlpipe.core.files import sweep_temp
from mlpipe.core.hashing import sha256_file, sha256_json
from mlpipe.core.inputs import content_keys as input_keys
from mlpipe.core.pipeline import Step
from mlpipe.core.refs import (
    Ref,
    ref_from_json,
)


@functools.cache
def code_version() -> str:
    """Hash of every source file of mlpipe's core: editing a step invalidates its cache.

    Runners, the CLI and integrations are left out: they do not change what a step computes.
    """
    root = Path(__file__).parent
    files = sorted(root.rglob("*.py"))
    return sha256_json({p.relative_to(root).as_posix(): source_hash(p) for p in files})


def module_version(module_name: str, *, whole_package: bool = True) -> str:
    """Hash of a module's source; for a module inside a package, of that whole package.

    Not memoised: a user's module edited between two runs of one process must change the key.
    """
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    path = Path(getattr(module, "__file__", "") or "")
    if not path.is_file():
        return ""
    package = whole_package and module_name.count(".") >= 2
    files = sorted(path.parent.rglob("*.py")) if package else [path]
    return sha256_json({p.name + str(i): source_hash(p) for i, p in enumerate(files)})


#: path -> (its stat stamp, its sha256): every step's key hashes the same sources
_SOURCE_HASHES: dict[Path, tuple[tuple[int, int, int], str]] = {}


def source_hash(path: Path) -> str:
    """A source file's sha256, read again only when its size, mtime or inode changed since this
    process last hashed it (an edit between two runs of one process still changes the key)."""
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    known = _SOURCE_HASHES.get(path)
    if known is None or known[0] != stamp:
        known = _SOURCE_HASHES[path] = (stamp, sha256_file(path))
    return known[1]


#: distributions every step's code may load lazily (mlpipe's own stack); tasks, pipelines and
#: steps add theirs with a ``packages`` attribute, and a step's module adds what it imports
BASE_PACKAGES = ("mlpipe", "numpy", "pyarrow", "torch", "transformers", "tokenizers",
                 "safetensors")


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(
        str(Path(paths[k]).resolve()) for k in ("stdlib", "platstdlib", "purelib", "platlib")
    )


def _local_modules(module_name: str) -> list[ModuleType]:
    """A user module and the local modules it imports (not the standard library, not
    site-packages, not mlpipe, whose core and task packages are keyed on their own)."""
    roots = _library_roots()
    seen: dict[str, ModuleType] = {}

    def local(mod: ModuleType | None) -> bool:
        file = getattr(mod, "__file__", None)
        if mod is None or not file or mod.__name__.split(".")[0] == "mlpipe":
            return False
        resolved = str(Path(file).resolve())
        return not resolved.startswith(roots)

    def visit(mod: ModuleType) -> None:
        if mod.__name__ in seen:
            return
        seen[mod.__name__] = mod
        for value in list(vars(mod).values()):
            other = value if isinstance(value, ModuleType) else sys.modules.get(
                getattr(value, "__module__", "") or ""
            )
            if other is not None and local(other):
                visit(other)

    root = sys.modules.get(module_name) or importlib.import_module(module_name)
    if local(root):
        visit(root)
    return list(seen.values())


def _imported_distributions(modules: list[ModuleType]) -> set[str]:
    """The distributions whose top-level packages these modules import by name."""
    tops: set[str] = set()
    for mod in modules:
        for value in vars(mod).values():
            name = value.__name__ if isinstance(value, ModuleType) else getattr(
                value, "__module__", None
            )
            if isinstance(name, str):
                tops.add(name.split(".")[0])
    if not tops:  # mlpipe's own steps: no scan of every installed package's file list
        return set()
    dists = _distributions(tuple(sys.path))
    return {d for top in tops for d in dists.get(top, [])}


@functools.cache
def _distributions(path: tuple[str, ...]) -> Mapping[str, list[str]]:
    """Top-level package -> distributions (a scan of ``path``; versions are read fresh)."""
    return importlib.metadata.packages_distributions()


#: the versions read so far, and the import path's folders and mtimes they were read under
_VERSIONS: dict[str, str | None] = {}
_VERSIONS_STAMP: list[tuple[str, int]] = []


def package_version(dist: str) -> str | None:
    """``importlib.metadata.version(dist)`` (None: not installed), read again once a package
    was installed or removed on the import path (a folder of ``sys.path`` changed its mtime)."""
    stamp = []
    for entry in sys.path:
        with contextlib.suppress(OSError):
            stamp.append((entry, os.stat(entry or ".").st_mtime_ns))
    if stamp != _VERSIONS_STAMP:
        _VERSIONS.clear()
        _VERSIONS_STAMP[:] = stamp
    if dist not in _VERSIONS:
        _VERSIONS[dist] = _read_version(dist)
    return _VERSIONS[dist]


def _read_version(dist: str) -> str | None:
    """The version from the metadata's header (the email parser reads the whole file, a long
    description included)."""
    try:
        found = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    text = found.read_text("METADATA") or found.read_text("PKG-INFO") or ""
    for line in text.splitlines():
        if not line.strip():  # the headers end here
            break
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() == "version":
            return value.strip()
    return found.version


def _declared(obj: Any) -> tuple[str, ...]:
    return tuple(getattr(obj, "packages", ()) or ())


@dataclass(frozen=True)
class StepKey:
    """A step's cache key as named parts, so a miss can say which part changed.

    Each part maps a name (a config field's dotted path, an input, a module, a distribution)
    to what identifies it; ``digest`` hashes them all.
    """

    pipeline: str
    step: str
    config: dict[str, Any]
    inputs: dict[str, str]
    upstream: dict[str, str]
    code: dict[str, str]
    packages: dict[str, str | None]
    env: dict[str, str]

    PARTS: ClassVar[tuple[str, ...]] = ("config", "inputs", "upstream", "code", "packages", "env")

    def parts(self) -> dict[str, dict[str, Any]]:
        return {part: getattr(self, part) for part in self.PARTS}

    @property
    def digest(self) -> str:
        return sha256_json({"pipeline": self.pipeline, "step": self.step, **self.parts()})


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config dump as ``{dotted.path: leaf}``: what ``cache explain`` compares."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def build_key(
    pipeline: str, step: Step, config: Any, inputs: Mapping[str, Ref], *,
    pipeline_obj: Any = None,
) -> StepKey | None:
    """The step's key in named parts, or None when its result cannot be keyed (an input fetched
    by a name whose contents can change, e.g. Hub data not pinned to a revision)."""
    content = input_keys(config, step.config_sections)
    if content is None:
        return None
    sections = config.model_dump(mode="json", include=set(step.config_sections))
    modules = [step.fn.__module__]
    task = getattr(config, "task", None)
    task_plugin = plugins.load("task", task) if isinstance(task, str) else None
    if task_plugin is not None:
        modules.append(task_plugin.__module__)
    code = {"mlpipe.core": code_version()}
    local = _local_modules(step.fn.__module__)
    for name in modules:
        if name.split(".")[0] == "mlpipe":
            code[name] = module_version(name)
    for mod in local:
        code[mod.__name__] = module_version(mod.__name__, whole_package=False)
    wanted = set(BASE_PACKAGES) | _imported_distributions(local)
    for obj in (task_plugin, pipeline_obj, step):
        wanted.update(_declared(obj))
    env = {"python": platform.python_version(), "platform": sysconfig.get_platform()}
    if config.runtime.mode != "local":
        env["image"] = str(getattr(getattr(config, "cluster", None), "image", ""))
    return StepKey(
        pipeline=pipeline,
        step=step.name,
        config=flat(sections),
        inputs=content,
        upstream={name: ref.sha256 for name, ref in sorted(inputs.items())},
        code=code,
        packages={d: package_version(d) for d in sorted(wanted)},
        env=env,
    )


def step_key(pipeline: str, step: Step, config: Any, inputs: Mapping[str, Ref]) -> str | None:
    """The cache key's digest (see ``build_key``)."""
    key = build_key(pipeline, step, config, inputs)
    return None if key is None else key.digest


def still_valid(ref: Ref) -> bool:
    """True when every file the reference points to exists and matches its recorded hash (the
    reference answers for itself; a damaged or missing output is False, never an error)."""
    try:
        return ref.still_valid()
    except (OSError, ValueError, artifacts.ChecksumError):
        return False


#: the key of the step's run, written beside its result (for ``cache explain`` and resume)
KEY_FILE = "cache_key.json"

#: what a cache entry holds; entries of another format are misses
ENTRY_FORMAT = 3  # 3: keys in named parts (StepKey), stored for ``cache explain``


def output_files(ref: Ref) -> tuple[Path, dict[str, str]]:
    """Where ``ref``'s output lives and the sha256 of every file there (``Ref.output_files``)."""
    return ref.output_files()


class StepCache:
    """Cache entries are small JSON files under ``<home>/cache``; outputs stay in their run dirs.

    An entry is ``{"format", "run_id", "ref", "root", "files", "pipeline", "step", "parts"}``:
    ``files`` lists every file of the output as it was when the step produced it, ``parts`` the
    named parts of its key (what ``cache explain`` compares).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, key: str) -> Ref | None:
        path = self.root / f"{key}.json"
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text())
            if entry.get("format") != ENTRY_FORMAT:
                return None
            ref = ref_from_json(entry["ref"])
            files = entry["files"]
            root, current = output_files(ref)
            if str(root) != entry["root"] or current != files:
                return None  # a file added, removed or changed since it was produced
        except (ValueError, KeyError, TypeError, AttributeError, OSError, MlpipeError):
            return None
        return ref if still_valid(ref) else None

    def put(self, key: str, ref: Ref, *, run_id: str, parts: StepKey | None = None) -> None:
        """Record ``ref`` under ``key`` with the hash of every file of its output.

        A cache that cannot be written (a full or read-only disk) only costs a rerun later: the
        step that produced ``ref`` has succeeded, so that is not a failure.
        """
        try:
            root, files = output_files(ref)
            self.root.mkdir(parents=True, exist_ok=True)
            sweep_temp(self.root)  # what writers killed mid-put left behind
            fault_point("cache.put")
            artifacts.write_json(
                self.root / f"{key}.json",
                {
                    "format": ENTRY_FORMAT,
                    "run_id": run_id,
                    "ref": ref.model_dump(mode="json"),
                    "root": str(root),
                    "files": files,
                    **({} if parts is None else {
                        "pipeline": parts.pipeline, "step": parts.step, "parts": parts.parts()
                    }),
                },
            )
        except (OSError, artifacts.ChecksumError):  # a sealed output's manifest unreadable
            return
