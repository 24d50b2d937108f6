"""Predict with a registry version: a few rows in memory (``mlpipe.load_model(...).predict``)
or a whole csv/jsonl/parquet file (``predict_file``, ``mlpipe predict --input --output``).

The model's own task (recorded in its directory) decides what a prediction is: a label, its
score and every label's probability for classifiers, the SQL for text-to-sql models. Files keep
every column the user gave and gain the task's output columns (``label``, ``score``; ``sql``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe.core.config import RegistryConfig, plugin_section
from mlpipe.core.paths import resolve_home
from mlpipe.core.refs import ModelVersionRef
from mlpipe.core.registry import open_registry
from mlpipe.core.task import check_backend, get_task, model_task


@dataclass(frozen=True)
class LoadedModel:
    """A checksum-verified registry version and the task that knows how to run it."""

    version: ModelVersionRef
    directory: Path
    task: str
    backend: str = "torch"

    def predict(
        self, rows: Iterable[str | Mapping[str, Any]], *, batch_size: int = 32
    ) -> list[dict[str, Any]]:
        """One prediction per row, in order; a plain string is a classifier's ``text``. A dict
        names each input as the task does (``text``) or as the model's training data did (its
        ``data.text_column``, say ``review``), as a file's columns are."""
        from mlpipe.core.errors import ConfigError

        self._require_files()
        columns = self.input_columns()
        keys = list(columns)
        items = [{keys[0]: r} if isinstance(r, str) else dict(r) for r in rows]
        for number, item in enumerate(items, start=1):
            for key, column in columns.items():
                if key not in item and column in item:
                    item[key] = item.pop(column)
            missing = [k for k in keys if k not in item]
            if missing:
                named = ", ".join(k if columns[k] == k else f"{k} (or {columns[k]})"
                                  for k in keys)
                raise ConfigError(
                    f"row {number}: a {self.task} model needs {named} per row, "
                    f"missing {', '.join(missing)}; pass dicts with those keys, or a file: "
                    "mlpipe predict MODEL --input FILE --output FILE"
                )
        extra = {} if self.backend == "torch" else {"backend": self.backend}
        try:
            return get_task(self.task).predict_texts(
                self.directory, items, batch_size=batch_size, **extra
            )
        except Exception:
            self._require_files()  # deleted mid-load: say so, not the loader's Hub lookup error
            raise

    def _require_files(self) -> None:
        """A version deleted while this inference holds it: "model files gone", never a path
        handed to a loader that would take it for a Hub repo id."""
        from mlpipe.core.artifacts import MANIFEST
        from mlpipe.core.errors import ModelNotFoundError

        if not (self.directory / MANIFEST).is_file():
            raise ModelNotFoundError(
                f"{self.version.spec}: model files gone from {self.directory} (the version was "
                "deleted while in use); load it again (mlpipe registry list)")

    def training_config(self) -> dict[str, Any]:
        """The config sections the version was trained with (``provenance.json``), or {}."""
        try:
            data = json.loads((self.directory / "provenance.json").read_text())
        except (OSError, ValueError):
            return {}
        config = data.get("config") if isinstance(data, dict) else None
        return config if isinstance(config, dict) else {}

    def input_columns(self, text_column: str | None = None) -> dict[str, str]:
        """What each row the task reads is called in the user's file: ``{"text": "review"}``;
        the training config's column names unless ``text_column`` says otherwise."""
        columns = getattr(get_task(self.task), "file_inputs", None)
        if columns is None:
            return {"text": text_column or "text"}
        return dict(columns(self.training_config(), text_column))

    def predict_file(
        self,
        source: str | Path,
        target: str | Path,
        *,
        text_column: str | None = None,
        batch_size: int = 32,
        chunk_rows: int = 10_000,
    ) -> int:
        """Predict every row of a csv/jsonl/parquet file into ``target`` (format by extension):
        the user's columns in order plus the task's output columns. Written atomically: on any
        failure ``target`` is left as it was. Returns the number of rows."""
        return predict_file(self, Path(source), Path(target), text_column=text_column,
                            batch_size=batch_size, chunk_rows=chunk_rows)


