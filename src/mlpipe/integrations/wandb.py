"""Weights & Biases behind mlpipe's ``Tracker`` and ``Registry`` interfaces.

Chosen by config (``tracking.backend: wandb``, ``registry.backend: wandb``); ``wandb`` itself is
imported only here, only when one of them is used. The API key is read by W&B from the
``WANDB_API_KEY`` environment variable and nowhere else: mlpipe never reads it into a config,
a log line, a tag or a file, and only checks that it is present when a run has to go online.

Version numbers: mlpipe uses W&B's own numbering unchanged, so ``sentiment:v0`` in an mlpipe config
is ``sentiment:v0`` in the W&B UI (W&B counts from 0, the local registry from 1).

Offline (``WANDB_MODE=offline``): runs and artifacts are written under ``WANDB_DIR`` /
``WANDB_DATA_DIR`` for a later ``wandb sync``. W&B assigns version numbers only on the server, so
an offline ``publish`` also keeps a verified copy in ``<home>/wandb-offline-registry/<project>``
and numbers it with a local 0-based counter; refs from that store say ``backend="wandb-offline"``.
Those numbers match W&B's after a sync only if the W&B collection was empty before.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from mlpipe.core import artifacts, plugins
from mlpipe.core.config import RegistryConfig, SecretEnvConfig, TrackingConfig
from mlpipe.core.errors import ConfigError, MlpipeError, ModelNotFoundError
from mlpipe.core.paths import resolve_home
from mlpipe.core.refs import ModelVersionRef
from mlpipe.core.registry import (
    LATEST,
    VERSION,
    alias_in_use,
    install_verified,
    parse_spec,
    pick_version,
)
from mlpipe.core.tracking import Finishing, TrackedStep
from mlpipe.registries.local import LocalRegistry

log = logging.getLogger(__name__)

API_KEY_ENV = "WANDB_API_KEY"
#: In cluster mode a pod reads the key from this Kubernetes Secret (``cluster.secrets`` may
#: name another for the same env var): create it with
#: ``kubectl create secret generic wandb --from-literal=api-key=...``.
POD_SECRETS = (SecretEnvConfig(env=API_KEY_ENV, secret="wandb", key="api-key"),)
#: Optional W&B registry collection every published model is also linked to (online only),
#: e.g. ``wandb-registry-model/sentiment``.
LINK_ENV = "MLPIPE_WANDB_REGISTRY_COLLECTION"
DEFAULT_PROJECT = "mlpipe"
ARTIFACT_TYPE = "model"
_MODE_ALIASES = {"dryrun": "offline", "run": "online"}
_MAX_TAG = 64  # W&B rejects longer tags


class WandbTrackingConfig(TrackingConfig):
    """``tracking.backend: wandb``: one W&B run per step."""

    backend: str = "wandb"
    project: str = "mlpipe"
    entity: str | None = None
    mode: Literal["online", "offline", "disabled"] | None = Field(
        None, description="default: WANDB_MODE, else online"
    )


class WandbRegistryConfig(RegistryConfig):
    """``registry.backend: wandb``: versions are W&B ``model`` artifacts."""

    backend: str = "wandb"
    wandb_project: str | None = None
    wandb_entity: str | None = None
    wandb_mode: Literal["online", "offline"] | None = Field(
        None, description="default: WANDB_MODE, else online"
    )
    wandb_collection: str | None = Field(
        None, description="W&B registry collection to link versions to, e.g. wandb-registry-model/x"
    )


def resolve_mode(configured: str | None = None) -> str:
    """``online``/``offline``/``disabled``: the config's value, else ``WANDB_MODE``, else online."""
    raw = (configured or os.environ.get("WANDB_MODE") or "online").strip().lower()
    mode = _MODE_ALIASES.get(raw, raw)
    if mode not in ("online", "offline", "disabled"):
        raise ConfigError(f"W&B mode {raw!r}: use online, offline or disabled (WANDB_MODE)")
    return mode


