"""The Airflow adapter, run for real: dag.test() on a sqlite metadata DB. No part of Airflow is
mocked. (`airflow standalone` running the shipped DAGs is tests/system/test_airflow_scheduler.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mlpipe.core import INFERENCE, TRAINING, TrainingConfig, get_runner, load_config
from mlpipe.core.errors import DataError, StepFailedError
from mlpipe.core.execution import load_step_result
from mlpipe.registries.local import LocalRegistry
from tests.support import ROOT, TINY_TRAINING, venv_env
from tests.support.shared_runs import ALIAS, SharedRuns

pytest.importorskip("airflow")

TRAINING_SET = ["data.generated.n_samples=300", "training.epochs=1"]

#: A user pipeline: its own config type (no task/data/registry) and its own reference kind.
USER_PIPELINE = textwrap.dedent('''
    import json, time
    from pathlib import Path
    from typing import Literal
    from mlpipe.core.config import PipelineSettings
    from mlpipe.core.pipeline import Pipeline, Step
    from mlpipe.core.refs import Ref

    class CountConfig(PipelineSettings):
        pipeline: Literal["counting"] = "counting"
        n: int = 3
        sleep_s: float = 0.0

    class CountRef(Ref):
        kind: Literal["airflow_test_count"] = "airflow_test_count"
        total: int

    def make(config, ctx):
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        path = ctx.out_dir / "numbers.json"
        path.write_text(json.dumps(list(range(config.n))))
        return CountRef(uri=str(path), sha256="-", total=config.n)

    def add(config, ctx, numbers):
        time.sleep(config.sleep_s)
        return CountRef(uri=numbers.uri, sha256="-",
                        total=sum(json.loads(Path(numbers.uri).read_text())))

    PIPELINE = Pipeline("counting", CountConfig, steps=(
        Step("make", make, asset="numbers", description="0..n-1"),
        Step("add", add, asset="total", description="their sum", inputs={"numbers": "make"}),
    ))
''')


def _user_module(directory: Path) -> str:
    (directory / "airflow_user_pipeline.py").write_text(USER_PIPELINE)
    return "airflow_user_pipeline"


# --- the DAG builder --------------------------------------------------------------------------


def test_dag_shape_follows_core_pipeline_and_runtime(tiny_training: TrainingConfig) -> None:
    from mlpipe.adapters.airflow.dags import build_dag

    cfg = tiny_training.model_copy(deep=True)
    cfg.runtime.retries, cfg.runtime.retry_delay_s, cfg.runtime.timeout_s = 3, 7, 120
    cfg.runtime.schedule = "@weekly"
    dag = build_dag(TRAINING, cfg, home="/tmp/mlpipe-home")
    assert dag.dag_id == "mlpipe_training"
    assert [t.task_id for t in dag.topological_sort()] == list(TRAINING.step_names)
    for step in TRAINING.steps:
        op = dag.get_task(step.name)
        assert op.upstream_task_ids == set(step.upstream)
        assert op.retries == 3
        assert op.retry_delay.total_seconds() == 7
        assert op.execution_timeout.total_seconds() == 120
    assert "0 0 * * 0" in repr(dag.timetable)  # @weekly
    assert build_dag(TRAINING, tiny_training).timetable.__class__.__name__ == "NullTimetable"


def test_runner_module_does_not_import_airflow() -> None:
    """The CLI imports the runner; Airflow (and its global config) stays in the child process."""
    code = ("import sys, mlpipe.adapters.airflow.runner\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'airflow']")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_kubernetes_module_does_not_import_the_dag_builder() -> None:
    """dags -> kubernetes -> spec, render -> both: cluster mode without an import cycle."""
    code = ("import sys, mlpipe.adapters.airflow.kubernetes\n"
            "assert 'mlpipe.adapters.airflow.dags' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- dag.test() through the runner ---------------------------------------------------------------


@pytest.mark.slow
def test_run_pipeline_training_then_inference(shared_runs: SharedRuns) -> None:
    """On the worker's shared Airflow runs (tests/support/shared_runs.py): a training that
    publishes v3 under the configured alias, then an inference of v3 under an explicit run id."""
    runs = shared_runs("airflow")
    home, run = runs.home, runs.training
    assert run.runner == "airflow"
    assert [s.step for s in run.steps] == list(TRAINING.step_names)
    airflow_run_id = run.extra["orchestrator_run_id"]
    assert airflow_run_id.startswith("manual__")
    assert run.run_id != airflow_run_id  # the mlpipe run id travels as conf["mlpipe_run_id"]
    assert run.run_dir == home / "runs" / "training" / run.run_id
    record = json.loads((run.run_dir / "run.json").read_text())
    assert record["status"] == "succeeded" and record["orchestrator_run_id"] == airflow_run_id
    assert set(run.extra["task_seconds"]) == set(TRAINING.step_names)
    assert all(v > 0 for v in run.extra["task_seconds"].values())
    assert set(run.extra["task_states"].values()) == {"success"}
    assert (home / "airflow" / "airflow.db").is_file()  # default AIRFLOW_HOME, migrated
    # ... by a copy of the worker's template DB (tests/conftest.py), which the child accepted
    assert os.environ["MLPIPE_AIRFLOW_DB_TEMPLATE"] and run.extra["migrate_seconds"] == 0.0
    # dag.test's in-process Execution API is built for the Task SDK's version only, not all of
    # them (a new Airflow that breaks that assumption shows here)
    assert len(run.extra["execution_api_versions"]) == 1, run.extra["execution_api_versions"]
    # the runs of one Airflow home and environment go to one kept child, Airflow and torch
    # imported once (the training's environment differs: it has its own DAGSTER_HOME)
    pids = {r.extra["child_pid"] for r in (runs.again, runs.inference, runs.example)}
    assert len(pids) == 1 and os.getpid() not in pids, pids
    version = run.final
    assert version.kind == "model_version"  # type: ignore[attr-defined]
    assert LocalRegistry(home / "registry").resolve(f"tiny-sentiment:{ALIAS}").version == 3

    run = runs.inference
    assert run.run_id == "airflow-infer"  # an explicit run id wins over Airflow's
    results = run.final
    assert results.rows == 100  # type: ignore[attr-defined]
    assert pq.read_table(results.predictions_uri).num_rows == 100  # type: ignore[attr-defined]
    loaded = load_step_result(home, "inference", "airflow-infer", "load_model").ref
    assert loaded.spec == "tiny-sentiment:v3"  # type: ignore[attr-defined]
    assert json.loads((run.run_dir / "run.json").read_text())["runner"] == "airflow"


@pytest.mark.slow
def test_failed_step_names_task_retries_and_publishes_nothing(home: Path, tmp_path: Path) -> None:
    run_pipeline = get_runner("airflow").run

    data = tmp_path / "no_label.csv"
    data.write_text("text,stars\n" + "".join(f"review number {i},{i % 5}\n" for i in range(40)))
    cfg = load_config(TINY_TRAINING, [*TRAINING_SET, "data.source=files", f"data.path={data}",
                                      "runtime.retries=1", "runtime.retry_delay_s=0"])
    with pytest.raises(StepFailedError) as info:
        run_pipeline(TRAINING, cfg, home=home, run_id="bad-data")
    err = info.value
    assert err.step == "load_training_data"
    assert isinstance(err.cause, DataError) and err.exit_code == 2
    assert "no label column 'label'" in str(err)
    assert "try 1 of 2" in str(err)  # retries=1, but bad input (exit 2) is never retried
    with sqlite3.connect(home / "airflow" / "airflow.db") as db:  # Airflow's own record
        rows = dict(((task, (state, tries)) for task, state, tries in db.execute(
            "select task_id, state, try_number from task_instance where dag_id='mlpipe_training'")))
    assert rows["load_training_data"] == ("failed", 1)
    assert {rows[s][0] for s in TRAINING.step_names[1:]} == {"upstream_failed"}
    assert not (home / "registry").exists()
    run_root = home / "runs" / "training" / "bad-data"
    assert {p.relative_to(run_root).as_posix() for p in run_root.rglob("*") if p.is_file()} == {
        "run.json", "load_training_data/error.json", "airflow.log"}  # Airflow's log of the run
    record = json.loads((run_root / "run.json").read_text())
    assert record["status"] == "failed" and record["failed_step"] == "load_training_data"
    assert "no label column 'label'" in record["error"]["message"]
    assert record["error"]["exit_code"] == 2


@pytest.mark.slow
def test_user_pipeline_runs_and_its_timeout_names_the_setting(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any pipeline importable here runs in Airflow: its own config, steps and reference kind."""
    import importlib

    from mlpipe.core.pipeline import portable_ref

    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(_user_module(tmp_path))
    pipeline, config_type = module.PIPELINE, module.CountConfig
    runner = get_runner("airflow")
    run = runner.run(pipeline, config_type(n=5), home=home, run_id="sum-1")
    assert [s.step for s in run.steps] == ["make", "add"]
    assert run.final.kind == "airflow_test_count"
    assert run.final.total == 10  # type: ignore[attr-defined]
    assert set(run.extra["task_states"].values()) == {"success"}
    record = json.loads((run.run_dir / "run.json").read_text())
    assert record["pipeline_ref"] == portable_ref(pipeline) == "airflow_user_pipeline:PIPELINE"

    # the next run goes to the same kept child; once the metadata DB file is replaced (deleted
    # and copied again), a fresh child runs it and records it in the new file
    again = runner.run(pipeline, config_type(n=4), home=home, run_id="sum-2")
    assert again.extra["child_pid"] == run.extra["child_pid"] and again.final.total == 6  # type: ignore[attr-defined]
    database = home / "airflow" / "airflow.db"
    shutil.copyfile(database, home / "airflow" / "copy.db")
    os.replace(home / "airflow" / "copy.db", database)
    fresh = runner.run(pipeline, config_type(n=4), home=home, run_id="sum-3")
    assert fresh.extra["child_pid"] != run.extra["child_pid"]
    with sqlite3.connect(database) as db:
        recorded = {r[0] for r in db.execute("SELECT run_id FROM dag_run")}
    assert fresh.extra["orchestrator_run_id"] in recorded

    slow = config_type.model_validate(
        {"n": 3, "sleep_s": 900, "runtime": {"timeout_s": 10, "retries": 0}})  # every task's:
    # room for `make` on a loaded machine (2 s was not), far below `add`'s 900 s
    started = time.perf_counter()
    with pytest.raises(StepFailedError) as info:
        runner.run(pipeline, slow, home=home, run_id="sum-slow", use_cache=False)
    # far below the step's own 900 s, whatever the machine's load (Airflow's start varies)
    assert time.perf_counter() - started < 450
    assert info.value.step == "add"
    assert "ran longer than runtime.timeout_s=10s" in str(info.value)
    assert "failed on try 1 of 1" in str(info.value)
    record = json.loads((home / "runs" / "counting" / "sum-slow" / "run.json").read_text())
    assert record["status"] == "failed" and record["failed_step"] == "add"


