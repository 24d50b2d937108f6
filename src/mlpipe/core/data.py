"""Task-agnostic table plumbing: read sources in chunks, split, write parquet, describe datasets.

Every source (csv/jsonl/parquet files, a Hugging Face Hub dataset, or a task's generated set) is
read as a stream of Arrow tables; tasks normalize the columns to their own schema. Writes are
atomic (:func:`mlpipe.core.files.atomic_path`) and the prepared data is identified by
:func:`dataset_sha256`.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlpipe.core.config import DataConfig
from mlpipe.core.errors import DataError
from mlpipe.core.files import atomic_path
from mlpipe.core.hashing import sha256_file, sha256_json
from mlpipe.core.refs import CheckResult, DatasetRef

SUFFIXES = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
HUB_HOST = ("huggingface.co", 443)
#: ``generate(chunk_rows)``: a task's generated set (``data.source: generated``) as tables
Generate = Callable[[int], Iterator[pa.Table]]


# -- reading ------------------------------------------------------------------------------------


def iter_tables(
    cfg: DataConfig, path: Path | None, *, chunk_rows: int, generate: Generate
) -> Iterator[pa.Table]:
    """Raw tables from the configured source, ``chunk_rows`` rows at a time (files stream)."""
    if cfg.source == "generated":
        yield from generate(chunk_rows)
    elif cfg.source == "files":
        assert path is not None
        yield from read_file(path, chunk_rows)
    else:
        yield read_hub(cfg)


def rows_to_tables(
    rows: Iterable[Sequence[Any]], names: Sequence[str], chunk_rows: int
) -> Iterator[pa.Table]:
    """Tuples (a generated set) as tables of ``chunk_rows`` rows with columns ``names``."""
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= chunk_rows:
            yield _rows_table(batch, names)
            batch = []
    if batch:
        yield _rows_table(batch, names)


def _rows_table(rows: list[Sequence[Any]], names: Sequence[str]) -> pa.Table:
    columns = zip(*rows, strict=True)
    return pa.table({name: list(values) for name, values in zip(names, columns, strict=True)})


def read_file(path: Path, chunk_rows: int) -> Iterator[pa.Table]:
    """A csv, jsonl or parquet file as tables (csv and parquet stream in chunks)."""
    if not path.is_file():
        raise DataError(f"data file not found: {path} (set data.path to an existing file)")
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: unsupported file type '{path.suffix}'; use .csv, .jsonl or .parquet"
        )
    try:
        if fmt == "parquet":
            reader = pq.ParquetFile(path)
            for batch in reader.iter_batches(batch_size=chunk_rows):
                yield pa.Table.from_batches([batch])
        elif fmt == "csv":
            import pyarrow.csv as pacsv

            opts = pacsv.ReadOptions(block_size=1 << 22)
            with pacsv.open_csv(path, read_options=opts) as stream:
                for batch in stream:
                    yield pa.Table.from_batches([batch])
        else:
            import pyarrow.json as pajson

            yield pajson.read_json(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: cannot parse as {fmt}: {exc}") from exc


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face Hub opens within ``timeout`` seconds."""
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def read_hub(cfg: DataConfig) -> pa.Table:
    """Load with ``datasets``; fail within seconds, clearly, when the Hub cannot be reached."""
    hub = cfg.hub
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    if not offline and not hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"  # only the local cache can help now; no retries
        offline = True
    try:
        import datasets

        ds = datasets.load_dataset(hub.name, hub.subset, split=hub.split)
    except Exception as exc:
        where = (
            "the Hugging Face Hub is unreachable and it is not in the local cache"
            if offline
            else str(exc)
        )
        raise DataError(
            f"data.hub: cannot load dataset '{hub.name}'"
            + (f" ({hub.subset})" if hub.subset else "")
            + f": {where}. Use data.source: files (csv/jsonl/parquet) or generated instead."
        ) from exc
    return ds.data.table if hasattr(ds.data, "table") else ds.with_format("arrow")[:]


def source_name(cfg: DataConfig, path: Path | None) -> str:
    """How error messages name the source: the file, the hub dataset or the generated set."""
    if cfg.source == "files":
        return str(path)
    if cfg.source == "hub":
        return f"hub dataset {cfg.hub.name}"
    return "generated data"


def concat(tables: Iterable[pa.Table], *, empty: pa.Schema, max_rows: int | None) -> pa.Table:
    """All normalized chunks as one table (``empty``'s columns when there are none), capped."""
    chunks = list(tables)
    if not chunks:
        return empty.empty_table()
    table = pa.concat_tables(chunks, promote_options="default")
    return table.slice(0, max_rows) if max_rows is not None else table


# -- training splits ----------------------------------------------------------------------------


