"""Champion/challenger: score the registry's ``staging`` and ``production`` versions on one
held-out set, compare them on a metric, and promote the winner to ``production``.

A pipeline written the way you would write your own: a pydantic config, five plain functions and a
``Pipeline`` that lists them. ``score`` is a map step: it runs once per candidate version, side by
side, in each orchestrator's own fan-out. It reuses mlpipe's built-in steps as building blocks and
runs on every runner::

    mlpipe run examples.champion_challenger:PIPELINE --runner dagster \\
        --config examples/champion_challenger.yaml
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, SerializeAsAny

from mlpipe.core import steps
from mlpipe.core.config import (
    DataConfig,
    GeneratedDataConfig,
    InferenceConfig,
    InferenceSettings,
    PipelineSettings,
    RegistryConfig,
    plugin_section,
)
from mlpipe.core.errors import ModelNotFoundError
from mlpipe.core.hashing import sha256_file
from mlpipe.core.pipeline import Pipeline, Step, StepContext
from mlpipe.core.refs import DatasetRef, ModelVersionRef, Ref, ShardsRef
from mlpipe.core.registry import open_registry


class ChampionChallengerConfig(PipelineSettings):
    """Which model, which versions, which data and metric decide, and what the winner becomes."""

    pipeline: Literal["champion_challenger"] = "champion_challenger"
    model_name: str = "sentiment"
    challenger: str = Field("staging", description="alias (or vN) of the candidate")
    champion: str = Field("production", description="alias of the version serving today")
    metric: str = "accuracy"
    min_delta: float = Field(0.0, ge=0, description="the challenger must win by more than this")
    promote_to: str = "production"
    data: DataConfig = DataConfig(generated=GeneratedDataConfig(n_samples=400, seed=21))
    batch_size: int = Field(64, ge=1)
    registry: SerializeAsAny[RegistryConfig] = Field(
        default_factory=lambda: plugin_section("registry", {}, "registry")
    )


class ScoreRef(Ref):
    """One version's predictions on the eval set and their metrics (``None`` if it is absent)."""

    kind: Literal["score"] = "score"
    model: str | None
    metrics: dict[str, float] = Field(default_factory=dict)


class CandidateRef(Ref):
    """A version to score: its role and its registry reference (alias or vN)."""

    kind: Literal["candidate"] = "candidate"
    role: str
    model: str


class DecisionRef(Ref):
    """Which version won, by how much, and whether it should be promoted."""

    kind: Literal["decision"] = "decision"
    winner: str
    promote: bool
    reason: str


def _inference_config(config: ChampionChallengerConfig, model: str) -> InferenceConfig:
    return InferenceConfig(
        data=config.data,
        inference=InferenceSettings(model=model, batch_size=config.batch_size),
        registry=config.registry,
    )


def load_eval_set(config: ChampionChallengerConfig, ctx: StepContext) -> DatasetRef:
    """The held-out rows, prepared exactly as the inference pipeline prepares its input."""
    return steps.load_inference_data(_inference_config(config, f"{config.model_name}:latest"), ctx)


def candidates(config: ChampionChallengerConfig, ctx: StepContext) -> ShardsRef:
    """The versions to score, challenger first, as shards: ``score`` runs once per candidate,
    side by side (a map step: each runner's own fan-out)."""
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    refs = []
    for role, which in (("challenger", config.challenger), ("champion", config.champion)):
        path = ctx.out_dir / f"{role}.json"
        path.write_text(json.dumps({"role": role, "model": f"{config.model_name}:{which}"}))
        refs.append(CandidateRef(uri=str(path), sha256=sha256_file(path), role=role,
                                 model=f"{config.model_name}:{which}"))
    return ShardsRef.of(refs, uri=str(ctx.out_dir))


