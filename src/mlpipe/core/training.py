"""Fine-tune a sequence classifier: seeded, length-grouped, dynamically padded, fused AdamW.

A plain loop instead of ``transformers.Trainer``: no checkpointing or eval during training that
nobody asked for, and batching that fits CPUs. Same config and data give the same weights.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpipe.core.batching import pad_batch, shuffled_batches, sorted_batches, tokenize
from mlpipe.core.config import ModelConfig, TrainConfig
from mlpipe.core.metrics import classification_metrics

# Wall-clock figures vary run to run; they are reported but never written into artifacts, so the
# same config and data give byte-identical model directories on every runner.
TIMING_METRICS = ("train_runtime_s", "train_samples_per_second")


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(model: Any, train_cfg: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    """Fused AdamW (no decay on biases and LayerNorm) with linear warmup and decay to zero.

    Only trainable parameters are optimized, so LoRA-wrapped models train just their adapters.
    """
    import torch

    warmup = int(total_steps * train_cfg.warmup_ratio)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = [p for n, p in params if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in params if not (n.endswith("bias") or "LayerNorm" in n)]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": train_cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=train_cfg.learning_rate,
        fused=True,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / max(1, warmup)
            if s < warmup
            else max(0.0, (total_steps - s) / max(1, total_steps - warmup))
        ),
    )
    return optimizer, scheduler


def fit(
    model: Any,
    lengths: list[int],
    make_inputs: Callable[[list[int]], dict[str, Any]],
    train_cfg: TrainConfig,
    total_steps: int,
    *,
    progress: bool = True,
    on_log: Callable[[dict[str, float], int], None] | None = None,
    log_every: int = 10,
) -> tuple[int, int, float, float]:
    """The training loop every task shares: seeded, length-grouped batches, clipped AdamW steps.

    ``make_inputs(batch_indices)`` returns the model's keyword arguments, labels included.
    Returns (steps, samples seen, summed loss, seconds).
    """
    import torch

    optimizer, scheduler = make_optimizer(model, train_cfg, total_steps)
    bf16 = train_cfg.precision == "bf16"  # weights and optimizer state stay fp32
    model.train()
    step = 0
    seen = 0
    loss_sum = 0.0
    started = time.perf_counter()
    bar = _progress(total_steps, "train", progress)
    epoch = 0
    while step < total_steps:
        for batch in shuffled_batches(
            lengths,
            train_cfg.batch_size,
            train_cfg.seed + epoch,
            group_by_length=train_cfg.group_by_length,
        ):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(**make_inputs(batch))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += float(out.loss.detach())
            seen += len(batch)
            step += 1
            if on_log is not None and (step % log_every == 0 or step == total_steps):
                on_log(
                    {
                        "train/loss": float(out.loss.detach()),
                        "train/learning_rate": float(scheduler.get_last_lr()[0]),
                    },
                    step,
                )
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / step:.4f}")
            if step >= total_steps:
                break
        epoch += 1
    train_runtime = time.perf_counter() - started
    if bar is not None:
        bar.close()
    model.eval()
    return step, seen, loss_sum, train_runtime


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

    from mlpipe.core.modeling import build_model, save_model, set_threads

    set_threads(train_cfg.num_threads)
    seed_everything(train_cfg.seed)
    model, tokenizer = build_model(model_cfg, label_names)
    pad_id = tokenizer.pad_token_id or 0
    train_ids = tokenize(tokenizer, train_texts, model_cfg.max_length)
    lengths = [len(x) for x in train_ids]
    steps_per_epoch = math.ceil(len(train_ids) / train_cfg.batch_size)
    total_steps = train_cfg.max_steps or max(1, math.ceil(steps_per_epoch * train_cfg.epochs))
    labels_t = torch.as_tensor(train_labels, dtype=torch.long)
    step, seen, loss_sum, train_runtime = fit(
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
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, tokenizer, out_dir)
    return {
        **eval_metrics,
        "train_loss": loss_sum / max(step, 1),
        "train_steps": float(step),
        "train_samples": float(seen),
        "train_runtime_s": train_runtime,
        "train_samples_per_second": seen / train_runtime if train_runtime else 0.0,
    }


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


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="step",
        file=sys.stderr,
        leave=False,
        disable=not sys.stderr.isatty(),
    )
