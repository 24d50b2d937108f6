"""The local runner's rule for a map step's shards: in its own process when they fit in memory
(``runtime.in_process_shards_mib``), else a process per shard."""

from __future__ import annotations

from pathlib import Path

from mlpipe.core.execution.local import in_process, input_bytes
from mlpipe.core.execution.plan import plan
from mlpipe.core.hashing import sha256_file
from mlpipe.core.refs import ShardsRef
from tests.support.plan_pipelines import PLAN_PIPELINE, PlanConfig, ValuesRef


def _shards(tmp_path: Path, sizes: list[int], *, shared: bool = False) -> ShardsRef:
    refs = []
    for i, size in enumerate(sizes):
        folder = tmp_path / ("shared" if shared else f"part-{i}")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"values-{i}.json").write_bytes(b"x" * size)
        refs.append(ValuesRef(uri=str(folder), sha256=sha256_file(folder / f"values-{i}.json"),
                              count=size))
    return ShardsRef.of(refs, uri=str(tmp_path))


def test_input_bytes_counts_each_file_once_and_stops_past_the_limit(tmp_path: Path) -> None:
    assert input_bytes(_shards(tmp_path / "a", [100, 200, 300])) == 600
    # shards whose references share a folder: its files count once, not once per shard
    assert input_bytes(_shards(tmp_path / "b", [100, 200, 300], shared=True)) == 600
    assert input_bytes(_shards(tmp_path / "c", [100, 200, 300]), limit=150) == 300


def test_shards_run_here_only_when_their_input_fits_the_setting(tmp_path: Path) -> None:
    square = "square__shard"

    def here(mib: float, shards: ShardsRef | None) -> bool:
        cfg = PlanConfig.model_validate({"runtime": {"in_process_shards_mib": mib}})
        task = plan(PLAN_PIPELINE, cfg).task(square)
        job = task.job("r1", home=str(tmp_path / "home"), shard=0)
        return in_process(PLAN_PIPELINE, task, job, {"split": shards} if shards else {})

    mib = 2**20
    small, large = _shards(tmp_path / "s", [mib // 2]), _shards(tmp_path / "l", [mib, mib])
    assert here(1, small) and not here(1, large) and here(2, large)
    assert not here(0, small)  # 0: always a process per shard
    assert PlanConfig().runtime.in_process_shards_mib == 1  # the default
    assert not here(1, None)  # no reference and no record of it: a process per shard
