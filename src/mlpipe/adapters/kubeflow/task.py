"""What every generated kfp component body calls, inside the component's own process or pod.

A component's source is serialized into the pipeline YAML, so its body is only an import and
a call to :func:`run_task`; this module (installed with mlpipe, in the venv or the image) turns
kfp artifacts into mlpipe references, calls core's ``execute`` on the task's job and
writes the result back as artifacts. It holds no ML logic and imports nothing from kfp: it only
touches the artifact objects kfp hands it (``.path``, ``.metadata``, ``log_metric``,
``log_confusion_matrix``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def run_task(
    pipeline: str,
    task: str,
    config_json: str,
    home: str,
    run_id: str,
    orchestrator_run_id: str,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    shard: int | None = None,
    metrics: Any = None,
    confusion: Any = None,
) -> list[int] | None:
    """Run one task of core's plan as a kfp component: ``execute`` its job.

    ``pipeline`` is the pipeline's portable ref (a registered name or ``module:ATTR``).
    ``inputs`` maps upstream steps to kfp input artifacts whose file holds the reference JSON;
    ``outputs`` maps each of the task's steps to the artifact its reference goes to;
    ``metrics`` (kfp ``Metrics``) and ``confusion`` (kfp ``ClassificationMetrics``) get the
    step's numbers. A ``shard_list`` task returns the shard numbers (for ``ParallelFor``). On
    failure the step's ``error.json`` holds the cause and the process exits with its exit code
    (2 for bad input, such as a map step whose upstream made no shards).
    """
    from mlpipe.core.config import config_from_json
    from mlpipe.core.errors import MlpipeError
    from mlpipe.core.execution.execute import execute
    from mlpipe.core.execution.plan import plan
    from mlpipe.core.execution.teardown import skip_teardown_at_exit
    from mlpipe.core.paths import safe_run_id
    from mlpipe.core.pipeline import resolve_pipeline
    from mlpipe.core.refs import ref_from_json

    started = time.perf_counter()
    run_id = safe_run_id(run_id)
    refs = {name: Path(art.path).read_text() for name, art in inputs.items()}
    try:
        pipe = resolve_pipeline(pipeline)
        config = config_from_json(config_json, pipe.config_type)
        spec = plan(pipe, config).task(task)
        job = spec.job(run_id, home=home or None, runner="kubeflow", shard=shard,
                       orchestrator_run_id=orchestrator_run_id or run_id)
        result = execute(job, pipeline=pipe, config=config,
                         inputs={k: ref_from_json(v) for k, v in refs.items()})
    except MlpipeError as exc:  # also a bad config or missing input, raised before the step ran
        print(f"mlpipe: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from exc
    skip_teardown_at_exit()  # this process is the component's own (kfp.local's or a pod)
    if spec.kind == "shard_list":
        return list(result.shards)
    for step, run in result.runs.items():
        ref = run.ref.model_dump(mode="json")
        out = outputs[step]
        Path(out.path).parent.mkdir(parents=True, exist_ok=True)
        Path(out.path).write_text(json.dumps(ref, indent=2))
        out.metadata.update(_ref_metadata(ref))
        out.metadata.update({"step": step, "run_id": run_id, "seconds": run.seconds,
                             "cached": run.cached,
                             "component_seconds": time.perf_counter() - started})
        if spec.kind == "group":
            out.metadata["fused_task"] = spec.name
        if metrics is not None:
            for name, value in ref_metrics(ref).items():
                metrics.log_metric(name, value)
        if confusion is not None:
            dataset = next((json.loads(r) for r in refs.values()
                            if json.loads(r).get("kind") == "dataset"), None)
            matrix = confusion_matrix(ref, dataset)
            if matrix is not None:
                confusion.log_confusion_matrix(*matrix)
    return None


def ref_metrics(ref: Mapping[str, Any]) -> dict[str, float]:
    """The numbers a reference carries that belong on a dashboard (accuracy, F1, loss, speed)."""
    metrics = {k: float(v) for k, v in (ref.get("metrics") or {}).items()}
    shards = [s for s in ref.get("shards") or () if s.get("kind") == "predictions"]
    if shards:  # gathered predictions: all rows, at the pace of the slowest shard
        rows = sum(float(s["rows"]) for s in shards)
        slowest = max((s["rows"] / s["throughput"] for s in shards if s["throughput"]),
                      default=0.0)
        metrics.update(rows=rows, throughput=rows / slowest if slowest else 0.0)
    if ref.get("kind") == "predictions":
        metrics.update(rows=float(ref["rows"]), throughput=float(ref["throughput"]))
    return metrics


def confusion_matrix(
    results: Mapping[str, Any], dataset: Mapping[str, Any] | None
) -> tuple[list[str], list[list[int]]] | None:
    """Counts of (true label, predicted label) from the saved predictions, when labels exist.

    Reads only the two integer columns, batch by batch, so it stays cheap on large outputs.
    """
    if results.get("kind") != "results" or not dataset or not dataset.get("has_labels"):
        return None
    import pyarrow.parquet as pq

    names = list(dataset["label_names"])
    matrix = [[0] * len(names) for _ in names]
    file = pq.ParquetFile(results["predictions_uri"])
    if not {"label", "pred_id"} <= set(file.schema_arrow.names):
        return None
    for batch in file.iter_batches(columns=["label", "pred_id"], batch_size=65_536):
        cols = batch.to_pydict()
        for true, pred in zip(cols["label"], cols["pred_id"], strict=True):
            matrix[int(true)][int(pred)] += 1
    return names, matrix


def _ref_metadata(ref: Mapping[str, Any]) -> dict[str, Any]:
    """What the KFP UI shows for an artifact: its kind, hash, where it is, sizes, metrics."""
    keep = ("kind", "uri", "sha256", "rows", "columns", "has_labels", "label_names", "name",
            "version", "aliases", "model", "throughput", "metrics", "predictions_uri")
    meta = {k: ref[k] for k in keep if k in ref}
    checks = ref.get("checks") or ()
    if checks:
        meta["checks"] = {c["name"]: bool(c["passed"]) for c in checks}
    return json.loads(json.dumps(meta))  # tuples -> lists, so the metadata is plain JSON

