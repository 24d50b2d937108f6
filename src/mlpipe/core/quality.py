"""Data-quality checks as plain functions returning ``CheckResult``s.

These are the task-agnostic ones; a task adds its own (``label_balance`` for classification,
``gold_sql_runs`` for text-to-sql) and declares per step which it reports (``Task.checks``).
Adapters surface them (Dagster as asset checks, Airflow and kfp in logs and metadata); the local
runner stops on a failed blocking check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mlpipe.core.refs import CheckResult


def at_most(
    name: str, value: float, limit: float, message: str, *, blocking: bool = False
) -> CheckResult:
    """A check that passes while ``value`` (a count or a fraction) stays at or under ``limit``."""
    return CheckResult(name=name, passed=value <= limit, blocking=blocking, value=value,
                       threshold=limit, message=message)


def at_least(
    name: str, value: float, floor: float, message: str, *, blocking: bool = False
) -> CheckResult:
    """A check that passes once ``value`` reaches ``floor``."""
    return CheckResult(name=name, passed=value >= floor, blocking=blocking, value=value,
                       threshold=floor, message=message)


def fraction_at_most(
    name: str, count: int, of: int, limit: float, message: str
) -> CheckResult:
    """``count`` of ``of`` rows (0 when there are none) at most ``limit``; ``message`` may use
    ``{fraction:.1%}``. Reported, never blocking."""
    fraction = count / of if of else 0.0
    return at_most(name, fraction, limit, message.format(fraction=fraction))


def check_not_empty(rows: int, split: str) -> CheckResult:
    return CheckResult(
        name=f"{split}_not_empty",
        passed=rows > 0,
        blocking=True,
        value=float(rows),
        message=f"{rows} rows in {split}" if rows else f"no rows in {split}: check the input file",
    )


def no_empty(empty: int, message: str) -> CheckResult:
    """``no_empty_texts``: blocking while any row has an empty text."""
    return at_most("no_empty_texts", float(empty), 0.0,
                   message + ("" if empty == 0 else ": remove or fill them"), blocking=True)


def check_empty_texts(empty: int, rows: int) -> CheckResult:
    return no_empty(empty, f"{empty} of {rows} texts are empty or whitespace")


def check_duplicates(texts: Iterable[str], rows: int, max_fraction: float = 0.2) -> CheckResult:
    unique = len(set(texts))
    fraction = 1 - unique / rows if rows else 0.0
    return at_most("duplicate_texts", fraction, max_fraction,
                   f"{rows - unique} duplicate texts ({fraction:.1%})")


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
    return fraction_at_most("train_eval_overlap", overlap, len(eval_), max_fraction,
                            f"{overlap} eval texts also in train ({{fraction:.1%}})")


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
    return at_least("min_eval_accuracy", accuracy, floor,
                    f"{what} {accuracy:.4f}, floor {floor:.4f}", blocking=True)


def check_empty_fields(what: str, empty: int, rows: int) -> CheckResult:
    """``no_empty_texts`` for rows with several text fields (text-to-sql: question, answer...)."""
    return no_empty(empty, f"{empty} of {rows} rows have {what}")


def check_truncated(truncated: int, rows: int, max_fraction: float = 0.01) -> CheckResult:
    """Rows longer than model.max_length lose part of their prompt: raise max_length if many do."""
    return fraction_at_most(
        "truncated_rows", truncated, rows, max_fraction,
        f"{truncated} of {rows} training rows exceed model.max_length ({{fraction:.1%}})")
