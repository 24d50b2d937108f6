"""``mlpipe gc``: old runs and stale cache entries go; a version, an alias's run, a running run
and the newest N runs per pipeline stay. Real runs of the tiny training, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mlpipe.core import TrainingConfig, run_pipeline
from mlpipe.core.gc import collect, du
from mlpipe.core.hashing import sha256_file
from mlpipe.core.pipelines import TRAINING
from mlpipe.registries.local import LocalRegistry
from tests.support import make_artifact, venv_env


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mlpipe", *args, "--home", str(home)]
    return subprocess.run(cmd, capture_output=True, text=True, env=venv_env(), timeout=300)


def _fake_run(home: Path, pipeline: str, run_id: str, status: str, started: str) -> Path:
    """A run record as the runner writes it, with one step's output."""
    run = home / "runs" / pipeline / run_id
    (run / "train_model" / "model").mkdir(parents=True)
    (run / "train_model" / "model" / "weights").write_bytes(os.urandom(4096))
    record = {"run_id": run_id, "pipeline": pipeline, "status": status, "started_at": started}
    (run / "run.json").write_text(json.dumps(record))
    return run


def test_gc_keeps_the_newest_runs_aliases_running_runs_and_every_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    old = _fake_run(home, "training", "r1", "succeeded", "2026-01-01T00:00:01")
    aliased = _fake_run(home, "training", "r2", "succeeded", "2026-01-01T00:00:02")
    running = _fake_run(home, "training", "r3", "running", "2026-01-01T00:00:03")
    newest = _fake_run(home, "training", "r4", "failed", "2026-01-01T00:00:04")
    other = _fake_run(home, "inference", "i1", "succeeded", "2026-01-01T00:00:00")
    reg = LocalRegistry(home / "registry")
    reg.publish(make_artifact(tmp_path, "a"), "m", ["production"], {"run_id": "r2"})
    reg.publish(make_artifact(tmp_path, "b"), "m", [], {"run_id": "r1"})  # no alias but latest
    reg.promote("m", 1, "latest")  # latest moves back: nothing points at v2 any more
    cache = home / "cache"
    cache.mkdir()
    (cache / "k-old.json").write_text(json.dumps({"root": str(old / "train_model")}))
    (cache / "k-new.json").write_text(json.dumps({"root": str(newest / "train_model")}))
    (cache / "k-gone.json").write_text(json.dumps({"root": str(tmp_path / "nowhere")}))
    stale = home / "registry" / "m" / ".staging-crashed"
    stale.mkdir()
    (stale / "half").write_bytes(b"x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))

    dry = collect(home, keep_last=1, dry_run=True)
    assert dry.runs == [str(old)] and dry.bytes_freed >= 4096
    assert old.is_dir() and (cache / "k-old.json").is_file() and stale.is_dir()  # dry: untouched

    report = _cli("gc", "--keep-last", "1", "--json", home=home)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["runs"] == [str(old)]
    assert data["kept_for_aliases"] == [str(aliased)]
    assert sorted(Path(p).name for p in data["cache_entries"]) == ["k-gone.json", "k-old.json"]
    assert data["leftovers"] == [str(stale)]
    assert not old.exists() and not stale.exists()
    for kept in (aliased, running, newest, other):
        assert (kept / "run.json").is_file()
    assert (cache / "k-new.json").is_file()
    assert [v.version for v in reg.versions("m")] == [1, 2]
    for v in reg.versions("m"):
        reg.fetch(v.spec)  # every version still complete and verified
    assert not any((home / ".trash").iterdir())
    bad = _cli("gc", "--keep-last", "0", home=home)
    assert bad.returncode == 2 and "--keep-last" in bad.stderr


def test_gc_after_real_runs_frees_the_old_run_and_the_version_survives(
    home: Path, tiny_training: TrainingConfig
) -> None:
    first = run_pipeline(TRAINING, tiny_training, home=home)
    v1 = first.outputs["upload_model"]
    weights = first.run_dir / "train_model" / "model" / "model.safetensors"
    assert weights.stat().st_nlink >= 2  # train_model and save_artifacts share it, not the registry
    other = tiny_training.model_copy(
        update={"training": tiny_training.training.model_copy(update={"seed": 7})}
    )
    second = run_pipeline(TRAINING, other, home=home)
    assert second.outputs["upload_model"].version == 2  # staging and latest moved to v2
    dry = _cli("gc", "--keep-last", "1", "--dry-run", home=home)
    # the second run took load_training_data from the cache: its files are in the first run
    assert "kept run" in dry.stdout and "would remove 0 run(s)" in dry.stdout, dry.stdout
    dataset = second.outputs["load_training_data"]
    assert str(first.run_dir) in dataset.uri
    third_cfg = tiny_training.model_copy(
        update={"training": tiny_training.training.model_copy(update={"seed": 8})}
    )
    third = run_pipeline(TRAINING, third_cfg, home=home, use_cache=False)
    assert third.outputs["upload_model"].version == 3  # staging and latest moved to v3
    dry = _cli("gc", "--keep-last", "1", "--dry-run", home=home)
    assert dry.returncode == 0 and "would remove 2 run(s)" in dry.stdout, dry.stdout
    assert first.run_dir.is_dir()
    before = du(home)
    report = collect(home, keep_last=1)
    assert sorted(report.runs) == sorted([str(first.run_dir), str(second.run_dir)])
    assert not first.run_dir.exists() and not second.run_dir.exists()
    assert third.run_dir.is_dir()
    assert du(home) < before
    reg = LocalRegistry(home / "registry")
    fetched = reg.fetch(v1.spec)  # the old version is whole: its files were never the run's
    assert fetched.sha256 == v1.sha256
    assert reg.fetch(f"{v1.name}:v2").version == 2
    assert sha256_file(Path(fetched.uri) / "model.safetensors") == sha256_file(
        home / "registry" / v1.name / "v1" / "model.safetensors"
    )
    # a step cache entry that pointed into the removed run went with it
    for entry in (home / "cache").glob("*.json"):
        assert str(first.run_dir) not in entry.read_text()
