"""Map steps (#18): sharded inference writes the bytes one shard writes, on every runner; a failed
shard fails the run naming it and ``resume`` reruns only it; an unchanged rerun is served from
the cache shard by shard."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mlpipe.core import INFERENCE, TRAINING, Pipeline, Step, StepFailedError, load_config, plugins
from mlpipe.core.config import InferenceConfig
from mlpipe.core.data import plan_shards
from mlpipe.core.execution import PipelineRun, get_runner
from mlpipe.core.hashing import sha256_file
from tests.support import TINY_INFERENCE, TINY_TRAINING

#: 100 rows in chunks of 16: 7 chunks, so 2 or 3 shards of whole chunks
ROWS = ["data.generated.n_samples=100", "inference.chunk_rows=16"]


def _config(shards: int) -> InferenceConfig:
    cfg = load_config(TINY_INFERENCE, [*ROWS, f"inference.shards={shards}"])
    assert isinstance(cfg, InferenceConfig)
    return cfg


def _outputs(run: PipelineRun) -> dict[str, Any]:
    """What must not depend on the shard count: the predictions' bytes and the metrics."""
    report = Path(run.outputs["save_results"].uri)
    metrics = json.loads((report / "metrics.json").read_text())
    metrics.pop("throughput")  # a timing
    return {"predictions": sha256_file(report / "predictions.parquet"), "metrics": metrics}


# session, not module: this file's tests run in several xdist work units (one per runner)
@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("shards") / "home"
    cfg = load_config(TINY_TRAINING, ["data.generated.n_samples=300", "training.epochs=1"])
    get_runner("local").run(TRAINING, cfg, home=home)
    return home


# session, not module: this file's tests run in several xdist work units (one per runner)
@pytest.fixture(scope="session")
def one_shard(trained: Path) -> dict[str, Any]:
    run = get_runner("local").run(INFERENCE, _config(1), home=trained, use_cache=False)
    assert len(run.outputs["run_inference"].shards) == 1  # type: ignore[attr-defined]
    return _outputs(run)


def test_shards_are_cut_at_whole_chunks() -> None:
    assert plan_shards(100, 2, chunk_rows=16, rows_per_shard=1) == 4  # 7 chunks: 4 + 3
    assert plan_shards(100, 3, chunk_rows=16, rows_per_shard=1) == 3  # 3 + 3 + 1
    assert plan_shards(100, 50, chunk_rows=16, rows_per_shard=1) == 1  # never more than chunks
    assert plan_shards(100, "auto", chunk_rows=10, rows_per_shard=40) == 4  # 3 shards
    assert plan_shards(0, 4, chunk_rows=10, rows_per_shard=40) == 1


def test_a_map_step_maps_over_one_of_its_inputs() -> None:
    first = Step("a", lambda cfg, ctx: None, asset="a", description="")
    with pytest.raises(ValueError, match="maps over 'x'"):
        Pipeline("p", InferenceConfig, steps=(
            first, Step("b", lambda cfg, ctx, a: None, asset="b", description="",
                        inputs={"a": "a"}, map_over="x")))


