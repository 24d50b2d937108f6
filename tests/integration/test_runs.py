"""Run records and history: ``run.json`` for every run, ``mlpipe runs list/show/logs``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlpipe.core import TRAINING, TrainingConfig
from mlpipe.core.execution import get_runner
from tests.support import TINY_TRAINING, venv_env


def _mlpipe(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlpipe", *args, "--home", str(home)],
                          capture_output=True, text=True, env=venv_env(), timeout=120, check=False)


def test_runs_list_show_logs_after_a_success_and_a_failure(home: Path, tmp_path: Path,
                                                           tiny_training: TrainingConfig) -> None:
    ok = get_runner("local").run(TRAINING, tiny_training, home=home)
    bad = tmp_path / "bad.csv"
    bad.write_text("text\nhello\nworld\n")
    failed = _mlpipe("train", "-c", str(TINY_TRAINING), "--set", "data.source=files",
                     "--set", f"data.path={bad}", home=home)
    assert failed.returncode == 2

    listed = _mlpipe("runs", "list", "--json", home=home)
    records = json.loads(listed.stdout)
    assert [r["status"] for r in records] == ["failed", "succeeded"]  # newest first
    assert records[1]["run_id"] == ok.run_id and records[1]["model_version"] == "tiny-sentiment:v1"
    assert records[0]["failed_step"] == "load_training_data"
    assert records[0]["error"]["exit_code"] == 2 and records[0]["ended_at"]
    only_failed = json.loads(_mlpipe("runs", "list", "--status", "failed", "--json",
                                     home=home).stdout)
    assert [r["run_id"] for r in only_failed] == [records[0]["run_id"]]

    shown = json.loads(_mlpipe("runs", "show", ok.run_id, "--json", home=home).stdout)
    assert shown["runner"] == "local" and len(shown["steps"]) == 4 and shown["config_sha256"]
    logs = _mlpipe("runs", "logs", records[0]["run_id"], home=home)
    assert "load_training_data: failed" in logs.stdout and "no label column" in logs.stdout
    assert "Traceback" in logs.stdout

    missing = _mlpipe("runs", "show", "nope", home=home)
    assert missing.returncode == 2 and "no such run" in missing.stderr


def test_predict_from_the_cli_and_python(home: Path, tiny_training: TrainingConfig) -> None:
    import mlpipe

    get_runner("local").run(TRAINING, tiny_training, home=home)
    model = mlpipe.load_model("tiny-sentiment:staging", home=home)
    (pred,) = model.predict(["a wonderful, moving film"])
    assert model.task == "text-classification" and model.version.spec == "tiny-sentiment:v1"
    assert pred["label"] in ("negative", "positive") and set(pred["scores"]) == {
        "negative", "positive"}
    cli = _mlpipe("predict", "tiny-sentiment:v1", "a wonderful, moving film", "--json", home=home)
    assert cli.returncode == 0, cli.stderr
    (row,) = json.loads(cli.stdout)
    assert row["label"] == pred["label"] and abs(row["score"] - pred["score"]) < 1e-6
    missing = _mlpipe("predict", "tiny-sentiment:v9", "x", home=home)
    assert missing.returncode == 2 and "no version 9" in missing.stderr


def test_the_console_of_a_training(home: Path) -> None:
    """Each step's lines, and the published version's aliases as text, never eaten as markup.
    (The same step lines on every runner, and no orchestrator chatter on the console:
    tests/runners/test_console_truth.py.)"""
    proc = _mlpipe("run", "training", "-c", str(TINY_TRAINING),
                   "--set", "data.generated.n_samples=200", "--set", "training.epochs=1",
                   home=home)
    assert proc.returncode == 0, proc.stderr
    for step in TRAINING.step_names:
        assert f"▶ {step}" in proc.stderr and f"✓ {step}" in proc.stderr
    assert "tiny-sentiment:v1 [latest, staging]" in proc.stdout  # text, never eaten as markup


def test_a_killed_run_is_listed_as_killed(home: Path, tmp_path: Path) -> None:
    import signal
    import threading

    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpipe", "train", "-c", str(TINY_TRAINING), "--home", str(home)],
        env=venv_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Killed while train_model is mid-way: its first progress line says so. (Waiting for the
    # step's folder raced the run's end: the folder is written when the step finishes.)
    watchdog = threading.Timer(120, proc.kill)  # the deadline: no progress line, no hang
    watchdog.start()
    assert proc.stderr is not None
    try:
        seen = next((line for line in proc.stderr if line.startswith("train_model: step")), "")
    finally:
        watchdog.cancel()
    assert seen and proc.poll() is None, "no train_model progress line within 120 s"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    (record,) = json.loads(_mlpipe("runs", "list", "--json", home=home).stdout)
    assert record["status"] == "killed"
    killed = json.loads(_mlpipe("runs", "list", "--status", "killed", "--json", home=home).stdout)
    assert [r["run_id"] for r in killed] == [record["run_id"]]
