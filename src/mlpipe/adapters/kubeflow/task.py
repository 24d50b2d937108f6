"""What every generated kfp component body calls, inside the component's own process or pod.

A component's source is serialized into the pipeline YAML, so its body is only an import and a
call to :func:`run_component`; this module (installed with mlpipe, in the venv or the image) turns
kfp artifacts into mlpipe references, calls ``execute_step`` and writes the result back as
artifacts. It holds no ML logic and imports nothing from kfp: it only touches the artifact
objects kfp hands it (``.path``, ``.metadata``, ``log_metric``, ``log_confusion_matrix``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def run_component(
    pipeline: str,
    step: str,
    config_json: str,
    home: str,
    run_id: str,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    orchestrator_run_id: str = "",
    shard: int | None = None,
    gather: Sequence[Any] | None = None,
) -> None:
    """Run one mlpipe step as a kfp component.

    ``pipeline`` is the pipeline's portable ref (a registered name or ``module:ATTR``).
    ``inputs`` maps the step's argument names to kfp input artifacts whose file holds the
    upstream reference JSON; ``outputs`` has ``ref`` (the step's reference) and optionally
    ``metrics`` (kfp ``Metrics``) and ``confusion_matrix`` (kfp ``ClassificationMetrics``).
    On failure ``execute_step`` has recorded the cause in the step's ``error.json``; the process
    exits with the cause's exit code (2 for bad input), as ``mlpipe step`` does. A map step runs
    as one component per shard (``shard``) inside a ``ParallelFor``, then once more with
    ``gather`` (the shards' collected outputs) to gather them.
    """
    from mlpipe.core.errors import MlpipeError
    from mlpipe.core.execution.step import execute_gather, execute_step
    from mlpipe.core.execution.teardown import skip_teardown_at_exit
    from mlpipe.core.paths import safe_run_id

    started = time.perf_counter()
    run_id = safe_run_id(run_id)
    refs = {name: Path(art.path).read_text() for name, art in inputs.items()}
    ref_out = outputs["ref"]
    try:
        if gather is not None:
            result = execute_gather(pipeline, step, home=home, run_id=run_id, count=len(gather))
        else:
            result = execute_step(
                pipeline,
                step,
                config_json,
                refs,
                home=home,
                run_id=run_id,
                tags={"runner": "kubeflow", "orchestrator_run_id": orchestrator_run_id or run_id},
                shard=shard,
            )
    except MlpipeError as exc:  # also a bad config or missing input, raised before the step ran
        print(f"mlpipe: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from exc
    ref = result["ref"]
    Path(ref_out.path).parent.mkdir(parents=True, exist_ok=True)
    Path(ref_out.path).write_text(json.dumps(ref, indent=2))
    ref_out.metadata.update(_ref_metadata(ref))
    ref_out.metadata.update(
        {
            "step": step,
            "run_id": run_id,
            "seconds": result["seconds"],
            "cached": result["cached"],
            "component_seconds": time.perf_counter() - started,
        }
    )
    if "metrics" in outputs:
        for name, value in ref_metrics(ref).items():
            outputs["metrics"].log_metric(name, value)
    if "confusion_matrix" in outputs:
        dataset = next(
            (json.loads(r) for r in refs.values() if json.loads(r).get("kind") == "dataset"), None
        )
        matrix = confusion_matrix(ref, dataset)
        if matrix is not None:
            outputs["confusion_matrix"].log_confusion_matrix(*matrix)
    skip_teardown_at_exit()  # this process is the component's own (kfp.local's or a pod)


def run_shard_list(pipeline: str, step: str, config_json: str, home: str, run_id: str,
                   orchestrator_run_id: str = "") -> list[int]:
    """A map step's ``shard_list`` task: core's plan and ``execute`` count the shards (a step
    whose upstream made no shards exits 2 naming it, recorded in its ``error.json``)."""
    from mlpipe.core.config import config_from_json
    from mlpipe.core.errors import MlpipeError
    from mlpipe.core.execution.execute import execute
    from mlpipe.core.execution.plan import plan
    from mlpipe.core.execution.teardown import skip_teardown_at_exit
    from mlpipe.core.paths import safe_run_id
    from mlpipe.core.pipeline import resolve_pipeline

    pipe = resolve_pipeline(pipeline)
    config = config_from_json(config_json, pipe.config_type)
    task = next(t for t in plan(pipe, config) if t.kind == "shard_list" and t.step == step)
    job = task.job(safe_run_id(run_id), home=home or None, runner="kubeflow",
                   orchestrator_run_id=orchestrator_run_id or run_id)
    try:
        shards = list(execute(job, pipeline=pipe, config=config).shards)
    except MlpipeError as exc:
        print(f"mlpipe: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from exc
    skip_teardown_at_exit()
    return shards


def run_group_component(
    pipeline: str,
    steps: tuple[str, ...],
    config_json: str,
    home: str,
    run_id: str,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    orchestrator_run_id: str = "",
) -> None:
    """Run a fused group (``runtime.fuse``) as one kfp component: ``inputs`` maps each upstream
    step outside the group to its artifact, ``outputs`` each of the group's steps to its own
    output artifact, which holds the step's reference and names the step in its metadata."""
    from mlpipe.core.errors import MlpipeError
    from mlpipe.core.execution.group import execute_group
    from mlpipe.core.execution.teardown import skip_teardown_at_exit
    from mlpipe.core.paths import safe_run_id

    run_id = safe_run_id(run_id)
    upstream = {name: Path(art.path).read_text() for name, art in inputs.items()}
    try:
        results = execute_group(
            pipeline, steps, config_json, upstream, home=home, run_id=run_id,
            tags={"runner": "kubeflow", "orchestrator_run_id": orchestrator_run_id or run_id},
        )
    except MlpipeError as exc:
        print(f"mlpipe: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from exc
    for step, result in results.items():
        out = outputs[step]
        Path(out.path).parent.mkdir(parents=True, exist_ok=True)
        Path(out.path).write_text(json.dumps(result["ref"], indent=2))
        out.metadata.update(_ref_metadata(result["ref"]))
        out.metadata.update({"step": step, "fused_task": "__".join(steps), "run_id": run_id,
                             "seconds": result["seconds"], "cached": result["cached"]})
    skip_teardown_at_exit()


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
    keep = (
        "kind",
        "uri",
        "sha256",
        "rows",
        "columns",
        "has_labels",
        "label_names",
        "name",
        "version",
        "aliases",
        "model",
        "throughput",
        "metrics",
        "predictions_uri",
    )
    meta = {k: ref[k] for k in keep if k in ref}
    checks = ref.get("checks") or ()
    if checks:
        meta["checks"] = {c["name"]: bool(c["passed"]) for c in checks}
    return json.loads(json.dumps(meta))  # tuples -> lists, so the metadata is plain JSON

