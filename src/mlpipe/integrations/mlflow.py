"""MLflow behind mlpipe's ``Registry`` and ``Tracker`` interfaces.

Chosen by config (``registry.backend: mlflow``, ``tracking.backend: mlflow``); ``mlflow`` is
imported only inside these classes' methods, only when one of them is used.

Where: ``tracking_uri`` (else ``MLFLOW_TRACKING_URI``, else a server-less store under the mlpipe
home, ``sqlite:///<home>/mlflow/mlflow.db`` with artifacts in ``<home>/mlflow/artifacts``). A
``file:`` URI uses MLflow's file store (MLflow keeps it in maintenance mode; mlpipe opts in with
``MLFLOW_ALLOW_FILE_STORE=true`` for that URI only).

Credentials come from the environment only (``MLFLOW_TRACKING_TOKEN`` or
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``), read by the MLflow client itself:
mlpipe never copies them into a config, a tag, a param, a log line or a file, and a URI with a
``user:password@`` part is refused.

Registry: a model version of mlpipe is an MLflow model version of the registered model
``<registered_model_prefix><model_name>``; its files are the ``model`` artifacts of a publish run
(files + mlpipe's manifest.json). Aliases are MLflow aliases; ``latest`` (reserved by MLflow) is
the highest complete version. Lineage, metrics and the manifest's sha256 are model-version tags;
the alias history is a registered-model tag.

A publish is a dozen requests that can each fail (a server going down), so it is all-or-nothing
from the reader's side: the version is created with a ``mlpipe.publishing`` tag (who publishes)
and becomes visible to every reader (resolve, list, fetch, promote) only once its
``mlpipe.complete`` tag (the manifest's sha256) is written, after its files; then the alias
history is recorded, then the aliases move. A failure deletes what the publish created and puts
history and aliases back (best effort; with the server gone the reader rule still hides the
leftover). Publishing the same bytes again reuses their complete version, and replaces an
incomplete one whose publisher is gone, so a retry adds exactly one version.

Every fetch downloads into a temporary sibling of ``dest``, verifies each file against the
manifest and the manifest against the sha256 recorded at publish time, then renames it into
place: a tampered download is refused and nothing is left behind.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, model_validator

from mlpipe.core import artifacts, liveness, names, plugins
from mlpipe.core.config import RegistryConfig, TrackingConfig
from mlpipe.core.errors import ConfigError, MlpipeError, ModelNotFoundError
from mlpipe.core.paths import resolve_home
from mlpipe.core.refs import ModelVersionRef
from mlpipe.core.registry import (
    LATEST,
    VERSION,
    alias_in_use,
    decide_aliases,
    install_verified,
    lineage_of,
    parse_spec,
    pick_version,
    utc_now,
)
from mlpipe.core.tracking import Finishing, TrackedStep

log = logging.getLogger(__name__)

URI_ENV = "MLFLOW_TRACKING_URI"
SECRET_ENVS = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
HEALTH_TIMEOUT_S = 3.0
TAG = "mlpipe."
HISTORY_TAG = "mlpipe.alias_history"
SHA_TAG = "mlpipe.manifest_sha256"
PUBLISHING_TAG = "mlpipe.publishing"  # set at creation: who publishes the version
COMPLETE_TAG = "mlpipe.complete"  # written last: the manifest sha256; readers see only these
STALE_AFTER_S = 3600.0  # an incomplete version this old is abandoned, whoever published it
_MAX_HISTORY = 40  # alias moves kept in the registered-model tag (MLflow caps tag values)
_MAX_PARAM = 500


def _check_uri(value: str | None, field: str) -> str | None:
    if value and re.match(r"^[a-z+]+://[^/@]*:[^/@]*@", value):
        raise ValueError(
            f"{field} holds a user:password; put credentials in MLFLOW_TRACKING_USERNAME/"
            "MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN (environment only), not the URI"
        )
    return value


class MlflowRegistryConfig(RegistryConfig):
    """``registry.backend: mlflow``: versions are MLflow model versions, aliases MLflow aliases."""

    backend: str = "mlflow"
    tracking_uri: str | None = Field(
        None, description="default: MLFLOW_TRACKING_URI, else sqlite under <home>/mlflow"
    )
    registry_uri: str | None = Field(None, description="default: the tracking URI")
    experiment: str = Field("mlpipe", description="experiment the publish runs are logged to")
    registered_model_prefix: str = Field(
        "", description="registered model name = prefix + model_name (e.g. 'team.')"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:  # on the section: the value is never echoed
        for key in ("tracking_uri", "registry_uri"):
            if isinstance(data, dict) and isinstance(data.get(key), str):
                _check_uri(data[key], key)
        return data


class MlflowTrackingConfig(TrackingConfig):
    """``tracking.backend: mlflow``: one MLflow run per step, in ``experiment``."""

    backend: str = "mlflow"
    tracking_uri: str | None = Field(
        None, description="default: MLFLOW_TRACKING_URI, else sqlite under <home>/mlflow"
    )
    experiment: str = "mlpipe"

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("tracking_uri"), str):
            _check_uri(data["tracking_uri"], "tracking_uri")
        return data


# -- shared plumbing ------------------------------------------------------------------------------


def _import_mlflow() -> Any:
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return plugins.import_optional("mlflow", "the MLflow backend")


def store_uri(configured: str | None, home: Path | None) -> str:
    """The config's URI, else ``MLFLOW_TRACKING_URI``, else a sqlite store under the home."""
    uri = configured or os.environ.get(URI_ENV, "").strip()
    if uri:
        _check_uri(uri, URI_ENV if not configured else "tracking_uri")
        return uri
    root = (Path(home) if home is not None else resolve_home()) / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def _is_remote(uri: str) -> bool:
    return urllib.parse.urlparse(uri).scheme in ("http", "https", "databricks")


