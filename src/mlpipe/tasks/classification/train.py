"""Fine-tune a sequence classifier with core's loop; evaluate loss, accuracy and F1."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpipe.core.artifacts import check_finite, seal
from mlpipe.core.batching import pad_batch, sorted_batches, tokenize
from mlpipe.core.config import ModelConfig, TrainConfig
from mlpipe.core.modeling import save_model, set_threads
from mlpipe.core.training import fit, seed_everything
from mlpipe.tasks.classification.metrics import classification_metrics


def train_classifier(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    train_texts: list[str],
    train_labels: list[int],
    eval_texts: list[str],
    eval_labels: list[int],
    label_names: tuple[str, ...],
    out_dir: Path,
    *,
    progress: bool = True,
    on_log: Callable[[dict[str, float], int], None] | None = None,
    log_every: int = 10,
) -> dict[str, float]:
    """Train, evaluate, save model (safetensors) and tokenizer to ``out_dir``; return metrics."""
    import torch

    from mlpipe.tasks.classification.model import build_model

    set_threads(train_cfg.num_threads)
    seed_everything(train_cfg.seed)
    model, tokenizer = build_model(model_cfg, label_names)
    pad_id = tokenizer.pad_token_id or 0
    train_ids = tokenize(tokenizer, train_texts, model_cfg.max_length)
    lengths = [len(x) for x in train_ids]
    steps_per_epoch = math.ceil(len(train_ids) / train_cfg.batch_size)
    total_steps = train_cfg.max_steps or max(1, math.ceil(steps_per_epoch * train_cfg.epochs))
    labels_t = torch.as_tensor(train_labels, dtype=torch.long)
    fitted = fit(
        model,
        lengths,
        lambda batch: {
            **pad_batch([train_ids[i] for i in batch], pad_id),
            "labels": labels_t[batch],
        },
        train_cfg,
        total_steps,
        progress=progress,
        on_log=on_log,
        log_every=log_every,
    )
    model.eval()
    eval_metrics = evaluate(
        model,
        tokenizer,
        eval_texts,
        eval_labels,
        model_cfg.max_length,
        train_cfg.batch_size * 2,
        len(label_names),
    )
    metrics = {**eval_metrics, **fitted.metrics()}
    check_finite(metrics, "train_model")  # a diverged model is never saved
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, tokenizer, out_dir)
    seal(out_dir)  # the manifest save_artifacts checks before it publishes anything
    return metrics


def evaluate(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    labels: list[int],
    max_length: int,
    batch_size: int,
    num_labels: int,
) -> dict[str, float]:
    """Eval loss, accuracy and F1 with sorted, dynamically padded batches."""
    import torch

    if not texts:
        return {"eval_accuracy": 0.0, "eval_f1": 0.0, "eval_loss": 0.0}
    ids = tokenize(tokenizer, texts, max_length)
    preds = [0] * len(ids)
    loss_sum = 0.0
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    pad_id = tokenizer.pad_token_id or 0
    with torch.inference_mode():
        for batch in sorted_batches([len(x) for x in ids], batch_size):
            out = model(**pad_batch([ids[i] for i in batch], pad_id), labels=labels_t[batch])
            loss_sum += float(out.loss) * len(batch)
            for i, p in zip(batch, out.logits.argmax(-1).tolist(), strict=True):
                preds[i] = p
    m = classification_metrics(labels, preds, num_labels)
    return {"eval_accuracy": m["accuracy"], "eval_f1": m["f1"], "eval_loss": loss_sum / len(ids)}
