"""`mlpipe bench --scale` for real (#18): sharded inference at two row counts, 1 shard against 2,
with each shard's own memory and work recorded, identical predictions, a table and a chart."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import venv_env


@pytest.mark.slow
def test_scale_bench_reports_growth_memory_and_identical_predictions(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "mlpipe", "bench", "--scale", "--quick", "--runners", "local",
         "--rows", "600,1200", "--out", str(out)],
        capture_output=True, text=True, env=venv_env(), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "scale.json").read_text())
    assert report["rows"] == [600, 1200] and report["shards"] == [1, 2]
    cells = {(r["rows"], r["shard_count"]): r for r in report["raw"]}
    assert set(cells) == {(600, 1), (600, 2), (1200, 1), (1200, 2)}
    for (rows, shards), cell in cells.items():
        assert cell["ok"], cell.get("error")
        assert len(cell["shards"]) == shards  # one record per shard
        assert sum(s["rows"] for s in cell["shards"]) == rows
        assert all(s["peak_rss_mib"] > 50 and s["work_s"] > 0 for s in cell["shards"])
        assert cell["tree_peak_rss_mib"] >= max(s["peak_rss_mib"] for s in cell["shards"]) * 0.9
        assert cell["rows_per_s"] > 0 and 0 < cell["row_work_s"] < cell["seconds"]
    assert len({s["pid"] for s in cells[(1200, 2)]["shards"]}) == 2  # each in its own process
    summary = report["summary"]
    assert summary["failed"] == []
    assert summary["identical_predictions"] == {"600": True, "1200": True}
    assert set(summary["growth"]) == {"local/1", "local/2"}
    assert {(x["runner"], x["rows"]) for x in summary["shards_vs_one"]} == {
        ("local", 600), ("local", 1200)}
    table = (out / "scale.md").read_text()
    assert "How time grows with rows" in table and "2 shards against 1" in table
    assert (out / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scale_bench_rejects_bad_row_counts(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlpipe", "bench", "--scale", "--rows", "10k", "--out",
         str(tmp_path)],
        capture_output=True, text=True, env=venv_env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "--rows" in proc.stderr