def check_server(uri: str) -> None:
    """A remote URI must answer ``/health`` within seconds: a down server is exit 1 naming it."""
    if urllib.parse.urlparse(uri).scheme not in ("http", "https"):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as response:
            response.read(64)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MlpipeError(
            f"the MLflow server at {uri} is not reachable ({reason}); start it, or point "
            "tracking_uri / MLFLOW_TRACKING_URI at a running server"
        ) from None


def _prepare(uri: str) -> None:
    """Per-URI opt-ins: MLflow's file store refuses to open unless told it is wanted."""
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def _text(exc: BaseException) -> str:
    raw = str(getattr(exc, "message", "") or exc).strip()
    return raw.splitlines()[0] if raw else type(exc).__name__


def classify(exc: BaseException, what: str, uri: str) -> MlpipeError:
    """MLflow failures as mlpipe errors: an unknown name is exit 2, anything else exit 1."""
    if isinstance(exc, MlpipeError):
        return exc
    code = str(getattr(exc, "error_code", ""))
    if code == "RESOURCE_DOES_NOT_EXIST" or "not found" in _text(exc).lower():
        return ModelNotFoundError(f"{what}: {_text(exc)}")
    if code == "INVALID_PARAMETER_VALUE":
        return ConfigError(f"{what}: {_text(exc)}")
    return MlpipeError(f"{what}: the MLflow request to {uri} failed ({_text(exc)})")


def _experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except Exception:  # another process created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _local_path(uri: str) -> Path | None:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def _serverless_artifacts(uri: str) -> str | None:
    """Where a sqlite store keeps artifacts: beside the database, never the working directory."""
    if uri.startswith("sqlite:///"):
        return str(Path(uri[len("sqlite:///") :]).parent / "artifacts")
    return None


# -- the registry ---------------------------------------------------------------------------------

#: tokens of this process's publishes in progress: its own leftovers are judged by these
_IN_FLIGHT: set[str] = set()


def _tags(mv: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (getattr(mv, "tags", None) or {}).items()}


