"""Classification metrics from a confusion matrix, so they can be accumulated chunk by chunk."""

from __future__ import annotations

from collections.abc import Sequence


class Confusion:
    """A running confusion matrix: memory is O(labels²), however many rows stream through."""

    def __init__(self, num_labels: int) -> None:
        self.num_labels = num_labels
        self.counts = [[0] * num_labels for _ in range(num_labels)]

    def update(self, labels: Sequence[int], preds: Sequence[int]) -> None:
        for truth, pred in zip(labels, preds, strict=True):
            self.counts[truth][pred] += 1

    def metrics(self) -> dict[str, float]:
        """Accuracy and F1 (positive-class F1 for two labels, macro F1 otherwise)."""
        n = sum(map(sum, self.counts))
        if n == 0:
            return {"accuracy": 0.0, "f1": 0.0}
        correct = sum(self.counts[i][i] for i in range(self.num_labels))
        classes = [1] if self.num_labels == 2 else list(range(self.num_labels))
        f1s = []
        for c in classes:
            tp = self.counts[c][c]
            fp = sum(self.counts[t][c] for t in range(self.num_labels)) - tp
            fn = sum(self.counts[c]) - tp
            denom = 2 * tp + fp + fn
            f1s.append(2 * tp / denom if denom else 0.0)
        return {"accuracy": correct / n, "f1": sum(f1s) / len(f1s)}


def classification_metrics(
    labels: Sequence[int], preds: Sequence[int], num_labels: int
) -> dict[str, float]:
    confusion = Confusion(num_labels)
    confusion.update(labels, preds)
    return confusion.metrics()
