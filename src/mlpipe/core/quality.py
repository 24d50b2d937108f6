"""Data-quality checks as plain functions returning ``CheckResult``s.

These are the task-agnostic ones; a task adds its own (``label_balance`` for classification,
``gold_sql_runs`` for text-to-sql) and declares per step which it reports (``Task.checks``).
Adapters surface them (Dagster as asset checks, Airflow and kfp in logs and metadata); the local
runner stops on a failed blocking check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mlpipe.core.refs import CheckResult


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
