"""What a pipeline author reads on the console: piped output at 80 columns, one ``error:`` line
for a user module that fails to import (issue 30, items 4 and 5)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlpipe.registries.local import LocalRegistry
from tests.conftest import make_artifact, venv_env


def _mlpipe(*args: str, home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**venv_env(), "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "mlpipe", *args, "--home", str(home)],
                          capture_output=True, text=True, env=env, timeout=120, check=False,
                          cwd=cwd)


def _record(home: Path, run_id: str, status: str, **fields: object) -> None:
    path = home / "runs" / "champion_challenger" / run_id / "run.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "pipeline": "champion_challenger", "run_id": run_id, "runner": "airflow",
        "status": status, "started_at": f"2026-12-03T{run_id[9:11]}:00:00+00:00", "seconds": 12.5,
        "config": {"pipeline": "champion_challenger", "runtime": {"cache": True}},
        "config_sha256": "ab" * 32, "steps": [{"step": "load_eval_set", "seconds": 1.25,
                                               "cached": True}], **fields}))


def test_runs_list_is_one_line_per_run_and_show_puts_the_summary_first(home: Path) -> None:
    long_error = "step 'score' failed: " + " ".join(f"word{i}" for i in range(300))
    _record(home, "20261203T100000-aaaaaa", "succeeded", model_version="sentiment:v3")
    _record(home, "20261203T110000-bbbbbb", "failed", failed_step="score",
            error={"type": "DataError", "message": long_error + "\nsecond line", "exit_code": 2})

    listed = _mlpipe("runs", "list", home=home)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines), lines
    assert lines[1].startswith("20261203T110000-bbbbbb") and "score: word0 word1" in lines[1]
    assert lines[1].endswith("…") and "sentiment:v3" in lines[2]

    shown = _mlpipe("runs", "show", "20261203T110000-bbbbbb", home=home)
    assert shown.returncode == 0, shown.stderr
    first = shown.stdout.splitlines()[:8]
    assert first[0].startswith("run 20261203T110000-bbbbbb: champion_challenger via airflow, "
                               "failed in 12.5s"), first
    assert any(line.startswith("failed step: score (DataError, exit 2)") for line in first)
    assert "word299" in shown.stdout.split("config (")[0]  # the whole error, before the config
    assert shown.stdout.index("error:") < shown.stdout.index("runtime:")
    as_json = json.loads(_mlpipe("runs", "show", "20261203T110000-bbbbbb", "--json",
                                 home=home).stdout)
    assert as_json["error"]["exit_code"] == 2


def test_registry_list_never_splits_a_word_and_show_prints_the_hash_once(
        home: Path, tmp_path: Path) -> None:
    registry = LocalRegistry(home / "registry")
    name = "drift-gated-sentiment-classifier"
    registry.publish(make_artifact(tmp_path, "a"), name, ["production", "staging", "candidate"])
    version = registry.publish(make_artifact(tmp_path, "b"), name, ["challenger-2026-12"])

    listed = _mlpipe("registry", "list", home=home)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    words = [word.rstrip(",") for word in listed.stdout.split()]
    for whole in (name, "production", "staging", "candidate", "challenger-2026-12"):
        assert whole in words, (whole, listed.stdout)

    shown = _mlpipe("registry", "show", version.spec, home=home)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count(version.sha256[:16]) == 1, shown.stdout


def test_a_user_module_that_fails_to_import_is_one_error_line(home: Path, tmp_path: Path) -> None:
    (tmp_path / "broken_pipeline.py").write_text("import json\n\nPIPELINE = 1 / 0\n")
    failed = _mlpipe("run", "broken_pipeline:PIPELINE", home=home, cwd=tmp_path)
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        "error: pipeline 'broken_pipeline:PIPELINE': importing broken_pipeline failed: "
        "ZeroDivisionError: division by zero (mlpipe -v ... prints the traceback)"]
    verbose = subprocess.run([sys.executable, "-m", "mlpipe", "-v", "run",
                              "broken_pipeline:PIPELINE", "--home", str(home)],
                             capture_output=True, text=True, env=venv_env(), timeout=120,
                             check=False, cwd=tmp_path)
    assert verbose.returncode == 2
    assert "Traceback" in verbose.stderr and 'broken_pipeline.py", line 3' in verbose.stderr
    assert verbose.stderr.rstrip().splitlines()[-1].startswith("error: pipeline")
    assert not (home / "runs").exists()
