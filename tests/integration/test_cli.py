"""The CLI as a user runs it: real subprocesses, real exit codes, real files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TINY_INFERENCE, TINY_TRAINING, assert_failed_run, venv_env

FAST = ["--set", "data.generated.n_samples=200", "--set", "training.epochs=1"]


def mlpipe(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mlpipe", *args]
    if home is not None:
        cmd += ["--home", str(home)]
    return subprocess.run(cmd, capture_output=True, text=True, env=venv_env(), timeout=300)


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys, mlpipe.cli; heavy = [m for m in ('torch', 'transformers', 'airflow', 'kfp', "
        "'dagster', 'wandb') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=300)
    assert out.stdout.strip() == "[]"
    assert "demo" in mlpipe("--help").stdout


def test_a_task_process_loads_no_data_library_before_its_step() -> None:
    """What every kfp task and pod does before its step (pipeline, task plugin, config) loads
    neither pyarrow nor numpy nor torch: a step that reads no data never pays for them."""
    code = (
        "import sys; from mlpipe.core.config import config_from_json, load_config; "
        "from mlpipe.core.pipeline import resolve_pipeline; from mlpipe.core.task import get_task; "
        "p = resolve_pipeline('inference'); "
        "c = config_from_json(load_config(None, pipeline='inference').model_dump_json()); "
        "get_task(c.task); "
        "print([m for m in ('pyarrow', 'numpy', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=300)
    assert out.stdout.strip() == "[]"


def test_bad_config_exits_2_names_the_field_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = mlpipe("train", "--config", str(TINY_TRAINING), "--set", "training.epoch=2", home=home)
    assert result.returncode == 2
    assert "training.epoch: unknown field" in result.stderr
    assert not home.exists()


def test_missing_data_file_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = mlpipe(
        "train",
        "--config",
        str(TINY_TRAINING),
        "--set",
        "data.source=files",
        "--set",
        f"data.path={tmp_path / 'missing.csv'}",
        home=home,
    )
    assert result.returncode == 2
    assert "data.path: file not found" in result.stderr
    assert not home.exists()


def test_bad_data_file_exits_2_names_file_and_column(tmp_path: Path) -> None:
    home = tmp_path / "home"
    data = tmp_path / "reviews.csv"
    data.write_text("text,stars\ngreat,5\nawful,1\n")
    result = mlpipe(
        "train",
        "--config",
        str(TINY_TRAINING),
        "--set",
        "data.source=files",
        "--set",
        f"data.path={data}",
        home=home,
    )
    assert result.returncode == 2
    assert "reviews.csv: no label column 'label'" in result.stderr
    assert_failed_run(home, "training", "load_training_data")


def test_unknown_model_reference_exits_2(tmp_path: Path) -> None:
    result = mlpipe(
        "infer",
        "--config",
        str(TINY_INFERENCE),
        "--set",
        "inference.model=ghost:latest",
        home=tmp_path / "home",
    )
    assert result.returncode == 2
    assert "model 'ghost' is not in the registry" in result.stderr
    assert not (tmp_path / "home" / "runs").exists()  # refused before any step ran


@pytest.mark.slow
def test_train_infer_registry_and_step_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    trained = mlpipe(
        "run",
        "training",
        "--runner",
        "local",
        "--config",
        str(TINY_TRAINING),
        *FAST,
        "--set",
        "runtime.retries=1",
        "--json",
        home=home,
    )
    assert trained.returncode == 0, trained.stderr
    # a setting the config sets that the runner ignores is named before the run
    assert "warning: local ignores runtime.retries: a failed step fails" in trained.stderr
    report = json.loads(trained.stdout)
    assert [s["step"] for s in report["steps"]][-1] == "upload_model"

    inferred = mlpipe("infer", "--config", str(TINY_INFERENCE), "--json", home=home)
    assert inferred.returncode == 0, inferred.stderr
    assert "warning" not in inferred.stderr  # nothing set: its map step's shards are no warning
    final = json.loads(inferred.stdout)["steps"][-1]["ref"]
    assert Path(final["predictions_uri"]).is_file() and final["rows"] == 200

    listed = json.loads(mlpipe("registry", "list", "--json", home=home).stdout)
    assert [(v["name"], v["version"]) for v in listed] == [("tiny-sentiment", 1)]
    promoted = mlpipe("registry", "promote", "tiny-sentiment", "v1", "production", home=home)
    assert promoted.returncode == 0 and "production" in promoted.stdout
    assert mlpipe("registry", "promote", "tiny-sentiment", "v5", "x", home=home).returncode == 2

    # One step at a time, as a container would run them, chained through the run directory.
    for name in ("load_training_data", "train_model", "save_artifacts", "upload_model"):
        one = mlpipe(
            "step",
            name,
            "--pipeline",
            "training",
            "--run-id",
            "r1",
            "--config",
            str(TINY_TRAINING),
            *FAST,
            "--no-cache",
            home=home,
        )
        assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["ref"]["version"] == 1  # same seed, same content, same version
    early = mlpipe(
        "step",
        "train_model",
        "--pipeline",
        "training",
        "--run-id",
        "r2",
        "--config",
        str(TINY_TRAINING),
        home=home,
    )
    assert early.returncode == 2 and "needs 'load_training_data' of run r2" in early.stderr


def test_help_shows_flags_as_flags_and_version(tmp_path: Path) -> None:
    helped = mlpipe("train", "-h", home=tmp_path / "home")
    assert helped.returncode == 0 and "--no-cache" in helped.stdout
    lines = helped.stdout.splitlines()
    flags = [line for line in lines if "--no-cache" in line or "--json" in line]
    assert len(flags) == 2 and not any("<bool>" in line for line in flags)
    version = mlpipe("--version")
    assert version.returncode == 0 and version.stdout.startswith("mlpipe ")
