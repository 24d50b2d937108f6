"""Text-to-SQL rows: ``question``, ``context`` (CREATE TABLE statements) and ``answer`` (SQL).

Rows come from the generated set (:mod:`mlpipe.tasks.text_to_sql.synthetic`), csv/jsonl/parquet
files or a hub dataset such as ``b-mc2/sql-create-context``; the configured columns are renamed to
``question``, ``context`` and ``answer`` (other columns are kept).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from mlpipe.core import data, quality
from mlpipe.core.config import DataConfig
from mlpipe.core.errors import DataError
from mlpipe.core.refs import CheckResult, DatasetRef
from mlpipe.tasks.text_to_sql.checks import check_gold_sql_runs
from mlpipe.tasks.text_to_sql.config import SqlOptions
from mlpipe.tasks.text_to_sql.match import execution_match
from mlpipe.tasks.text_to_sql.synthetic import generate_sql_rows

QUESTION, CONTEXT, ANSWER, PREDICTION = "question", "context", "answer", "prediction"
GOLD_CHECK_ROWS = 1000  # gold queries executed by the data check (a sample of large sets)


def iter_sql_tables(
    cfg: DataConfig, path: Path | None, *, chunk_rows: int, sql: SqlOptions | None = None
) -> Iterator[pa.Table]:
    """Raw tables: the generated SQL set, or whatever the files or hub source hold (the
    question, context and answer columns read as text whatever they look like)."""

    def generate(rows: int) -> Iterator[pa.Table]:
        gen = cfg.generated
        return data.rows_to_tables(
            generate_sql_rows(gen.n_samples, gen.seed), (QUESTION, CONTEXT, ANSWER), rows
        )

    text = () if sql is None else (sql.question_column, sql.context_column, sql.answer_column)
    return data.iter_tables(
        cfg, path, chunk_rows=chunk_rows, generate=generate, text_columns=text
    )


def normalize_sql_table(
    table: pa.Table, sql: SqlOptions, source: str, *, require_answer: bool
) -> pa.Table:
    """Rename the configured columns to question/context/answer; check they hold text."""
    names = table.column_names
    wanted = [(QUESTION, sql.question_column), (CONTEXT, sql.context_column)]
    has_answer = sql.answer_column in names
    if require_answer or has_answer:
        wanted.append((ANSWER, sql.answer_column))
    columns: dict[str, Any] = {}
    for canonical, column in wanted:
        if column not in names:
            raise DataError(
                f"{source}: no {canonical} column '{column}' (columns: {', '.join(names)}); "
                f"set sql.{canonical}_column"
            )
        columns[canonical] = data.as_text(table.column(column), column, source)
    used = {column for _, column in wanted}
    for name in names:
        if name not in used and name not in columns:
            columns[name] = table.column(name)
    return pa.table(columns)


def _load_all(cfg: DataConfig, sql: SqlOptions, path: Path | None) -> pa.Table:
    source = data.source_name(cfg, path)
    tables = (normalize_sql_table(t, sql, source, require_answer=True)
              for t in iter_sql_tables(cfg, path, chunk_rows=1 << 16, sql=sql))  # fmt: skip
    columns = {QUESTION: sql.question_column, CONTEXT: sql.context_column,
               ANSWER: sql.answer_column}  # fmt: skip
    return data.concat(
        data.refusing_blanks(tables, source, columns, max_rows=cfg.max_rows),
        empty=pa.schema([(QUESTION, pa.string()), (CONTEXT, pa.string()), (ANSWER, pa.string())]),
        max_rows=cfg.max_rows,
    )  # fmt: skip


def empty_rows(table: pa.Table, columns: tuple[str, ...]) -> int:
    """Rows where any of ``columns`` is empty or whitespace."""
    values = zip(*(table.column(c).to_pylist() for c in columns), strict=True)
    return sum(1 for row in values if any(not v.strip() for v in row))


def row_keys(table: pa.Table) -> list[str]:
    """What makes two rows the same example: question and context."""
    return [
        f"{q}\n{c}"
        for q, c in zip(
            table.column(QUESTION).to_pylist(), table.column(CONTEXT).to_pylist(), strict=True
        )
    ]


def gold_sql_failures(table: pa.Table, limit: int = GOLD_CHECK_ROWS) -> tuple[int, int]:
    """(failed, checked): gold queries of the first ``limit`` rows that do not run on context."""
    part = table.slice(0, limit)
    answers = part.column(ANSWER).to_pylist()
    contexts = part.column(CONTEXT).to_pylist()
    failed = sum(
        execution_match(a, a, c) is not True for a, c in zip(answers, contexts, strict=True)
    )
    return failed, len(answers)


def prepare_training_data(cfg: DataConfig, sql: SqlOptions, out_dir: Path) -> DatasetRef:
    """Read, validate, shuffle-split (seeded) and write ``train.parquet`` and ``eval.parquet``."""
    train, eval_ = data.train_eval(cfg, lambda path: _load_all(cfg, sql, path))
    both = pa.concat_tables([train, eval_], promote_options="default")
    n = len(both)
    train_keys, eval_keys = row_keys(train), row_keys(eval_)
    failed, checked = gold_sql_failures(train)
    checks: list[CheckResult] = [
        quality.check_not_empty(len(train), "train"),
        quality.check_not_empty(len(eval_), "eval"),
        quality.check_empty_fields(
            "an empty question, context or answer",
            empty_rows(both, (QUESTION, CONTEXT, ANSWER)),
            n,
        ),
        quality.check_duplicates(train_keys, len(train_keys)),
        quality.check_overlap(train_keys, eval_keys),
        check_gold_sql_runs(failed, checked),
    ]
    return data.save_splits(out_dir, {"train": train, "eval": eval_}, checks, has_labels=True)


def prepare_inference_data(
    cfg: DataConfig, sql: SqlOptions, out_dir: Path, *, chunk_rows: int
) -> DatasetRef:
    """Stream rows into ``data.parquet`` chunk by chunk (bounded memory), answers optional."""
    source = data.source_name(cfg, cfg.path)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = (normalize_sql_table(raw, sql, source, require_answer=False)
              for raw in iter_sql_tables(cfg, cfg.path, chunk_rows=chunk_rows, sql=sql))
    columns = {QUESTION: sql.question_column, CONTEXT: sql.context_column}
    stats = data.stream_to_parquet(
        data.refusing_blanks(tables, source, columns, max_rows=cfg.max_rows),
        out_dir / "data.parquet",
        max_rows=cfg.max_rows,
        keys=row_keys,
        count_empty=lambda t: empty_rows(t, (QUESTION, CONTEXT)),
        empty_schema=pa.schema([(QUESTION, pa.string()), (CONTEXT, pa.string())]),
    )  # fmt: skip
    rows, schema = stats.rows, stats.schema
    checks = [
        quality.check_not_empty(rows, "data"),
        quality.check_empty_fields("an empty question or context", stats.empty, rows),
        quality.check_duplicate_count(
            stats.duplicates, rows, "duplicate questions (same context)"
        ),
    ]
    return data.dataset_ref(
        out_dir, {"data": "data.parquet"}, {"data": rows}, schema.names,
        has_labels=ANSWER in schema.names, checks=checks,
    )  # fmt: skip
