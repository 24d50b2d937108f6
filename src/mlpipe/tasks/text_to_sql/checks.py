"""The quality checks text-to-sql reports, declared per step, and its own check.

Its rows have no labels, so there is no ``label_balance``; ``gold_sql_runs`` (training data) and
``truncated_rows`` (training) are its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlpipe.core.quality import fraction_at_most
from mlpipe.core.refs import CheckResult

#: step name -> the checks that step's reference carries (``TextToSqlTask.checks``)
CHECKS: Mapping[str, tuple[str, ...]] = {
    "load_training_data": (
        "train_not_empty", "eval_not_empty", "no_empty_texts", "duplicate_texts",
        "train_eval_overlap", "gold_sql_runs",
    ),
    "train_model": ("min_eval_accuracy", "truncated_rows"),
    "load_inference_data": ("data_not_empty", "no_empty_texts", "duplicate_texts"),
}  # fmt: skip


def check_gold_sql_runs(failed: int, checked: int, max_fraction: float = 0.1) -> CheckResult:
    """Gold SQL that does not run on its own context can never execution-match: a data problem."""
    return fraction_at_most(
        "gold_sql_runs", failed, checked, max_fraction,
        f"{failed} of {checked} gold queries checked fail on their context ({{fraction:.1%}})")
