"""One set of orchestrated runs per runner and worker, which several test files assert on.

Every orchestrated run costs an orchestrator start (an Airflow child importing Airflow, a kfp
process per task), so the facts a test file checks about "a training, then an inference, through
runner X" come from one shared sequence per runner instead of each file's own: training,
the same training again (served from the step cache), a fused inference and the user's pipeline
(examples/champion_challenger.py), in a copy of a home whose registry already has v1
(production, also as ONNX) and v2 (staging). The sequence runs the first time a test asks for
it, in that test's environment (an Airflow test's carries the worker's migrated DB template),
with progress lines due on every update (the log tests read them); the training runs on a
Dagster instance of its own (the Dagster tests read its event log), the other runs on Dagster's
throwaway one, as without ``DAGSTER_HOME``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from examples.champion_challenger import PIPELINE as CHAMPION_CHALLENGER
from mlpipe.core import INFERENCE, TRAINING, InferenceConfig, TrainingConfig, load_config
from mlpipe.core.execution import PipelineRun, get_runner
from mlpipe.core.execution.timings import PHASES
from mlpipe.core.registry import open_registry
from tests.support import ROOT, TINY_INFERENCE, TINY_TRAINING

EXAMPLE_CONFIG = ROOT / "examples" / "champion_challenger.yaml"
#: ``runtime.fuse`` for the inference run: the light steps before the map step, as one task.
FUSED = "[[load_inference_data, split_inference_data, load_model]]"
#: The alias the shared training publishes under: not one the example reads (its challenger is
#: ``staging``, its champion ``production``), so the seeded v1/v2 stay what the example compares.
ALIAS = "candidate"
TRAINING_SET = ["data.generated.n_samples=300", "training.epochs=1", "training.seed=3",
                f"registry.aliases=[{ALIAS}]"]
INFERENCE_SET = ["data.generated.n_samples=100", "inference.model=tiny-sentiment:v3",
                 f"runtime.fuse={FUSED}"]  # fused on every runner: same outputs


@dataclass
class RunnerRuns:
    """What one runner's shared sequence left: its home and each run, as the runner returned it."""

    runner: str
    home: Path
    dagster_home: Path
    training: PipelineRun
    again: PipelineRun
    inference: PipelineRun
    example: PipelineRun
    #: (step, state) as ``on_step`` reported them during the first training
    seen: list[tuple[str, str]] = field(default_factory=list)

    def facts(self) -> dict[str, Any]:
        """The facts compared across runners (the local runner's are the reference)."""
        registry = load_config(TINY_TRAINING).registry
        production = open_registry(registry, self.home).resolve("tiny-sentiment:production")
        return {
            "timings": [_timings(run) for run in (self.training, self.inference, self.example)],
            "fused_named": "load_inference_data__split_inference_data__load_model"
            in json.dumps(self.inference.extra),
            "training": hashes(self.training),
            "rerun": {"cached": [s.cached for s in self.again.steps],
                      "hashes": hashes(self.again),
                      "version": (self.training.outputs["upload_model"].version,  # type: ignore[attr-defined]
                                  self.again.outputs["upload_model"].version)},  # type: ignore[attr-defined]
            "inference": hashes(self.inference),
            "example": hashes(self.example),
            "runner": {"training": self.training.runner, "example": self.example.runner},
            "production": {"version": production.version},
            "decision": {"winner": self.example.outputs["decide"].winner},  # type: ignore[attr-defined]
        }


def hashes(run: PipelineRun) -> dict[str, str]:
    return {s.step: s.ref.sha256 for s in run.steps}


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


def seed_home(home: Path) -> Path:
    """A home whose registry has v1 as production and v2 as staging (two tiny trainings; v1
    also published as ONNX), without their runs or cache."""
    local = get_runner("local")
    for seed in (1, 2):
        cfg = load_config(TINY_TRAINING, ["data.generated.n_samples=300", "training.epochs=1",
                                          f"training.seed={seed}", f"artifacts.onnx={seed == 1}"])
        local.run(TRAINING, cfg, home=home)
    open_registry(cfg.registry, home).promote("tiny-sentiment", 1, "production")
    shutil.rmtree(home / "runs")
    shutil.rmtree(home / "cache", ignore_errors=True)
    return home


def run_sequence(runner_name: str, seeded: Path, where: Path) -> RunnerRuns:
    """Training, its cached rerun, a fused inference and the user's pipeline through one runner,
    in a copy of the seeded home."""
    home = where / "home"
    shutil.copytree(seeded, home)
    dagster_home = where / "dagster_home"
    dagster_home.mkdir()
    runner = get_runner(runner_name)
    seen: list[tuple[str, str]] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLPIPE_PROGRESS_INTERVAL", "0")  # every update due: the log tests' lines
        mp.delenv("MLPIPE_PROGRESS", raising=False)
        mp.delenv("DAGSTER_HOME", raising=False)  # a throwaway instance, but for the training
        paths = os.environ.get("PYTHONPATH", "")  # task processes import the example
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), paths) if p))
        train_cfg = load_config(TINY_TRAINING, TRAINING_SET)
        assert isinstance(train_cfg, TrainingConfig)
        with pytest.MonkeyPatch.context() as kept:  # the training's instance is kept: its
            kept.setenv("DAGSTER_HOME", str(dagster_home))  # event log is read afterwards
            training = runner.run(TRAINING, train_cfg, home=home,
                                  on_step=lambda step, state, _: seen.append((step, state)))
        again = runner.run(TRAINING, train_cfg, home=home, run_id=f"{runner_name}-again")
        infer_cfg = load_config(TINY_INFERENCE, INFERENCE_SET)
        assert isinstance(infer_cfg, InferenceConfig)
        inference = runner.run(INFERENCE, infer_cfg, home=home, run_id=f"{runner_name}-infer")
        example_cfg = load_config(EXAMPLE_CONFIG, config_type=CHAMPION_CHALLENGER.config_type)
        example = runner.run(CHAMPION_CHALLENGER, example_cfg, home=home)
    return RunnerRuns(runner_name, home, dagster_home, training, again, inference, example, seen)


class SharedRuns:
    """Each runner's sequence, run on first request and kept for the worker's session; a
    sequence that failed fails every test that asks for it with the same error, not a rerun."""

    def __init__(self, seeded: Path, where: pytest.TempPathFactory) -> None:
        self._seeded = seeded
        self._where = where
        self._runs: dict[str, RunnerRuns | BaseException] = {}

    def __call__(self, runner: str) -> RunnerRuns:
        if runner not in self._runs:
            try:
                self._runs[runner] = run_sequence(runner, self._seeded,
                                                  self._where.mktemp(f"shared-{runner}"))
            except Exception as exc:  # kept: the next test asking gets it, without a rerun
                self._runs[runner] = exc
        got = self._runs[runner]
        if isinstance(got, BaseException):
            raise AssertionError(f"the shared {runner} runs failed: {got!r}") from got
        return got
