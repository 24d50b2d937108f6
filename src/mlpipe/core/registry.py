"""Model registry: the interface every backend implements, spec parsing, and ``open_registry``.

Backends are plugins (entry-point group ``mlpipe.registries``): ``local`` (embedded, a directory,
:mod:`mlpipe.registries.local`) and ``wandb`` ship with mlpipe. A backend class has a
``config_type`` (its ``registry:`` section, a ``RegistryConfig`` subclass), takes
``(config, home)`` and may declare, on the class (core asks, never names a backend):

- ``preflight(config)``: checks credentials or a server before any step runs;
- ``resolve_at_preflight = True``: resolving a spec is cheap here, so a run checks the model it
  loads exists before any step runs;
- ``sync_pull(store, models, spec)`` / ``sync_push(store, ref)``: its files live in the mlpipe
  home, so pods without a shared volume move them through the artifact store
  (:mod:`mlpipe.core.storage`); a backend with its own server declares neither.
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from mlpipe.core import artifacts, plugins
from mlpipe.core.config import PromoteIf, RegistryConfig, validate_section
from mlpipe.core.errors import ChecksumError, ConfigError, ModelNotFoundError
from mlpipe.core.refs import ModelVersionRef

log = logging.getLogger("mlpipe.registry")

VERSION = re.compile(r"^v?(\d+)$")
LATEST = "latest"


def parse_spec(spec: str) -> tuple[str, str]:
    """``name``, ``name:alias``, ``name:vN`` or ``name:N`` -> (name, alias-or-vN)."""
    name, _, which = spec.partition(":")
    if not name:
        raise ConfigError(f"model reference {spec!r}: expected name:alias or name:vN")
    return name, which or LATEST


def pick_version(
    name: str, which: str, versions: Collection[int], aliases: Mapping[str, int], where: str = ""
) -> int:
    """The version ``which`` names among a model's ``versions`` (those present): ``vN`` or ``N``,
    an alias of ``aliases`` (alias -> version), or ``latest`` (the alias if the backend keeps
    one, else the highest). Every backend resolves with this, so a spec means the same on each;
    ``ModelNotFoundError`` names what exists (``where``: the registry, for a dangling alias)."""
    present = sorted(versions)
    if not present:
        raise ModelNotFoundError(f"model '{name}' has no versions{where}")
    match = VERSION.match(which)
    if match:
        number = int(match.group(1))
        if number not in present:
            raise ModelNotFoundError(
                f"{name} has no version {number} (versions: {', '.join(f'v{n}' for n in present)})"
            )
        return number
    if which in aliases:
        number = aliases[which]
        if number not in present:
            raise ModelNotFoundError(
                f"{name}:{which} points at v{number}, which is no longer in the registry{where}; "
                f"point it at a version that exists: mlpipe registry promote {name} <version> "
                f"{which}"
            )
        return number
    if which == LATEST:
        return present[-1]
    raise ModelNotFoundError(
        f"{name} has no alias '{which}' (aliases: {', '.join(sorted({LATEST, *aliases}))})"
    )


class Registry(Protocol):
    """What every backend offers; the steps and the CLI use nothing else."""

    def publish(
        self, directory: Path, name: str, aliases: Sequence[str], metadata: dict[str, Any]
    ) -> ModelVersionRef: ...

    def resolve(self, spec: str) -> ModelVersionRef: ...

    def fetch(self, spec: str, dest: Path) -> ModelVersionRef: ...

    def versions(self, name: str | None = None) -> list[ModelVersionRef]: ...

    def promote(self, name: str, version: int, alias: str) -> ModelVersionRef: ...

    def delete(self, name: str, version: int) -> None:
        """Remove a version; refused (``ConfigError``) while an alias points at it."""
        ...

    def history(self, name: str) -> list[dict[str, Any]]:
        """Alias moves, oldest first: ``{alias, from, to, at, run_id}`` (``from`` None: new)."""
        ...


def open_registry(cfg: RegistryConfig, home: Path) -> Registry:
    """The registry backend ``cfg.backend`` names (imported only when chosen)."""
    backend: Any = plugins.load("registry", cfg.backend)
    if not isinstance(cfg, backend.config_type):  # a bare RegistryConfig(backend="wandb")
        cfg = validate_section(backend.config_type, cfg.model_dump(), "registry")  # type: ignore[assignment]
    registry: Registry = backend(cfg, home)
    return registry


def declared(backend: str, what: str) -> Any:
    """What registry backend ``backend`` declares as ``what`` (see the module's docstring), or
    None: it declares nothing of the kind, or it is no registered plugin (a ref's
    ``backend`` may name a mode, such as ``wandb-offline``)."""
    if backend not in plugins.targets("registry"):
        return None
    return getattr(plugins.load("registry", backend), what, None)


def preflight_registry(cfg: RegistryConfig, home: Path, model: str | None = None) -> None:
    """The backend's own checks that need no work done (credentials, a reachable server), and
    ``model`` (the spec a run loads) resolved when the backend declares that cheap."""
    backend = plugins.load("registry", cfg.backend)  # unknown: the error lists the known ones
    check = getattr(backend, "preflight", None)
    if check is not None:
        check(cfg)
    if model is not None and getattr(backend, "resolve_at_preflight", False):
        open_registry(cfg, home).resolve(model)


# -- what every backend shares: lineage, promotion policy, verified installs -------------------

#: the metric the default policy watches to warn when an alias moves to a worse model
WATCHED_METRIC = "eval_accuracy"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def lineage_of(directory: Path, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """What produced a version: the publisher's metadata, completed from the manifest and
    ``provenance.json`` (data and config hashes, base model, mlpipe version) and stamped."""
    import json

    from mlpipe.version import __version__

    manifest = artifacts.read_manifest(directory)
    provenance: dict[str, Any] = {}
    prov_path = directory / "provenance.json"
    if prov_path.is_file():
        try:
            provenance = dict(json.loads(prov_path.read_text()))
        except ValueError:
            provenance = {}
    out: dict[str, Any] = {
        "created_at": utc_now(),
        "mlpipe_version": provenance.get("mlpipe_version", __version__),
        "metrics": manifest.get("metrics", {}),
    }
    for key in ("data_sha256", "config_sha256", "base_model", "task"):
        if key in provenance or key in manifest:
            out[key] = provenance.get(key, manifest.get(key))
    out["manifest_sha256"] = artifacts.manifest_sha256(directory)
    out.update({k: v for k, v in (metadata or {}).items() if v is not None})
    return out


def decide_aliases(
    name: str,
    version: int,
    metrics: Mapping[str, float],
    wanted: Sequence[str],
    holders: Mapping[str, tuple[int, Mapping[str, float]]],
    policy: PromoteIf | None,
) -> tuple[list[str], list[str], list[str]]:
    """Which of the ``wanted`` aliases move to ``version``: ``(granted, withheld, notes)``.

    ``holders`` maps an alias to the version holding it now and that version's metrics. With a
    ``policy`` an alias moves only if the new version beats its holder on ``policy.metric`` by at
    least ``min_delta``; without one every alias moves (today's behaviour) and a note warns when
    it moves to a version that is worse on ``eval_accuracy``.
    """
    granted: list[str] = []
    withheld: list[str] = []
    notes: list[str] = []
    for alias in dict.fromkeys(a for a in wanted if a != LATEST):
        held = holders.get(alias)
        if held is None or held[0] == version:
            granted.append(alias)
            continue
        old_version, old_metrics = held
        if policy is None:
            granted.append(alias)
            old, new = old_metrics.get(WATCHED_METRIC), metrics.get(WATCHED_METRIC)
            if old is not None and new is not None and new < old:
                notes.append(
                    f"alias '{alias}' of {name} moved from v{old_version} ({WATCHED_METRIC} "
                    f"{old:.4f}) to v{version} ({new:.4f}), a worse model; set "
                    "registry.promote_if to move aliases only to better versions"
                )
            continue
        metric = policy.metric
        new = metrics.get(metric)
        old = old_metrics.get(metric)
        if new is None:
            withheld.append(alias)
            notes.append(
                f"{name}:v{version} has no metric '{metric}' (registry.promote_if.metric); "
                f"'{alias}' stays on v{old_version}"
            )
            continue
        if old is None:
            granted.append(alias)
            continue
        gain = new - old if policy.mode == "max" else old - new
        better = gain > 0 and gain >= policy.min_delta
        if better:
            granted.append(alias)
        else:
            withheld.append(alias)
            need = "higher" if policy.mode == "max" else "lower"
            notes.append(
                f"{name}:v{version} was published without '{alias}': its {metric} {new:.4f} does "
                f"not beat v{old_version}'s {old:.4f} (promote_if: {need}"
                + (f" by at least {policy.min_delta:g}" if policy.min_delta else "")
                + f"); '{alias}' stays on v{old_version}"
            )
    for note in notes:
        log.warning("registry: %s", note)
    return granted, withheld, notes


def alias_in_use(name: str, version: int, aliases: Sequence[str]) -> ConfigError:
    live = [a for a in aliases if a != LATEST]
    return ConfigError(
        f"{name}:v{version} is not deleted: alias(es) {', '.join(live)} point at it. Move them "
        f"first (mlpipe registry promote {name} <version> <alias>)"
    )


def install_verified(dest: Path, fill: Callable[[Path], object], expected_sha256: str) -> None:
    """Fill a temp sibling of ``dest``, verify it against its manifest (and the manifest against
    the hash recorded at publish time), then swap it into place; nothing is left on failure."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    try:
        fill(tmp)
        artifacts.verify(tmp)
        got = artifacts.manifest_sha256(tmp)
        if expected_sha256 and got != expected_sha256:
            raise ChecksumError(
                f"{dest}: the downloaded manifest.json has sha256 {got[:12]}, the registry "
                f"recorded {expected_sha256[:12]} (the model was changed after publishing)"
            )
        if dest.exists():
            dest.rename(old)
        tmp.rename(dest)
    finally:
        for path in (tmp, old):
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)


def link_or_copy_tree(source: Path, dest: Path) -> int:
    """Copy ``source`` to a new ``dest``, hardlinking files where the filesystem allows (one copy
    of the weights on disk); returns how many files were linked. Callers verify the result."""
    linked = 0

    def copy(src: str, dst: str) -> str:
        nonlocal linked
        import os

        try:
            os.link(src, dst)
            linked += 1
        except OSError:
            shutil.copy2(src, dst)
        return dst

    shutil.copytree(source, dest, copy_function=copy)
    return linked


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def version_config(ref: ModelVersionRef) -> dict[str, Any] | None:
    """The config sections that shaped a version, from its ``provenance.json`` when its files
    are on this machine; None when they are not (a remote registry)."""
    import json

    path = Path(ref.uri) / "provenance.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    config = data.get("config") if isinstance(data, dict) else None
    return config if isinstance(config, dict) else None


def diff_versions(a: ModelVersionRef, b: ModelVersionRef) -> dict[str, Any]:
    """What differs between two versions: metrics (a, b, b - a), config fields, data hash."""
    metrics = {
        key: {
            "a": a.metrics.get(key),
            "b": b.metrics.get(key),
            "delta": (
                b.metrics[key] - a.metrics[key]
                if key in a.metrics and key in b.metrics
                else None
            ),
        }
        for key in sorted(set(a.metrics) | set(b.metrics))
    }
    config_a, config_b = version_config(a), version_config(b)
    config: dict[str, Any] = {}
    if config_a is not None and config_b is not None:
        flat_a, flat_b = _flat(config_a), _flat(config_b)
        config = {
            key: {"a": flat_a.get(key), "b": flat_b.get(key)}
            for key in sorted(set(flat_a) | set(flat_b))
            if flat_a.get(key) != flat_b.get(key)
        }
    fields = ("data_sha256", "config_sha256", "data_source", "base_model", "run_id", "runner")
    return {
        "a": a.spec,
        "b": b.spec,
        "metrics": metrics,
        "config": config,
        "config_compared": config_a is not None and config_b is not None,
        "lineage": {
            key: {"a": a.lineage.get(key), "b": b.lineage.get(key)}
            for key in fields
            if a.lineage.get(key) != b.lineage.get(key)
        },
        "same_data": a.lineage.get("data_sha256") == b.lineage.get("data_sha256"),
    }
