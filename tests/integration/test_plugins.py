"""The plugin registry: built-ins come from entry points like any third party's, lazily."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpipe.core import ConfigError, TrainingConfig, load_config, plugins
from mlpipe.core.execution import get_runner
from mlpipe.core.execution.local import LocalRunner
from tests.support import TINY_TRAINING, venv_env

BUILTINS = {
    "runner": {"local", "airflow", "kubeflow", "dagster"},
    "registry": {"local", "wandb"},
    "tracker": {"none", "wandb"},
    "task": {"text-classification", "text-to-sql"},
    "pipeline": {"training", "inference"},
}


class InlineRunner(LocalRunner):
    """A third-party runner: subclass, register, done."""

    name = "inline"


@pytest.mark.parametrize("kind", plugins.KINDS)
def test_builtins_are_registered_through_entry_points(kind: plugins.Kind) -> None:
    assert BUILTINS[kind] <= set(plugins.names(kind))
    for name in BUILTINS[kind]:
        assert plugins.load(kind, name) is not None  # every target imports


@pytest.mark.parametrize("kind", plugins.KINDS)
def test_unknown_name_lists_the_registered_ones(kind: plugins.Kind) -> None:
    with pytest.raises(ConfigError) as info:
        plugins.load(kind, "no-such-thing")
    assert info.value.exit_code == 2
    assert all(name in str(info.value) for name in BUILTINS[kind])


def test_unknown_backend_in_a_config_is_exit_2_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"registry\.backend: unknown registry 'nope'.*local"):
        load_config(TINY_TRAINING, ["registry.backend=nope"])
    with pytest.raises(ConfigError, match=r"tracking\.backend: unknown tracker 'nope'.*wandb"):
        load_config(TINY_TRAINING, ["tracking.backend=nope"])
    with pytest.raises(ConfigError, match=r"task: unknown task 'nope'.*text-to-sql"):
        load_config(TINY_TRAINING, ["task=nope"])


def test_backend_fields_live_with_the_backend() -> None:
    cfg = load_config(TINY_TRAINING, ["registry.backend=wandb", "registry.wandb_mode=offline"])
    assert type(cfg.registry).__name__ == "WandbRegistryConfig"
    assert cfg.model_dump()["registry"]["wandb_mode"] == "offline"  # serialized as the backend's
    with pytest.raises(ConfigError, match=r"registry\.wandb_mode: unknown field") as info:
        load_config(TINY_TRAINING, ["registry.wandb_mode=offline"])  # not a local setting
    assert "wandb_mode: setting(s) of backend 'wandb'; set backend: wandb" in str(info.value)


def test_runtime_registration_runs_a_user_runner(home: Path, tiny_training: TrainingConfig) -> None:
    plugins.register("runner", "inline", f"{__name__}:InlineRunner")
    try:
        run = get_runner("inline").run("training", tiny_training, home=home)
    finally:
        plugins.unregister("runner", "inline")
    assert run.runner == "inline" and len(run.steps) == 4


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed third-party distribution (its dist-info on sys.path) with entry points."""
    site = tmp_path / "site"
    (site / "acme_mlpipe").mkdir(parents=True)
    (site / "acme_mlpipe" / "__init__.py").write_text(textwrap.dedent("""
        from mlpipe.core.execution.local import LocalRunner

        class AcmeRunner(LocalRunner):
            name = "acme"
    """))
    info = site / "acme_mlpipe-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-mlpipe\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mlpipe.runners]\nacme = acme_mlpipe:AcmeRunner\n")
    monkeypatch.syspath_prepend(str(site))
    plugins.clear_cache()
    yield site
    plugins.clear_cache()


def test_third_party_entry_point_is_found_lazily(third_party: Path) -> None:
    assert "acme" in plugins.names("runner")
    assert "acme_mlpipe" not in sys.modules  # listed without importing
    assert get_runner("acme").name == "acme"


def test_cli_offers_registered_runners_and_refuses_unknown(home: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlpipe", "run", "training", "--runner", "nope", "-c",
         str(TINY_TRAINING)],
        capture_output=True, text=True, env=venv_env(), timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert "unknown runner 'nope'" in proc.stderr and "dagster" in proc.stderr
    assert not home.exists()  # refused before anything was written
