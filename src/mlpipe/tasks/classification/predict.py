"""Batched inference: length-sorted batches, dynamic padding, ``torch.inference_mode``, streamed.

Rows are read and written in chunks of ``chunk_rows``, so memory stays flat however large the
input; inside a chunk texts are sorted by length so batches carry little padding, and the original
order is restored before writing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from mlpipe.core.batching import pad_batch, rescore_close_calls, sorted_batches, tokenize
from mlpipe.core.data import arrow_array, write_predictions
from mlpipe.core.modeling import quantize_int8, set_threads


class Predictor:
    """A loaded classifier that labels lists of texts.

    With ``quantize="int8"`` the Linear layers run as dynamic int8 (per-channel weights); rows
    whose top two class probabilities are closer than ``fallback_gap`` are scored again by the
    fp32 model, so speed comes from the confident majority and borderline rows keep fp32 labels.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        max_length: int | None = None,
        batch_size: int = 64,
        quantize: str = "none",
        fallback_gap: float = 0.4,
        num_threads: int | None = None,
    ) -> None:
        from mlpipe.tasks.classification.model import load_trained

        set_threads(num_threads)
        self.model, self.tokenizer = load_trained(model_dir)
        self.fallback: Any = None
        self.fallback_gap = fallback_gap
        if quantize == "int8":
            if fallback_gap > 0:
                self.fallback = self.model
                self.model, _ = load_trained(model_dir)
            self.model = quantize_int8(self.model)
        config = self.model.config
        positions = int(getattr(config, "max_position_embeddings", 512))
        self.max_length = min(max_length or 512, positions)  # never past the position table
        self.batch_size = batch_size
        id2label = {int(k): v for k, v in (config.id2label or {}).items()}
        self.label_names = [id2label[i] for i in range(len(id2label))]
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.rescored = 0  # rows the fp32 fallback scored again, for reporting

    def predict(self, texts: list[str]) -> tuple[list[int], list[float]]:
        """Predicted label ids and their softmax probabilities, in input order."""
        ids = tokenize(self.tokenizer, texts, self.max_length)
        labels, scores, gaps = self._score(self.model, ids, report=True)
        if self.fallback is not None:
            fallback = self.fallback
            self.rescored += rescore_close_calls(
                ids, labels, scores, gaps, lambda rows: self._score(fallback, rows),
                self.fallback_gap)
        return labels, scores

    def probabilities(self, texts: Sequence[str]) -> list[list[float]]:
        """Softmax probabilities of every label per text (the fp32 or int8 model), in order."""
        import torch

        ids = tokenize(self.tokenizer, texts, self.max_length)
        probs: list[list[float]] = [[] for _ in ids]
        with torch.inference_mode():
            for batch in sorted_batches([len(x) for x in ids], self.batch_size):
                inputs = pad_batch([ids[i] for i in batch], self.pad_id, multiple_of=8)
                rows = self.model(**inputs).logits.float().softmax(-1).tolist()
                for i, row in zip(batch, rows, strict=True):
                    probs[i] = row
        return probs

    def _score(
        self, model: Any, ids: list[list[int]], *, report: bool = False
    ) -> tuple[list[int], list[float], list[float]]:
        """Labels, their probabilities and the top-two probability gaps, in input order;
        ``report`` ticks the running progress per batch."""
        import torch

        from mlpipe.core.progress import advance

        labels = [0] * len(ids)
        scores = [0.0] * len(ids)
        gaps = [1.0] * len(ids)
        with torch.inference_mode():
            for batch in sorted_batches([len(x) for x in ids], self.batch_size):
                inputs = pad_batch([ids[i] for i in batch], self.pad_id, multiple_of=8)
                probs = model(**inputs).logits.float().softmax(-1)
                top = probs.topk(min(2, probs.shape[-1]), dim=-1)
                best, second = top.values[:, 0], top.values[:, -1]
                rows = zip(batch, top.indices[:, 0].tolist(), best.tolist(),
                           (best - second).tolist(), strict=True)  # fmt: skip
                for i, label, score, gap in rows:
                    labels[i], scores[i], gaps[i] = label, score, gap
                if report:
                    advance(len(batch), samples=len(batch))
        return labels, scores, gaps


def predict_file(
    predictor: Any, data_path: Path, out_path: Path, *, chunk_rows: int
) -> tuple[int, float]:
    """Write ``row_id, pred_id, pred_label, score`` for every row; return (rows, seconds)."""
    schema = pa.schema(
        [
            ("row_id", pa.int64()),
            ("pred_id", pa.int64()),
            ("pred_label", pa.string()),
            ("score", pa.float32()),
        ]
    )

    def predict(chunk: pa.Table) -> dict[str, pa.Array]:
        labels, scores = predictor.predict(chunk.column("text").to_pylist())
        return {
            "pred_id": arrow_array(labels, pa.int64()),
            "pred_label": arrow_array([predictor.label_names[i] for i in labels], pa.string()),
            "score": arrow_array(scores, pa.float32()),
        }

    return write_predictions(
        data_path, out_path, predict, schema=schema, chunk_rows=chunk_rows, columns=["text"]
    )


def predict_texts(
    model_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    batch_size: int = 32,
    predictor: Any = None,
) -> list[dict[str, Any]]:
    """``{"label", "label_id", "score", "scores"}`` per row (rows carry a ``text``), in order.

    ``label``/``label_id``/``score`` are what :func:`predict_file` writes for the row (fp32
    model); ``scores`` maps every label name (the model config's ``id2label``) to its probability.
    """
    if not rows:
        return []
    predictor = (predictor or Predictor)(model_dir, batch_size=batch_size)
    names = predictor.label_names
    out: list[dict[str, Any]] = []
    for probs in predictor.probabilities([str(row["text"]) for row in rows]):
        best = max(range(len(probs)), key=probs.__getitem__)
        scores = dict(zip(names, probs, strict=True))
        out.append({"label": names[best], "label_id": best, "score": probs[best], "scores": scores})
    return out
