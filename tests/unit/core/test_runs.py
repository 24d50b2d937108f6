"""Run listing order: what ``runs list``, ``gc --keep-last`` and ``--resume`` call newest."""

from __future__ import annotations

import json
from pathlib import Path

from mlpipe.core.runs import list_runs


def _record(home: Path, run_id: str, started_ts: float | None) -> None:
    folder = home / "runs" / "training" / run_id
    folder.mkdir(parents=True)
    record = {"run_id": run_id, "pipeline": "training", "status": "succeeded",
              "started_at": "2026-12-04T11:43:42+00:00"}
    if started_ts is not None:
        record["started_ts"] = started_ts
    (folder / "run.json").write_text(json.dumps(record))


def test_runs_started_in_the_same_second_are_newest_first_by_their_epoch_start(
        tmp_path: Path) -> None:
    # the run ids' random suffixes sort the other way: a gc kept the older run as the newest
    _record(tmp_path, "20261204T114342-ffffff", 1796384622.1)
    _record(tmp_path, "20261204T114342-000000", 1796384622.9)
    assert [r["run_id"] for r in list_runs(tmp_path)] == [
        "20261204T114342-000000", "20261204T114342-ffffff"]


def test_records_without_an_epoch_start_still_list_by_started_at_then_id(tmp_path: Path) -> None:
    _record(tmp_path, "20261204T114342-aaaaaa", None)
    _record(tmp_path, "20261204T114342-bbbbbb", None)
    assert [r["run_id"] for r in list_runs(tmp_path)] == [
        "20261204T114342-bbbbbb", "20261204T114342-aaaaaa"]
