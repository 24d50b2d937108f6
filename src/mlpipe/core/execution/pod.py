"""What a step's container runs (``mlpipe step NAME ...``): pull, load upstream, run, push.

In cluster mode each step is its own pod. It reads the results of the earlier steps of the same
run from the shared home (a volume) or, with ``cluster.storage_uri``, from an object store it
syncs before and after, so pods share nothing else.
"""

from __future__ import annotations

from pathlib import Path

from mlpipe.core.config import PipelineSettings
from mlpipe.core.errors import ConfigError
from mlpipe.core.execution.step import StepRun, load_step_result, run_step
from mlpipe.core.pipeline import Pipeline
from mlpipe.core.refs import Ref
from mlpipe.core.storage import pull_for_step, push_for_step


def run_pod_step(
    pipeline: Pipeline,
    step: str,
    config: PipelineSettings,
    *,
    home: Path,
    run_id: str,
    use_cache: bool | None = None,
    runner: str = "step",
) -> StepRun:
    """Run one step of a run whose earlier steps already ran (in other pods, perhaps)."""
    try:
        spec = pipeline.step(step)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    pull_for_step(config, pipeline, step, home, run_id)  # cluster.storage_uri: inputs first
    inputs: dict[str, Ref] = {}
    for arg, source in spec.inputs.items():
        try:
            inputs[arg] = load_step_result(home, pipeline.name, run_id, source).ref
        except FileNotFoundError:
            raise ConfigError(
                f"step '{step}' needs '{source}' of run {run_id} first (no result under {home})"
            ) from None
    result = run_step(
        pipeline,
        step,
        config,
        inputs,
        home=home,
        run_id=run_id,
        use_cache=use_cache,
        tags={"runner": runner},
    )
    push_for_step(config, pipeline, step, home, run_id, result.ref)
    return result
