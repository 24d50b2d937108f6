"""The local runner: every step in order, in this process. The reference for all others."""

from __future__ import annotations

from pathlib import Path

from mlpipe.core.config import PipelineSettings
from mlpipe.core.errors import StepFailedError
from mlpipe.core.execution.runner import Launch, Runner, StepCallback
from mlpipe.core.execution.step import StepRun, run_step
from mlpipe.core.pipeline import Pipeline


class LocalRunner(Runner):
    """Calls ``run_step`` for each step, feeding each its upstream references directly."""

    name = "local"
    reports_steps = True

    def launch(
        self,
        pipeline: Pipeline,
        config: PipelineSettings,
        *,
        home: Path,
        run_id: str,
        use_cache: bool | None,
        on_step: StepCallback | None,
    ) -> Launch:
        outputs: dict[str, StepRun] = {}
        for step in pipeline.steps:
            if on_step:
                on_step(step.name, "running", None)
            inputs = {arg: outputs[src].ref for arg, src in step.inputs.items()}
            try:
                result = run_step(
                    pipeline,
                    step.name,
                    config,
                    inputs,
                    home=home,
                    run_id=run_id,
                    use_cache=use_cache,
                    tags={"runner": self.name},
                )
            except StepFailedError:
                if on_step:
                    on_step(step.name, "failed", None)
                raise
            outputs[step.name] = result
            if on_step:
                on_step(step.name, "cached" if result.cached else "done", result)
        return Launch(orchestrator_run_id=run_id)