def require_key(mode: str, what: str) -> None:
    """Online needs ``WANDB_API_KEY`` in the environment; say so before W&B tries to prompt."""
    if mode == "online" and not os.environ.get(API_KEY_ENV, "").strip():
        raise ConfigError(
            f"{what}: W&B is in online mode but {API_KEY_ENV} is not set. Export {API_KEY_ENV} "
            "(from a secret; never put it in a config file), or run without a server with "
            "WANDB_MODE=offline (tracking.mode: offline)."
        )


def _import_wandb() -> Any:
    """Import the client quietly; a clear error if the extra is not installed."""
    os.environ.setdefault("WANDB_SILENT", "true")
    return plugins.import_optional("wandb", "the W&B backend")


def _settings(wandb: Any) -> Any:
    """Quiet, lean runs: no console capture (keeps task logs ours), no system sampling, no git."""
    return wandb.Settings(
        silent=True,
        console="off",
        x_disable_stats=True,
        x_disable_machine_info=True,
        disable_git=True,
        save_code=False,
        disable_job_creation=True,
    )


def _project(configured: str | None) -> str:
    """An explicit project wins; the default ``mlpipe`` yields to ``WANDB_PROJECT``."""
    if configured and configured != DEFAULT_PROJECT:
        return configured
    return os.environ.get("WANDB_PROJECT") or configured or DEFAULT_PROJECT


#: W&B's own directories (staging copies, artifact cache, settings, runs), kept under the home
_DIR_ENVS = {
    "WANDB_DATA_DIR": "data",
    "WANDB_CACHE_DIR": "cache",
    "WANDB_CONFIG_DIR": "config",
    "WANDB_ARTIFACT_DIR": "artifacts",
}
_SET_BY_US: dict[str, str] = {}


def _wandb_dir(home: Path | None) -> Path:
    """``WANDB_DIR`` if set, else ``<mlpipe home>/wandb`` so runs sit next to everything else.

    W&B's other directories (offline staging copies of artifacts, the artifact cache, settings;
    by default under ``~/.local/share``, ``~/.cache`` and ``~/.config``) go under
    ``<home>/wandb/`` too, unless the user set their variables: mlpipe writes only in its home.
    """
    if home is None:
        home = resolve_home()
    base = Path(home) / "wandb"
    for env, sub in _DIR_ENVS.items():
        current = os.environ.get(env)
        if current is None or _SET_BY_US.get(env) == current:
            _SET_BY_US[env] = os.environ[env] = str(base / sub)
    if os.environ.get("WANDB_DIR"):
        return Path(os.environ["WANDB_DIR"])
    base.mkdir(parents=True, exist_ok=True)
    return base


def run_tags(tags: Mapping[str, str]) -> list[str]:
    """``{"runner": "airflow"}`` -> ``["runner:airflow"]``, cut to W&B's 64-character limit."""
    return [f"{k}:{v}"[:_MAX_TAG] for k, v in tags.items() if v]


def classify_error(exc: BaseException, what: str) -> MlpipeError:
    """Map a W&B client failure to mlpipe's errors: unknown name/alias -> exit 2, else exit 1."""
    if isinstance(exc, MlpipeError):
        return exc
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "not found" in text.lower() or "does not exist" in text.lower():
        return ModelNotFoundError(f"{what}: {text}")
    return MlpipeError(
        f"{what}: the W&B request failed ({type(exc).__name__}: {text}). Check the network, "
        "WANDB_BASE_URL and the API key, or use WANDB_MODE=offline."
    )


def _start_run(
    wandb: Any,
    *,
    mode: str,
    project: str,
    entity: str | None,
    home: Path | None,
    what: str,
    **kwargs: Any,
) -> Any:
    try:
        return wandb.init(
            project=project,
            entity=entity,
            mode=mode,
            dir=str(_wandb_dir(home)),
            settings=_settings(wandb),
            reinit="create_new",
            **kwargs,
        )
    except Exception as exc:
        raise classify_error(exc, what) from exc


class _WandbBackend:
    """What both W&B plugins declare: in cluster mode, the pod Secret holding the API key."""

    pod_secrets: ClassVar[tuple[SecretEnvConfig, ...]] = POD_SECRETS


