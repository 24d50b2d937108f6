"""The nine steps as plain functions: ``step(config, ctx, **input_refs) -> Ref``.

Each step reads only its config and the artifacts its input references point to, and writes only
under ``ctx.out_dir``; heavy libraries are imported inside the steps that need them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mlpipe.core import artifacts, progress
from mlpipe.core.config import InferenceConfig, TrainingConfig
from mlpipe.core.errors import DataError
from mlpipe.core.hashing import sha256_file, sha256_json
from mlpipe.core.pipeline import StepContext
from mlpipe.core.refs import (
    ArtifactsRef,
    DatasetRef,
    ModelRef,
    ModelVersionRef,
    PredictionsRef,
    ResultsRef,
    ShardsRef,
)
from mlpipe.core.registry import open_registry
from mlpipe.core.task import get_task
from mlpipe.core.tracking import TrackedStep, Tracker, open_tracker

if TYPE_CHECKING:
    import pyarrow as pa

# -- training -----------------------------------------------------------------------------------


def load_training_data(config: TrainingConfig, ctx: StepContext) -> DatasetRef:
    """Read the configured source, validate schema and labels, split, write parquet, run checks."""
    return get_task(config.task).load_training_data(config, ctx.out_dir)


def train_model(config: TrainingConfig, ctx: StepContext, dataset: DatasetRef) -> ModelRef:
    """Fine-tune the base model on the train split; evaluate on the eval split."""
    task = get_task(config.task)
    model_dir = ctx.out_dir / "model"
    with _tracker(config, ctx, job_type="train") as tracker:
        tracker.summary({"data_sha256": dataset.sha256, "rows": dataset.rows})
        with progress.step(ctx.step):
            metrics, checks = task.train(config, dataset, model_dir, on_log=tracker.log)
        tracker.log({f"final/{k}": v for k, v in metrics.items()})
        tracker.summary(metrics)
    return ModelRef(
        uri=str(model_dir),
        sha256=sha256_file(model_dir / "model.safetensors"),
        metrics=metrics,
        base=config.model.base,
        checks=checks,
    )


def _tracker(config: TrainingConfig | InferenceConfig, ctx: StepContext, job_type: str) -> Tracker:
    """A tracking run named after the mlpipe run, tagged with the runner and its own run id."""
    return open_tracker(config.tracking, TrackedStep(
        name=f"{ctx.pipeline}-{ctx.run_id}-{ctx.step}",
        job_type=job_type,
        config=config.model_dump(mode="json", exclude={"cluster"}),
        tags={"mlpipe_run_id": ctx.run_id, "pipeline": ctx.pipeline, "step": ctx.step, **ctx.tags},
        home=ctx.home,
    ))


def training_provenance(config: TrainingConfig, dataset: DatasetRef) -> dict[str, object]:
    """What produced a model: the data hash and the config sections that shape the weights."""
    from mlpipe.core.task import provenance_sections
    from mlpipe.version import __version__

    sections = set(provenance_sections(config.task))  # the task says what shapes its weights
    shaping = config.model_dump(mode="json", include=sections)
    return {
        "task": config.task,
        "data_sha256": dataset.sha256,
        "config_sha256": sha256_json(shaping),
        "base_model": config.model.base,
        "label_names": list(dataset.label_names),
        "rows": dataset.rows,
        "config": shaping,
        "mlpipe_version": __version__,
    }


def save_artifacts(
    config: TrainingConfig, ctx: StepContext, model: ModelRef, dataset: DatasetRef
) -> ArtifactsRef:
    """Assemble weights, tokenizer, config, metrics and a checksummed manifest in one directory."""
    from mlpipe.core.training import TIMING_METRICS

    out = ctx.out_dir / "artifacts"
    metrics = {k: v for k, v in model.metrics.items() if k not in TIMING_METRICS}
    derive = None
    if config.artifacts.onnx:
        derive = getattr(get_task(config.task), "export_onnx", None)
        if derive is None:
            from mlpipe.core.errors import ConfigError

            raise ConfigError(
                f"artifacts.onnx: the {config.task} task has no ONNX export (a task declares "
                "one with export_onnx); set artifacts.onnx: false"
            )
    manifest = artifacts.assemble(
        Path(model.uri),
        out,
        metrics=metrics,
        provenance=training_provenance(config, dataset),
        derive=derive,
    )
    share_files(Path(model.uri), out, manifest["files"])
    return ArtifactsRef(
        uri=str(out),
        sha256=artifacts.manifest_sha256(out),
        files=manifest["files"],
        metrics=metrics,
    )


def share_files(source: Path, copy: Path, files: dict[str, str]) -> int:
    """Replace each file of ``copy`` by a hardlink to the same file in ``source`` when both hold
    exactly the bytes ``files`` records (checked by sha256): one copy of the weights on disk.
    Where the filesystem cannot link, the copy stays; returns how many files were linked."""
    import os
    import uuid

    linked = 0
    for rel, digest in files.items():
        src, dst = source / rel, copy / rel
        if rel in ("metrics.json", "provenance.json") or not src.is_file() or not dst.is_file():
            continue
        if os.path.samefile(src, dst):
            linked += 1
            continue
        if sha256_file(src) != digest or sha256_file(dst) != digest:
            continue
        tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.link")
        try:
            os.link(src, tmp)
            tmp.replace(dst)
            linked += 1
        except OSError:
            tmp.unlink(missing_ok=True)
    return linked


def data_source(config: TrainingConfig) -> str:
    """Where the training rows came from, in words: ``files:/data/x.csv``, ``hub:glue/sst2``."""
    data = config.data
    if data.source == "files":
        return f"files:{data.path}"
    if data.source == "hub":
        return f"hub:{data.hub.name}" + (f"/{data.hub.subset}" if data.hub.subset else "")
    gen = data.generated
    return f"generated:n_samples={gen.n_samples},seed={gen.seed}"


def upload_model(
    config: TrainingConfig, ctx: StepContext, artifacts_ref: ArtifactsRef
) -> ModelVersionRef:
    """Publish the artifact directory as a new registry version with the configured aliases
    (moved only to a better version when ``registry.promote_if`` says so), with its lineage."""
    registry = open_registry(config.registry, ctx.home)
    lineage = {
        "run_id": ctx.run_id,
        "pipeline": ctx.pipeline,
        "runner": ctx.tags.get("runner", ""),
        "orchestrator_run_id": ctx.tags.get("orchestrator_run_id") or ctx.run_id,
        "data_source": data_source(config),
        **ctx.tags,
    }
    return registry.publish(
        Path(artifacts_ref.uri), config.registry.model_name, config.registry.aliases, lineage
    )


# -- inference ----------------------------------------------------------------------------------


def load_inference_data(config: InferenceConfig, ctx: StepContext) -> DatasetRef:
    """Stream the input rows into parquet (labels optional), chunk by chunk."""
    config = with_model_labels(config, ctx.home)
    return get_task(config.task).load_inference_data(config, ctx.out_dir)


def model_label_names(model_dir: Path) -> list[str]:
    """The label names a saved model was trained with (``provenance.json``, else the model
    config's ``id2label``); [] when it has none (text-to-sql) or they cannot be read."""
    import json

    try:
        names = json.loads((model_dir / "provenance.json").read_text()).get("label_names")
        if isinstance(names, list) and len(names) >= 2:
            return [str(n) for n in names]
    except (OSError, ValueError, AttributeError):
        pass
    try:
        id2label = json.loads((model_dir / "config.json").read_text()).get("id2label") or {}
        return [str(id2label[k]) for k in sorted(id2label, key=int)] if len(id2label) >= 2 else []
    except (OSError, ValueError, AttributeError, KeyError):
        return []


def with_model_labels(config: InferenceConfig, home: Path) -> InferenceConfig:
    """``data.label_names`` from the model when the config leaves them at their default, so an
    inference config need not repeat what the model knows; a config that sets them wins."""
    from mlpipe.core.config import DataConfig

    default = DataConfig.model_fields["label_names"].default
    if list(config.data.label_names) != list(default):
        return config
    try:
        model_dir = Path(open_registry(config.registry, home).resolve(config.inference.model).uri)
    except Exception:  # best effort: the load_model step reports a bad reference, by name
        return config
    names = model_label_names(model_dir)
    if not names or names == list(default):
        return config
    data = config.data.model_copy(update={"label_names": names})
    return config.model_copy(update={"data": data})


def split_inference_data(
    config: InferenceConfig, ctx: StepContext, dataset: DatasetRef
) -> ShardsRef:
    """Cut the rows into ``inference.shards`` shards, in order, at chunk boundaries."""
    from mlpipe.core.data import plan_shards, split_dataset

    settings = config.inference
    per_shard = plan_shards(
        dataset.rows.get("data", 0),
        settings.shards,
        chunk_rows=settings.chunk_rows,
        rows_per_shard=settings.rows_per_shard,
    )
    shards = split_dataset(
        dataset, ctx.out_dir, chunks_per_shard=per_shard, chunk_rows=settings.chunk_rows
    )
    return ShardsRef.of(shards, uri=str(ctx.out_dir))


def fetch_model(config: InferenceConfig, ctx: StepContext) -> ModelVersionRef:
    """The ``load_model`` step: resolve ``name:alias`` or ``name:vN`` in the registry and verify
    every file's checksum (``mlpipe.load_model`` is the in-memory predictor, not this)."""
    registry = open_registry(config.registry, ctx.home)
    return registry.fetch(config.inference.model, ctx.out_dir / "model")


def run_inference(
    config: InferenceConfig, ctx: StepContext, dataset: DatasetRef, model: ModelVersionRef
) -> PredictionsRef:
    """Predict every row in batches, in bounded memory, in input order (the task decides how)."""
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    out = ctx.out_dir / "predictions.parquet"
    with progress.step(ctx.step):
        rows, seconds = get_task(config.task).predict_file(config, Path(model.uri), dataset, out)
    return PredictionsRef(
        uri=str(out),
        sha256=sha256_file(out),
        rows=rows,
        model=model.spec,
        throughput=rows / seconds if seconds else 0.0,
    )


def _gathered(predictions: PredictionsRef | ShardsRef) -> list[PredictionsRef]:
    parts = predictions.refs if isinstance(predictions, ShardsRef) else [predictions]
    if not parts or not all(isinstance(p, PredictionsRef) for p in parts):
        raise DataError(f"{predictions.uri}: expected predictions, got {predictions.kind}")
    return [p for p in parts if isinstance(p, PredictionsRef)]


def _rows_of(paths: list[Path], chunk_rows: int) -> Iterator[pa.Table]:
    """The rows of several parquet files, in order, as tables of ``chunk_rows`` rows (the last
    may be shorter): the shards' predictions read as one file."""
    import pyarrow as pa

    from mlpipe.core.data import iter_chunks

    pending: list[pa.Table] = []
    held = 0
    for path in paths:
        for table in iter_chunks(path, chunk_rows):
            pending.append(table)
            held += len(table)
            while held >= chunk_rows:
                whole = pa.concat_tables(pending)
                yield whole.slice(0, chunk_rows).combine_chunks()
                rest = whole.slice(chunk_rows)
                pending, held = [rest], len(rest)
    if held:
        yield pa.concat_tables(pending).combine_chunks()


def save_results(
    config: InferenceConfig,
    ctx: StepContext,
    dataset: DatasetRef,
    predictions: PredictionsRef | ShardsRef,
) -> ResultsRef:
    """Join predictions (one file, or the shards' gathered in order) to the input rows (order
    kept), compute metrics if labels exist, write."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlpipe.core.data import iter_chunks

    parts = _gathered(predictions)
    task = get_task(config.task)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    out = ctx.out_dir / "predictions.parquet"
    tmp = out.with_name(out.name + ".tmp")
    accumulator = task.results(config, dataset)
    rows = 0
    chunk = config.inference.chunk_rows
    pred_chunks = _rows_of([Path(p.uri) for p in parts], chunk)
    writer: pq.ParquetWriter | None = None
    try:
        for inputs in iter_chunks(Path(dataset.uri) / dataset.files["data"], chunk):
            out_cols = next(pred_chunks, None)
            if out_cols is None or len(out_cols) != len(inputs):
                raise DataError(f"{predictions.uri}: fewer predictions than input rows")
            joined = inputs
            for name in task.prediction_columns:
                joined = joined.append_column(name, out_cols.column(name))
            if writer is None:
                writer = pq.ParquetWriter(tmp, joined.schema)
            writer.write_table(joined)
            rows += len(joined)
            accumulator.update(inputs, out_cols)
        if writer is None:
            pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp)
        else:
            writer.close()
        predicted = sum(p.rows for p in parts)
        if rows != predicted or next(pred_chunks, None) is not None:
            raise DataError(f"{predictions.uri}: {predicted} predictions for {rows} rows")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    # rows per second of predicting; shards ran side by side, so the slowest one's time counts
    slowest = max((p.rows / p.throughput for p in parts if p.throughput), default=0.0)
    throughput = rows / slowest if slowest else 0.0
    model = parts[0].model
    metrics: dict[str, float] = {"rows": float(rows), "throughput": throughput}
    if dataset.has_labels:
        metrics.update(accumulator.metrics())
    artifacts.write_json(ctx.out_dir / "metrics.json", {"model": model, **metrics})
    with _tracker(config, ctx, job_type="inference") as tracker:
        tracker.log({f"inference/{k}": v for k, v in metrics.items()})
        tracker.summary({"model": model, **metrics})
    return ResultsRef(
        uri=str(ctx.out_dir),
        sha256=sha256_file(out),
        predictions_uri=str(out),
        rows=rows,
        model=model,
        metrics=metrics,
    )