def seeded_split(table: pa.Table, eval_fraction: float, seed: int) -> tuple[pa.Table, pa.Table]:
    """(train, eval): a seeded shuffle picks the eval rows; both keep the input order."""
    order = list(range(len(table)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(len(order) * eval_fraction)) if len(order) > 1 else 0
    return table.take(sorted(order[n_eval:])), table.take(sorted(order[:n_eval]))


def train_eval(
    cfg: DataConfig, load: Callable[[Path | None], pa.Table]
) -> tuple[pa.Table, pa.Table]:
    """(train, eval): ``data.eval_path`` when set, else a seeded split of ``data.path``."""
    table = load(cfg.path)
    if cfg.eval_path is not None:
        return table, load(cfg.eval_path)
    return seeded_split(table, cfg.eval_fraction, cfg.seed)


def save_splits(
    out_dir: Path,
    splits: dict[str, pa.Table],
    checks: Sequence[CheckResult],
    *,
    has_labels: bool,
    label_names: tuple[str, ...] = (),
) -> DatasetRef:
    """Write each split to ``<split>.parquet`` atomically; the reference to all of them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {split: f"{split}.parquet" for split in splits}
    for split, table in splits.items():
        write_parquet(table, out_dir / files[split])
    first = next(iter(splits.values()))
    return dataset_ref(
        out_dir, files, {split: len(t) for split, t in splits.items()}, first.column_names,
        has_labels=has_labels, checks=checks, label_names=label_names,
    )  # fmt: skip


# -- writing ------------------------------------------------------------------------------------


def write_parquet(table: pa.Table, path: Path) -> None:
    """One table to ``path``, atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


@dataclass(frozen=True)
class StreamStats:
    """What streaming a dataset to parquet saw: rows, empty rows, duplicates, the schema."""

    rows: int
    empty: int
    duplicates: int
    schema: pa.Schema


def stream_to_parquet(
    tables: Iterable[pa.Table],
    target: Path,
    *,
    max_rows: int | None,
    keys: Callable[[pa.Table], list[str]],
    count_empty: Callable[[pa.Table], int],
    empty_schema: pa.Schema,
) -> StreamStats:
    """Write normalized chunks to ``target`` atomically, in bounded memory.

    Duplicates are counted from 8-byte hashes of ``keys(chunk)``, never by keeping rows; a run
    that fails midway leaves no file behind.
    """
    rows = empty = 0
    schema = empty_schema
    hashes: list[np.ndarray] = []
    with atomic_path(target) as tmp:
        writer: pq.ParquetWriter | None = None
        try:
            for chunk in tables:
                if max_rows is not None and rows >= max_rows:
                    break  # stop reading, not just writing
                table = chunk if max_rows is None else chunk.slice(0, max_rows - rows)
                if len(table) == 0:
                    continue
                if writer is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(tmp, schema)
                elif table.schema != schema:
                    table = table.cast(schema)
                empty += count_empty(table)
                chunk_keys = keys(table)
                hashes.append(
                    np.fromiter(map(hash, chunk_keys), dtype=np.int64, count=len(chunk_keys))
                )
                writer.write_table(table)
                rows += len(table)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            pq.write_table(empty_schema.empty_table(), tmp)
    duplicates = rows - len(np.unique(np.concatenate(hashes))) if hashes else 0
    return StreamStats(rows=rows, empty=empty, duplicates=duplicates, schema=schema)


def iter_chunks(
    path: Path, chunk_rows: int, columns: list[str] | None = None
) -> Iterator[pa.Table]:
    """A parquet file as tables of at most ``chunk_rows`` rows (bounded memory)."""
    reader = pq.ParquetFile(path)
    for batch in reader.iter_batches(batch_size=chunk_rows, columns=columns):
        yield pa.Table.from_batches([batch])


def write_predictions(
    data_path: Path,
    out_path: Path,
    predict: Callable[[pa.Table], dict[str, pa.Array]],
    *,
    schema: pa.Schema,
    chunk_rows: int,
    columns: list[str],
) -> tuple[int, float]:
    """``row_id`` + ``predict(chunk)``'s columns for every row of ``data_path``, in order.

    Reads ``columns`` in chunks of ``chunk_rows``, writes ``out_path`` atomically with
    ``schema`` (its first field is ``row_id``); returns (rows, seconds).
    """
    rows = 0
    started = time.perf_counter()
    with atomic_path(out_path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for chunk in iter_chunks(data_path, chunk_rows, columns=columns):
            predicted = predict(chunk)
            ids = pa.array(range(rows, rows + len(chunk)), pa.int64())
            writer.write_table(pa.table({"row_id": ids, **predicted}, schema=schema))
            rows += len(chunk)
    return rows, time.perf_counter() - started


# -- references ---------------------------------------------------------------------------------


def dataset_ref(
    out_dir: Path,
    files: dict[str, str],
    rows: dict[str, int],
    columns: Sequence[str],
    *,
    has_labels: bool,
    checks: Sequence[CheckResult],
    label_names: tuple[str, ...] = (),
) -> DatasetRef:
    """The reference a data step returns: where the files are, their hash, rows and checks."""
    return DatasetRef(
        uri=str(out_dir),
        sha256=dataset_sha256(out_dir, files, label_names),
        files=files,
        rows=rows,
        columns=tuple(columns),
        has_labels=has_labels,
        label_names=label_names,
        checks=tuple(checks),
    )


def dataset_sha256(directory: Path, files: dict[str, str], label_names: tuple[str, ...]) -> str:
    """What identifies prepared data: every split's bytes and the names its label ids stand for."""
    hashes = {split: sha256_file(directory / name) for split, name in files.items()}
    return sha256_json({"files": hashes, "label_names": list(label_names)})


def read_split(ref: DatasetRef, split: str) -> pa.Table:
    return pq.read_table(Path(ref.uri) / ref.files[split])
