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
the highest version. Lineage, metrics and the manifest's sha256 are model-version tags; the alias
history is a registered-model tag. Every fetch downloads into a temporary sibling of ``dest``,
verifies each file against the manifest and the manifest against the sha256 recorded at publish
time, then renames it into place: a tampered download is refused and nothing is left behind.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, model_validator

from mlpipe.core import artifacts, names, plugins
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
        try:
            tags = self._client().get_registered_model(model).tags or {}
            data: list[dict[str, Any]] = json.loads(tags.get(HISTORY_TAG, "[]"))
        except Exception:
            return []
        return data

    def _record(self, model: str, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        history = [*self._history_of(model), *events][-_MAX_HISTORY:]
        self._call(
            f"recording alias history of {model}",
            self._client().set_registered_model_tag,
            model,
            HISTORY_TAG,
            json.dumps(history, separators=(",", ":")),
        )

    def _ref(self, name: str, mv: Any, aliases: Mapping[str, int], latest: int) -> ModelVersionRef:
        tags = dict(mv.tags or {})
        version = int(mv.version)
        lineage = json.loads(tags.get(f"{TAG}lineage", "{}"))
        held = {a for a, v in aliases.items() if v == version}
        if version == latest:
            held.add(LATEST)
        source = str(mv.source)
        local = _local_path(source)
        return ModelVersionRef(
            uri=str(local) if local is not None else source,
            sha256=tags.get(f"{TAG}manifest_sha256", ""),
            name=name,
            version=version,
            aliases=tuple(sorted(held)),
            backend=self.backend,
            metrics=json.loads(tags.get(f"{TAG}metrics", "{}")),
            created_at=str(lineage.get("created_at", "")),
            run_id=str(lineage.get("run_id", "")),
            lineage=lineage,
        )

    def _resolve(self, name: str, which: str) -> tuple[Any, dict[str, int], int]:
        model = self._model(name)
        found = self._all_versions(model)
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
        model version, then move the aliases the promotion policy grants."""
        manifest = artifacts.verify(directory)
        digest = artifacts.manifest_sha256(directory)
        lineage = lineage_of(directory, metadata)
        metrics = dict(manifest.get("metrics", {}))
        for alias in aliases:
            _check_alias(alias)
        client = self._client()
        model = self._model(name)
        info = {k: str(v) for k, v in (metadata or {}).items() if isinstance(v, str | int)}
        with self._serialized():
            exp = self._call(
                f"experiment {self.cfg.experiment}",
                _experiment_id,
                client,
                self.cfg.experiment,
                _serverless_artifacts(self.uri),
            )
            run = self._call(
                f"publishing {name}",
                client.create_run,
                exp,
                run_name=f"publish-{name}-{info.get('run_id', uuid.uuid4().hex[:6])}",
                tags={f"{TAG}{k}": v for k, v in info.items()},
            )
            run_id = run.info.run_id
            try:
                self._call(
                    f"uploading {directory}", client.log_artifacts, run_id, str(directory), "model"
                )
                client.set_terminated(run_id)
            except Exception:
                client.set_terminated(run_id, status="FAILED")
                raise
            try:
                client.create_registered_model(model)
            except Exception as exc:
                if str(getattr(exc, "error_code", "")) != "RESOURCE_ALREADY_EXISTS":
                    raise classify(exc, f"registering {model}", self.uri) from exc
            tags = {
                f"{TAG}manifest_sha256": digest,
                f"{TAG}metrics": json.dumps(metrics, sort_keys=True),
                f"{TAG}lineage": json.dumps(lineage, sort_keys=True, default=str),
                f"{TAG}run_id": str(lineage.get("run_id", "")),
            }
            mv = self._call(
                f"registering a version of {model}",
                client.create_model_version,
                model,
                f"{run.info.artifact_uri}/model",
                run_id,
                tags=tags,
                description=f"mlpipe model {name}; manifest sha256 {digest}",
            )
            version = int(mv.version)
            table = self._aliases(model)
            holders = {a: (v, self._version_metrics(model, v)) for a, v in table.items()}
            granted, withheld, notes = decide_aliases(
                name, version, metrics, aliases, holders, self.promote_if
            )
            events = []
            for alias in granted:
                if table.get(alias) != version:
                    self._call(
                        f"setting alias {alias}",
                        client.set_registered_model_alias,
                        model,
                        alias,
                        str(version),
                    )
                    events.append(_event(alias, table.get(alias), version, lineage))
                    table[alias] = version
            self._record(model, events)
            latest = max(int(v.version) for v in self._all_versions(model))
            mv = self._call(f"reading {model} v{version}", client.get_model_version, model, version)
        ref = self._ref(name, mv, table, latest)
        return ref.model_copy(update={"aliases_withheld": tuple(withheld), "notes": tuple(notes)})

    def _version_metrics(self, model: str, version: int) -> dict[str, float]:
        try:
            mv = self._client().get_model_version(model, str(version))
            return dict(json.loads((mv.tags or {}).get(f"{TAG}metrics", "{}")))
        except Exception:
            return {}

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
            found_versions = self._all_versions(model)
            if not found_versions:
                continue
            aliases = self._aliases(model)
            latest = max(int(v.version) for v in found_versions)
            out.extend(self._ref(model_name, mv, aliases, latest) for mv in found_versions)
        return sorted(out, key=lambda r: (r.name, r.version))

    @_scoped
    def promote(self, name: str, version: int, alias: str) -> ModelVersionRef:
        """Point ``alias`` at ``version`` (MLflow moves it from wherever it was)."""
        _check_alias(alias)
        model = self._model(name)
        mv, aliases, latest = self._resolve(name, f"v{version}")
        old = aliases.get(alias)
        self._call(
            f"promoting {name}:v{version} to {alias}",
            self._client().set_registered_model_alias,
            model,
            alias,
            str(version),
        )
        if old != version:
            self._record(model, [_event(alias, old, version, {})])
        aliases[alias] = version
        return self._ref(name, mv, aliases, latest)

    @_scoped
    def delete(self, name: str, version: int) -> None:
        """Delete the model version; refused while an alias points at it."""
        model = self._model(name)
        _, aliases, _ = self._resolve(name, f"v{version}")
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
        import time

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
