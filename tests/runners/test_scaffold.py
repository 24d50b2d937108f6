"""``mlpipe new pipeline NAME``: the module, config and test it writes pass as generated, on the
local runner and on every orchestrator (issue 30, item 1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlpipe.core import plugins
from tests.conftest import venv_env


def _mlpipe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlpipe", *args], capture_output=True,
                          text=True, env=venv_env(), timeout=300, check=False, cwd=cwd)


def test_new_pipeline_writes_three_files_that_run(tmp_path: Path) -> None:
    made = _mlpipe("new", "pipeline", "drift_scores", "--dir", "gen", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    gen = tmp_path / "gen"
    assert sorted(p.name for p in gen.iterdir()) == [
        "drift_scores.py", "drift_scores.yaml", "test_drift_scores.py"]
    assert made.stdout.split() == [str(gen / n) for n in (
        "drift_scores.py", "drift_scores.yaml", "test_drift_scores.py")]
    ran = _mlpipe("run", "drift_scores:PIPELINE", "-c", "drift_scores.yaml", "--home", "h",
                  "--json", cwd=gen)
    assert ran.returncode == 0, ran.stderr
    assert "✓ summarize" in ran.stderr and '"summarize"' in ran.stdout

    again = _mlpipe("new", "pipeline", "drift_scores", "--dir", "gen", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    for bad in ("Drift", "2fast", "with-dash", "class"):
        refused = _mlpipe("new", "pipeline", bad, "--dir", "other", cwd=tmp_path)
        assert refused.returncode == 2 and "pipeline name" in refused.stderr, bad
    assert not (tmp_path / "other").exists()  # nothing half-written


@pytest.mark.slow
def test_the_generated_test_passes_on_every_runner(tmp_path: Path) -> None:
    assert _mlpipe("new", "pipeline", "tiny_flow", cwd=tmp_path).returncode == 0
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "test_tiny_flow.py", "-v", "-p", "no:cacheprovider"],
        capture_output=True, text=True, env=venv_env(), timeout=900, check=False, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout[-4000:]
    for runner in plugins.names("runner"):  # local and each orchestrator, none skipped
        assert f"test_tiny_flow_runs_on[{runner}] PASSED" in ran.stdout, ran.stdout[-4000:]
