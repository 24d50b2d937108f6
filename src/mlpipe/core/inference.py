"""Batched inference: length-sorted batches, dynamic padding, ``torch.inference_mode``, streamed.

Rows are read and written in chunks of ``chunk_rows``, so memory stays flat however large the
input; inside a chunk texts are sorted by length so batches carry little padding, and the original
order is restored before writing.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlpipe.core.batching import pad_batch, sorted_batches, tokenize


class Predictor:
    """A loaded classifier that labels lists of texts."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        max_length: int | None = None,
        batch_size: int = 64,
        quantize: str = "none",
        num_threads: int | None = None,
    ) -> None:
        from mlpipe.core.modeling import load_trained, set_threads

        set_threads(num_threads)
        self.model, self.tokenizer = load_trained(model_dir)
        if quantize == "int8":
            self.model = quantize_int8(self.model)
        config = self.model.config
        positions = int(getattr(config, "max_position_embeddings", 512))
        self.max_length = min(max_length or 512, positions)  # never past the position table
        self.batch_size = batch_size
        id2label = {int(k): v for k, v in (config.id2label or {}).items()}
        self.label_names = [id2label[i] for i in range(len(id2label))]
        self.pad_id = self.tokenizer.pad_token_id or 0

    def predict(self, texts: list[str]) -> tuple[list[int], list[float]]:
        """Predicted label ids and their softmax probabilities, in input order."""
        import torch

        ids = tokenize(self.tokenizer, texts, self.max_length)
        labels = [0] * len(ids)
        scores = [0.0] * len(ids)
        with torch.inference_mode():
            for batch in sorted_batches([len(x) for x in ids], self.batch_size):
                logits = self.model(**pad_batch([ids[i] for i in batch], self.pad_id)).logits
                probs = logits.float().softmax(-1)
                best = probs.max(-1)
                for i, label, score in zip(
                    batch, best.indices.tolist(), best.values.tolist(), strict=True
                ):
                    labels[i] = label
                    scores[i] = score
        return labels, scores


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantization of the Linear layers (CPU). torchao when present, else torch.ao."""
    import torch

    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantize_(model, Int8DynamicActivationInt8WeightConfig())
        return model
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def iter_chunks(
    path: Path, chunk_rows: int, columns: list[str] | None = None
) -> Iterator[pa.Table]:
    reader = pq.ParquetFile(path)
    for batch in reader.iter_batches(batch_size=chunk_rows, columns=columns):
        yield pa.Table.from_batches([batch])


def predict_file(
    predictor: Predictor, data_path: Path, out_path: Path, *, chunk_rows: int
) -> tuple[int, float]:
    """Write ``row_id, pred_id, pred_label, score`` for every row; return (rows, seconds)."""
    tmp = out_path.with_name(out_path.name + ".tmp")
    schema = pa.schema(
        [
            ("row_id", pa.int64()),
            ("pred_id", pa.int64()),
            ("pred_label", pa.string()),
            ("score", pa.float32()),
        ]
    )
    rows = 0
    started = time.perf_counter()
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for chunk in iter_chunks(data_path, chunk_rows, columns=["text"]):
                texts = chunk.column("text").to_pylist()
                labels, scores = predictor.predict(texts)
                writer.write_table(
                    pa.table(
                        {
                            "row_id": pa.array(range(rows, rows + len(texts)), pa.int64()),
                            "pred_id": pa.array(labels, pa.int64()),
                            "pred_label": pa.array(
                                [predictor.label_names[i] for i in labels], pa.string()
                            ),
                            "score": pa.array(scores, pa.float32()),
                        },
                        schema=schema,
                    )
                )
                rows += len(texts)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return rows, time.perf_counter() - started
