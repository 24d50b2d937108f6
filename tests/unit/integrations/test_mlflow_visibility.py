"""The MLflow backend's reader rule (issue 31 point 8): which model versions readers see, and
which incomplete ones a retry may replace. Model versions as the MLflow client returns them,
reduced to what the rule reads (their tags); the real server runs in
tests/system/test_mlflow_publish_faults.py."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from mlpipe.core import liveness
from mlpipe.integrations import mlflow as backend

SHA = "ab" * 32


def _version(publisher: dict[str, Any] | None, completed: str | None = None) -> Any:
    tags = {backend.SHA_TAG: SHA}
    if publisher is not None:
        tags[backend.PUBLISHING_TAG] = json.dumps(publisher)
    if completed is not None:
        tags[backend.COMPLETE_TAG] = completed
    return SimpleNamespace(tags=tags, version="2")


def test_a_version_is_seen_once_its_completion_tag_names_its_manifest() -> None:
    me = {**liveness.identity(), "token": "t1"}
    assert backend.complete(_version(None))  # an older mlpipe, or registered by hand
    assert not backend.complete(_version(me))
    assert not backend.complete(_version(me, completed="cd" * 32))
    assert backend.complete(_version(me, completed=SHA))


def test_only_a_leftover_whose_publisher_has_ended_is_replaced() -> None:
    me = liveness.identity()
    ended_here = {**me, "token": "t-ended"}
    assert backend.abandoned(_version(ended_here))  # this process, that publish is over
    backend._IN_FLIGHT.add("t-running")
    try:
        assert not backend.abandoned(_version({**me, "token": "t-running"}))
    finally:
        backend._IN_FLIGHT.discard("t-running")
    reused_pid = {**me, "pid_start": "1", "token": "t"}  # same pid, another process: dead
    assert backend.abandoned(_version(reused_pid))
    elsewhere = {**me, "host": "another-machine", "token": "t"}  # cannot tell: kept
    assert not backend.abandoned(_version(elsewhere))
    old = _version(elsewhere)
    old.creation_timestamp = 1_000_000_000_000  # ms; judged at +10 min, then at +2 h
    assert not backend.abandoned(old, now=1_000_000_000 + 600)
    assert backend.abandoned(old, now=1_000_000_000 + 7200)
    assert not backend.abandoned(_version(ended_here, completed=SHA))  # complete: never
    assert not backend.abandoned(_version(None))
