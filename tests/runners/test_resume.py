"""``--resume``: a failed run continues where it stopped, on the same runner or another.

On the same runner, for every runner, the failed attempt's history (``runs list/show/logs``) and
a resume that reruns only the failed step and after, with the cache off, are checked on the
console test's own failed and resumed run (tests/runners/test_console_truth.py), not on one
more failed training per runner here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import TINY_TRAINING, venv_env


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
    trained = json.loads((run_dir / "train_model" / "result.json").read_text())["ref"]["sha256"]
    blocker.unlink()
    resumed = mlpipe("run", "training", "--runner", "dagster", "--resume", run_dir.name, "--json")
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["runner"] == "dagster" and out["run_id"] == run_dir.name
    assert [s["cached"] for s in out["steps"]] == [True, True, True, False]
    steps = {s["step"]: s["ref"] for s in out["steps"]}
    assert steps["train_model"]["sha256"] == trained  # the failed attempt's weights, reused
    assert steps["upload_model"]["version"] == 1  # the failed attempt published none
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "succeeded" and record["resumed_from"]["status"] == "failed"
    assert record["resumed_from"]["failed_step"] == "upload_model"
    unknown = mlpipe("run", "training", "--resume", "nope")
    assert unknown.returncode == 2 and "no run nope" in unknown.stderr
