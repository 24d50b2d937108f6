"""What a reference answers for itself, for any orchestrator's UI: its artifact type, whether its
metrics are its own, its dashboard numbers and (labelled predictions) its confusion matrix."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlpipe.core import refs
from mlpipe.core.refs import DatasetRef, ModelRef, PredictionsRef, ResultsRef


def test_kinds_say_what_they_are_and_whose_metrics_they_carry() -> None:
    kinds = ("DatasetRef", "ModelRef", "ArtifactsRef", "ModelVersionRef", "PredictionsRef",
             "ResultsRef")
    assert {k: (getattr(refs, k).artifact_type, getattr(refs, k).has_own_metrics())
            for k in kinds} == {
        "DatasetRef": ("dataset", False), "ModelRef": ("model", True),
        "ArtifactsRef": ("model", False), "ModelVersionRef": ("model", False),
        "PredictionsRef": ("dataset", True), "ResultsRef": ("dataset", True)}
    assert (refs.Ref.artifact_type, refs.Ref.has_own_metrics()) == ("artifact", False)


def test_gathered_predictions_report_all_rows_at_the_slowest_shards_pace() -> None:
    shards = [PredictionsRef(uri=f"/p{i}", sha256="s", rows=rows, model="m", throughput=tput)
              for i, (rows, tput) in enumerate([(60, 30.0), (40, 10.0)])]
    assert shards[0].metric_values() == {"rows": 60.0, "throughput": 30.0}
    assert refs.ShardsRef.of(shards, "/all").metric_values() == {"rows": 100.0, "throughput": 25.0}
    assert ModelRef(uri="/m", sha256="s", metrics={"acc": 1}).metric_values() == {"acc": 1.0}


def test_results_count_true_by_predicted_label(tmp_path: Path) -> None:
    path = tmp_path / "predictions.parquet"
    pq.write_table(pa.table({"label": [0, 1, 1, 1], "pred_id": [0, 1, 0, 1]}), path)
    results = ResultsRef(uri=str(tmp_path), sha256="s", predictions_uri=str(path), rows=4,
                         model="m")
    data = DatasetRef(uri="/d", sha256="s", files={}, rows={}, columns=(), has_labels=True,
                      label_names=("neg", "pos"))
    unlabelled = data.model_copy(update={"has_labels": False})
    assert results.confusion_matrix([unlabelled, data]) == (["neg", "pos"], [[1, 0], [1, 2]])
    assert results.confusion_matrix([unlabelled]) is None
    assert ModelRef(uri="/m", sha256="s").confusion_matrix([data]) is None
