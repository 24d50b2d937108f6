"""Classification metrics without a scikit-learn dependency."""

from __future__ import annotations

from collections.abc import Sequence


def classification_metrics(
    labels: Sequence[int], preds: Sequence[int], num_labels: int
) -> dict[str, float]:
    """Accuracy and F1 (positive-class F1 for two labels, macro F1 otherwise)."""
    n = len(labels)
    if n == 0:
        return {"accuracy": 0.0, "f1": 0.0}
    accuracy = sum(int(a == b) for a, b in zip(labels, preds, strict=True)) / n
    classes = [1] if num_labels == 2 else list(range(num_labels))
    f1s = []
    for c in classes:
        tp = sum(1 for a, b in zip(labels, preds, strict=True) if a == c and b == c)
        fp = sum(1 for a, b in zip(labels, preds, strict=True) if a != c and b == c)
        fn = sum(1 for a, b in zip(labels, preds, strict=True) if a == c and b != c)
        denom = 2 * tp + fp + fn
        f1s.append(2 * tp / denom if denom else 0.0)
    return {"accuracy": accuracy, "f1": sum(f1s) / len(f1s)}