def score(config: ChampionChallengerConfig, ctx: StepContext, dataset: DatasetRef,
          candidate: CandidateRef) -> ScoreRef:
    """Predict the eval set with one candidate version (absent: a first run has no champion)."""
    cfg = _inference_config(config, candidate.model)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        model = steps.fetch_model(cfg, _sub(ctx, "model"))
    except ModelNotFoundError:  # no champion yet: the challenger wins by default
        empty = ctx.out_dir / "absent.json"
        empty.write_text(json.dumps({"model": candidate.model, "absent": True}))
        return ScoreRef(uri=str(empty), sha256=sha256_file(empty), model=None)
    predictions = steps.run_inference(cfg, _sub(ctx, "predictions"), dataset, model)
    results = steps.save_results(cfg, _sub(ctx, "results"), dataset, predictions)
    return ScoreRef(uri=results.predictions_uri, sha256=results.sha256, model=model.spec,
                    metrics=results.metrics)


def decide(config: ChampionChallengerConfig, ctx: StepContext, scores: ShardsRef) -> DecisionRef:
    """The challenger wins if there is no champion, or it beats it by more than ``min_delta``."""
    challenger, champion = (s for s in scores.refs if isinstance(s, ScoreRef))
    new = challenger.metrics.get(config.metric)
    if challenger.model is None or new is None:
        raise ModelNotFoundError(f"{config.model_name}:{config.challenger} has no "
                                 f"'{config.metric}' to compare")
    old = champion.metrics.get(config.metric)
    if champion.model is None or old is None:
        winner, promote, reason = challenger.model, True, "no champion yet"
    elif challenger.model == champion.model:
        winner, promote, reason = champion.model, False, "challenger is the champion"
    elif new > old + config.min_delta:
        winner, promote, reason = challenger.model, True, f"{config.metric} {new:.4f} > {old:.4f}"
    else:
        winner, promote, reason = champion.model, False, f"{config.metric} {new:.4f} <= {old:.4f}"
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.out_dir / "decision.json"
    compared = {"challenger": new, "champion": old}  # the metric only: timings vary run to run
    path.write_text(json.dumps({"winner": winner, "promote": promote, "reason": reason,
                                "metric": config.metric, **compared}, sort_keys=True, indent=2))
    return DecisionRef(uri=str(path), sha256=sha256_file(path), winner=winner, promote=promote,
                       reason=reason)


def promote(config: ChampionChallengerConfig, ctx: StepContext,
            decision: DecisionRef) -> ModelVersionRef:
    """Move ``promote_to`` to the winner (a no-op when the champion held)."""
    registry = open_registry(config.registry, ctx.home)
    name, _, version = decision.winner.partition(":v")
    if decision.promote:
        return registry.promote(name, int(version), config.promote_to)
    return registry.resolve(decision.winner)


def _sub(ctx: StepContext, name: str) -> StepContext:
    return StepContext(home=ctx.home, run_id=ctx.run_id, pipeline=ctx.pipeline, step=ctx.step,
                       out_dir=Path(ctx.out_dir) / name, tags=ctx.tags)


PIPELINE = Pipeline(
    name="champion_challenger",
    config_type=ChampionChallengerConfig,
    description="Score staging and production on one eval set; promote the better one.",
    steps=(
        Step("load_eval_set", load_eval_set, asset="eval_set",
             description="Held-out rows as parquet", config_sections=("data",)),
        Step("candidates", candidates, asset="candidates",
             description="The versions to score, challenger first",
             config_sections=("model_name", "challenger", "champion")),
        Step("score", score, asset="scores", description="Each candidate's predictions and metrics",
             inputs={"dataset": "load_eval_set", "candidate": "candidates"},
             map_over="candidates", cacheable=False),
        Step("decide", decide, asset="decision", description="Which version wins, and why",
             inputs={"scores": "score"}, config_sections=("metric", "min_delta")),
        Step("promote", promote, asset="production_model",
             description="The version the promote_to alias points at",
             inputs={"decision": "decide"}, cacheable=False),
    ),
)
