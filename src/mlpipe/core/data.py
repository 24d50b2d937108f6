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
from typing import Any, NoReturn

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
    cfg: DataConfig,
    path: Path | None,
    *,
    chunk_rows: int,
    generate: Generate,
    text_columns: Sequence[str] = (),
) -> Iterator[pa.Table]:
    """Raw tables from the configured source, ``chunk_rows`` rows at a time (files stream).

    ``text_columns`` are read as text from csv and jsonl files whatever they look like.
    """
    if cfg.source == "generated":
        yield from generate(chunk_rows)
    elif cfg.source == "files":
        assert path is not None
        yield from read_file(path, chunk_rows, text_columns=text_columns)
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


#: Arrow type -> the numpy dtype whose buffer :func:`arrow_array` hands over as it is
_FIXED_WIDTH = {pa.int64(): np.int64, pa.int32(): np.int32, pa.float64(): np.float64,
                pa.float32(): np.float32}


def arrow_array(values: Iterable[Any], type_: pa.DataType) -> pa.Array:
    """``pa.array(values, type_)`` for values without nulls, built from numpy buffers.

    ``pa.array`` on Python objects first asks whether pandas is installed, which imports it (a
    few tenths of a second in every task's process) though nothing here uses it. Fixed-width
    numbers and strings only; any other type goes to ``pa.array``.
    """
    if type_ == pa.string():
        encoded = [str(v).encode() for v in values]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
        return pa.Array.from_buffers(type_, len(encoded), buffers)
    dtype = _FIXED_WIDTH.get(type_)
    if dtype is None:
        return pa.array(list(values), type_)
    given = values if isinstance(values, Sequence | np.ndarray) else list(values)
    numbers = np.ascontiguousarray(given, dtype=dtype)
    return pa.Array.from_buffers(type_, len(numbers), [None, pa.py_buffer(numbers)])


def _rows_table(rows: list[Sequence[Any]], names: Sequence[str]) -> pa.Table:
    columns = zip(*rows, strict=True)
    return pa.table({name: list(values) for name, values in zip(names, columns, strict=True)})


#: a jsonl chunk is cut at ``chunk_rows`` lines or at this many bytes, whichever comes first
JSONL_CHUNK_BYTES = 32 << 20


def read_file(
    path: Path, chunk_rows: int, *, text_columns: Sequence[str] = ()
) -> Iterator[pa.Table]:
    """A csv, jsonl or parquet file as tables, streamed in chunks (bounded memory).

    ``text_columns`` are read as text whatever they look like (``007`` stays ``"007"``). Text
    must be UTF-8: another encoding is named in the error with where it first shows. A file with
    a header but no rows is an error naming the file.
    """
    if not path.is_file():
        raise DataError(f"data file not found: {path} (set data.path to an existing file)")
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: unsupported file type '{path.suffix}'; use .csv, .jsonl or .parquet"
        )
    rows = 0
    try:
        if fmt == "parquet":
            reader = pq.ParquetFile(path)
            for batch in reader.iter_batches(batch_size=chunk_rows):
                rows += batch.num_rows
                yield pa.Table.from_batches([batch])
        elif fmt == "csv":
            import pyarrow.csv as pacsv

            if path.stat().st_size == 0:
                raise DataError(f"{path}: the file is empty; it needs a header line and rows")
            opts = pacsv.ReadOptions(block_size=1 << 22)
            convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in text_columns})
            with pacsv.open_csv(path, read_options=opts, convert_options=convert) as stream:
                for batch in stream:
                    rows += batch.num_rows
                    yield pa.Table.from_batches([batch])
        else:
            for table in _read_jsonl(path, chunk_rows, text_columns):
                rows += len(table)
                yield table
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        encoding = encoding_problem(path) if fmt != "parquet" else None
        if encoding is not None:
            raise DataError(f"{path}: {encoding}") from None
        raise DataError(f"{path}: cannot parse as {fmt}: {exc}") from exc
    if rows == 0:
        raise DataError(f"{path}: has no data rows (a header or nothing at all); add rows")


