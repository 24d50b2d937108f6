"""Build or load a sequence-classification model and its tokenizer (torch imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipe.core.config import ModelConfig
from mlpipe.core.modeling import load_tokenizer, quiet_transformers, resolve_base

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def build_model(
    cfg: ModelConfig, label_names: tuple[str, ...] | list[str]
) -> tuple[PreTrainedModel, Any]:
    """The base model with a fresh classification head, and its tokenizer."""
    quiet_transformers()
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        BertConfig,
        BertForSequenceClassification,
    )

    source = resolve_base(cfg.base)
    tokenizer = load_tokenizer(source)
    labels = {i: name for i, name in enumerate(label_names)}
    if cfg.base == "tiny":
        tiny = cfg.tiny
        config = BertConfig(  # type: ignore[call-arg]  # num_labels etc. go to PretrainedConfig
            vocab_size=tokenizer.vocab_size,
            hidden_size=tiny.hidden_size,
            num_hidden_layers=tiny.num_layers,
            num_attention_heads=tiny.num_heads,
            intermediate_size=tiny.intermediate_size,
            max_position_embeddings=max(cfg.max_length, 512),
            num_labels=len(labels),
            id2label=labels,
            label2id={v: k for k, v in labels.items()},
        )
        model = BertForSequenceClassification(config)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(labels),
            id2label=labels,
            label2id={v: k for k, v in labels.items()},
            dtype=torch.float32,
        )
    return model, tokenizer


def load_trained(model_dir: str | Path) -> tuple[PreTrainedModel, Any]:
    """A fine-tuned model saved by mlpipe (safetensors only; never pickle)."""
    quiet_transformers()
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), use_safetensors=True)
    model.eval()
    return model, load_tokenizer(model_dir)