def complete(mv: Any) -> bool:
    """Whether readers may see a model version: its completion tag names its manifest. A
    version without a ``mlpipe.publishing`` tag (an older mlpipe, or registered by hand) was
    complete when created."""
    tags = _tags(mv)
    if PUBLISHING_TAG not in tags:
        return True
    return bool(tags.get(COMPLETE_TAG)) and tags.get(COMPLETE_TAG) == tags.get(SHA_TAG)


def abandoned(mv: Any, now: float | None = None) -> bool:
    """An incomplete version whose publisher is gone (dead, a publish of this process that has
    ended, or created over ``STALE_AFTER_S`` ago: from creation to completion a publish makes
    a few requests): what a retry replaces. One whose publisher may still run is left alone."""
    if complete(mv):
        return False
    try:
        who = json.loads(_tags(mv)[PUBLISHING_TAG])
    except (KeyError, ValueError):
        return False
    if not isinstance(who, dict) or who.get("token") in _IN_FLIGHT:
        return False
    created = getattr(mv, "creation_timestamp", None)
    clock = time.time() if now is None else now
    if isinstance(created, int | float) and 0 < created < (clock - STALE_AFTER_S) * 1000:
        return True  # another machine's publisher (a pod) is judged by age alone
    state = liveness.alive(who)
    if state is False:
        return True
    me = liveness.identity()
    return bool(state) and all(who.get(k) == me[k] for k in ("host", "pid", "pid_start"))


