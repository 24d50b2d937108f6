"""Length-aware batching with dynamic padding: the main CPU speed lever for transformers.

Padding every batch to the longest sequence *in that batch* (not to ``max_length``), and putting
texts of similar length together, removes most of the wasted attention and matmul work.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Deterministic batches of indices, longest first (inference and eval)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def shuffled_batches(
    lengths: Sequence[int], batch_size: int, seed: int, *, group_by_length: bool, mega: int = 50
) -> list[list[int]]:
    """Training batches for one epoch: shuffled, and length-grouped inside mega-batches."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    span = batch_size * mega
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int, multiple_of: int = 1) -> dict[str, Any]:
    """input_ids and attention_mask padded to the longest sequence in the batch.

    ``multiple_of`` > 1 rounds the width up (inference uses 8): far fewer distinct shapes, so
    oneDNN's per-shape kernel cache stays small however many rows stream through.
    """
    import torch

    longest = max(len(x) for x in ids)
    width = -(-longest // multiple_of) * multiple_of
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids without padding (padding happens per batch)."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    return [list(x) for x in enc["input_ids"]]


#: scores token ids: (label ids, probabilities, top-two probability gaps)
Scorer = Callable[[list[list[int]]], tuple[list[int], list[float], list[float]]]


def rescore_close_calls(ids: Sequence[list[int]], labels: list[int], scores: list[float],
                        gaps: Sequence[float], fallback: Scorer, min_gap: float) -> int:
    """Score again with ``fallback`` (the fp32 model) the rows whose top two probabilities are
    closer than ``min_gap``, where a quantized model may flip the label; updates ``labels`` and
    ``scores`` in place and returns how many rows it scored again."""
    redo = [i for i, gap in enumerate(gaps) if gap < min_gap]
    if redo:
        again = fallback([ids[i] for i in redo])
        for k, i in enumerate(redo):
            labels[i], scores[i] = again[0][k], again[1][k]
    return len(redo)
