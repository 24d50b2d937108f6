"""``task: text-classification``: a sequence classifier on (text, label) rows."""

from mlpipe.tasks.classification.task import ClassificationTask

__all__ = ["ClassificationTask"]
