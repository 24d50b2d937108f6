"""The console tells the truth on every runner (issue 30, item 3): a step's progress lines reach
it even from an orchestrator's task, a failed non-blocking check is printed, a resumed run prints
only its own attempt, and ``<run>/<runner>.log`` holds the orchestrator's log of that run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlpipe.core import plugins
from mlpipe.core.runs import find_run, list_runs, step_logs
from tests.conftest import venv_env

MODULE = '''
from pathlib import Path
from typing import Literal

from mlpipe.core import progress
from mlpipe.core.config import PipelineSettings
from mlpipe.core.hashing import sha256_file
from mlpipe.core.pipeline import Pipeline, Step, StepContext
from mlpipe.core.refs import CheckResult, Ref


class TruthConfig(PipelineSettings):
    pipeline: Literal["console_truth"] = "console_truth"
    marker: str = ""


class TruthRef(Ref):
    kind: Literal["console_truth.out"] = "console_truth.out"


def _write(ctx: StepContext, name: str, checks: tuple[CheckResult, ...] = ()) -> TruthRef:
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.out_dir / name
    path.write_text(name)
    return TruthRef(uri=str(path), sha256=sha256_file(path), checks=checks)


def crunch(config: TruthConfig, ctx: StepContext) -> TruthRef:
    with progress.step(ctx.step), progress.Progress(3, what="batch") as bar:
        for _ in range(3):
            bar.update(1, samples=10)
    return _write(ctx, "crunch", (CheckResult(name="enough_rows", passed=False,
                                              message="3 rows < 5"),))


def score(config: TruthConfig, ctx: StepContext, crunched: TruthRef) -> TruthRef:
    if config.marker and Path(config.marker).exists():
        raise RuntimeError("the first attempt fails")
    return _write(ctx, "score")


PIPELINE = Pipeline("console_truth", TruthConfig, steps=(
    Step("crunch", crunch, asset="crunched", description="progress and a soft check"),
    Step("score", score, asset="scored", description="fails while the marker exists",
         inputs={"crunched": "crunch"}),
))
'''


def _mlpipe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**venv_env(), "MLPIPE_PROGRESS": "plain", "MLPIPE_PROGRESS_INTERVAL": "0",
           "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "mlpipe", *args, "--home", str(cwd / "home")],
                          capture_output=True, text=True, env=env, timeout=600, check=False,
                          cwd=cwd)


@pytest.mark.slow
@pytest.mark.parametrize("runner", plugins.names("runner"))
def test_the_console_shows_progress_checks_and_only_this_attempt(runner: str,
                                                                 tmp_path: Path) -> None:
    (tmp_path / "console_truth.py").write_text(MODULE)
    marker = tmp_path / "fail-score"
    marker.write_text("")
    first = _mlpipe("run", "console_truth:PIPELINE", "--runner", runner, "--set",
                    f"marker={marker}", cwd=tmp_path)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "✗ score" in first.stderr
    assert "crunch: batch 3/3 (100%)" in first.stderr, first.stderr[-3000:]  # from the task
    assert "! check enough_rows failed (not blocking): 3 rows < 5" in first.stderr
    for chatter in ("dagster - INFO", "Executing task", "executor_output", "airflow.task"):
        assert chatter not in first.stderr + first.stdout  # the orchestrator's goes to its log

    (record,) = json.loads(_mlpipe("runs", "list", "--json", cwd=tmp_path).stdout)
    # the failed run is in the history, whatever ran it: what `mlpipe runs list/show/logs` read
    # (from tests/runners/test_resume.py, which failed and resumed a training of its own)
    home, run_dir = tmp_path / "home", Path(record["path"])
    (failed,) = list_runs(home, status="failed")
    assert failed["run_id"] == record["run_id"] and failed["runner"] == runner
    assert failed["failed_step"] == "score" and "the first attempt fails" in str(failed["error"])
    assert find_run(home, record["run_id"])["status"] == "failed"
    assert "Traceback" in dict(step_logs(failed, "score"))["score: failed"]
    crunched = json.loads((run_dir / "crunch" / "result.json").read_text())["ref"]["sha256"]

    marker.unlink()
    resumed = _mlpipe("run", "console_truth:PIPELINE", "--runner", runner, "--resume",
                      record["run_id"], "--no-cache", cwd=tmp_path)  # reused by resume alone
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "✗" not in resumed.stderr, resumed.stderr  # the first attempt is not replayed
    assert "✓ score" in resumed.stderr and "✓ crunch" in resumed.stderr
    assert "▶ score" in resumed.stderr  # the same step lines whatever the runner
    assert "crunch: batch" not in resumed.stderr  # reused: its old progress is not replayed
    results = {s: json.loads((run_dir / s / "result.json").read_text())
               for s in ("crunch", "score")}
    assert [results[s]["cached"] for s in ("crunch", "score")] == [True, False]  # reused, rerun
    assert results["crunch"]["ref"]["sha256"] == crunched  # the failed attempt's output, as it was
    after = json.loads((run_dir / "run.json").read_text())
    assert after["run_id"] == record["run_id"] and after["status"] == "succeeded"
    assert after["resumed_from"]["status"] == "failed"
    assert after["resumed_from"]["failed_step"] == "score"

    if runner != "local":  # the orchestrator's own output of that run, both attempts
        log = Path(record["path"]) / f"{runner}.log"
        assert log.is_file() and log.stat().st_size > 0, log
        assert json.loads((Path(record["path"]) / "run.json").read_text())["log"] == str(log)
