"""Data-quality checks as plain functions returning ``CheckResult``s.

Adapters surface these (Dagster as asset checks, Airflow and kfp in logs and metadata); the local
runner stops on a failed blocking check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from mlpipe.core.refs import CheckResult

# The checks each step's reference carries; orchestrators that declare checks up front read these.
TRAINING_DATA_CHECKS = (
    "train_not_empty", "eval_not_empty", "no_empty_texts", "label_balance", "duplicate_texts",
    "train_eval_overlap",
)  # fmt: skip
INFERENCE_DATA_CHECKS = ("data_not_empty", "no_empty_texts", "duplicate_texts")
MODEL_CHECKS = ("min_eval_accuracy",)


def check_not_empty(rows: int, split: str) -> CheckResult:
    return CheckResult(
        name=f"{split}_not_empty",
        passed=rows > 0,
        blocking=True,
        value=float(rows),
        message=f"{rows} rows in {split}" if rows else f"no rows in {split}: check the input file",
    )


def check_empty_texts(empty: int, rows: int) -> CheckResult:
    return CheckResult(
        name="no_empty_texts",
        passed=empty == 0,
        blocking=True,
        value=float(empty),
        threshold=0.0,
        message=f"{empty} of {rows} texts are empty or whitespace"
        + ("" if empty == 0 else ": remove or fill them"),
    )


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
    return CheckResult(
        name="label_balance",
        passed=smallest >= min_fraction,
        blocking=False,
        value=smallest,
        threshold=min_fraction,
        message=shown,
    )


def check_duplicates(texts: Iterable[str], rows: int, max_fraction: float = 0.2) -> CheckResult:
    unique = len(set(texts))
    fraction = 1 - unique / rows if rows else 0.0
    return CheckResult(
        name="duplicate_texts",
        passed=fraction <= max_fraction,
        blocking=False,
        value=fraction,
        threshold=max_fraction,
        message=f"{rows - unique} duplicate texts ({fraction:.1%})",
    )


def check_duplicate_count(duplicates: int, rows: int, what: str) -> CheckResult:
    """Duplicates in streamed inference data: reported, never blocking (predicting twice is ok)."""
    return CheckResult(
        name="duplicate_texts", passed=True, blocking=False,
        value=duplicates / rows if rows else 0.0, message=f"{duplicates} {what}",
    )  # fmt: skip


def check_overlap(
    train: Iterable[str], eval_: Sequence[str], max_fraction: float = 0.05
) -> CheckResult:
    """Eval texts also seen in training inflate eval metrics."""
    seen = set(train)
    overlap = sum(1 for t in eval_ if t in seen)
    fraction = overlap / len(eval_) if eval_ else 0.0
    return CheckResult(
        name="train_eval_overlap",
        passed=fraction <= max_fraction,
        blocking=False,
        value=fraction,
        threshold=max_fraction,
        message=f"{overlap} eval texts also in train ({fraction:.1%})",
    )


def check_min_accuracy(
    accuracy: float, floor: float | None, what: str = "eval accuracy"
) -> CheckResult:
    """Model-quality gate: eval accuracy must reach the configured floor (if any).

    For text-to-sql the accuracy is execution accuracy (``what`` says so in the message).
    """
    if floor is None:
        return CheckResult(
            name="min_eval_accuracy",
            passed=True,
            blocking=True,
            value=accuracy,
            message=f"{what} {accuracy:.4f}; no floor configured",
        )
    return CheckResult(
        name="min_eval_accuracy",
        passed=accuracy >= floor,
        blocking=True,
        value=accuracy,
        threshold=floor,
        message=f"{what} {accuracy:.4f}, floor {floor:.4f}",
    )


def check_empty_fields(what: str, empty: int, rows: int) -> CheckResult:
    """``no_empty_texts`` for rows with several text fields (text-to-sql: question, answer...)."""
    return CheckResult(
        name="no_empty_texts",
        passed=empty == 0,
        blocking=True,
        value=float(empty),
        threshold=0.0,
        message=f"{empty} of {rows} rows have {what}"
        + ("" if empty == 0 else ": remove or fill them"),
    )


def check_gold_sql_runs(failed: int, checked: int, max_fraction: float = 0.1) -> CheckResult:
    """Gold SQL that does not run on its own context can never execution-match: a data problem."""
    fraction = failed / checked if checked else 0.0
    return CheckResult(
        name="gold_sql_runs",
        passed=fraction <= max_fraction,
        blocking=False,
        value=fraction,
        threshold=max_fraction,
        message=f"{failed} of {checked} gold queries checked fail on their context "
        f"({fraction:.1%})",
    )


def check_not_applicable(name: str, why: str) -> CheckResult:
    """A declared check that means nothing for this task: passes, says why (orchestrators that
    declare checks up front, like Dagster, expect every declared one)."""
    return CheckResult(name=name, passed=True, blocking=False, message=f"not applicable: {why}")


def check_truncated(truncated: int, rows: int, max_fraction: float = 0.01) -> CheckResult:
    """Rows longer than model.max_length lose part of their prompt: raise max_length if many do."""
    fraction = truncated / rows if rows else 0.0
    return CheckResult(
        name="truncated_rows",
        passed=fraction <= max_fraction,
        blocking=False,
        value=fraction,
        threshold=max_fraction,
        message=f"{truncated} of {rows} training rows exceed model.max_length ({fraction:.1%})",
    )
