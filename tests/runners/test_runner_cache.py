"""The step cache works the same through every orchestrator: a rerun is served from it."""

from pathlib import Path

import pytest

from mlpipe.core import TRAINING, TrainingConfig, plugins
from mlpipe.core.execution import get_runner


@pytest.mark.slow
@pytest.mark.parametrize("runner", [r for r in plugins.names("runner") if r != "local"])
def test_second_run_is_served_from_the_cache(
    runner: str, home: Path, tiny_training: TrainingConfig
) -> None:
    adapter = get_runner(runner)
    first = adapter.run(TRAINING, tiny_training, home=home)
    second = adapter.run(TRAINING, tiny_training, home=home)
    assert [s.cached for s in first.steps] == [False] * 4
    assert [s.cached for s in second.steps] == [True, True, True, False]  # publish is idempotent
    assert second.outputs["train_model"].sha256 == first.outputs["train_model"].sha256
    assert second.outputs["upload_model"].version == first.outputs["upload_model"].version == 1
    forced = adapter.run(TRAINING, tiny_training, home=home, use_cache=False)
    assert not any(s.cached for s in forced.steps)
