"""`mlpipe bench --quick` for real: all four runners, one repetition, identical outputs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import venv_env


@pytest.mark.slow
def test_quick_bench_runs_every_runner_and_outputs_are_identical(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "mlpipe", "bench", "--quick", "-n", "1", "--out", str(out)],
        capture_output=True, text=True, env=venv_env(), timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "bench.json").read_text())
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
    assert report["summary"]["local"]["training"]["ratio_to_local"] == pytest.approx(1.0)
    table = (out / "bench.md").read_text()
    assert "| airflow |" in table and "same predictions" in table
    assert "adapter overhead" in table and "| kubeflow | inference |" in table
    assert "Unchanged training rerun" in table
    for chart in ("bench.png", "bench-breakdown.png"):
        assert (out / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_runner_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlpipe", "bench", "--runners", "local,spark",
         "--out", str(tmp_path)],
        capture_output=True, text=True, env=venv_env(),
    )  # fmt: skip
    assert proc.returncode == 2 and "spark" in proc.stderr
