"""``task: text-to-sql``: fine-tune a causal or seq2seq LM on (question, context, answer) rows.

Rows come from the generated set (:mod:`mlpipe.core.synthetic_sql`), csv/jsonl/parquet files or a
hub dataset such as ``b-mc2/sql-create-context``; the configured columns are renamed to
``question``, ``context`` and ``answer`` (other columns are kept). Predictions are a ``prediction``
column; metrics are exact match and execution match (:mod:`mlpipe.core.tasks.sql_match`).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlpipe.core import data, quality
from mlpipe.core.config import DataConfig, InferenceConfig, SqlConfig, TrainingConfig
from mlpipe.core.errors import DataError
from mlpipe.core.refs import CheckResult, DatasetRef
from mlpipe.core.synthetic_sql import generate_sql_rows
from mlpipe.core.tasks import TASK_FILE, LogFn, check_model_task
from mlpipe.core.tasks.sql_match import SqlMatchCounter, execution_match

QUESTION, CONTEXT, ANSWER, PREDICTION = "question", "context", "answer", "prediction"
GOLD_CHECK_ROWS = 1000  # gold queries executed by the data check (a sample of large sets)


# -- data ---------------------------------------------------------------------------------------


def iter_sql_tables(cfg: DataConfig, path: Path | None, *, chunk_rows: int) -> Iterator[pa.Table]:
    """Raw tables: the generated SQL set, or whatever the files or hub source hold."""
    if cfg.source != "generated":
        yield from data.iter_tables(cfg, path, chunk_rows=chunk_rows)
        return
    rows: list[tuple[str, str, str]] = []
    for row in generate_sql_rows(cfg.generated.n_samples, cfg.generated.seed):
        rows.append(row)
        if len(rows) >= chunk_rows:
            yield _rows_table(rows)
            rows = []
    if rows:
        yield _rows_table(rows)


def _rows_table(rows: list[tuple[str, str, str]]) -> pa.Table:
    q, c, a = zip(*rows, strict=True)
    return pa.table({QUESTION: list(q), CONTEXT: list(c), ANSWER: list(a)})


def normalize_sql_table(
    table: pa.Table, sql: SqlConfig, source: str, *, require_answer: bool
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
        values = table.column(column)
        if pa.types.is_null(values.type):
            values = pa.array([None] * len(table), pa.string())
        elif not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            raise DataError(f"{source}: column '{column}' must hold text, found {values.type}")
        columns[canonical] = pc.fill_null(values.cast(pa.string()), "")
    used = {column for _, column in wanted}
    for name in names:
        if name not in used and name not in columns:
            columns[name] = table.column(name)
    return pa.table(columns)


def _load_all(cfg: DataConfig, sql: SqlConfig, path: Path | None) -> pa.Table:
    source = data._source_name(cfg, path)
    tables = [
        normalize_sql_table(t, sql, source, require_answer=True)
        for t in iter_sql_tables(cfg, path, chunk_rows=1 << 16)
    ]
    if not tables:
        empty = pa.array([], pa.string())
        return pa.table({QUESTION: empty, CONTEXT: empty, ANSWER: empty})
    table = pa.concat_tables(tables, promote_options="default")
    return table.slice(0, cfg.max_rows) if cfg.max_rows is not None else table


def _empty_rows(table: pa.Table, columns: tuple[str, ...]) -> int:
    """Rows where any of ``columns`` is empty or whitespace."""
    values = zip(*(table.column(c).to_pylist() for c in columns), strict=True)
    return sum(1 for row in values if any(not v.strip() for v in row))


def _keys(table: pa.Table) -> list[str]:
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


# -- results ------------------------------------------------------------------------------------


class SqlResults:
    """Exact and execution match of the ``prediction`` column against ``answer``, streamed."""

    def __init__(self, has_answers: bool) -> None:
        self.has_answers = has_answers
        self.counter = SqlMatchCounter()

    def update(self, inputs: pa.Table, predictions: pa.Table) -> None:
        if self.has_answers:
            self.counter.update(
                predictions.column(PREDICTION).to_pylist(),
                inputs.column(ANSWER).to_pylist(),
                inputs.column(CONTEXT).to_pylist(),
            )

    def metrics(self) -> dict[str, float]:
        return self.counter.metrics() if self.has_answers else {}


# -- the task -----------------------------------------------------------------------------------


class TextToSqlTask:
    """Question + CREATE TABLE context -> SQL with a generative model."""

    name = "text-to-sql"
    prediction_columns = (PREDICTION,)

    def load_training_data(self, config: TrainingConfig, out_dir: Path) -> DatasetRef:
        cfg, sql = config.data, config.sql
        table = _load_all(cfg, sql, cfg.path)
        if cfg.eval_path is not None:
            train, eval_ = table, _load_all(cfg, sql, cfg.eval_path)
        else:
            order = list(range(len(table)))
            random.Random(cfg.seed).shuffle(order)
            n_eval = max(1, round(len(order) * cfg.eval_fraction)) if len(order) > 1 else 0
            eval_ = table.take(sorted(order[:n_eval]))
            train = table.take(sorted(order[n_eval:]))
        both = pa.concat_tables([train, eval_], promote_options="default")
        n = len(both)
        train_keys, eval_keys = _keys(train), _keys(eval_)
        failed, checked = gold_sql_failures(train)
        checks: list[CheckResult] = [
            quality.check_not_empty(len(train), "train"),
            quality.check_not_empty(len(eval_), "eval"),
            quality.check_empty_fields(
                "an empty question, context or answer",
                _empty_rows(both, (QUESTION, CONTEXT, ANSWER)),
                n,
            ),
            quality.check_not_applicable("label_balance", "text-to-sql rows have no labels"),
            quality.check_duplicates(train_keys, len(train_keys)),
            quality.check_overlap(train_keys, eval_keys),
            quality.check_gold_sql_runs(failed, checked),
        ]
        out_dir.mkdir(parents=True, exist_ok=True)
        data._write_parquet(train, out_dir / "train.parquet")
        data._write_parquet(eval_, out_dir / "eval.parquet")
        return data._dataset_ref(
            out_dir,
            {"train": "train.parquet", "eval": "eval.parquet"},
            {"train": len(train), "eval": len(eval_)},
            train.column_names,
            True,
            cfg,
            checks,
            label_names=(),
        )

    def load_inference_data(self, config: InferenceConfig, out_dir: Path) -> DatasetRef:
        cfg = config.data
        source = data._source_name(cfg, cfg.path)
        out_dir.mkdir(parents=True, exist_ok=True)
        stats = data.stream_to_parquet(
            (normalize_sql_table(raw, config.sql, source, require_answer=False)
             for raw in iter_sql_tables(cfg, cfg.path, chunk_rows=config.inference.chunk_rows)),
            out_dir / "data.parquet",
            max_rows=cfg.max_rows,
            keys=_keys,
            count_empty=lambda t: _empty_rows(t, (QUESTION, CONTEXT)),
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
        return data._dataset_ref(
            out_dir,
            {"data": "data.parquet"},
            {"data": rows},
            schema.names,
            ANSWER in schema.names,
            cfg,
            checks,
            label_names=(),
        )

    def train(
        self, config: TrainingConfig, dataset: DatasetRef, model_dir: Path, *, on_log: LogFn
    ) -> tuple[dict[str, float], tuple[CheckResult, ...]]:
        return train_text_to_sql(config, dataset, model_dir, on_log=on_log)

    def predict_file(
        self, config: InferenceConfig, model_dir: Path, dataset: DatasetRef, out_path: Path
    ) -> tuple[int, float]:
        from mlpipe.core.inference import iter_chunks
        from mlpipe.core.modeling import set_threads
        from mlpipe.core.tasks.sql_model import SqlGenerator

        check_model_task(model_dir, self.name)
        settings = config.inference
        set_threads(settings.num_threads)
        generator = SqlGenerator.load(
            model_dir,
            batch_size=settings.batch_size,
            max_new_tokens=config.sql.max_new_tokens,
            max_length=settings.max_length,
        )
        if settings.quantize == "int8":
            from mlpipe.core.inference import quantize_int8

            generator.model = quantize_int8(generator.model)
        schema = pa.schema([("row_id", pa.int64()), (PREDICTION, pa.string())])
        tmp = out_path.with_name(out_path.name + ".tmp")
        rows = 0
        started = time.perf_counter()
        try:
            with pq.ParquetWriter(tmp, schema) as writer:
                for chunk in iter_chunks(
                    Path(dataset.uri) / dataset.files["data"],
                    settings.chunk_rows,
                    columns=[QUESTION, CONTEXT],
                ):
                    sql = generator.generate(
                        chunk.column(QUESTION).to_pylist(), chunk.column(CONTEXT).to_pylist()
                    )
                    ids = pa.array(range(rows, rows + len(sql)), pa.int64())
                    writer.write_table(
                        pa.table({"row_id": ids, PREDICTION: pa.array(sql, pa.string())}, schema)
                    )
                    rows += len(sql)
            os.replace(tmp, out_path)
        finally:
            tmp.unlink(missing_ok=True)
        return rows, time.perf_counter() - started

    def results(self, config: InferenceConfig, dataset: DatasetRef) -> SqlResults:
        return SqlResults(dataset.has_labels)


def train_text_to_sql(
    config: TrainingConfig,
    dataset: DatasetRef,
    model_dir: Path,
    *,
    on_log: LogFn | None = None,
    progress: bool = True,
) -> tuple[dict[str, float], tuple[CheckResult, ...]]:
    """Fine-tune (optionally with LoRA, merged before saving), evaluate, save; metrics + checks.

    Eval: loss on the answer tokens of every eval row, and exact/execution match of greedy
    generations on the first ``sql.eval_max_rows`` eval rows.
    """
    import torch

    from mlpipe.core.batching import sorted_batches
    from mlpipe.core.modeling import save_model, set_threads
    from mlpipe.core.tasks.sql_model import (
        SqlGenerator,
        apply_lora,
        build_sql_model,
        collate,
        encode,
        peft_available,
    )
    from mlpipe.core.training import fit, seed_everything

    sql, train_cfg = config.sql, config.training
    if sql.lora is not None and not peft_available():
        apply_lora(None, sql.lora, "causal")  # raises the ConfigError naming the extra
    set_threads(train_cfg.num_threads)
    seed_everything(train_cfg.seed)
    train = data.read_split(dataset, "train")
    eval_ = data.read_split(dataset, "eval")
    tq, tc, ta = (train.column(c).to_pylist() for c in (QUESTION, CONTEXT, ANSWER))
    eq, ec, ea = (eval_.column(c).to_pylist() for c in (QUESTION, CONTEXT, ANSWER))
    model, tokenizer, info = build_sql_model(
        config.model, sql, [f"{c}\n{q}\n{a}" for q, c, a in zip(tq, tc, ta, strict=True)]
    )
    if sql.lora is not None:
        model = apply_lora(model, sql.lora, info.architecture)
    pad_id = tokenizer.pad_token_id
    train_enc = encode(tokenizer, info, tq, tc, ta)
    lengths = [len(e.input_ids) for e in train_enc]
    steps_per_epoch = math.ceil(len(train_enc) / train_cfg.batch_size)
    total_steps = train_cfg.max_steps or max(1, math.ceil(steps_per_epoch * train_cfg.epochs))
    step, seen, loss_sum, runtime = fit(
        model,
        lengths,
        lambda batch: collate([train_enc[i] for i in batch], pad_id, info.architecture),
        train_cfg,
        total_steps,
        progress=progress,
        on_log=on_log,
    )
    if sql.lora is not None:
        model = model.merge_and_unload()
    model.eval()
    eval_enc = encode(tokenizer, info, eq, ec, ea)
    eval_loss = 0.0
    with torch.inference_mode():
        for batch in sorted_batches([len(e.input_ids) for e in eval_enc], train_cfg.batch_size * 2):
            out = model(**collate([eval_enc[i] for i in batch], pad_id, info.architecture))
            eval_loss += float(out.loss) * len(batch)
    n_gen = len(eq) if sql.eval_max_rows is None else min(sql.eval_max_rows, len(eq))
    generator = SqlGenerator(
        model,
        tokenizer,
        info,
        batch_size=train_cfg.batch_size * 2,
        max_new_tokens=sql.max_new_tokens,
    )
    predictions = generator.generate(eq[:n_gen], ec[:n_gen])
    counter = SqlMatchCounter()
    counter.update(predictions, ea[:n_gen], ec[:n_gen])
    scores = counter.metrics()
    model_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, tokenizer, model_dir)
    (model_dir / TASK_FILE).write_text(json.dumps(info.to_json(), indent=2, sort_keys=True) + "\n")
    metrics = {
        "eval_loss": eval_loss / max(len(eval_enc), 1),
        "eval_exact_match": scores["exact_match"],
        "eval_execution_match": scores["execution_match"],
        "eval_generated_rows": float(n_gen),
        "train_loss": loss_sum / max(step, 1),
        "train_steps": float(step),
        "train_samples": float(seen),
        "train_runtime_s": runtime,
        "train_samples_per_second": seen / runtime if runtime else 0.0,
    }
    truncated = sum(e.truncated for e in train_enc)
    checks = (
        quality.check_min_accuracy(
            scores["execution_match"],
            train_cfg.min_eval_accuracy,
            what="eval execution accuracy (execution match)",
        ),
        quality.check_truncated(truncated, len(train_enc)),
    )
    return metrics, checks
