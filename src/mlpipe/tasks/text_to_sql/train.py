"""Fine-tune a causal or seq2seq LM for text-to-SQL (optionally LoRA), evaluate, save."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mlpipe.core import quality
from mlpipe.core.config import TrainingConfig
from mlpipe.core.data import read_split
from mlpipe.core.refs import CheckResult, DatasetRef
from mlpipe.core.task import TASK_FILE, LogFn
from mlpipe.tasks.text_to_sql.config import sql_train_options
from mlpipe.tasks.text_to_sql.data import ANSWER, CONTEXT, QUESTION
from mlpipe.tasks.text_to_sql.match import SqlMatchCounter


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

    from mlpipe.core.artifacts import check_finite, seal
    from mlpipe.core.batching import sorted_batches
    from mlpipe.core.modeling import save_model, set_threads
    from mlpipe.core.training import fit, seed_everything
    from mlpipe.tasks.text_to_sql.model import (
        SqlGenerator,
        apply_lora,
        build_sql_model,
        collate,
        encode,
        peft_available,
    )

    sql, train_cfg = sql_train_options(config), config.training
    if sql.lora is not None and not peft_available():
        apply_lora(None, sql.lora, "causal")  # raises the ConfigError naming the extra
    set_threads(train_cfg.num_threads)
    seed_everything(train_cfg.seed)
    train = read_split(dataset, "train")
    eval_ = read_split(dataset, "eval")
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
    fitted = fit(
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
    metrics = {
        "eval_loss": eval_loss / max(len(eval_enc), 1),
        "eval_exact_match": scores["exact_match"],
        "eval_execution_match": scores["execution_match"],
        "eval_generated_rows": float(n_gen),
        **fitted.metrics(),
    }
    check_finite(metrics, "train_model")  # a diverged model is never saved
    model_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, tokenizer, model_dir)
    (model_dir / TASK_FILE).write_text(json.dumps(info.to_json(), indent=2, sort_keys=True) + "\n")
    seal(model_dir)  # the manifest save_artifacts checks before it publishes anything
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
