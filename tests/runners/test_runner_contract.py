"""Every registered runner runs every pipeline as the local runner does: the built-in training
and inference pipelines, and a pipeline a user wrote (examples/champion_challenger.py), with
identical weights, predictions and decisions, and serves a second training from the step cache.
Parametrised from the plugin registry."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from examples.champion_challenger import PIPELINE as CHAMPION_CHALLENGER
from mlpipe.core import INFERENCE, TRAINING, InferenceConfig, TrainingConfig, load_config, plugins
from mlpipe.core.execution import PipelineRun, get_runner
from mlpipe.core.execution.timings import PHASES
from mlpipe.core.registry import open_registry
from tests.support import ROOT

RUNNERS = plugins.names("runner")
EXAMPLE_CONFIG = ROOT / "examples" / "champion_challenger.yaml"


# session, not module: this file's tests run in several xdist work units (one per runner)
@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose registry has v1 as production and v2 as staging (two tiny trainings; v1
    also published as ONNX, for the backend cases)."""
    home = tmp_path_factory.mktemp("seeded") / "home"
    local = get_runner("local")
    for seed in (1, 2):
        cfg = load_config(ROOT / "configs" / "tiny" / "training.yaml",
                          ["data.generated.n_samples=300", "training.epochs=1",
                           f"training.seed={seed}", f"artifacts.onnx={seed == 1}"])
        local.run(TRAINING, cfg, home=home)
    open_registry(cfg.registry, home).promote("tiny-sentiment", 1, "production")
    shutil.rmtree(home / "runs")
    shutil.rmtree(home / "cache", ignore_errors=True)
    return home


def _hashes(run: PipelineRun) -> dict[str, str]:
    return {s.step: s.ref.sha256 for s in run.steps}


#: ``runtime.fuse`` for the inference run: the light steps before the map step, as one task.
FUSED = "[[load_inference_data, split_inference_data, load_model]]"


def _timings(run: PipelineRun) -> dict[str, dict[str, float]]:
    """Each step's phases as its result.json records them (the breakdown the benchmark shows)."""
    out = {}
    for step in run.steps:
        folder = run.run_dir / step.step
        shards = sorted(folder.glob("shard-*/result.json"))  # a map step: each shard's own,
        for result in [*shards, folder / "result.json"]:  # and the gathered (the last shard's)
            recorded = json.loads(result.read_text())["timings"]
            out[f"{step.step}/{result.parent.name}"] = {p: recorded[p] for p in PHASES}
    return out


def _assert_breakdown(timings: list[dict[str, dict[str, float]]]) -> None:
    for run in timings:
        for step, phases in run.items():
            assert all(v >= 0 for v in phases.values()), (step, phases)
            assert sum(phases.values()) > 0, (step, phases)


# session, not module: this file's tests run in several xdist work units (one per runner)
@pytest.fixture(scope="session")
def reference(seeded_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return _run_all("local", seeded_home, tmp_path_factory.mktemp("local"))


def _run_all(runner_name: str, seeded: Path, where: Path) -> dict[str, dict]:
    """Training, inference and the user's pipeline through one runner, in a copy of the home."""
    home = where / "home"
    shutil.copytree(seeded, home)
    runner = get_runner(runner_name)
    train_cfg = load_config(ROOT / "configs" / "tiny" / "training.yaml",
                            ["data.generated.n_samples=300", "training.epochs=1",
                             "training.seed=3", "registry.aliases=[]"])
    assert isinstance(train_cfg, TrainingConfig)
    training = runner.run(TRAINING, train_cfg, home=home)
    again = runner.run(TRAINING, train_cfg, home=home)  # served from the cache, published once
    infer_cfg = load_config(ROOT / "configs" / "tiny" / "inference.yaml",
                            ["data.generated.n_samples=100", "inference.model=tiny-sentiment:v3",
                             f"runtime.fuse={FUSED}"])  # fused on every runner: same outputs
    assert isinstance(infer_cfg, InferenceConfig)
    inference = runner.run(INFERENCE, infer_cfg, home=home)
    example_cfg = load_config(EXAMPLE_CONFIG, config_type=CHAMPION_CHALLENGER.config_type)
    example = runner.run(CHAMPION_CHALLENGER, example_cfg, home=home)
    production = open_registry(train_cfg.registry, home).resolve("tiny-sentiment:production")
    return {
        "timings": [_timings(run) for run in (training, inference, example)],
        "fused_named": "load_inference_data__split_inference_data__load_model"
        in json.dumps(inference.extra),
        "training": _hashes(training),
        "rerun": {"cached": [s.cached for s in again.steps], "hashes": _hashes(again),
                  "version": (training.outputs["upload_model"].version,  # type: ignore[attr-defined]
                              again.outputs["upload_model"].version)},  # type: ignore[attr-defined]
        "inference": _hashes(inference),
        "example": _hashes(example),
        "runner": {"training": training.runner, "example": example.runner},
        "production": {"version": production.version},
        "decision": {"winner": example.outputs["decide"].winner},  # type: ignore[attr-defined]
    }


@pytest.fixture(autouse=True)
def _examples_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Task processes (Airflow, kfp) import ``examples.champion_challenger`` as users' do."""
    paths = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), paths) if p))


@pytest.mark.slow
@pytest.mark.parametrize("runner", [r for r in RUNNERS if r != "local"])
def test_runner_matches_local_on_every_pipeline(
    runner: str, seeded_home: Path, reference: dict[str, dict], tmp_path: Path
) -> None:
    got = _run_all(runner, seeded_home, tmp_path)
    assert got["runner"] == {"training": runner, "example": runner}
    for pipeline in ("training", "inference", "example"):
        assert got[pipeline] == reference[pipeline], pipeline  # every step's output hash
    _assert_breakdown(got["timings"])
    # the second training was served from the step cache: a publish is never cached, and
    # publishing the same weights again is the same version
    assert got["rerun"]["cached"] == [True, True, True, False]
    assert got["rerun"]["hashes"]["train_model"] == got["training"]["train_model"]
    assert got["rerun"]["version"] == (3, 3)
    assert got["fused_named"], "the orchestrator's run metadata names each fused task"
    assert got["decision"] == reference["decision"]
    assert got["production"] == reference["production"]


def _backend_predictions(runner: str, backend: str, seeded: Path, where: Path) -> str:
    """sha256 of run_inference's predictions for v1 with ``backend``, through ``runner``."""
    home = where / f"{runner}-{backend}"
    shutil.copytree(seeded, home)
    cfg = load_config(ROOT / "configs" / "tiny" / "inference.yaml",
                      ["data.generated.n_samples=100", "inference.model=tiny-sentiment:v1",
                       f"inference.backend={backend}"])  # fmt: skip
    run = get_runner(runner).run(INFERENCE, cfg, home=home)
    return _hashes(run)["run_inference"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize("runner", [r for r in RUNNERS if r != "local"])
def test_inference_backend_predicts_as_local(
    runner: str, backend: str, seeded_home: Path, tmp_path: Path
) -> None:
    """Per backend, every runner writes byte-identical predictions to the local runner's."""
    local = _backend_predictions("local", backend, seeded_home, tmp_path)
    assert _backend_predictions(runner, backend, seeded_home, tmp_path) == local


def test_local_reference_runs_the_user_pipeline(reference: dict[str, dict]) -> None:
    assert reference["rerun"]["cached"] == [True, True, True, False]
    assert set(reference["example"]) == set(CHAMPION_CHALLENGER.step_names)
    _assert_breakdown(reference["timings"])
    assert reference["decision"]["winner"].startswith("tiny-sentiment:v")