def test_dags_file_without_config_uses_builtin_defaults(tmp_path: Path) -> None:
    """The shipped file parses in a clean Airflow with nothing set (no repo paths assumed)."""
    env = venv_env()
    for key in [k for k in env if k.startswith(("MLPIPE_", "AIRFLOW"))]:
        env.pop(key)
    env.update({"AIRFLOW_HOME": str(tmp_path / "af"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    code = (
        f"import json, runpy; g = runpy.run_path({str(ROOT / 'dags' / 'mlpipe_dags.py')!r})\n"
        "from airflow.sdk import DAG\n"
        "print(json.dumps({k: [t.task_id for t in v.tasks] for k, v in g.items() "
        "if isinstance(v, DAG)}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    dags = json.loads(out.stdout.strip().splitlines()[-1])
    mapped = ["run_inference__shards", "run_inference__shard"]  # dynamic task mapping
    assert dags == {"mlpipe_training": list(TRAINING.step_names),
                    "mlpipe_inference": [*INFERENCE.step_names[:3], *mapped,
                                         *INFERENCE.step_names[3:]]}
    assert "built-in default config" in out.stderr + out.stdout

    env.update(MLPIPE_PIPELINES=f"inference, {_user_module(tmp_path)}:PIPELINE",
               PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    dags = json.loads(out.stdout.strip().splitlines()[-1])
    assert dags == {"mlpipe_inference": [*INFERENCE.step_names[:3], *mapped,
                                         *INFERENCE.step_names[3:]],
                    "mlpipe_counting": ["make", "add"]}