def load_model(
    spec: str,
    *,
    home: str | Path | None = None,
    registry: RegistryConfig | Mapping[str, Any] | None = None,
    backend: str = "torch",
) -> LoadedModel:
    """``name:alias`` or ``name:vN`` from the registry (local by default), files verified;
    ``backend="onnx"`` predicts with the exported graph on onnxruntime (no torch import)."""
    cfg = registry if isinstance(registry, RegistryConfig) else plugin_section(
        "registry", dict(registry or {}), "registry"
    )
    root = resolve_home(home)
    assert isinstance(cfg, RegistryConfig)
    fetched = open_registry(cfg, root).fetch(spec, root / "predict" / spec.replace(":", "-"))
    directory = Path(fetched.uri)
    task = model_task(directory)
    check_backend(task, backend)
    return LoadedModel(version=fetched, directory=directory, task=task, backend=backend)


def _output_names(task: Any, existing: list[str]) -> dict[str, str]:
    """Prediction key -> output column; a name the input already uses gets a ``pred_`` prefix."""
    keys = tuple(getattr(task, "file_outputs", ("label", "score")))
    return {k: (f"pred_{k}" if k in existing else k) for k in keys}


def _writer(target: Path, fmt: str) -> Any:
    """A small streaming writer for csv/jsonl/parquet with ``write(table)`` and ``close()``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    class Writer:
        def __init__(self) -> None:
            self.inner: Any = None
            self.schema: pa.Schema | None = None
            self.fh: Any = None

        def write(self, table: pa.Table) -> None:
            if self.schema is None:
                self.schema = table.schema
                if fmt == "parquet":
                    self.inner = pq.ParquetWriter(target, table.schema)
                elif fmt == "csv":
                    self.inner = pacsv.CSVWriter(target, table.schema)
                else:
                    self.fh = open(target, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
            else:
                table = table.cast(self.schema)
            if self.fh is not None:
                for row in table.to_pylist():
                    self.fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            else:
                self.inner.write_table(table)

        def close(self) -> None:
            if self.inner is not None:
                self.inner.close()
            if self.fh is not None:
                self.fh.close()

    return Writer()


def predict_file(
    loaded: LoadedModel,
    source: Path,
    target: Path,
    *,
    text_column: str | None = None,
    batch_size: int = 32,
    chunk_rows: int = 10_000,
) -> int:
    """See :meth:`LoadedModel.predict_file`. Bad input (no such column, an empty text, an
    unknown format) is a ``DataError`` naming the file, the column and the rows."""
    import pyarrow as pa

    from mlpipe.core.data import SUFFIXES, as_text, blank_rows, read_file, refuse_blank_rows
    from mlpipe.core.errors import DataError
    from mlpipe.core.files import atomic_path
    from mlpipe.core.progress import Progress
    from mlpipe.core.progress import step as progress_step

    fmt = SUFFIXES.get(target.suffix.lower())
    if fmt is None:
        raise DataError(f"--output {target}: unsupported file type '{target.suffix}'; "
                        "use .csv, .jsonl or .parquet")
    task = get_task(loaded.task)
    wanted = loaded.input_columns(text_column)
    rows = 0
    blanks: list[int] = []
    blank_count = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        atomic_path(target) as tmp,
        progress_step("predict"),
        Progress(0, what="rows", rate_unit="rows") as progress,
    ):
        writer = _writer(tmp, fmt)
        try:
            for table in read_file(source, chunk_rows, text_columns=tuple(wanted.values())):
                missing = [c for c in wanted.values() if c not in table.column_names]
                if missing:
                    option = " (--text-column)" if len(wanted) == 1 else ""
                    raise DataError(
                        f"{source}: no column {', '.join(repr(c) for c in missing)}{option} "
                        f"(columns: {', '.join(table.column_names)})"
                    )
                inputs = {key: as_text(table.column(col), col, str(source)).to_pylist()
                          for key, col in wanted.items()}
                for values in inputs.values():
                    found = blank_rows(values, offset=rows)
                    blank_count += len(found)
                    blanks.extend(found[: 5 - len(blanks)])
                if blank_count:
                    rows += len(table)
                    continue  # keep counting, refuse below with the first rows named
                items = [dict(zip(inputs, vals, strict=True)) for vals in zip(*inputs.values(),
                                                                              strict=True)]
                predictions = loaded.predict(items, batch_size=batch_size)
                names = _output_names(task, table.column_names)
                for key, column in names.items():
                    table = table.append_column(
                        column, pa.array([p.get(key) for p in predictions])
                    )
                writer.write(table)
                rows += len(table)
                progress.update(len(table), samples=len(table))
        finally:
            writer.close()
        if blank_count:
            what = " or ".join(f"'{c}'" for c in wanted.values())
            refuse_blank_rows(str(source), what, blank_count, sorted(set(blanks)))
        if rows == 0:
            raise DataError(f"{source}: has no data rows; add rows")
    return rows

