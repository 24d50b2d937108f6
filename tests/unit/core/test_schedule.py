"""``runtime.schedule``: one reading for every orchestrator (core's, no cron library)."""

from __future__ import annotations

import pytest

from mlpipe.core import INFERENCE, TRAINING, ConfigError, load_config
from mlpipe.core.config import PipelineSettings
from mlpipe.core.pipeline import Pipeline, Step
from mlpipe.core.schedule import cron_of
from tests.support import TINY_TRAINING


class _Settings(PipelineSettings):
    pipeline: str = "scheduled"


def _noop(config: _Settings, ctx: object) -> None:
    return None


USER = Pipeline("scheduled", _Settings, steps=(Step("only", _noop, "only", "does nothing"),))


def test_a_config_schedule_wins_presets_become_cron_and_defaults_are_per_pipeline() -> None:
    daily = load_config(TINY_TRAINING, ["runtime.schedule=@daily"])
    assert daily.runtime.schedule == "@daily"  # the config keeps what the user wrote
    assert TRAINING.cron(daily) == "0 0 * * *"
    quarterly = load_config(TINY_TRAINING, ["runtime.schedule=@quarterly"])
    assert TRAINING.cron(quarterly) == "0 0 1 */3 *"
    assert TRAINING.cron(load_config(TINY_TRAINING)) == "0 3 * * 0"  # built-in defaults
    assert INFERENCE.schedule == "0 5 * * *"
    assert USER.cron(_Settings()) is None  # a user pipeline is manual unless it says otherwise
    hourly = _Settings.model_validate({"runtime": {"schedule": "0 * * * *"}})
    assert USER.cron(hourly) == "0 * * * *"
    assert cron_of("*/15 1-5 * jan-mar mon,fri") == "*/15 1-5 * jan-mar mon,fri"
    with pytest.raises(ValueError, match="cron string"):  # a default is already a cron string
        Pipeline("scheduled", _Settings, steps=USER.steps, schedule="@daily")


@pytest.mark.parametrize("bad", ["@once", "61 * * * *", "0 3 * *", "1-2-3 * * * *", "x * * * *"])
def test_a_schedule_no_orchestrator_can_run_is_refused_at_load(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"runtime\.schedule.*not a cron schedule"):
        load_config(TINY_TRAINING, [f"runtime.schedule={bad}"])
