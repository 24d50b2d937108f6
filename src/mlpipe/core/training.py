"""The training loop every task shares: seeded, length-grouped, fused AdamW, clipped steps.

A plain loop instead of ``transformers.Trainer``: no checkpointing or eval during training that
nobody asked for, and batching that fits CPUs. Same config and data give the same weights. The
tasks build their models and inputs and call :func:`fit`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from mlpipe.core import progress as progress_
from mlpipe.core.batching import shuffled_batches
from mlpipe.core.config import TrainConfig
from mlpipe.core.errors import DivergedError

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


class Fitted(NamedTuple):
    """What ``fit`` did: optimizer steps, samples seen, summed loss, seconds."""

    steps: int
    seen: int
    loss_sum: float
    seconds: float

    def metrics(self) -> dict[str, float]:
        """The ``train_*`` metrics every task reports next to its eval metrics."""
        return {
            "train_loss": self.loss_sum / max(self.steps, 1),
            "train_steps": float(self.steps),
            "train_samples": float(self.seen),
            "train_runtime_s": self.seconds,
            "train_samples_per_second": self.seen / self.seconds if self.seconds else 0.0,
        }


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
) -> Fitted:
    """The training loop every task shares: seeded, length-grouped batches, clipped AdamW steps.

    ``make_inputs(batch_indices)`` returns the model's keyword arguments, labels included.
    """
    import torch

    optimizer, scheduler = make_optimizer(model, train_cfg, total_steps)
    bf16 = train_cfg.precision == "bf16"  # weights and optimizer state stay fp32
    model.train()
    step = 0
    seen = 0
    loss_sum = 0.0
    started = time.perf_counter()
    bar = progress_.Progress(total_steps, what="step") if progress else None
    epoch = 0
    try:
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
                loss = float(out.loss.detach())
                if not math.isfinite(loss):
                    raise DivergedError(
                        f"training diverged: the loss is {loss} at step {step + 1} of "
                        f"{total_steps}; nothing was saved (lower training.learning_rate, keep "
                        "training.max_grad_norm small, or check the data)"
                    )
                loss_sum += loss
                seen += len(batch)
                step += 1
                if on_log is not None and (step % log_every == 0 or step == total_steps):
                    on_log(
                        {
                            "train/loss": loss,
                            "train/learning_rate": float(scheduler.get_last_lr()[0]),
                        },
                        step,
                    )
                if bar is not None:
                    bar.update(1, samples=len(batch), loss=loss_sum / step)
                if step >= total_steps:
                    break
            epoch += 1
    except BaseException:
        if bar is not None:
            bar.close(finished=False)
        raise
    train_runtime = time.perf_counter() - started
    if bar is not None:
        bar.close()
    model.eval()
    return Fitted(step, seen, loss_sum, train_runtime)


def check_finite_weights(model: Any) -> None:
    """Refuse a model with a NaN or infinite parameter (a diverged run is never saved)."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.is_floating_point() and not bool(torch.isfinite(param).all()):
                raise DivergedError(
                    f"training diverged: weight '{name}' holds NaN or infinite values; nothing "
                    "was saved (lower training.learning_rate or check the data)"
                )
