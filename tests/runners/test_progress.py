"""Progress lines where no terminal is: a piped CLI run, an Airflow task log, Dagster's event log.

``MLPIPE_PROGRESS_INTERVAL=0`` makes every update due, so the tiny configs print several lines;
the lines themselves are what a user reads in a pipe or an orchestrator's log.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TINY_INFERENCE, TINY_TRAINING, venv_env
from tests.support.shared_runs import SharedRuns

TRAIN_LINE = re.compile(
    r"train_model: step (\d+)/(\d+) \(\d+%\) loss \d+\.\d{4}, [\d.]+ samples/s, ETA \d+:\d\d:\d\d"
)
INFER_LINE = re.compile(
    r"run_inference: rows (\d+)/(\d+) \(\d+%\) [\d.]+ rows/s, ETA \d+:\d\d:\d\d"
)
TRAINING_SET = ["data.generated.n_samples=300", "training.epochs=1"]


def _steps(text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in TRAIN_LINE.findall(text)]


def test_piped_cli_run_prints_plain_progress_lines(tmp_path: Path) -> None:
    env = {**venv_env(), "MLPIPE_PROGRESS_INTERVAL": "0"}
    env.pop("MLPIPE_PROGRESS", None)
    home = tmp_path / "home"
    train = subprocess.run(
        [sys.executable, "-m", "mlpipe", "train", "-c", str(TINY_TRAINING), "--home", str(home),
         *[a for s in TRAINING_SET for a in ("--set", s)]],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    steps = _steps(train.stderr)
    assert len(steps) >= 2, train.stderr
    total = steps[0][1]
    assert [s for s, _ in steps] == sorted({s for s, _ in steps}) and steps[-1] == (total, total)
    lines = [line for line in train.stderr.splitlines() if "train_model:" in line]
    assert not any("\x1b[" in line for line in lines)  # plain text, no terminal escapes

    infer = subprocess.run(
        [sys.executable, "-m", "mlpipe", "infer", "-c", str(TINY_INFERENCE), "--home", str(home),
         "--set", "data.generated.n_samples=100", "--set", "inference.batch_size=16"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert infer.returncode == 0, infer.stderr
    rows = [(int(a), int(b)) for a, b in INFER_LINE.findall(infer.stderr)]
    assert len(rows) >= 2 and rows[-1] == (100, 100), infer.stderr

    off = subprocess.run(
        [sys.executable, "-m", "mlpipe", "train", "-c", str(TINY_TRAINING), "--home", str(home),
         "--no-cache", *[a for s in TRAINING_SET for a in ("--set", s)]],
        capture_output=True, text=True, timeout=600,
        env={**env, "MLPIPE_PROGRESS": "off"},
    )  # fmt: skip
    assert off.returncode == 0 and not _steps(off.stderr), off.stderr


#: The runner as a parameter: the test is marked with it and runs in that runner's work unit
#: (tests/support/markers.py), where the worker's shared runs are (tests/support/shared_runs.py:
#: a training with ``MLPIPE_PROGRESS_INTERVAL=0`` and ``MLPIPE_PROGRESS`` unset, as here before).
@pytest.mark.slow
@pytest.mark.parametrize("runner", ["airflow"])
def test_airflow_task_log_has_progress_lines(shared_runs: SharedRuns, runner: str) -> None:
    pytest.importorskip("airflow")
    run = shared_runs(runner).training
    log = Path(run.extra["log"])  # the log the runner records and prints
    steps = _steps(log.read_text(errors="replace"))
    assert len(steps) >= 2 and steps[-1][0] == steps[-1][1], log


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["dagster"])
def test_dagster_event_log_has_progress_lines(
    shared_runs: SharedRuns, monkeypatch: pytest.MonkeyPatch, runner: str
) -> None:
    dg = pytest.importorskip("dagster")
    runs = shared_runs(runner)
    monkeypatch.setenv("DAGSTER_HOME", str(runs.dagster_home))  # the instance the runs wrote
    with dg.DagsterInstance.get() as instance:
        messages = [
            entry.user_message
            for entry in instance.all_logs(runs.training.extra["orchestrator_run_id"])
            if entry.step_key and "trained_model" in entry.step_key
        ]
    steps = _steps("\n".join(messages))
    assert len(steps) >= 2 and steps[-1][0] == steps[-1][1], messages[:20]