def _read_jsonl(path: Path, chunk_rows: int, text_columns: Sequence[str]) -> Iterator[pa.Table]:
    """JSON lines in chunks of whole lines, so one long line (megabytes) needs no setting and
    memory stays bounded by the chunk, not the file. Text columns are kept as text."""
    import io
    import json

    import pyarrow.json as pajson

    schema = pa.schema([(c, pa.string()) for c in text_columns])
    parse = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    def parse_chunk(lines: list[bytes], numbers: list[int]) -> pa.Table:
        data = b"".join(lines)
        opts = pajson.ReadOptions(block_size=max(len(data) + 1, 1 << 16), use_threads=False)
        try:
            table = pajson.read_json(io.BytesIO(data), read_options=opts, parse_options=parse)
            # the explicit schema adds its columns even where no row has them: drop those
            absent = [
                c
                for c in text_columns
                if c in table.column_names
                and table.column(c).null_count == len(table)
                and json.dumps(c).encode() not in data
            ]
            table = table.drop_columns(absent) if absent else table
            return _in_file_order(table, lines[0])
        except pa.ArrowInvalid as exc:
            why = _bad_json_line(lines, numbers, text_columns, exc)
            raise DataError(f"{path}: {why}") from None

    lines: list[bytes] = []
    numbers: list[int] = []  # each kept line's number in the file (blank lines are skipped)
    size = 0
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            numbers.append(number)
            lines.append(line if line.endswith(b"\n") else line + b"\n")
            size += len(line)
            if len(lines) >= chunk_rows or size >= JSONL_CHUNK_BYTES:
                yield parse_chunk(lines, numbers)
                lines, numbers, size = [], [], 0
    if lines:
        yield parse_chunk(lines, numbers)


def _in_file_order(table: pa.Table, first_line: bytes) -> pa.Table:
    """The columns in the order the file's first object lists them (the explicit schema of the
    text columns would put those first): the user's column order is kept."""
    import json

    try:
        first = json.loads(first_line)
    except ValueError:
        return table
    if not isinstance(first, dict):
        return table
    names = table.column_names
    order = [c for c in first if c in names]
    return table.select(order + [c for c in names if c not in order])


def _bad_json_line(
    lines: list[bytes], numbers: list[int], text_columns: Sequence[str], exc: Exception
) -> str:
    """Which line of a failed jsonl chunk is wrong, and why (the first one found)."""
    import json

    for number, raw in zip(numbers, lines, strict=True):
        where = f"line {number}"
        try:
            row = json.loads(raw)
        except UnicodeDecodeError:
            return f"{where} is not UTF-8 text; re-save the file as UTF-8"
        except ValueError as err:
            return f"{where} is not valid JSON ({err}); each line must be one JSON object"
        if not isinstance(row, dict):
            return f"{where} is not a JSON object; each line must be one object"
        for column in text_columns:
            value = row.get(column)
            if value is not None and not isinstance(value, str):
                return (
                    f"{where}: '{column}' holds {type(value).__name__} {json.dumps(value)[:40]}; "
                    "it must be a JSON string (quote it)"
                )
    return f"cannot parse as jsonl: {exc}"


_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32-LE"),
    (b"\x00\x00\xfe\xff", "UTF-32-BE"),
    (b"\xff\xfe", "UTF-16-LE"),
    (b"\xfe\xff", "UTF-16-BE"),
)


def encoding_problem(path: Path) -> str | None:
    """Why ``path`` is not UTF-8 text (its encoding when a BOM names it, else the first bad
    byte and its line), or None when it is. Streams the file."""
    import codecs

    with open(path, "rb") as fh:
        head = fh.read(4)
        for bom, name in _BOMS:
            if head.startswith(bom):
                return (
                    f"the file is {name} text; mlpipe reads UTF-8: re-save it as UTF-8 "
                    f"(e.g. iconv -f {name} -t UTF-8)"
                )
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset = line = 0
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                at = offset + exc.start
                byte = chunk[exc.start]
                line += chunk[: exc.start].count(b"\n") + 1
                guess = "Latin-1/Windows-1252" if byte >= 0x80 else "not text"
                return (
                    f"not UTF-8 text: byte 0x{byte:02x} at offset {at} (line {line}) looks like "
                    f"{guess}; re-save the file as UTF-8 (e.g. iconv -f CP1252 -t UTF-8)"
                )
            line += chunk.count(b"\n")
            offset += len(chunk)
    return None


def as_text(column: pa.ChunkedArray | pa.Array, name: str, source: str) -> pa.ChunkedArray:
    """A text column as strings, nulls as ``""``: numbers and booleans (a parquet file's typed
    column, a hub dataset's) become their text; bytes must be UTF-8; lists and structs are
    refused naming the column."""
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_null(kind):
        column = pa.array([None] * len(column), pa.string())
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            column = column.cast(pa.string())
        except pa.ArrowInvalid:
            raise DataError(
                f"{source}: column '{name}' is not UTF-8 text; re-save the data as UTF-8"
            ) from None
    elif not any(
        check(kind)
        for check in (
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_integer,
            pa.types.is_floating,
            pa.types.is_boolean,
            pa.types.is_decimal,
        )
    ):
        raise DataError(f"{source}: column '{name}' must hold text, found {kind}")
    result = pc.fill_null(column.cast(pa.string()), "")
    return result if isinstance(result, pa.ChunkedArray) else pa.chunked_array([result])


def blank_rows(texts: Sequence[str | None], *, offset: int = 0) -> list[int]:
    """Row numbers of empty or whitespace-only texts: 1 is the first data row (a csv header is
    not counted; in jsonl, the first object), ``offset`` rows came before ``texts``."""
    return [offset + i + 1 for i, t in enumerate(texts) if t is None or not str(t).strip()]