def _scoped(method: Any) -> Any:
    """Run a registry method with MLflow's global tracking URI pointing at this store: MLflow's
    file-store registry opens ``MlflowClient()`` (the global URI) internally, which would
    otherwise create ``./mlflow.db`` in the working directory."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._default_uri():
            return method(self, *args, **kwargs)

    return wrapper


def _preflight(tracking_uri: str | None) -> None:
    """Before any step: mlflow importable, and the configured (or ``$MLFLOW_TRACKING_URI``)
    store well-formed and, for a server, answering."""
    _import_mlflow()
    uri = tracking_uri or os.environ.get(URI_ENV, "").strip()
    if uri:
        _check_uri(uri, URI_ENV)
        check_server(uri)


class MlflowRegistry:
    """Model versions as MLflow model versions of a registered model; aliases are MLflow's."""

    backend = "mlflow"
    config_type: ClassVar[type[RegistryConfig]] = MlflowRegistryConfig

    @classmethod
    def preflight(cls, cfg: RegistryConfig) -> None:
        assert isinstance(cfg, MlflowRegistryConfig)
        _preflight(cfg.tracking_uri)

    def __init__(self, cfg: RegistryConfig, home: Path | None = None) -> None:
        assert isinstance(cfg, MlflowRegistryConfig)
        self.cfg = cfg
        self.home = Path(home) if home is not None else resolve_home()
        self.uri = store_uri(cfg.tracking_uri, self.home)
        self.registry_uri = cfg.registry_uri or self.uri
        self.promote_if = cfg.promote_if
        self._client_handle: Any = None

    # -- plumbing -----------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._client_handle is None:
            check_server(self.uri)
            if self.registry_uri != self.uri:
                check_server(self.registry_uri)
            _prepare(self.uri)
            mlflow = _import_mlflow()
            try:
                self._client_handle = mlflow.MlflowClient(
                    tracking_uri=self.uri, registry_uri=self.registry_uri
                )
            except Exception as exc:
                raise classify(exc, "opening the MLflow store", self.uri) from exc
        return self._client_handle

    def _model(self, name: str) -> str:
        return f"{self.cfg.registered_model_prefix}{names.model_name(name)}"

    @contextmanager
    def _default_uri(self) -> Iterator[None]:
        """Some MLflow calls (registering a version against a file store) open the *global*
        tracking URI; point it at this store meanwhile, never at ``./mlflow.db``."""
        _import_mlflow()
        from mlflow.tracking._tracking_service import utils

        service: Any = utils
        previous, previous_env = service._tracking_uri, os.environ.get(URI_ENV)
        service.set_tracking_uri(self.uri)
        try:
            yield
        finally:
            service.set_tracking_uri(previous)  # None: "not set" again (and the env var unset)
            if previous_env is not None:
                os.environ[URI_ENV] = previous_env
            else:
                os.environ.pop(URI_ENV, None)

    @contextmanager
    def _serialized(self) -> Iterator[None]:
        """Server-less stores take a file lock around writes (MLflow's file store numbers
        versions by listing directories); a server numbers them in its own transaction."""
        if _is_remote(self.uri):
            with nullcontext():
                yield
            return
        from mlpipe.core.files import exclusive

        # beside the store, so every home that shares it shares the lock
        local = _local_path(self.uri)
        if self.uri.startswith("sqlite:///"):
            lock_dir = Path(self.uri[len("sqlite:///") :]).parent
        elif local is not None:
            lock_dir = local
        else:
            lock_dir = self.home / "mlflow"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with exclusive(lock_dir / ".publish.lock", what=f"mlflow publish to {self.uri}"):
            yield

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise classify(exc, what, self.uri) from exc

    def _all_versions(self, model: str) -> list[Any]:
        client = self._client()
        out: list[Any] = []
        token = None
        while True:
            page = self._call(
                f"listing {model}",
                client.search_model_versions,
                f"name='{model}'",
                max_results=1000,
                page_token=token,
            )
            out.extend(page)
            token = getattr(page, "token", None)
            if not token:
                return out

    def _aliases(self, model: str) -> dict[str, int]:
        client = self._client()
        try:
            registered = client.get_registered_model(model)
        except Exception as exc:
            err = classify(exc, f"model {model}", self.uri)
            if isinstance(err, ModelNotFoundError):
                return {}
            raise err from exc
        return {str(k): int(v) for k, v in (registered.aliases or {}).items()}

    def _history_of(self, model: str) -> list[dict[str, Any]]:
        """The alias history ([] for an unknown model or a tag that is not a list); a request
        that fails raises, so a write never starts from a history it could not read."""
        try:
            registered = self._client().get_registered_model(model)
        except Exception as exc:
            err = classify(exc, f"model {model}", self.uri)
            if isinstance(err, ModelNotFoundError):
                return []
            raise err from exc
        try:
            data = json.loads((registered.tags or {}).get(HISTORY_TAG, "[]"))
        except ValueError:
            return []
        return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []

    def _write_history(self, model: str, history: list[dict[str, Any]]) -> None:
        self._call(
            f"recording alias history of {model}",
            self._client().set_registered_model_tag,
            model,
            HISTORY_TAG,
            json.dumps(history[-_MAX_HISTORY:], separators=(",", ":")),
        )

    def _ref(self, name: str, mv: Any, aliases: Mapping[str, int], latest: int) -> ModelVersionRef:
        tags = _tags(mv)
        version = int(mv.version)
        lineage = json.loads(tags.get(f"{TAG}lineage", "{}"))
        held = {a for a, v in aliases.items() if v == version}
        if version == latest:
            held.add(LATEST)
        source = str(mv.source)
        local = _local_path(source)
        return ModelVersionRef(
            uri=str(local) if local is not None else source,
            sha256=tags.get(SHA_TAG, ""),
            name=name,
            version=version,
            aliases=tuple(sorted(held)),
            backend=self.backend,
            metrics=_metrics(mv),
            created_at=str(lineage.get("created_at", "")),
            run_id=str(lineage.get("run_id", "")),
            lineage=lineage,
        )

    def _resolve(self, name: str, which: str) -> tuple[Any, dict[str, int], int]:
        model = self._model(name)
        found = [mv for mv in self._all_versions(model) if complete(mv)]
        if not found:
            raise ModelNotFoundError(
                f"model '{name}' is not in the MLflow registry at {self.registry_uri} "
                f"(registered model {model})"
            )
        by_number = {int(mv.version): mv for mv in found}
        latest = max(by_number)
        aliases = self._aliases(model)
        number = pick_version(name, which, by_number, aliases, where=f" at {self.registry_uri}")
        return by_number[number], aliases, latest

    # -- the Registry interface ---------------------------------------------------------------

    @_scoped
    def publish(
        self,
        directory: Path,
        name: str,
        aliases: Sequence[str],
        metadata: dict[str, Any] | None = None,
    ) -> ModelVersionRef:
        """Log ``directory`` as the ``model`` artifacts of a publish run, register it as the next
        model version, mark it complete, record the alias history, then move the aliases the
        promotion policy grants. Same bytes as a complete version: that version is reused."""
        manifest = artifacts.verify(directory)
        digest = artifacts.manifest_sha256(directory)
        lineage = lineage_of(directory, metadata)
        metrics = dict(manifest.get("metrics", {}))
        for alias in aliases:
            _check_alias(alias)
        client = self._client()
        model = self._model(name)
        token = uuid.uuid4().hex
        _IN_FLIGHT.add(token)
        publish = _Publish(self, model, token)
        try:
            with self._serialized():
                found = self._all_versions(model)
                publish.replace_leftovers(found)
                visible = [mv for mv in found if complete(mv)]
                same = [mv for mv in visible if _tags(mv).get(SHA_TAG) == digest]
                if same:  # a retry of a publish that completed: nothing new to upload
                    mv = max(same, key=lambda v: int(v.version))
                else:
                    mv = publish.create(directory, name, digest, metrics, lineage, metadata)
                version = int(mv.version)
                publish.stage = "reading the aliases"
                table = self._aliases(model)
                by_number = {int(v.version): v for v in visible}
                holders = {
                    a: (v, _metrics(by_number[v]) if v in by_number else {})
                    for a, v in table.items()
                }
                granted, withheld, notes = decide_aliases(
                    name, version, metrics, aliases, holders, self.promote_if
                )
                moves = [a for a in granted if table.get(a) != version]
                if publish.created:
                    publish.stage = f"marking v{version} complete"
                    client.set_model_version_tag(model, str(version), COMPLETE_TAG, digest)
                    publish.completed = True
                if moves:  # history before aliases: a move is never unrecorded
                    publish.stage = "recording the alias history"
                    publish.history = self._history_of(model)
                    events = [_event(a, table.get(a), version, lineage) for a in moves]
                    self._write_history(model, [*publish.history, *events])
                for alias in moves:
                    publish.stage = f"moving alias {alias} to v{version}"
                    client.set_registered_model_alias(model, alias, str(version))
                    publish.moved.append((alias, table.get(alias)))
                    table[alias] = version
                latest = max([version, *by_number])
        except BaseException as exc:
            error = publish.undo(exc, name)
            if error is exc:
                raise
            raise error from exc
        finally:
            _IN_FLIGHT.discard(token)
        ref = self._ref(name, mv, table, latest)
        return ref.model_copy(update={"aliases_withheld": tuple(withheld), "notes": tuple(notes)})

    @_scoped
    def resolve(self, spec: str) -> ModelVersionRef:
        name, which = parse_spec(spec)
        mv, aliases, latest = self._resolve(name, which)
        return self._ref(name, mv, aliases, latest)

    @_scoped
    def fetch(self, spec: str, dest: Path) -> ModelVersionRef:
        """Download ``spec`` into ``dest`` (temp dir, verify, rename); a ref to ``dest``."""
        ref = self.resolve(spec)
        mv, _, _ = self._resolve(*parse_spec(spec))
        source = str(mv.source)
        mlflow = _import_mlflow()

        def download(tmp: Path) -> None:
            scratch = tmp.parent / f".{tmp.name}.dl"
            scratch.mkdir(parents=True)
            try:
                got = mlflow.artifacts.download_artifacts(
                    artifact_uri=source, dst_path=str(scratch), tracking_uri=self.uri
                )
                Path(got).rename(tmp)
            except MlpipeError:
                raise
            except Exception as exc:
                raise classify(exc, f"downloading {ref.spec}", self.uri) from exc
            finally:
                shutil.rmtree(scratch, ignore_errors=True)

        install_verified(Path(dest), download, ref.sha256)
        return ref.model_copy(update={"uri": str(dest)})

    @_scoped
    def versions(self, name: str | None = None) -> list[ModelVersionRef]:
        client = self._client()
        if name is not None:
            models = [name]
        else:
            prefix = self.cfg.registered_model_prefix
            found = self._call("listing models", client.search_registered_models, max_results=1000)
            models = [
                str(m.name)[len(prefix) :] for m in found if str(m.name).startswith(prefix)
            ]
        out: list[ModelVersionRef] = []
        for model_name in models:
            model = self._model(model_name)
            found_versions = [mv for mv in self._all_versions(model) if complete(mv)]
            if not found_versions:
                continue
            aliases = self._aliases(model)
            latest = max(int(v.version) for v in found_versions)
            out.extend(self._ref(model_name, mv, aliases, latest) for mv in found_versions)
        return sorted(out, key=lambda r: (r.name, r.version))

    @_scoped
    def promote(self, name: str, version: int, alias: str) -> ModelVersionRef:
        """Point ``alias`` at ``version`` (MLflow moves it from wherever it was); the move is
        recorded in the history first, and the history put back if the move fails."""
        _check_alias(alias)
        model = self._model(name)
        mv, aliases, latest = self._resolve(name, f"v{version}")
        old = aliases.get(alias)
        if old != version:
            history = self._history_of(model)
            self._write_history(model, [*history, _event(alias, old, version, {})])
            try:
                self._call(
                    f"promoting {name}:v{version} to {alias}",
                    self._client().set_registered_model_alias,
                    model,
                    alias,
                    str(version),
                )
            except BaseException:
                _quietly(self._write_history, model, history)
                raise
        aliases[alias] = version
        return self._ref(name, mv, aliases, latest)

    @_scoped
    def delete(self, name: str, version: int) -> None:
        """Delete the model version; refused while an alias points at it. An incomplete
        version (a publish that failed part-way) can be deleted too."""
        model = self._model(name)
        if not any(int(mv.version) == version for mv in self._all_versions(model)):
            self._resolve(name, f"v{version}")  # raises, naming the versions there are
        aliases = self._aliases(model)
        holding = sorted(a for a, v in aliases.items() if v == version)
        if holding:
            raise alias_in_use(name, version, holding)
        self._call(
            f"deleting {name}:v{version}",
            self._client().delete_model_version,
            model,
            str(version),
        )

    @_scoped
    def history(self, name: str) -> list[dict[str, Any]]:
        return self._history_of(self._model(name))


