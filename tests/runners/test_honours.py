"""Each runner's declarations (``Runner.honours``) against what it really does, in one run per
runner of a pipeline that uses the three settings a runner may not honour: ``runtime.retries``
(a step fails its first try), side-by-side shards (two shards that sleep) and
``cluster.resources`` (each shard records the limits its process got). A declaration that drifts
from the runner's behaviour fails here (the unit test checks that every setting is declared)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from mlpipe.core import plugins
from mlpipe.core.errors import StepFailedError
from mlpipe.core.execution import get_runner
from mlpipe.core.execution.honours import SETTINGS, not_honoured
from tests.support.plan_pipelines import HONOURS_PIPELINE, HonoursConfig, process_limits


@pytest.mark.parametrize("runner", plugins.names("runner"))
def test_every_runner_declares_every_setting(runner: str) -> None:
    """Moved from the unit tier: loading the Airflow plugin there cost a migrated Airflow DB
    per worker; here the runner's work unit pays for it once."""
    honours = plugins.load("runner", runner).honours
    assert set(honours) == set(SETTINGS), runner
    for level, why in honours.values():
        assert level in ("applied", "approximated", "ignored") and why


@pytest.mark.slow
@pytest.mark.parametrize("runner", plugins.names("runner"))
def test_declarations_hold_for_retries_shards_and_resources(runner: str, home: Path,
                                                            tmp_path: Path) -> None:
    honours = type(get_runner(runner)).honours
    level = {name: honours[name][0] for name in ("retries", "side_by_side_shards", "resources")}
    tries = tmp_path / "tries.txt"
    cfg = HonoursConfig.model_validate({
        "tries_file": str(tries), "nap_s": 2.0,
        "runtime": {"retries": 1, "retry_delay_s": 0},
        "cluster": {"resources": {"cpu": "1", "memory": "1Gi"}}})
    named = {name for name, *_ in not_honoured(honours, HONOURS_PIPELINE, cfg)}
    assert named == {n for n, lv in level.items() if lv != "applied"}  # said before a run
    failed: StepFailedError | None = None
    try:
        get_runner(runner).run(HONOURS_PIPELINE, cfg, home=home, run_id="honours-1",
                               use_cache=False)
    except StepFailedError as exc:
        failed = exc
    tried = len(tries.read_text().splitlines())
    if level["retries"] == "applied":  # the first try failed, the retry succeeded
        assert failed is None and tried == 2, (runner, failed, tried)
    else:  # the first failure ended the run
        assert failed is not None and failed.step == "flaky" and tried == 1, (runner, tried)
    run_dir = home / "runs" / "honours_test" / "honours-1"
    results = [json.loads(p.read_text()) for p in run_dir.glob("nap/shard-*/result.json")]
    windows = sorted((r["timings"]["entered"], r["ended"]) for r in results)
    assert len(windows) == 2, runner
    overlap = any(b[0] < a[1] for a, b in itertools.pairwise(windows))
    if level["side_by_side_shards"] == "applied":
        assert overlap, (runner, windows)
    elif level["side_by_side_shards"] == "ignored":
        assert not overlap, (runner, windows)
    limits = [json.loads(p.read_text()) for p in run_dir.glob("nap/**/limits.json")]
    assert len(limits) == 2, runner
    if level["resources"] == "ignored":  # no memory limit, no CPU pinning reached the task
        assert all(got == process_limits() for got in limits), (runner, limits)
