"""References: small JSON-able records that steps return and take instead of the artifacts.

A reference says where an artifact lives and what it is (hash, row counts, metrics); it never holds
the artifact. That is what lets one step run in a different process, task or pod from the next.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlpipe.core import plugins
from mlpipe.core.errors import ConfigError
from mlpipe.core.hashing import file_hashes, sha256_file, sha256_json


class CheckResult(BaseModel):
    """The outcome of one data- or model-quality check; ``blocking`` failures stop the pipeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    passed: bool
    blocking: bool = False
    message: str = ""
    value: float | None = None
    threshold: float | None = None

    def facts(self) -> dict[str, Any]:
        """Whether it blocks, and its value and threshold where it has them."""
        found = {"blocking": self.blocking, "value": self.value, "threshold": self.threshold}
        return {k: v for k, v in found.items() if v is not None}


class Ref(BaseModel):
    """Base of every reference. A subclass names its ``kind`` (``kind: Literal["mine"] =
    "mine"``) and is then rebuilt by ``ref_from_json`` wherever its module is imported, so user
    pipelines bring their own reference types."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kinds: ClassVar[dict[str, type[Ref]]] = {}
    #: what the artifact is to an orchestrator's UI or lineage: "dataset", "model" or "artifact"
    artifact_type: ClassVar[str] = "artifact"

    kind: str
    uri: str
    sha256: str
    checks: tuple[CheckResult, ...] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        kind = cls.model_fields["kind"].default
        if isinstance(kind, str):
            Ref.kinds[kind] = cls

    def summary(self) -> dict[str, Any]:
        """What an orchestrator's UI shows for it: scalar fields as they are, a mapping of
        numbers as ``name/key`` entries, any other non-empty field as JSON, and ``row_count``
        (summed over a mapping of row counts) and ``model_version`` where it has them."""
        found: dict[str, Any] = {}
        for name, value in self.model_dump(mode="json", exclude={"checks"}).items():
            if isinstance(value, dict) and value and all(
                    isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()):
                found.update({f"{name}/{k}": v for k, v in value.items()})
            elif value or isinstance(value, bool | str | int | float):
                found[name] = value
        rows = getattr(self, "rows", None)
        if isinstance(rows, dict | int) and not isinstance(rows, bool):
            found["row_count"] = sum(rows.values()) if isinstance(rows, dict) else rows
        if isinstance(getattr(self, "spec", None), str):
            found["model_version"] = getattr(self, "spec", None)
        return found

    def failed_blocking_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocking and not c.passed]

    # -- what the step cache and ``--resume`` ask every reference (override for your own kind) --

    def output_path(self) -> Path:
        """Where the output lives: a file or a folder."""
        return Path(self.uri)

    def output_files(self) -> tuple[Path, dict[str, str]]:
        """The output's root and the sha256 of every file there (a folder's files, by relative
        path, or the one file the reference names): what a cache entry records and checks."""
        path = self.output_path()
        if path.is_dir():
            return path, file_hashes(path)
        return path, {path.name: sha256_file(path)}

    def still_valid(self) -> bool:
        """The output is still what the reference says: a file whose hash it recorded, or a
        folder (whose files the cache entry lists and checks one by one)."""
        path = self.output_path()
        return path.is_dir() or (path.is_file() and sha256_file(path) == self.sha256)

    def metric_values(self) -> dict[str, float]:
        """The numbers it carries that belong on a dashboard (none unless the kind has some)."""
        metrics = getattr(self, "metrics", None)
        return {k: float(v) for k, v in metrics.items()} if isinstance(metrics, dict) else {}

    @classmethod
    def has_own_metrics(cls) -> bool:
        """Whether :meth:`metric_values` are this kind's own numbers, not ones it repeats from
        upstream (what an orchestrator charts once per run); by default: it has ``metrics``."""
        return "metrics" in cls.model_fields

    def confusion_matrix(self, upstream: Iterable[Ref]) -> tuple[list[str], list[list[int]]] | None:
        """(label names, counts of true x predicted label) for kinds that hold labelled
        predictions (those override it); ``upstream``: the references the step took."""
        return None


class DatasetRef(Ref):
    """Prepared data as parquet files in one directory, one file per split."""

    kind: Literal["dataset"] = "dataset"
    artifact_type: ClassVar[str] = "dataset"
    files: dict[str, str]
    rows: dict[str, int]
    columns: tuple[str, ...]
    has_labels: bool
    label_names: tuple[str, ...]

    def still_valid(self) -> bool:
        """Every split's bytes and the label names hash to what it recorded (as at load)."""
        hashes = {split: sha256_file(Path(self.uri) / name) for split, name in self.files.items()}
        return sha256_json({"files": hashes, "label_names": list(self.label_names)}) == self.sha256


