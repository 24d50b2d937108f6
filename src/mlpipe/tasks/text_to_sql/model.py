"""Generative models for text-to-SQL: build, encode with loss masking, collate, generate, load.

``model.base: tiny`` is a small GPT-2 built from a config with a byte-level BPE tokenizer trained
on the training texts (deterministic, round-trips SQL exactly, no download). Any other base is a
local directory or hub id of a causal LM (GPT-2, Llama, Qwen...) or a seq2seq model (T5, BART);
the architecture is read from its config. torch and transformers are imported lazily.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe.core.batching import sorted_batches
from mlpipe.core.config import ModelConfig
from mlpipe.core.errors import ConfigError
from mlpipe.core.task import TASK_FILE
from mlpipe.tasks.text_to_sql.config import LoraConfig, SqlTrainOptions

CAUSAL_PROMPT = "-- schema\n{context}\n-- question\n{question}\n-- sql\n"
SEQ2SEQ_PROMPT = "question: {question} context: {context}"
IGNORE = -100  # label id the loss skips


@dataclass(frozen=True)
class ModelInfo:
    """What inference must know about a trained model; saved as ``mlpipe_task.json``."""

    architecture: str  # "causal" or "seq2seq"
    prompt: str
    max_length: int

    def to_json(self) -> dict[str, Any]:
        return {"task": "text-to-sql", **self.__dict__}

    def format(self, question: str, context: str) -> str:
        return self.prompt.format(question=question, context=context)


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """Byte-level BPE trained on ``texts``: the same texts give the same tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<eos>"
    )


def build_sql_model(
    model_cfg: ModelConfig, sql_cfg: SqlTrainOptions, tokenizer_texts: Sequence[str]
) -> tuple[Any, Any, ModelInfo]:
    """The base model, its tokenizer (pad token set) and the prompt format for this task."""
    from mlpipe.core.modeling import load_tokenizer, quiet_transformers, resolve_base

    quiet_transformers()
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        GPT2Config,
        GPT2LMHeadModel,
    )

    if model_cfg.base == "tiny":
        tokenizer = train_tokenizer(tokenizer_texts, sql_cfg.tokenizer_vocab_size)
        tiny = model_cfg.tiny
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=max(model_cfg.max_length + sql_cfg.max_new_tokens, 512),
            n_embd=tiny.hidden_size,
            n_layer=tiny.num_layers,
            n_head=tiny.num_heads,
            n_inner=tiny.intermediate_size,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model: Any = GPT2LMHeadModel(config)
        return model, tokenizer, ModelInfo("causal", CAUSAL_PROMPT, model_cfg.max_length)
    if model_cfg.base == "minilm":
        raise ConfigError(
            "model.base: minilm is an encoder without a language-model head; for text-to-sql "
            "use 'tiny', or a causal LM or seq2seq model (local directory or hub id)"
        )
    source = resolve_base(model_cfg.base)
    config = AutoConfig.from_pretrained(source)
    tokenizer = load_tokenizer(source)
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"model.base: the tokenizer of {model_cfg.base} has no end-of-text token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(config, "is_encoder_decoder", False):
        model = AutoModelForSeq2SeqLM.from_pretrained(source, dtype=torch.float32)
        info = ModelInfo("seq2seq", SEQ2SEQ_PROMPT, model_cfg.max_length)
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        except ValueError as exc:
            raise ConfigError(
                f"model.base: {model_cfg.base} is neither a causal LM nor a seq2seq model ({exc})"
            ) from exc
        info = ModelInfo("causal", CAUSAL_PROMPT, model_cfg.max_length)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, info


def apply_lora(model: Any, lora: LoraConfig, architecture: str) -> Any:
    """Wrap the model with LoRA adapters; a clear ConfigError when ``peft`` is not installed."""
    try:
        import peft
    except ImportError:
        raise ConfigError(
            "sql.lora needs the 'peft' package, which is not installed: "
            "pip install 'mlpipe[peft]' (or remove sql.lora to fine-tune all weights)"
        ) from None
    config = peft.LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="SEQ_2_SEQ_LM" if architecture == "seq2seq" else "CAUSAL_LM",
    )
    return peft.get_peft_model(model, config)


def peft_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("peft") is not None


