"""Load rows from the generated set, local files or the Hugging Face Hub; validate; write parquet.

Every source is read as a stream of Arrow tables, normalized to a ``text`` column (str) and a
``label`` column (int id, optional for inference), with any other input columns kept as they are.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlpipe.core import quality
from mlpipe.core.config import DataConfig
from mlpipe.core.errors import DataError
from mlpipe.core.hashing import sha256_file, sha256_json
from mlpipe.core.refs import CheckResult, DatasetRef
from mlpipe.core.synthetic import generate_rows

TEXT, LABEL = "text", "label"
SUFFIXES = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
HUB_HOST = ("huggingface.co", 443)


def iter_tables(cfg: DataConfig, path: Path | None, *, chunk_rows: int) -> Iterator[pa.Table]:
    """Raw tables from the configured source, ``chunk_rows`` rows at a time (files stream)."""
    if cfg.source == "generated":
        yield from _generated(cfg, chunk_rows)
    elif cfg.source == "files":
        assert path is not None
        yield from _read_file(path, chunk_rows)
    else:
        yield _read_hub(cfg)


def _generated(cfg: DataConfig, chunk_rows: int) -> Iterator[pa.Table]:
    texts: list[str] = []
    labels: list[int] = []
    gen = cfg.generated
    for text, label in generate_rows(gen.n_samples, gen.seed, gen.label_noise):
        texts.append(text)
        labels.append(label)
        if len(texts) >= chunk_rows:
            yield pa.table({TEXT: texts, LABEL: labels})
            texts, labels = [], []
    if texts:
        yield pa.table({TEXT: texts, LABEL: labels})


def _read_file(path: Path, chunk_rows: int) -> Iterator[pa.Table]:
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


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _read_hub(cfg: DataConfig) -> pa.Table:
    """Load with ``datasets``; fail within seconds, clearly, when the Hub cannot be reached."""
    hub = cfg.hub
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    if not offline and not _hub_reachable():
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


def normalize(table: pa.Table, cfg: DataConfig, source: str, *, require_labels: bool) -> pa.Table:
    """Rename the text/label columns to ``text``/``label``, map labels to ids, check types."""
    names = table.column_names
    if cfg.text_column not in names:
        raise DataError(
            f"{source}: no text column '{cfg.text_column}' (columns: {', '.join(names)}); "
            "set data.text_column"
        )
    has_labels = cfg.label_column in names
    if require_labels and not has_labels:
        raise DataError(
            f"{source}: no label column '{cfg.label_column}' (columns: {', '.join(names)}); "
            "set data.label_column or add the column"
        )
    texts = table.column(cfg.text_column)
    if not pa.types.is_string(texts.type) and not pa.types.is_large_string(texts.type):
        if pa.types.is_null(texts.type):
            texts = pa.array([None] * len(table), pa.string())
        else:
            raise DataError(
                f"{source}: column '{cfg.text_column}' must hold text, found {texts.type}"
            )
    texts = pc.fill_null(texts.cast(pa.string()), "")
    columns = {TEXT: texts}
    if has_labels:
        columns[LABEL] = _label_ids(table.column(cfg.label_column), cfg, source)
    for name in names:
        if name not in (cfg.text_column, cfg.label_column) and name not in columns:
            columns[name] = table.column(name)
    return pa.table(columns)


def _label_ids(column: pa.ChunkedArray, cfg: DataConfig, source: str) -> pa.Array:
    names = [n.lower() for n in cfg.label_names]
    values = column.to_pylist()
    ids: list[int] = []
    bad: set[str] = set()
    for v in values:
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, int | float) and float(v).is_integer() and 0 <= int(v) < len(names):
            ids.append(int(v))
        elif isinstance(v, str) and v.strip().lower() in names:
            ids.append(names.index(v.strip().lower()))
        elif isinstance(v, str) and v.strip().isdigit() and int(v) < len(names):
            ids.append(int(v))
        else:
            bad.add(repr(v))
    if bad:
        shown = ", ".join(sorted(bad)[:5])
        raise DataError(
            f"{source}: column '{cfg.label_column}' has values outside the labels: {shown}; "
            f"allowed: 0..{len(names) - 1} or {', '.join(cfg.label_names)} (data.label_names)"
        )
    return pa.array(ids, pa.int64())


def _source_name(cfg: DataConfig, path: Path | None) -> str:
    if cfg.source == "files":
        return str(path)
    if cfg.source == "hub":
        return f"hub dataset {cfg.hub.name}"
    return "generated data"


def _load_all(cfg: DataConfig, path: Path | None, *, require_labels: bool) -> pa.Table:
    source = _source_name(cfg, path)
    tables = [
        normalize(t, cfg, source, require_labels=require_labels)
        for t in iter_tables(cfg, path, chunk_rows=1 << 16)
    ]
    table = pa.concat_tables(tables) if tables else pa.table({TEXT: pa.array([], pa.string())})
    if cfg.max_rows is not None:
        table = table.slice(0, cfg.max_rows)
    return table


def _write_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _empty_count(texts: list[str]) -> int:
    return sum(1 for t in texts if not t.strip())


def prepare_training_data(cfg: DataConfig, out_dir: Path) -> DatasetRef:
    """Read, validate, shuffle-split (seeded) and write ``train.parquet`` and ``eval.parquet``."""
    table = _load_all(cfg, cfg.path, require_labels=True)
    if cfg.eval_path is not None:
        train, eval_ = table, _load_all(cfg, cfg.eval_path, require_labels=True)
    else:
        order = list(range(len(table)))
        random.Random(cfg.seed).shuffle(order)
        n_eval = max(1, round(len(order) * cfg.eval_fraction)) if len(order) > 1 else 0
        eval_ = table.take(sorted(order[:n_eval]))
        train = table.take(sorted(order[n_eval:]))
    train_texts = train.column(TEXT).to_pylist()
    eval_texts = eval_.column(TEXT).to_pylist()
    checks: list[CheckResult] = [
        quality.check_not_empty(len(train), "train"),
        quality.check_not_empty(len(eval_), "eval"),
        quality.check_empty_texts(
            _empty_count(train_texts) + _empty_count(eval_texts), len(train) + len(eval_)
        ),
        quality.check_label_balance(train.column(LABEL).to_pylist(), cfg.label_names),
        quality.check_duplicates(train_texts, len(train_texts)),
        quality.check_overlap(train_texts, eval_texts),
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_parquet(train, out_dir / "train.parquet")
    _write_parquet(eval_, out_dir / "eval.parquet")
    return _dataset_ref(
        out_dir,
        {"train": "train.parquet", "eval": "eval.parquet"},
        {"train": len(train), "eval": len(eval_)},
        train.column_names,
        True,
        cfg,
        checks,
    )


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
    that fails midway leaves only a temp file, which the step's cleanup removes.
    """
    tmp = target.with_suffix(".tmp")
    rows = empty = 0
    writer: pq.ParquetWriter | None = None
    schema = empty_schema
    hashes: list[np.ndarray] = []
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
            hashes.append(np.fromiter(map(hash, chunk_keys), dtype=np.int64, count=len(chunk_keys)))
            writer.write_table(table)
            rows += len(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        pq.write_table(empty_schema.empty_table(), tmp)
    os.replace(tmp, target)
    duplicates = rows - len(np.unique(np.concatenate(hashes))) if hashes else 0
    return StreamStats(rows=rows, empty=empty, duplicates=duplicates, schema=schema)


def prepare_inference_data(cfg: DataConfig, out_dir: Path, *, chunk_rows: int) -> DatasetRef:
    """Stream rows into ``data.parquet`` chunk by chunk (bounded memory), labels optional."""
    source = _source_name(cfg, cfg.path)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = stream_to_parquet(
        (normalize(raw, cfg, source, require_labels=False)
         for raw in iter_tables(cfg, cfg.path, chunk_rows=chunk_rows)),
        out_dir / "data.parquet",
        max_rows=cfg.max_rows,
        keys=lambda t: t.column(TEXT).to_pylist(),
        count_empty=lambda t: _empty_count(t.column(TEXT).to_pylist()),
        empty_schema=pa.schema([(TEXT, pa.string())]),
    )  # fmt: skip
    checks = [
        quality.check_not_empty(stats.rows, "data"),
        quality.check_empty_texts(stats.empty, stats.rows),
        quality.check_duplicate_count(stats.duplicates, stats.rows, "duplicate texts"),
    ]
    return _dataset_ref(
        out_dir, {"data": "data.parquet"}, {"data": stats.rows}, stats.schema.names,
        LABEL in stats.schema.names, cfg, checks,
    )  # fmt: skip


def _dataset_ref(
    out_dir: Path,
    files: dict[str, str],
    rows: dict[str, int],
    columns: list[str],
    has_labels: bool,
    cfg: DataConfig,
    checks: list[CheckResult],
    label_names: tuple[str, ...] | None = None,
) -> DatasetRef:
    names = tuple(cfg.label_names) if label_names is None else label_names
    return DatasetRef(
        uri=str(out_dir),
        sha256=dataset_sha256(out_dir, files, names),
        files=files,
        rows=rows,
        columns=tuple(columns),
        has_labels=has_labels,
        label_names=names,
        checks=tuple(checks),
    )


def dataset_sha256(directory: Path, files: dict[str, str], label_names: tuple[str, ...]) -> str:
    """What identifies prepared data: every split's bytes and the names its label ids stand for."""
    hashes = {split: sha256_file(directory / name) for split, name in files.items()}
    return sha256_json({"files": hashes, "label_names": list(label_names)})


def read_split(ref: DatasetRef, split: str) -> pa.Table:
    return pq.read_table(Path(ref.uri) / ref.files[split])
