"""The ONNX Runtime backend: export at ``save_artifacts``, predict without torch or transformers.

A fresh inference process spends most of its start importing torch and transformers; this path
needs only ``tokenizers``, ``onnxruntime`` and ``numpy``, so importing this module must never pull
torch in (the export imports it lazily, at training time, where it is loaded anyway).
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlpipe.core.batching import rescore_close_calls
from mlpipe.core.errors import ConfigError

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
OPSET = 17


def export_onnx(model_dir: Path) -> list[str]:
    """Write ``model.onnx`` (fp32, opset 17, dynamic batch and sequence axes) and
    ``model.int8.onnx`` (onnxruntime dynamic int8 of the same graph) beside the weights.

    A BERT encoder is exported through :func:`_plain_bert` and fused for onnxruntime (see
    :func:`_fuse`); any other architecture is exported as ``transformers`` runs it.
    """
    import torch

    from mlpipe.tasks.classification.model import load_trained

    model, _ = load_trained(model_dir)
    model.config.return_dict = False  # a plain tuple traces more simply
    bert = getattr(model.config, "model_type", "") == "bert" and hasattr(model, "bert")
    module = _plain_bert(model) if bert else model
    dummy = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    target = model_dir / ONNX_FILE
    with torch.inference_mode(), warnings.catch_warnings():
        # the tracer's notes on shape-dependent branches: BERT's mask is never padded past
        # the sequence, so the traced branch is the one every input takes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (dummy, torch.ones_like(dummy)),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    _quantize(target, model_dir / INT8_FILE)  # from the plain graph: the quantizer's shape
    if bert:  # inference does not know the fused (contrib) operators
        _fuse(target, model.config)
    return [ONNX_FILE, INT8_FILE]


def _plain_bert(model: Any) -> Any:
    """BERT's forward with a plain additive mask and matmul-softmax-matmul attention.

    ``transformers`` traces its sdpa attention into a graph with NaN guards (IsNaN + Where on
    every batch x heads x length x length score tensor) and a mask builder onnxruntime's fusions
    do not recognise; this is the same computation (same weights, masked positions get -10000
    before the softmax, so their probability is 0 in fp32) in the shape the fusions expect.
    """
    import torch

    class PlainBert(torch.nn.Module):
        def __init__(self, wrapped: Any) -> None:
            super().__init__()
            self.wrapped = wrapped

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            bert = self.wrapped.bert
            hidden = bert.embeddings(input_ids=input_ids)
            mask = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * -10000.0
            for layer in bert.encoder.layer:
                hidden = _plain_layer(layer, hidden, mask)
            return self.wrapped.classifier(bert.pooler(hidden))

    return PlainBert(model).eval()


def _plain_layer(layer: Any, hidden: Any, mask: Any) -> Any:
    import torch

    attention = layer.attention.self
    batch, length = hidden.shape[0], hidden.shape[1]
    heads, size = attention.num_attention_heads, attention.attention_head_size

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(batch, length, heads, size).permute(0, 2, 1, 3)

    query = split(attention.query(hidden))
    key = attention.key(hidden).view(batch, length, heads, size).permute(0, 2, 3, 1)
    value = split(attention.value(hidden))
    scores = torch.matmul(query, key) / math.sqrt(size) + mask
    context = torch.matmul(torch.softmax(scores, dim=-1), value)
    context = context.permute(0, 2, 1, 3).reshape(batch, length, heads * size)
    attended = layer.attention.output(context, hidden)
    return layer.output(layer.intermediate(attended), attended)


def _fuse(path: Path, config: Any) -> None:
    """onnxruntime's BERT fusions, saved into the exported file: attention, LayerNorm with its
    residual add, bias + GELU. A session's own optimisation levels cannot find these in a
    ``torch.onnx`` graph, and doing them once at export saves every predictor the work."""
    from onnxruntime.transformers.optimizer import optimize_model

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its per-fusion progress lines
    try:
        fused = optimize_model(
            str(path),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=0,
        )
        fused.save_model_to_file(str(path))
    finally:
        root.setLevel(level)


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 (per-channel weights) of the MatMuls: onnxruntime's CPU int8 path."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process is for static quantization
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
    finally:
        root.setLevel(level)


def _threads(n: int | None) -> int:
    budget = os.environ.get("MLPIPE_THREADS", "")
    return n or (int(budget) if budget.isdigit() else 0) or max(os.cpu_count() or 1, 1)


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # sleeping, not spinning, waits: a shared machine's other tasks need the cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxPredictor:
    """The :class:`~mlpipe.tasks.classification.predict.Predictor` interface on onnxruntime.

    ``quantize="int8"`` runs ``model.int8.onnx``; rows whose top two probabilities are closer
    than ``fallback_gap`` are scored again by the fp32 graph, as the torch backend does.
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
        from tokenizers import Tokenizer

        directory = Path(model_dir)
        fp32 = directory / ONNX_FILE
        if not fp32.is_file():
            raise ConfigError(
                f"inference.backend: onnx needs {ONNX_FILE} in the model ({directory}); "
                "train with artifacts.onnx: true, or use inference.backend: torch"
            )
        config = json.loads((directory / "config.json").read_text())
        threads = _threads(num_threads)
        self.fallback: Any = None
        self.fallback_gap = fallback_gap
        if quantize == "int8":
            self.session = _session(directory / INT8_FILE, threads)
            if fallback_gap > 0:
                self.fallback = _session(fp32, threads)
        else:
            self.session = _session(fp32, threads)
        positions = int(config.get("max_position_embeddings", 512))
        self.max_length = min(max_length or 512, positions)
        self.batch_size = batch_size
        id2label = {int(k): v for k, v in (config.get("id2label") or {}).items()}
        self.label_names = [id2label[i] for i in range(len(id2label))]
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self.pad_id = int(config.get("pad_token_id") or 0)
        self.rescored = 0

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def predict(self, texts: list[str]) -> tuple[list[int], list[float]]:
        """Predicted label ids and their softmax probabilities, in input order."""
        ids = self.tokenize(texts)
        labels, scores, gaps = self._score(self.session, ids, report=True)
        if self.fallback is not None:
            fallback = self.fallback
            self.rescored += rescore_close_calls(
                ids, labels, scores, gaps, lambda rows: self._score(fallback, rows),
                self.fallback_gap)
        return labels, scores

    def probabilities(self, texts: Sequence[str]) -> list[list[float]]:
        """Softmax probabilities of every label per text, in order."""
        from mlpipe.core.batching import sorted_batches

        ids = self.tokenize(texts)
        probs: list[list[float]] = [[] for _ in ids]
        for batch in sorted_batches([len(x) for x in ids], self.batch_size):
            rows = self._softmax(self.session, [ids[i] for i in batch]).tolist()
            for i, row in zip(batch, rows, strict=True):
                probs[i] = row
        return probs

    def _softmax(self, session: Any, ids: list[list[int]]) -> Any:
        import numpy as np

        # to the batch's longest row, not rounded up as the torch backend pads: onnxruntime keeps
        # no per-shape kernel cache for the rounding to spare, and the rounding's columns are
        # about a tenth of the work on mixed-length text
        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        (logits,) = session.run(["logits"], {"input_ids": input_ids, "attention_mask": mask})
        logits = logits.astype(np.float32)
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)

    def _score(
        self, session: Any, ids: list[list[int]], *, report: bool = False
    ) -> tuple[list[int], list[float], list[float]]:
        import numpy as np

        from mlpipe.core.batching import sorted_batches
        from mlpipe.core.progress import advance

        labels = [0] * len(ids)
        scores = [0.0] * len(ids)
        gaps = [1.0] * len(ids)
        for batch in sorted_batches([len(x) for x in ids], self.batch_size):
            probs = self._softmax(session, [ids[i] for i in batch])
            order = np.argsort(-probs, axis=-1, kind="stable")
            best = probs[np.arange(len(batch)), order[:, 0]]
            second = probs[np.arange(len(batch)), order[:, min(1, probs.shape[-1] - 1)]]
            rows = zip(batch, order[:, 0].tolist(), best.tolist(), (best - second).tolist(),
                       strict=True)  # fmt: skip
            for i, label, score, gap in rows:
                labels[i], scores[i], gaps[i] = label, score, gap
            if report:
                advance(len(batch), samples=len(batch))
        return labels, scores, gaps