class ModelRef(Ref):
    """A fine-tuned model directory (weights, config, tokenizer) and its eval metrics."""

    kind: Literal["model"] = "model"
    artifact_type: ClassVar[str] = "model"
    metrics: dict[str, float] = {}
    base: str = ""

    def output_files(self) -> tuple[Path, dict[str, str]]:
        """A sealed folder's files as its manifest lists them (``still_valid`` verifies them),
        else hashed as found."""
        from mlpipe.core import artifacts

        root = Path(self.uri)
        if (root / artifacts.MANIFEST).is_file():
            return root, artifacts.listed_files(root)
        return super().output_files()

    def still_valid(self) -> bool:
        from mlpipe.core import artifacts

        if (Path(self.uri) / artifacts.MANIFEST).is_file():  # sealed by training: verify reads
            files = artifacts.verify(Path(self.uri))["files"]  # every file once, weights too
            return files.get("model.safetensors") == self.sha256
        return sha256_file(Path(self.uri) / "model.safetensors") == self.sha256


class ManifestRef(Ref):
    """A folder with a manifest: still valid while every file it lists has its hash; a model's
    files, whose metrics are the trained model's (repeated, not its own)."""

    artifact_type: ClassVar[str] = "model"

    @classmethod
    def has_own_metrics(cls) -> bool:
        return False

    def output_files(self) -> tuple[Path, dict[str, str]]:
        """Its files as the manifest lists them, not hashed again (``still_valid`` verifies)."""
        from mlpipe.core import artifacts

        return Path(self.uri), artifacts.listed_files(Path(self.uri))

    def still_valid(self) -> bool:
        from mlpipe.core import artifacts

        artifacts.verify(Path(self.uri))
        return artifacts.manifest_sha256(Path(self.uri)) == self.sha256


class ArtifactsRef(ManifestRef):
    """The publishable artifact directory; ``sha256`` is the hash of its ``manifest.json``."""

    kind: Literal["artifacts"] = "artifacts"
    files: dict[str, str]
    metrics: dict[str, float] = {}


class ModelVersionRef(ManifestRef):
    """One version of a model in a registry; ``uri`` is where its verified files are."""

    kind: Literal["model_version"] = "model_version"
    name: str
    version: int
    aliases: tuple[str, ...] = ()
    #: the registry plugin that holds it (refs stored before this field: the default one)
    backend: str = Field(default_factory=lambda: plugins.default("registry"))
    metrics: dict[str, float] = {}
    #: when the version was created (UTC, ISO 8601) and the mlpipe run that published it
    created_at: str = ""
    run_id: str = ""
    #: what produced it: run, pipeline, runner, orchestrator run id, data, config, base model...
    lineage: dict[str, Any] = {}
    #: aliases the publish asked for but the promotion policy (``registry.promote_if``) withheld
    aliases_withheld: tuple[str, ...] = ()
    #: what the registry said while publishing (a withheld alias, an alias moved to a worse model)
    notes: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        return f"{self.name}:v{self.version}"