class WandbTracker(_WandbBackend, Finishing):
    """One W&B run per step: config, tags (runner, orchestrator run id), metrics, summary."""

    config_type: ClassVar[type[TrackingConfig]] = WandbTrackingConfig

    @classmethod
    def preflight(cls, cfg: TrackingConfig) -> None:
        assert isinstance(cfg, WandbTrackingConfig)
        require_key(resolve_mode(cfg.mode), "tracking.backend: wandb")

    def __init__(self, cfg: TrackingConfig, step: TrackedStep) -> None:
        assert isinstance(cfg, WandbTrackingConfig)
        self.mode = resolve_mode(cfg.mode)
        self.run: Any = None
        if self.mode == "disabled":
            return  # W&B's own "disabled" run is a no-op too; skip the import and the process
        require_key(self.mode, "tracking")
        wandb = _import_wandb()
        tags = step.tags
        group = f"{tags['pipeline']}-{tags['mlpipe_run_id']}" if "mlpipe_run_id" in tags else None
        self.run = _start_run(
            wandb,
            mode=self.mode,
            project=_project(cfg.project),
            entity=cfg.entity or os.environ.get("WANDB_ENTITY") or None,
            home=step.home,
            what=f"tracking run {step.name}",
            name=step.name,
            job_type=step.job_type,
            group=group,
            config={**step.config, "mlpipe": dict(tags)},
            tags=run_tags(tags),
        )

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(dict(metrics), step=step)

    def summary(self, metrics: Mapping[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(dict(metrics))

    def finish(self, *, failed: bool) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None


class WandbRegistry(_WandbBackend):
    """Model versions as W&B ``model`` artifacts; aliases are W&B aliases.

    Every fetch downloads into a temporary sibling of ``dest``, verifies every file against the
    mlpipe manifest (and the manifest against the hash recorded at publish time), and only then
    renames it into place, so a failed or interrupted download leaves nothing behind.
    """

    config_type: ClassVar[type[RegistryConfig]] = WandbRegistryConfig

    @classmethod
    def preflight(cls, cfg: RegistryConfig) -> None:
        assert isinstance(cfg, WandbRegistryConfig)
        require_key(resolve_mode(cfg.wandb_mode), "registry.backend: wandb")

    def __init__(self, cfg: RegistryConfig, home: Path | None = None) -> None:
        assert isinstance(cfg, WandbRegistryConfig)
        self.home = Path(home) if home is not None else resolve_home()
        self.project = _project(cfg.wandb_project)
        self.entity = cfg.wandb_entity or os.environ.get("WANDB_ENTITY") or None
        self.mode = resolve_mode(cfg.wandb_mode)
        self.collection = cfg.wandb_collection or os.environ.get(LINK_ENV)
        if self.mode == "disabled":
            raise ConfigError(
                "registry.backend is wandb but WANDB_MODE=disabled: use online or offline, "
                "or registry.backend: local"
            )
        self.backend = "wandb" if self.mode == "online" else "wandb-offline"
        self.offline_root = self.home / "wandb-offline-registry" / self.project
        self._offline = LocalRegistry(self.offline_root, promote_if=cfg.promote_if)
        self._api_handle: Any = None

    # -- publishing ---------------------------------------------------------------------------

    def publish(
        self,
        directory: Path,
        name: str,
        aliases: Sequence[str],
        metadata: dict[str, Any] | None = None,
    ) -> ModelVersionRef:
        """Log ``directory`` (files + manifest) as a ``model`` artifact, ``latest`` + aliases."""
        manifest = artifacts.verify(directory)
        digest = artifacts.manifest_sha256(directory)
        require_key(self.mode, "registry")
        wandb = _import_wandb()
        all_aliases = list(dict.fromkeys([LATEST, *aliases]))
        info = dict(metadata or {})
        run = _start_run(
            wandb,
            mode=self.mode,
            project=self.project,
            entity=self.entity,
            home=self.home,
            what=f"publishing {name}",
            name=f"upload-{name}-{info.get('run_id', uuid.uuid4().hex[:6])}",
            job_type="upload_model",
            group=f"training-{info['run_id']}" if "run_id" in info else None,
            config={"mlpipe": info},
            tags=run_tags({k: str(v) for k, v in info.items()}),
        )
        try:
            art_meta: dict[str, Any] = {
                "manifest_sha256": digest,
                "metrics": manifest.get("metrics", {}),
                "mlpipe": info,
            }
            for key in ("data_sha256", "config_sha256", "base_model"):
                if key in manifest:
                    art_meta[key] = manifest[key]
            art = wandb.Artifact(
                name,
                type=ARTIFACT_TYPE,
                description=f"mlpipe model {name}; manifest sha256 {digest}",
                metadata=art_meta,
            )
            art.add_dir(str(directory))
            run.log_artifact(art, aliases=all_aliases)
            version: int | None = None
            live_aliases = set(all_aliases)
            if self.mode == "online":
                art.wait()
                version = int(str(art.version).lstrip("v"))
                if self.collection:
                    run.link_artifact(art, self.collection, aliases=all_aliases)
                live_aliases |= {str(a) for a in art.aliases}
            elif self.collection:
                log.warning("registry.wandb_collection is ignored offline; link after `wandb sync`")
        except Exception as exc:
            run.finish(exit_code=1)
            raise classify_error(exc, f"publishing {name}") from exc
        run.finish()
        if version is None:  # offline: keep a verified local copy, numbered by a local counter
            return self._from_offline(self._offline.publish(directory, name, aliases, info))
        return ModelVersionRef(
            uri=str(directory),
            sha256=digest,
            name=name,
            version=version,
            aliases=tuple(sorted(live_aliases)),
            backend=self.backend,
            metrics=manifest.get("metrics", {}),
        )

    # -- resolving and fetching ---------------------------------------------------------------

    def resolve(self, spec: str) -> ModelVersionRef:
        """``name``, ``name:alias``, ``name:vN`` or ``name:N`` (W&B numbering) -> a ref."""
        name, which = _normalize(spec)
        if self.mode == "offline":
            return self._resolve_offline(name, which)
        return self._ref(self._artifact(name, which))

    def fetch(self, spec: str, dest: Path) -> ModelVersionRef:
        """Download ``spec`` into ``dest`` (temp dir, verify, rename); return a ref to ``dest``."""
        dest = Path(dest)
        if self.mode == "offline":
            ref = self._resolve_offline(*_normalize(spec))
            source = Path(ref.uri)
            install_verified(dest, lambda tmp: shutil.copytree(source, tmp), ref.sha256)
        else:
            art = self._artifact(*_normalize(spec))
            ref = self._ref(art)

            def download(tmp: Path) -> None:
                try:
                    art.download(root=str(tmp))
                except Exception as exc:
                    raise classify_error(exc, f"downloading {ref.spec}") from exc

            install_verified(dest, download, ref.sha256)
        return ref.model_copy(update={"uri": str(dest)})

    def versions(self, name: str | None = None) -> list[ModelVersionRef]:
        if self.mode == "offline":
            return [self._from_offline(r) for r in self._offline.versions(name)]
        api = self._api()
        try:
            if name is None:
                names = [
                    c.name
                    for c in api.artifact_collections(
                        project_name=self._prefix().rstrip("/"), type_name=ARTIFACT_TYPE
                    )
                ]
            else:
                names = [name]
            found = [
                a
                for n in names
                for a in api.artifacts(ARTIFACT_TYPE, f"{self._prefix()}{n}", per_page=100)
            ]
        except Exception as exc:
            raise classify_error(exc, f"listing models in {self._prefix().rstrip('/')}") from exc
        return sorted((self._ref(a) for a in found), key=lambda r: (r.name, r.version))

    def promote(self, name: str, version: int, alias: str) -> ModelVersionRef:
        """Move ``alias`` to ``name:v<version>`` (W&B keeps an alias on one version at a time)."""
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", alias):
            raise ConfigError(
                f"alias {alias!r}: use letters, digits, '_', '.', '-' and start with a letter"
            )
        if self.mode == "offline":
            raise ConfigError(
                "registry promote with the W&B backend needs WANDB_MODE=online: an offline "
                "alias change could never be synced to W&B"
            )
        art = self._artifact(name, f"v{version}")
        try:
            if alias not in art.aliases:
                art.aliases.append(alias)
                art.save()
        except Exception as exc:
            raise classify_error(exc, f"promoting {name}:v{version} to {alias}") from exc
        return self._ref(art)

    def delete(self, name: str, version: int) -> None:
        """Delete a version; refused while an alias other than ``latest`` points at it."""
        if self.mode == "offline":
            return self._offline.delete(name, version + 1)
        art = self._artifact(name, f"v{version}")
        live = sorted(str(a) for a in art.aliases if str(a) != LATEST)
        if live:
            raise alias_in_use(name, version, live)
        try:
            art.delete(delete_aliases=True)
        except Exception as exc:
            raise classify_error(exc, f"deleting {name}:v{version}") from exc

    def history(self, name: str) -> list[dict[str, Any]]:
        """Alias moves recorded offline (W&B online keeps no alias history mlpipe can read)."""
        if self.mode != "offline":
            return []
        shift = [("from", -1), ("to", -1)]
        return [
            {**e, **{k: (e[k] + d if isinstance(e.get(k), int) else e.get(k)) for k, d in shift}}
            for e in self._offline.history(name)
        ]

    # -- helpers ------------------------------------------------------------------------------

    def _prefix(self) -> str:
        return f"{self.entity}/{self.project}/" if self.entity else f"{self.project}/"

    def _api(self) -> Any:
        require_key(self.mode, "registry")
        if self._api_handle is None:
            _wandb_dir(self.home)  # W&B's cache and settings under the home, not ~/.cache
            wandb = _import_wandb()
            try:
                timeout = os.environ.get("WANDB_HTTP_TIMEOUT")  # wandb reads it only at import
                self._api_handle = wandb.Api(
                    overrides={"entity": self.entity, "project": self.project},
                    timeout=int(timeout) if timeout and timeout.isdigit() else None,
                )
            except Exception as exc:
                raise classify_error(exc, "connecting to W&B") from exc
        return self._api_handle

    def _artifact(self, name: str, which: str) -> Any:
        path = f"{self._prefix()}{name}:{which}"
        api = self._api()
        try:
            art = api.artifact(path, type=ARTIFACT_TYPE)
        except Exception as exc:
            err = classify_error(exc, f"model {name}:{which} in W&B project {self._prefix()}")
            raise err from exc
        return art

    def _ref(self, art: Any) -> ModelVersionRef:
        meta = dict(art.metadata or {})
        return ModelVersionRef(
            uri=f"wandb-artifact://{art.qualified_name}",
            sha256=meta.get("manifest_sha256") or "",
            name=art.name.split(":")[0],
            version=int(str(art.version).lstrip("v")),
            aliases=tuple(sorted(str(a) for a in art.aliases)),
            backend=self.backend,
            metrics=meta.get("metrics") or {},
        )

    def _from_offline(self, ref: ModelVersionRef) -> ModelVersionRef:
        """The offline store counts from 1 like the local registry; W&B numbering is 0-based."""
        return ref.model_copy(update={"version": ref.version - 1, "backend": self.backend})

    def _resolve_offline(self, name: str, which: str) -> ModelVersionRef:
        refs = [self._from_offline(r) for r in self._offline.versions(name)]
        if not refs:
            known = ", ".join(self._offline.names()) or "none"
            raise ModelNotFoundError(
                f"model '{name}' was not published offline in W&B project {self.project} "
                f"(offline store {self.offline_root}; models: {known}). Offline, only models "
                "published from this machine can be loaded; use WANDB_MODE=online to download"
            )
        by_number = {r.version: r for r in refs}
        aliases = {a: r.version for r in refs for a in r.aliases}
        return by_number[pick_version(name, which, by_number, aliases,
                                      where=f" (offline store {self.offline_root})")]


def _normalize(spec: str) -> tuple[str, str]:
    """``name:3`` -> ``(name, "v3")``: W&B only understands the ``v`` form."""
    name, which = parse_spec(spec)
    match = VERSION.match(which)
    return name, f"v{int(match.group(1))}" if match else which

