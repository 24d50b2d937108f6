"""Classification rows: ``text`` (str) and ``label`` (int id, optional for inference).

Every source is read as a stream of Arrow tables (:mod:`mlpipe.core.data`), normalized to a
``text`` column and a ``label`` column, with any other input columns kept as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from mlpipe.core import data, quality
from mlpipe.core.config import DataConfig
from mlpipe.core.errors import DataError
from mlpipe.core.refs import CheckResult, DatasetRef
from mlpipe.tasks.classification.checks import check_label_balance
from mlpipe.tasks.classification.synthetic import generate_rows

TEXT, LABEL = "text", "label"


def iter_tables(cfg: DataConfig, path: Path | None, *, chunk_rows: int) -> Iterator[pa.Table]:
    """Raw tables: the generated sentiment set, or whatever the files or hub source hold."""

    def generate(rows: int) -> Iterator[pa.Table]:
        gen = cfg.generated
        return data.rows_to_tables(
            generate_rows(gen.n_samples, gen.seed, gen.label_noise), (TEXT, LABEL), rows
        )

    return data.iter_tables(
        cfg, path, chunk_rows=chunk_rows, generate=generate, text_columns=(cfg.text_column,)
    )


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
    texts = data.as_text(table.column(cfg.text_column), cfg.text_column, source)
    columns = {TEXT: texts}
    if has_labels:
        columns[LABEL] = label_ids(table.column(cfg.label_column), cfg, source)
    for name in names:
        if name not in (cfg.text_column, cfg.label_column) and name not in columns:
            columns[name] = table.column(name)
    return pa.table(columns)


def label_ids(column: pa.ChunkedArray, cfg: DataConfig, source: str) -> pa.Array:
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


def _load_all(cfg: DataConfig, path: Path | None) -> pa.Table:
    source = data.source_name(cfg, path)
    tables = (normalize(t, cfg, source, require_labels=True)
              for t in iter_tables(cfg, path, chunk_rows=1 << 16))  # fmt: skip
    table = data.concat(
        data.refusing_blanks(tables, source, {TEXT: cfg.text_column}, max_rows=cfg.max_rows),
        empty=pa.schema([(TEXT, pa.string())]),
        max_rows=cfg.max_rows,
    )
    if path == cfg.path and len(table):
        _refuse_one_class(table.column(LABEL).to_pylist(), cfg, source)
    return table


def _refuse_one_class(labels: list[int], cfg: DataConfig, source: str) -> None:
    """Training rows that all carry one label teach nothing: bad input (exit 2), named."""
    present = sorted(set(labels))
    if len(present) < 2:
        only = cfg.label_names[present[0]] if present else "none"
        raise DataError(
            f"{source}: all {len(labels)} rows have the label '{only}' (column "
            f"'{cfg.label_column}'); training needs rows of at least two of "
            f"{', '.join(cfg.label_names)} (data.label_names): add rows of the others"
        )


def _empty_count(texts: list[str]) -> int:
    return sum(1 for t in texts if not t.strip())


def prepare_training_data(cfg: DataConfig, out_dir: Path) -> DatasetRef:
    """Read, validate, shuffle-split (seeded) and write ``train.parquet`` and ``eval.parquet``."""
    train, eval_ = data.train_eval(cfg, lambda path: _load_all(cfg, path))
    train_texts = train.column(TEXT).to_pylist()
    eval_texts = eval_.column(TEXT).to_pylist()
    checks: list[CheckResult] = [
        quality.check_not_empty(len(train), "train"),
        quality.check_not_empty(len(eval_), "eval"),
        quality.check_empty_texts(
            _empty_count(train_texts) + _empty_count(eval_texts), len(train) + len(eval_)
        ),
        check_label_balance(train.column(LABEL).to_pylist(), cfg.label_names),
        quality.check_duplicates(train_texts, len(train_texts)),
        quality.check_overlap(train_texts, eval_texts),
    ]
    return data.save_splits(
        out_dir, {"train": train, "eval": eval_}, checks,
        has_labels=True, label_names=tuple(cfg.label_names),
    )  # fmt: skip


def prepare_inference_data(cfg: DataConfig, out_dir: Path, *, chunk_rows: int) -> DatasetRef:
    """Stream rows into ``data.parquet`` chunk by chunk (bounded memory), labels optional."""
    source = data.source_name(cfg, cfg.path)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = (normalize(raw, cfg, source, require_labels=False)
              for raw in iter_tables(cfg, cfg.path, chunk_rows=chunk_rows))  # fmt: skip
    stats = data.stream_to_parquet(
        data.refusing_blanks(tables, source, {TEXT: cfg.text_column}, max_rows=cfg.max_rows),
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
    return data.dataset_ref(
        out_dir, {"data": "data.parquet"}, {"data": stats.rows}, stats.schema.names,
        has_labels=LABEL in stats.schema.names, checks=checks,
        label_names=tuple(cfg.label_names),
    )  # fmt: skip