@dataclass(frozen=True)
class Encoded:
    """One training example: token ids and labels (prompt tokens masked for causal LMs)."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


def encode(
    tokenizer: Any,
    info: ModelInfo,
    questions: Sequence[str],
    contexts: Sequence[str],
    answers: Sequence[str],
) -> list[Encoded]:
    """Causal: ``prompt + answer + eos`` with labels -100 on the prompt (loss on the answer only).

    Seq2seq: the prompt is the encoder input, ``answer`` the labels. Over-long rows lose the start
    of the prompt (causal) or its end (seq2seq); the answer is kept whole when it fits.
    """
    prompts = [info.format(q, c) for q, c in zip(questions, contexts, strict=True)]
    max_len = info.max_length
    if info.architecture == "seq2seq":
        enc = tokenizer(prompts)["input_ids"]
        lab = tokenizer(text_target=list(answers))["input_ids"]
        return [
            Encoded(list(p[:max_len]), list(a[:max_len]), len(p) > max_len or len(a) > max_len)
            for p, a in zip(enc, lab, strict=True)
        ]
    eos = tokenizer.eos_token_id
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(list(answers), add_special_tokens=False)["input_ids"]
    out = []
    for p, a in zip(p_ids, a_ids, strict=True):
        answer = [*a, eos][: max(max_len - 8, 1)]
        room = max_len - len(answer)
        prompt = list(p[-room:]) if room > 0 else []
        out.append(
            Encoded(prompt + answer, [IGNORE] * len(prompt) + answer, len(p) + len(a) + 1 > max_len)
        )
    return out


def collate(examples: Sequence[Encoded], pad_id: int, architecture: str) -> dict[str, Any]:
    """Right-pad a batch: inputs with the pad id, labels with -100 (padding adds no loss)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    lab_width = width if architecture == "causal" else max(len(e.labels) for e in examples)
    labels = torch.full((len(examples), lab_width), IGNORE, dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, : len(e.input_ids)] = torch.as_tensor(e.input_ids, dtype=torch.long)
        mask[row, : len(e.input_ids)] = 1
        labels[row, : len(e.labels)] = torch.as_tensor(e.labels, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class SqlGenerator:
    """A loaded (or just trained) model that writes SQL for batches of questions."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        info: ModelInfo,
        *,
        batch_size: int = 32,
        max_new_tokens: int = 128,
        max_length: int | None = None,
    ) -> None:
        self.model, self.tokenizer, self.info = model, tokenizer, info
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        positions = _positions(model)
        limit = max_length or info.max_length
        if info.architecture == "causal" and positions is not None:
            limit = min(limit, max(positions - max_new_tokens, 8))
        self.max_prompt = limit
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def load(cls, model_dir: str | Path, **kwargs: Any) -> SqlGenerator:
        """A model directory written by mlpipe's text-to-sql training (safetensors only)."""
        from mlpipe.core.modeling import load_tokenizer, quiet_transformers

        quiet_transformers()
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        meta = json.loads((Path(model_dir) / TASK_FILE).read_text())
        info = ModelInfo(meta["architecture"], meta["prompt"], int(meta["max_length"]))
        auto = AutoModelForSeq2SeqLM if info.architecture == "seq2seq" else AutoModelForCausalLM
        model = auto.from_pretrained(str(model_dir), use_safetensors=True)
        model.eval()
        tokenizer = load_tokenizer(model_dir)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(model, tokenizer, info, **kwargs)

    def generate(self, questions: Sequence[str], contexts: Sequence[str]) -> list[str]:
        """Greedy SQL for each (question, context), in input order; length-sorted batches."""
        import torch

        from mlpipe.core.progress import advance

        prompts = [self.info.format(q, c) for q, c in zip(questions, contexts, strict=True)]
        seq2seq = self.info.architecture == "seq2seq"
        ids = self.tokenizer(prompts, add_special_tokens=seq2seq)["input_ids"]
        ids = [list(x[: self.max_prompt]) if seq2seq else list(x[-self.max_prompt :]) for x in ids]
        out = [""] * len(ids)
        with torch.inference_mode():
            for batch in sorted_batches([len(x) for x in ids], self.batch_size):
                rows = [ids[i] for i in batch]
                width = max(len(r) for r in rows)
                inp = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, seq in enumerate(rows):  # left padding: generation continues every row
                    start = 0 if seq2seq else width - len(seq)
                    inp[r, start : start + len(seq)] = torch.as_tensor(seq, dtype=torch.long)
                    mask[r, start : start + len(seq)] = 1
                gen = self.model.generate(
                    input_ids=inp,
                    attention_mask=mask,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    pad_token_id=self.pad_id,
                    eos_token_id=self.tokenizer.eos_token_id,
                )
                new = gen if seq2seq else gen[:, width:]
                texts = self.tokenizer.batch_decode(new.tolist(), skip_special_tokens=True)
                for i, text in zip(batch, texts, strict=True):
                    out[i] = text.strip()
                advance(len(batch), samples=len(batch))  # no-op outside a progress loop
        return out


def _positions(model: Any) -> int | None:
    config = model.config
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None