@pytest.mark.slow
@pytest.mark.parametrize("runner", plugins.names("runner"))
def test_sharded_inference_equals_one_shard(
    runner: str, trained: Path, one_shard: dict[str, Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    os.makedirs(tmp_path / "dagster", exist_ok=True)
    run = get_runner(runner).run(INFERENCE, _config(3), home=trained, use_cache=False)
    assert _outputs(run) == one_shard
    gathered = run.outputs["run_inference"]
    assert [ref["rows"] for ref in gathered.shards] == [48, 48, 4]  # type: ignore[attr-defined]
    shards = sorted((run.run_dir / "run_inference").glob("shard-*"))
    assert [p.name for p in shards] == ["shard-0000", "shard-0001", "shard-0002"]
    assert all((p / "result.json").is_file() for p in shards)
    records = [json.loads((p / "result.json").read_text()) for p in shards]
    pids = {r["pid"] for r in records}
    # the gathered record's timings: the shard that ended last (the breakdown's figures)
    timings = json.loads((run.run_dir / "run_inference" / "result.json").read_text())["timings"]
    last = max(records, key=lambda r: r["ended"])["timings"]
    assert timings["work_s"] == last["work_s"] > 0
    assert timings["peak_rss_mib"] == max(r["timings"]["peak_rss_mib"] for r in records)
    if runner == "airflow":  # dynamic task mapping: a mapped task instance per shard
        assert run.extra["task_states"]["run_inference__shard"] == "success"
    if runner == "dagster":  # dynamic outputs: a mapped op per shard, in the run's process
        assert pids == {os.getpid()}
    if runner == "kubeflow":  # dsl.ParallelFor: one iteration (its own task) per shard
        assert len(list((trained / "kfp").glob("*/for-loop-*-iteration-*"))) == 3
    if runner == "local":  # shards this small fit in memory: run here, no interpreter started
        assert pids == {os.getpid()}


def _native(runner: str, extra: dict[str, Any]) -> tuple[list[str], bool] | None:
    """Each shard's state and whether the gather ran, as the orchestrator itself recorded them
    (the run's ``extra``); None for the local runner, whose records are mlpipe's own."""
    if runner in ("airflow", "dagster"):  # a mapped task instance (Dagster: a mapped op's step
        # key) per shard, then the gathering task, as core folds them into the task facts
        return (extra["map_states"]["run_inference__shard"],
                extra["task_states"]["run_inference"] == "success")
    if runner == "kubeflow":  # a ParallelFor iteration per shard; kfp.local writes
        root = Path(extra["kfp_run_dir"])  # executor_output.json for a task that succeeded
        loops = sorted(root.glob("for-loop-*-iteration-*"),
                       key=lambda p: int(p.name.rsplit("-", 1)[1]))
        shards = ["success" if (p / "run-inference-shard" / "executor_output.json").is_file()
                  else "failed" for p in loops]
        return shards, (root / "run-inference" / "executor_output.json").is_file()
    return None


@pytest.mark.slow
@pytest.mark.parametrize("runner", plugins.names("runner"))
def test_a_failed_shard_fails_the_run_resume_reruns_only_it_and_a_rerun_is_cached(
    runner: str, trained: Path, one_shard: dict[str, Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """#18 faults, on every runner in one sequence: shard 1 of 2 fails -> ``resume`` -> a new
    run with nothing changed."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    os.makedirs(tmp_path / "dagster", exist_ok=True)
    chosen, run_id = get_runner(runner), f"shard-fault-{runner}"
    monkeypatch.setenv("MLPIPE_FAULT", "raise:shard:run_inference:1")
    named = r"^step 'run_inference' failed: InjectedFault: shard 1 of 2 \(shard-0001\): injected"
    with pytest.raises(StepFailedError, match=named) as info:
        chosen.run(INFERENCE, _config(2), home=trained, run_id=run_id, use_cache=False)
    assert info.value.step == "run_inference"
    if runner == "airflow":  # the note names the mapped task instance that failed
        assert "mlpipe_inference.run_inference__shard[1] failed on try 1 of 1" in str(info.value)
    step = trained / "runs" / "inference" / run_id / "run_inference"
    done = step / "shard-0000" / "predictions.parquet"
    assert (step / "shard-0000" / "result.json").is_file() and done.is_file()  # shard 0 finished
    assert (step / "shard-0001" / "error.json").is_file()
    assert not (step / "shard-0001" / "predictions.parquet").exists()  # nothing partial left
    assert not (step / "result.json").exists()  # and nothing gathered
    assert not (step.parent / "save_results").exists()
    record = json.loads((step.parent / "run.json").read_text())
    assert record["failed_step"] == "run_inference" and "shard-0001" in record["error"]["message"]
    assert _native(runner, record["extra"]) in (None, (["success", "failed"], False))
    written = done.stat().st_mtime_ns

    monkeypatch.delenv("MLPIPE_FAULT")
    resumed = chosen.run(INFERENCE, _config(2), home=trained, run_id=run_id, resume=True,
                         use_cache=False)
    cached = [json.loads((step / f"shard-000{i}" / "result.json").read_text())["cached"]
              for i in (0, 1)]
    assert cached == [True, False]  # shard 0 reused as it was, shard 1 ran again
    assert done.stat().st_mtime_ns == written  # shard 0's output untouched
    assert _native(runner, resumed.extra) in (None, (["success", "success"], True))
    assert _outputs(resumed) == one_shard

    again = chosen.run(INFERENCE, _config(2), home=trained)  # a new run, nothing changed
    shards = sorted((again.run_dir / "run_inference").glob("shard-*/result.json"))
    assert len(shards) == 2
    assert all(json.loads(p.read_text())["cached"] for p in shards)
    assert again.steps[-2].cached  # the gathered step: every shard was cached
    assert _native(runner, again.extra) in (None, (["success", "success"], True))
    assert _outputs(again) == one_shard
