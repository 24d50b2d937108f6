"""`mlpipe bench --quick --deployed` for real: all four runners in process, Airflow and Dagster also
through their services, one repetition, identical outputs."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlpipe.bench.floor import Node, run_floor, shape_of
from mlpipe.core import INFERENCE, plugins
from mlpipe.core.execution.step import StepRun
from mlpipe.core.pipeline import resolve_pipeline
from mlpipe.core.refs import CheckResult, PredictionsRef, ShardsRef
from tests.support import venv_env

REPO = Path(__file__).resolve().parents[2]
USER_PIPELINE = "tests.support.plan_pipelines:PLAN_PIPELINE"
EXAMPLE = "examples.champion_challenger:PIPELINE"


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    """The one `mlpipe bench` of this file, shared by the tests below: the built-ins (training
    first: its cached rerun) and two user pipelines on every runner, one repetition, the
    built-ins and the example also through the services; ``runtime.retries=1`` is a setting
    the local runner does not honour. The user pipelines: examples/champion_challenger.py (its
    registry is the one the benchmark's own training fills: ``bench`` v1 as staging, no champion
    yet), with its own ``-c`` file, and a fused group with two map steps."""
    tmp = tmp_path_factory.mktemp("bench")
    example = yaml.safe_load((REPO / "examples" / "champion_challenger.yaml").read_text())
    example.update(model_name="bench", data={"source": "generated", "generated": {
        "n_samples": 100, "seed": 21, "label_noise": 0.0}})
    (tmp / "champion.yaml").write_text(yaml.safe_dump(example))
    env = venv_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(  # a relative --out, as the README's command gives it
        [sys.executable, "-m", "mlpipe", "bench", "training", "inference", EXAMPLE,
         USER_PIPELINE, "-c", "champion.yaml", "--quick", "-n", "1", "--deployed",
         "--deployed-pipelines", "training,inference,champion_challenger",
         "--set", "runtime.retries=1", "--out", "results"],
        capture_output=True, text=True, env=env, timeout=2700, cwd=tmp,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp / "results"
    return json.loads((out / "bench.json").read_text()), out, proc.stderr


@pytest.mark.slow
def test_quick_bench_runs_every_runner_in_process_and_deployed(
    bench_run: tuple[dict[str, Any], Path, str],
) -> None:
    report, out, _ = bench_run
    assert {"date", "machine", "versions", "raw", "summary", "mode"} <= set(report)
    assert report["mode"] == "quick" and report["repetitions"] == 1
    runners = list(report["summary"])  # every registered runner, local (the reference) first
    assert runners[0] == "local" and set(runners) == {"local", "airflow", "kubeflow", "dagster"}
    for runner, entry in report["summary"].items():
        assert entry["ok"] == 1 and entry["failed"] == 0, (runner, entry["errors"])
        assert entry["identical_weights"] and entry["identical_predictions"], runner
        for pipe in ("training", "inference"):
            figures = entry[pipe]
            assert figures["min_s"] <= figures["median_s"] <= figures["max_s"]
            assert figures["step_sum_s"] > 0 and figures["ratio_to_local"] > 0
            assert set(figures["step_s"]) and figures["overhead_s"] >= -0.5
        assert entry["peak_rss_mib"] > 50 and entry["startup_s"] >= 0
        for pipe in ("training", "inference"):  # the native no-op pipeline ran: a floor
            figures = entry[pipe]
            assert figures["floor_s"] > 0 and "adapter_overhead_s" in figures, runner
            assert set(figures["breakdown"]) == set(figures["step_s"]), runner
            assert set(figures["phase_s"]) == {"scheduled_s", "wait_s", "start_s", "inputs_s",
                                               "imports_s", "work_s", "outputs_s"}
        assert entry["training"]["rerun_s"] > 0 and entry["training"]["rerun_pct"] > 0
    for raw in report["raw"]:  # the unchanged rerun was served from the cache
        assert raw["training"]["rerun_cached"] == [True, True, True, False], raw["runner"]
        # the rerun and the floors are measured apart, not counted as start-up
        assert raw["measure_s"] >= raw["training"]["rerun_s"] > 0, raw["runner"]
    assert report["summary"]["local"]["training"]["ratio_to_local"] == pytest.approx(1.0)
    table = (out / "bench.md").read_text()
    assert "| airflow | training |" in table and "same outputs" in table  # one row per pipeline
    assert "adapter overhead" in table and "| kubeflow | inference |" in table
    assert "Unchanged training rerun" in table
    for chart in ("bench.png", "bench-breakdown.png"):
        assert (out / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _assert_deployed(report, out)


def test_unknown_runner_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlpipe", "bench", "--runners", "local,spark",
         "--out", str(tmp_path)],
        capture_output=True, text=True, env=venv_env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "spark" in proc.stderr


def test_floor_shape_has_the_map_steps_shard_count_from_the_run() -> None:
    """The floor's shape fans out like the run did: a map step's shard count is the number of
    shards its output lists (1 without a run); the other steps are plain tasks, with the checks
    their outputs report (Dagster's floor declares them as asset checks)."""
    pipeline = resolve_pipeline(INFERENCE)
    assert [(n.name, n.shards) for n in shape_of(pipeline) if n.shards is not None] == [
        ("run_inference", 1)]
    shard = PredictionsRef(uri="shard", sha256="0" * 64, rows=1, model="m:v1")
    gathered = ShardsRef.of([shard, shard, shard], uri="run_inference")
    checked = shard.model_copy(update={"checks": (CheckResult(name="rows", passed=True),)})
    run = type("Run", (), {"steps": [StepRun("run_inference", gathered, 1.0),
                                     StepRun("save_results", checked, 1.0)]})()
    shape = shape_of(pipeline, run)
    assert {n.name: n.shards for n in shape} == {
        "load_inference_data": None, "split_inference_data": None, "load_model": None,
        "run_inference": 3, "save_results": None}
    assert {n.name: n.checks for n in shape if n.checks} == {"save_results": ("rows",)}
    assert [n.upstream for n in shape] == [list(s.upstream) for s in pipeline.steps]


@pytest.mark.slow
@pytest.mark.parametrize("runner", plugins.names("runner"))
def test_floor_runs_a_map_steps_fan_out_natively(runner: str, tmp_path: Path) -> None:
    """Each orchestrator's no-op floor runs a map step of 2 shards as mlpipe's adapter does:
    a shard lister, one task per shard and a gather (the local runner too: it runs core's plan
    as every runner does), as counted from the orchestrator's own record of the run."""
    shape = [Node("a", [], None, ("rows", "labels")), Node("b", ["a"], 2), Node("c", ["a", "b"])]
    floor = run_floor(runner, shape, "fanout", tmp_path)
    assert floor is not None and floor.tasks == 6 and floor.seconds > 0, floor


def _assert_deployed(report: dict[str, Any], out: Path) -> None:
    """`--deployed`: every pipeline (the user's through ``MLPIPE_PIPELINES``) through Airflow's
    scheduler and `dagster dev`, driven over HTTP; figures from the orchestrators' metadata,
    outputs identical, nothing left running."""
    import psutil

    deployed = report["deployed"]["summary"]
    assert set(deployed) == {"airflow", "dagster"}
    for runner, entry in deployed.items():
        assert entry["ok"] == 1 and entry["failed"] == 0, (runner, entry["errors"])
        assert entry["identical_weights"] and entry["identical_predictions"], runner
        # the user's pipelines too, served through MLPIPE_PIPELINES: every output, shards too
        assert entry["pipelines"] == ["training", "inference", "champion_challenger"], runner
        assert entry["identical_outputs"] and not entry["different_outputs"], (runner, entry)
        assert 0 < entry["startup_s"] <= entry["ready_s"] and entry["peak_rss_mib"] > 50
        for pipe in entry["pipelines"]:
            figures = entry[pipe]
            assert figures["end_to_end_s"] > figures["trigger_to_first_task_s"] > 0, runner
            assert figures["task_latency_s"] and min(figures["task_latency_s"].values()) > 0
    for raw in report["deployed"]["raw"]:  # every service process is gone, its port closed
        assert "score[1]" in raw["champion_challenger"]["sha256"] and "plan_test" not in raw
        assert not raw["left_running"] and raw["stop_s"] > 0
        with pytest.raises(ProcessLookupError):
            os.killpg(raw["pgid"], 0)
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", raw["port"]), 2):
            pass
    left = [p.pid for p in psutil.process_iter() if _cwd(p).startswith(str(out))]
    assert not left, left
    table = (out / "bench.md").read_text()
    assert "### Deployed" in table and "| dagster | dagster dev" in table


def _cwd(p: Any) -> str:
    try:
        return str(p.cwd())
    except Exception:  # gone, or not ours
        return ""


def test_service_that_never_becomes_healthy_is_a_clear_error_and_is_stopped(
    tmp_path: Path,
) -> None:
    """The service machinery on a real process group: a timeout names the log, stop ends all."""
    from mlpipe.bench.deployed import Service, ServiceError, group_alive

    log = tmp_path / "svc.log"
    service = Service("sleeper", ["/bin/sh", "-c", "echo starting; sleep 60 & sleep 60; wait"],
                      dict(os.environ), log, tmp_path)
    try:
        with pytest.raises(ServiceError, match=r"no health within 1s.*svc\.log"):
            service.wait_for("health", lambda: False, timeout=1)
    finally:
        service.stop(grace=5)
    assert not group_alive(service.pgid, service.proc)
    assert "starting" in log.read_text()


def test_deployed_needs_a_runner_with_a_service(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlpipe", "bench", "--runners", "local,kubeflow", "--deployed",
         "--out", str(tmp_path)],
        capture_output=True, text=True, env=venv_env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "--deployed" in proc.stderr


def test_a_childs_result_line_is_found_where_kfp_local_indents_it() -> None:
    from mlpipe.bench.sampling import result_line

    out = 'task log\n    SCALE_RESULT {"rows": 3}\n03:51:48 - INFO - finished\n'
    assert result_line(out, "SCALE_RESULT ") == '{"rows": 3}'
    assert result_line("no marker here\n", "SCALE_RESULT ") is None


@pytest.mark.slow
def test_bench_of_a_user_pipeline_has_floors_breakdown_and_identity(
    bench_run: tuple[dict[str, Any], Path, str],
) -> None:
    report, out, _ = bench_run
    assert_user_bench(report, out)


def assert_user_bench(report: dict[str, Any], out: Path) -> None:
    assert report["pipelines"] == ["training", "inference", "champion_challenger", "plan_test"]
    assert report["references"][2:] == [EXAMPLE, USER_PIPELINE]
    assert set(report["summary"]) == {"local", "airflow", "kubeflow", "dagster"}
    for runner, entry in report["summary"].items():
        assert entry["ok"] == 1, (runner, entry["errors"])
        assert entry["identical_outputs"] and not entry["different_outputs"], runner
        for pipe in ("champion_challenger", "plan_test"):
            figures = entry[pipe]
            assert figures["floor_s"] > 0 and set(figures["breakdown"]) == set(figures["step_s"])
    for raw in report["raw"]:
        # identity on every output reference: 5 steps, 3 shards each from split, square, add_one
        assert len(raw["plan_test"]["sha256"]) == 14 and "square[2]" in raw["plan_test"]["sha256"]
        # 5 steps, 2 candidates scored side by side (challenger, champion): their shards too
        example = raw["champion_challenger"]["sha256"]
        assert len(example) == 9 and {"score[0]", "score[1]", "decide", "promote"} <= set(example)
    assert report["rows"]["champion_challenger"] == 100  # its own -c file, not the built-ins'
    table = (out / "bench.md").read_text()
    assert table.index("**Summary**") < table.index("| runner | pipeline |")  # summary first
    assert "fastest" in table and "| kubeflow | plan_test |" in table
    assert "| dagster | champion_challenger |" in table
    for chart in ("bench.png", "bench-breakdown.png"):
        assert (out / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_bench_names_the_settings_a_runner_does_not_honour(
    bench_run: tuple[dict[str, Any], Path, str],
) -> None:
    report, out, stderr = bench_run
    assert "warning: local ignored retries (plan_test)" in stderr  # before the run
    named = {r: {s for s, *_ in p.get("plan_test", [])}
             for r, p in report["not_honoured"].items()}
    assert "retries" in named["local"]  # the orchestrators retry (tests/runners/test_honours.py)
    assert not any("retries" in named.get(r, set()) for r in ("airflow", "kubeflow", "dagster"))
    assert "side_by_side_shards" in named["airflow"] and "side_by_side_shards" in named["dagster"]
    assert "side_by_side_shards" not in named.get("kubeflow", set())
    assert "not honoured here by **local**" in (out / "bench.md").read_text()