def refuse_blank_rows(source: str, what: str, count: int, first: Sequence[int]) -> NoReturn:
    """Bad input, exit 2: name the file, the column(s) and the first rows with an empty text."""
    shown = ", ".join(str(r) for r in first[:5]) + (", ..." if count > len(first[:5]) else "")
    raise DataError(
        f"{source}: {count} row(s) with an empty or whitespace-only {what}: rows {shown} "
        "(row 1 is the first data row after the header); fill or remove them"
    )


def refusing_blanks(
    tables: Iterable[pa.Table],
    source: str,
    columns: dict[str, str],
    *,
    max_rows: int | None = None,
) -> Iterator[pa.Table]:
    """Pass normalized tables through; once they are read, refuse (exit 2) if any row within
    ``max_rows`` has an empty text in ``columns`` (normalized name -> the user's column name),
    naming the file and the first rows. Bounded memory: only the first five row numbers kept."""
    rows = count = 0
    first: list[int] = []
    for table in tables:
        found: set[int] = set()
        for name in columns:
            found.update(blank_rows(table.column(name).to_pylist(), offset=rows))
        kept = sorted(r for r in found if max_rows is None or r <= max_rows)
        count += len(kept)
        first.extend(kept[: 5 - len(first)])
        rows += len(table)
        yield table
    if count:
        names = list(columns.values())
        what = (f"'{names[0]}'" if len(names) == 1
                else " or ".join(f"'{n}'" for n in names))  # fmt: skip
        refuse_blank_rows(source, what, count, first)


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
    from mlpipe.core.progress import Progress

    rows = 0
    started = time.perf_counter()
    total = pq.ParquetFile(data_path).metadata.num_rows
    with (
        atomic_path(out_path) as tmp,
        pq.ParquetWriter(tmp, schema) as writer,
        Progress(total, what="rows", rate_unit="rows") as progress,
    ):
        for chunk in iter_chunks(data_path, chunk_rows, columns=columns):
            predicted = predict(chunk)  # ticks ``progress.advance`` per batch, if it likes
            ids = arrow_array(np.arange(rows, rows + len(chunk)), pa.int64())
            writer.write_table(pa.table({"row_id": ids, **predicted}, schema=schema))
            rows += len(chunk)
            if progress.done < rows:  # whatever the batches did not report
                progress.update(rows - progress.done, samples=rows - progress.samples)
    return rows, time.perf_counter() - started


# -- shards -------------------------------------------------------------------------------------


def plan_shards(rows: int, shards: int | str, *, chunk_rows: int, rows_per_shard: int) -> int:
    """How many chunks of ``chunk_rows`` rows each shard takes (all but the last the same).

    Shards are cut only between chunks, so each shard reads exactly the chunks (and forms exactly
    the batches) one unsharded pass would: predictions stay byte-identical. ``shards="auto"``
    asks for ``rows_per_shard`` rows each; never more shards than chunks, never fewer than one.
    """
    chunks = max(1, -(-rows // chunk_rows))
    wanted = -(-rows // rows_per_shard) if shards == "auto" else int(shards)
    wanted = max(1, min(wanted, chunks))
    return -(-chunks // wanted)


def split_dataset(
    dataset: DatasetRef, out_dir: Path, *, chunks_per_shard: int, chunk_rows: int
) -> list[DatasetRef]:
    """``dataset``'s rows as consecutive shards of ``chunks_per_shard`` chunks, in input order,
    each a dataset of its own under ``out_dir/shard-NNNN``. One shard is ``dataset`` itself (no
    copy). Each shard file is written atomically; a failure leaves no complete-looking shard."""
    source = Path(dataset.uri) / dataset.files["data"]
    rows = dataset.rows.get("data", 0)
    shard_rows = chunks_per_shard * chunk_rows
    if rows <= shard_rows:
        return [dataset]
    schema = pq.ParquetFile(source).schema_arrow
    shards: list[DatasetRef] = []
    chunks = iter_chunks(source, chunk_rows)
    for start in range(0, rows, shard_rows):
        directory = out_dir / f"shard-{len(shards):04d}"
        directory.mkdir(parents=True, exist_ok=True)
        written = 0
        with atomic_path(directory / "data.parquet") as tmp, pq.ParquetWriter(tmp, schema) as out:
            for _ in range(chunks_per_shard):
                chunk = next(chunks, None)
                if chunk is None:
                    break
                out.write_table(chunk)
                written += len(chunk)
        if written != min(shard_rows, rows - start):
            raise DataError(f"{source}: {written} rows read for shard {len(shards)}")
        shards.append(
            dataset_ref(
                directory,
                {"data": "data.parquet"},
                {"data": written},
                dataset.columns,
                has_labels=dataset.has_labels,
                checks=(),
                label_names=dataset.label_names,
            )
        )
    return shards


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
