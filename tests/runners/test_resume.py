"""``--resume``: a failed run continues where it stopped, on the same runner or another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlpipe.core import TRAINING, StepFailedError, TrainingConfig, plugins
from mlpipe.core.execution import get_runner
from mlpipe.core.runs import find_run, list_runs, step_logs
from tests.support import TINY_TRAINING, venv_env


def _blocked_registry(cfg: TrainingConfig, tmp_path: Path) -> tuple[TrainingConfig, Path]:
    """A registry root that is a file: publishing fails until someone removes it."""
    blocker = tmp_path / "registry"
    blocker.write_text("not a directory")
    registry = cfg.registry.model_copy(update={"root": blocker})
    return cfg.model_copy(update={"registry": registry}), blocker


@pytest.mark.slow
@pytest.mark.parametrize("runner", plugins.names("runner"))
def test_resume_reruns_only_the_failed_step_and_after(
    runner: str, home: Path, tmp_path: Path, tiny_training: TrainingConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    os.makedirs(tmp_path / "dagster", exist_ok=True)
    cfg, blocker = _blocked_registry(tiny_training, tmp_path)
    chosen = get_runner(runner)
    with pytest.raises(StepFailedError) as info:
        chosen.run(TRAINING, cfg, home=home, use_cache=False)
    assert info.value.step == "upload_model"
    (run_dir,) = (home / "runs" / "training").iterdir()
    trained = json.loads((run_dir / "train_model" / "result.json").read_text())
    # the failed run is in the history, whatever ran it: what `mlpipe runs list/show/logs` read
    (failed,) = list_runs(home, status="failed")
    assert failed["run_id"] == run_dir.name and failed["runner"] == runner
    assert failed["failed_step"] == "upload_model" and "Not a directory" in str(failed["error"])
    assert find_run(home, run_dir.name)["status"] == "failed"
    logs = dict(step_logs(failed, "upload_model"))
    assert "Traceback" in logs["upload_model: failed"]

    blocker.unlink()  # the cause is fixed
    resumed = chosen.run(TRAINING, cfg, home=home, run_id=run_dir.name, resume=True,
                         use_cache=False)
    assert resumed.run_id == run_dir.name
    assert [s.cached for s in resumed.steps] == [True, True, True, False]  # reused, then rerun
    assert resumed.outputs["train_model"].sha256 == trained["ref"]["sha256"]
    assert resumed.final.spec == "tiny-sentiment:v1"  # type: ignore[attr-defined]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "succeeded" and record["resumed_from"]["status"] == "failed"
    assert record["resumed_from"]["failed_step"] == "upload_model"


def test_cli_resumes_on_another_runner_with_the_runs_own_config(
    home: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "registry"
    blocker.write_text("not a directory")

    def mlpipe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mlpipe", *args, "--home", str(home)],
                              capture_output=True, text=True, env=venv_env(), timeout=300,
                              check=False)

    sets = ["--set", "data.generated.n_samples=200", "--set", "training.epochs=1",
            "--set", f"registry.root={blocker}"]
    failed = mlpipe("run", "training", "-c", str(TINY_TRAINING), *sets)
    assert failed.returncode == 1, failed.stderr
    (run_dir,) = (home / "runs" / "training").iterdir()
    blocker.unlink()
    resumed = mlpipe("run", "training", "--runner", "dagster", "--resume", run_dir.name, "--json")
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["runner"] == "dagster" and out["run_id"] == run_dir.name
    assert [s["cached"] for s in out["steps"]] == [True, True, True, False]
    unknown = mlpipe("run", "training", "--resume", "nope")
    assert unknown.returncode == 2 and "no run nope" in unknown.stderr
