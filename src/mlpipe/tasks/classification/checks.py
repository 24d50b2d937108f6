"""The quality checks text-classification reports, declared per step, and its own check."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from mlpipe.core.quality import at_least
from mlpipe.core.refs import CheckResult

#: step name -> the checks that step's reference carries (``ClassificationTask.checks``)
CHECKS: Mapping[str, tuple[str, ...]] = {
    "load_training_data": (
        "train_not_empty", "eval_not_empty", "no_empty_texts", "label_balance",
        "duplicate_texts", "train_eval_overlap",
    ),
    "train_model": ("min_eval_accuracy",),
    "load_inference_data": ("data_not_empty", "no_empty_texts", "duplicate_texts"),
}  # fmt: skip


def check_label_balance(
    labels: Sequence[int], label_names: Sequence[str], min_fraction: float = 0.1
) -> CheckResult:
    """Blocking when a class is missing entirely (nothing to learn); a warning when rare."""
    counts = Counter(labels)
    total = max(len(labels), 1)
    fractions = {name: counts.get(i, 0) / total for i, name in enumerate(label_names)}
    smallest = min(fractions.values())
    missing = [name for name, f in fractions.items() if f == 0]
    shown = ", ".join(f"{n}={f:.1%}" for n, f in fractions.items())
    if missing:
        return CheckResult(
            name="label_balance",
            passed=False,
            blocking=True,
            value=smallest,
            threshold=min_fraction,
            message=f"no examples of {missing}: {shown}",
        )
    return at_least("label_balance", smallest, min_fraction, shown)
