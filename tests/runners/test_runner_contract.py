"""Every registered runner runs every pipeline as the local runner does: the built-in training
and inference pipelines, and a pipeline a user wrote (examples/champion_challenger.py), with
identical weights, predictions and decisions, and serves a second training from the step cache.
Parametrised from the plugin registry."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from examples.champion_challenger import PIPELINE as CHAMPION_CHALLENGER
from mlpipe.core import INFERENCE, load_config, plugins
from mlpipe.core.execution import get_runner
from tests.support import ROOT
from tests.support.shared_runs import SharedRuns, hashes

RUNNERS = plugins.names("runner")


def _assert_breakdown(timings: list[dict[str, dict[str, float]]]) -> None:
    for run in timings:
        for step, phases in run.items():
            assert all(v >= 0 for v in phases.values()), (step, phases)
            assert sum(phases.values()) > 0, (step, phases)


# session, not module: this file's tests run in several xdist work units (one per runner)
@pytest.fixture(scope="session")
def reference(shared_runs: SharedRuns) -> dict[str, Any]:
    return shared_runs("local").facts()


@pytest.mark.slow
@pytest.mark.parametrize("runner", [r for r in RUNNERS if r != "local"])
def test_runner_matches_local_on_every_pipeline(
    runner: str, shared_runs: SharedRuns, reference: dict[str, Any]
) -> None:
    got = shared_runs(runner).facts()
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
    return hashes(run)["run_inference"]


#: The torch backend (the default) is not a case here: every runner's torch predictions are
#: compared byte for byte with the local runner's by the shared fused inference
#: (test_runner_matches_local_on_every_pipeline) and, unfused and sharded, by
#: tests/runners/test_shards.py, each on every runner; a case here was one more run of each.
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx"])
@pytest.mark.parametrize("runner", [r for r in RUNNERS if r != "local"])
def test_inference_backend_predicts_as_local(
    runner: str, backend: str, seeded_home: Path, tmp_path: Path
) -> None:
    """Per backend, every runner writes byte-identical predictions to the local runner's."""
    local = _backend_predictions("local", backend, seeded_home, tmp_path)
    assert _backend_predictions(runner, backend, seeded_home, tmp_path) == local


def test_local_reference_runs_the_user_pipeline(reference: dict[str, Any]) -> None:
    assert reference["rerun"]["cached"] == [True, True, True, False]
    assert set(reference["example"]) == set(CHAMPION_CHALLENGER.step_names)
    _assert_breakdown(reference["timings"])
    assert reference["decision"]["winner"].startswith("tiny-sentiment:v")