class PredictionsRef(Ref):
    """Model outputs in input order: a parquet file with the input row id, label and score."""

    kind: Literal["predictions"] = "predictions"
    artifact_type: ClassVar[str] = "dataset"
    rows: int
    model: str
    throughput: float = 0.0

    def metric_values(self) -> dict[str, float]:
        return {"rows": float(self.rows), "throughput": float(self.throughput)}

    @classmethod
    def has_own_metrics(cls) -> bool:
        return True


class ResultsRef(Ref):
    """The final inference output: predictions joined to inputs, plus metrics when labels exist."""

    kind: Literal["results"] = "results"
    artifact_type: ClassVar[str] = "dataset"
    predictions_uri: str
    rows: int
    model: str
    metrics: dict[str, float] = {}

    def output_path(self) -> Path:
        return Path(self.predictions_uri)

    def confusion_matrix(self, upstream: Iterable[Ref]) -> tuple[list[str], list[list[int]]] | None:
        """From the saved predictions, named by the first upstream dataset with labels (None
        without one); only the two integer columns, batch by batch, so large outputs stay cheap."""
        dataset = next((r for r in upstream if isinstance(r, DatasetRef) and r.has_labels), None)
        if dataset is None:
            return None
        import pyarrow.parquet as pq

        names = list(dataset.label_names)
        matrix = [[0] * len(names) for _ in names]
        file = pq.ParquetFile(self.predictions_uri)
        if not {"label", "pred_id"} <= set(file.schema_arrow.names):
            return None
        for batch in file.iter_batches(columns=["label", "pred_id"], batch_size=65_536):
            cols = batch.to_pydict()
            for true, pred in zip(cols["label"], cols["pred_id"], strict=True):
                matrix[int(true)][int(pred)] += 1
        return names, matrix


class ShardsRef(Ref):
    """One output cut into shards, in input order: what a map step runs over (one execution per
    shard) and what a map step's output is to the steps after it (its shards, gathered in order).

    ``shards`` holds each shard's own reference as JSON (any kind); read them with ``refs``.
    """

    kind: Literal["shards"] = "shards"
    shards: tuple[dict[str, Any], ...]

    @property
    def refs(self) -> list[Ref]:
        return [ref_from_json(shard) for shard in self.shards]

    def output_files(self) -> tuple[Path, dict[str, str]]:
        """Every shard's files, as ``<i>/<shard root>/<file>``."""
        files: dict[str, str] = {}
        for i, shard in enumerate(self.refs):
            root, shard_files = shard.output_files()
            files.update({f"{i}/{root.name}/{name}": h for name, h in shard_files.items()})
        return Path(self.uri), files

    def still_valid(self) -> bool:
        return all(shard.still_valid() for shard in self.refs)

    def metric_values(self) -> dict[str, float]:
        """Gathered predictions: all rows, at the pace of the slowest shard."""
        shards = [r for r in self.refs if isinstance(r, PredictionsRef)]
        if not shards:
            return {}
        rows = sum(float(s.rows) for s in shards)
        slowest = max((s.rows / s.throughput for s in shards if s.throughput), default=0.0)
        return {"rows": rows, "throughput": rows / slowest if slowest else 0.0}

    @classmethod
    def of(cls, refs: Sequence[Ref], uri: str) -> ShardsRef:
        """The shards ``refs`` (in order) as one reference; its hash covers theirs, in order."""
        return cls(
            uri=uri,
            sha256=sha256_json([r.sha256 for r in refs]),
            shards=tuple(r.model_dump(mode="json") for r in refs),
        )


def ref_from_json(data: str | dict[str, Any]) -> Ref:
    """Rebuild a reference from the JSON a step wrote or an orchestrator passed along."""
    raw = json.loads(data) if isinstance(data, str) else data
    kind = raw.get("kind") if isinstance(raw, dict) else None
    cls = Ref.kinds.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(
            f"reference of unknown kind {kind!r} (known: {', '.join(sorted(Ref.kinds))}); "
            "import the module that defines it before reading it"
        )
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid {kind} reference: {exc}") from None