def _metrics(mv: Any) -> dict[str, float]:
    """A version's metrics tag; what is not a number is left out."""
    try:
        data = json.loads(_tags(mv).get(f"{TAG}metrics", "{}"))
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _quietly(fn: Any, *args: Any) -> bool:
    """A best-effort request (an undo): False, logged, when it fails."""
    try:
        fn(*args)
    except Exception as exc:
        log.warning("mlflow: %s%s failed: %s", getattr(fn, "__name__", fn), args, _text(exc))
        return False
    return True


class _Publish:
    """What one publish has done so far, so that a failure can undo exactly that."""

    def __init__(self, registry: MlflowRegistry, model: str, token: str) -> None:
        self.registry, self.model, self.token = registry, model, token
        self.client = registry._client()
        self.stage = f"listing the versions of {model}"
        self.run_id: str | None = None
        self.version: int | None = None
        self.created = self.completed = False
        self.history: list[dict[str, Any]] | None = None  # as it was before this publish
        self.moved: list[tuple[str, int | None]] = []  # (alias, the version it was on)

    def replace_leftovers(self, found: Sequence[Any]) -> None:
        """Delete the incomplete versions whose publishers are gone (best effort)."""
        for mv in found:
            if abandoned(mv):
                log.info("mlflow: deleting %s v%s, left by a publish that failed", self.model,
                         mv.version)  # fmt: skip
                deleted = _quietly(self.client.delete_model_version, self.model, str(mv.version))
                if deleted and getattr(mv, "run_id", None):
                    _quietly(self.client.delete_run, mv.run_id)

    def create(
        self,
        directory: Path,
        name: str,
        digest: str,
        metrics: Mapping[str, Any],
        lineage: Mapping[str, Any],
        metadata: Mapping[str, Any] | None,
    ) -> Any:
        """Upload the files in a publish run and register them as a new, incomplete version."""
        cfg, client, model = self.registry.cfg, self.client, self.model
        info = {k: str(v) for k, v in (metadata or {}).items() if isinstance(v, str | int)}
        self.stage = f"opening the experiment {cfg.experiment}"
        exp = _experiment_id(client, cfg.experiment, _serverless_artifacts(self.registry.uri))
        self.stage = f"starting the publish run of {name}"
        run = client.create_run(
            exp,
            run_name=f"publish-{name}-{info.get('run_id', uuid.uuid4().hex[:6])}",
            tags={f"{TAG}{k}": v for k, v in info.items()},
        )
        self.run_id = run.info.run_id
        self.stage = f"uploading {directory}"
        client.log_artifacts(self.run_id, str(directory), "model")
        client.set_terminated(self.run_id)
        self.stage = f"registering {model}"
        try:
            client.create_registered_model(model)
        except Exception as exc:
            if str(getattr(exc, "error_code", "")) != "RESOURCE_ALREADY_EXISTS":
                raise
        tags = {
            SHA_TAG: digest,
            f"{TAG}metrics": json.dumps(dict(metrics), sort_keys=True),
            f"{TAG}lineage": json.dumps(dict(lineage), sort_keys=True, default=str),
            f"{TAG}run_id": str(lineage.get("run_id", "")),
            PUBLISHING_TAG: json.dumps({**liveness.identity(), "token": self.token}),
        }
        self.stage = f"registering a version of {model}"
        mv = client.create_model_version(
            model,
            f"{run.info.artifact_uri}/model",
            self.run_id,
            tags=tags,
            description=f"mlpipe model {name}; manifest sha256 {digest}",
        )
        self.version, self.created = int(mv.version), True
        return mv

    def undo(self, exc: BaseException, name: str) -> BaseException:
        """Put back what this publish changed, newest first, stopping at the first request that
        fails (the server is likely gone: the reader rule hides an incomplete version); the
        error to raise, saying what readers see now."""
        client, model = self.client, self.model
        steps: list[tuple[str, Any, tuple[Any, ...]]] = []
        for alias, old in reversed(self.moved):
            if old is None:
                steps.append((f"alias {alias}", client.delete_registered_model_alias,
                              (model, alias)))  # fmt: skip
            else:
                steps.append((f"alias {alias}", client.set_registered_model_alias,
                              (model, alias, str(old))))  # fmt: skip
        if self.history is not None:
            steps.append(("the alias history", self.registry._write_history,
                          (model, self.history)))  # fmt: skip
        if self.created and self.version is not None:
            steps.append((f"v{self.version}", client.delete_model_version,
                          (model, str(self.version))))  # fmt: skip
        if self.run_id is not None:
            steps.append(("the publish run", client.delete_run, (self.run_id,)))
        left = [what for what, fn, args in steps]
        for what, fn, args in steps:
            if not _quietly(fn, *args):
                break
            left.remove(what)
        if not isinstance(exc, Exception):
            return exc  # Ctrl-C, a SIGTERM: unwound as it was
        err = classify(exc, self.stage, self.registry.uri)
        moved = [a for a, _ in self.moved if f"alias {a}" in left]
        if self.completed and f"v{self.version}" in left:
            outcome = (
                f"v{self.version} is complete and served as latest"
                + (f", {', '.join(moved)} moved to it" if moved else "")
                + "; the undo failed: publish the same model again to finish (it reuses "
                f"v{self.version}) or delete it (mlpipe registry delete {name} {self.version})"
            )
        elif moved:
            outcome = (
                f"alias(es) {', '.join(moved)} moved and could not be put back: move them with "
                f"mlpipe registry promote {name} <version> <alias>"
            )
        else:
            outcome = "nothing was published: latest and the aliases are as they were"
            if self.created and f"v{self.version}" in left:
                outcome += (
                    f" (the incomplete v{self.version} is hidden from readers; the next "
                    "publish replaces it)"
                )
        message = f"publishing {name} failed: {err}; {outcome}"
        try:
            out: MlpipeError = type(err)(message)
        except TypeError:
            out = MlpipeError(message)
        out.exit_code = err.exit_code
        return out


def _check_alias(alias: str) -> None:
    names.alias(alias)
    if alias.lower() == LATEST or VERSION.match(alias):
        raise ConfigError(
            f"alias {alias!r} is reserved by MLflow ('latest' is always the highest version)"
        )


def _event(alias: str, old: int | None, new: int, lineage: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "alias": alias,
        "from": old,
        "to": new,
        "at": utc_now(),
        "run_id": str(lineage.get("run_id", "")),
    }


# -- the tracker ----------------------------------------------------------------------------------


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value, default=str)[:_MAX_PARAM]
    return out


class MlflowTracker(Finishing):
    """One MLflow run per step: params (the config), tags (runner and its run id, pipeline,
    step), per-step metrics, and the summary (eval metrics, the data hash)."""

    config_type: ClassVar[type[TrackingConfig]] = MlflowTrackingConfig

    @classmethod
    def preflight(cls, cfg: TrackingConfig) -> None:
        assert isinstance(cfg, MlflowTrackingConfig)
        _preflight(cfg.tracking_uri)

    def __init__(self, cfg: TrackingConfig, step: TrackedStep) -> None:
        assert isinstance(cfg, MlflowTrackingConfig)
        self.uri = store_uri(cfg.tracking_uri, step.home)
        check_server(self.uri)
        _prepare(self.uri)
        mlflow = _import_mlflow()
        self.client = mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        run_tags = {f"mlpipe.{k}": str(v) for k, v in step.tags.items() if v}
        run_tags.update({"mlpipe.job_type": step.job_type, "mlflow.runName": step.name})
        if "runner" in step.tags:
            run_tags["runner"] = str(step.tags["runner"])
        try:
            exp = _experiment_id(self.client, cfg.experiment, _serverless_artifacts(self.uri))
            self.run_id: str | None = self.client.create_run(
                exp, run_name=step.name, tags=run_tags
            ).info.run_id
            params = _flatten(step.config)
            items = list(params.items())
            from mlflow.entities import Param

            for start in range(0, len(items), 100):
                self.client.log_batch(
                    self.run_id, params=[Param(k, v) for k, v in items[start : start + 100]]
                )
        except Exception as exc:
            raise classify(exc, f"tracking run {step.name}", self.uri) from exc
        self._step = 0

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        if step is None:
            step = self._step
            self._step += 1
        now = int(time.time() * 1000)
        batch = [
            Metric(_key(k), float(v), now, int(step))
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def summary(self, metrics: Mapping[str, Any]) -> None:
        if self.run_id is None:
            return
        for key, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.client.log_metric(self.run_id, _key(key), float(value))
            else:
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                self.client.set_tag(self.run_id, f"mlpipe.{_key(key)}", text[:5000])

    def finish(self, *, failed: bool) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")
            self.run_id = None


def _key(key: str) -> str:
    """MLflow keys allow letters, digits, ``_ - . / space``; anything else becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", str(key))
