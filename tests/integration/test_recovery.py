"""Fault injection for registry recovery (issue 31): repair and verify never delete a model.

Versions are built straight through the registry API (no training), so these stay fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpipe.core import artifacts
from mlpipe.core.errors import RegistryDamagedError
from mlpipe.registries.local import BACKUP, STATE, LocalRegistry


def _model(tmp: Path, tag: str) -> Path:
    src = tmp / f"src-{tag}"
    src.mkdir(parents=True)
    (src / "weights.safetensors").write_bytes(tag.encode() * 8)
    out = tmp / f"out-{tag}"
    artifacts.assemble(src, out, metrics={"accuracy": 0.5}, provenance={})
    return out


@pytest.fixture
def reg(tmp_path: Path) -> LocalRegistry:
    r = LocalRegistry(tmp_path / "registry")
    r.publish(_model(tmp_path, "one"), "m", ["staging"])
    r.publish(_model(tmp_path, "two"), "m", ["staging"])
    r.promote("m", 1, "production")
    return r


def _base(r: LocalRegistry) -> Path:
    return r.root / "m"


def test_1_repair_keeps_a_damaged_version_and_its_aliases(reg: LocalRegistry) -> None:
    base = _base(reg)
    (base / "v1" / "README.txt").write_text("notes")
    (base / STATE).write_text("")
    reg.repair("m")
    assert (base / "v1" / "manifest.json").is_file(), "repair deleted a version"
    assert (base / "lineage" / "v1.json").is_file()
    state = json.loads((base / STATE).read_text())
    assert state["aliases"]["production"] == 1
    assert 1 in state["versions"]
    found = reg.verify("m")
    assert any("v1" in f.path and "README.txt" in f.problem and f.fix for f in found)


def test_3_deleted_state_is_reported_and_rebuilt_from_the_backup(reg: LocalRegistry) -> None:
    base = _base(reg)
    (base / STATE).unlink()
    found = reg.verify("m")
    assert any(f.damage and STATE in f.path for f in found), found
    reg.repair("m")
    state = json.loads((base / STATE).read_text())
    assert state["aliases"]["production"] == 1
    assert state["aliases"]["staging"] == 2
    assert any(e.get("alias") == "production" for e in state["history"])
    assert reg.resolve("m:production").version == 1


def test_4_version_newer_than_an_old_state_is_restored_not_deleted(
    reg: LocalRegistry, tmp_path: Path
) -> None:
    base = _base(reg)
    old = json.loads((base / STATE).read_text())
    reg.publish(_model(tmp_path, "three"), "m", ["staging"])
    reg.promote("m", 3, "production")
    (base / STATE).write_text(json.dumps(old))  # restored from an older snapshot
    found = reg.verify("m")
    assert any("v3" in f.path and f.damage for f in found), found
    with pytest.raises(RegistryDamagedError, match="repair"):  # an unrelated change
        reg.promote("m", 2, "candidate")
    assert (base / "v3" / "manifest.json").is_file(), "a newer complete version was deleted"
    reg.repair("m")
    assert reg.resolve("m:v3").version == 3
    assert reg.resolve("m:production").version == 3


def test_5_wrong_shaped_records_are_scoped(reg: LocalRegistry, tmp_path: Path) -> None:
    base = _base(reg)
    reg.publish(_model(tmp_path, "x"), "other", [])
    (base / "lineage" / "v1.json").write_text("[1, 2]")
    manifest = json.loads((base / "v2" / "manifest.json").read_text())
    manifest["metrics"] = {"accuracy": "high"}
    (base / "v2" / "manifest.json").write_text(json.dumps(manifest))
    state = json.loads((base / STATE).read_text())
    state["history"].append("not an object")
    (base / STATE).write_text(json.dumps(state))
    refs = reg.versions()  # every model still listed
    assert {r.name for r in refs} >= {"other"}
    assert reg.resolve("m:v1").lineage == {}
    found = reg.verify("m")
    assert any("lineage" in f.path for f in found), found
    assert any("history" in f.problem for f in found), found
    assert reg.history("m")


def test_7_symlink_inside_a_version_is_refused(reg: LocalRegistry, tmp_path: Path) -> None:
    vdir = _base(reg) / "v2"
    outside = tmp_path / "secret.txt"
    outside.write_bytes((vdir / "weights.safetensors").read_bytes())
    (vdir / "weights.safetensors").unlink()
    (vdir / "weights.safetensors").symlink_to(outside)
    found = reg.verify("m")
    assert any("symlink" in f.problem for f in found), found
    with pytest.raises(Exception, match="symlink"):
        reg.fetch("m:v2", tmp_path / "dest")


def test_backup_survives_a_publish_after_state_loss(reg: LocalRegistry, tmp_path: Path) -> None:
    base = _base(reg)
    (base / STATE).unlink()
    with pytest.raises(Exception, match="repair"):
        reg.publish(_model(tmp_path, "four"), "m", [])
    assert json.loads((base / BACKUP).read_text())["aliases"]["production"] == 1


def _run(home: Path, pipeline: str, run_id: str, record: object) -> Path:
    path = home / "runs" / pipeline / run_id
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps(record))
    return path


def test_6_bad_run_records_are_scoped(tmp_path: Path) -> None:
    from mlpipe.core import runs

    home = tmp_path / "home"
    _run(home, "p", "r-null", None)
    _run(home, "p", "r-list", [1, 2])
    good = _run(home, "p", "r-good", {"run_id": "r-good", "status": "failed", "pipeline": "p"})
    (good / "train").mkdir()
    (good / "train" / "error.json").write_text("{not json")
    (good / "eval").mkdir()
    (good / "eval" / "result.json").write_text("[]")
    listed = {r["run_id"]: r["status"] for r in runs.list_runs(home)}
    assert listed == {"r-null": "unreadable", "r-list": "unreadable", "r-good": "failed"}
    assert runs.sweep_killed(home, "p") == []
    logs = dict(runs.step_logs(runs.find_run(home, "r-good")))
    assert "damaged" in logs["train: failed"]


def test_7_a_symlinked_run_folder_is_never_followed(tmp_path: Path) -> None:
    import os
    import socket

    from mlpipe.core import runs

    home = tmp_path / "home"
    outside = tmp_path / "outside"
    (outside / "precious").mkdir(parents=True)
    (outside / "run.json").write_text(
        json.dumps(
            {
                "run_id": "r1",
                "status": "running",
                "pid": 2**22 + 7,
                "host": socket.gethostname(),
                "pipeline": "p",
            }
        )
    )
    (home / "runs" / "p").mkdir(parents=True)
    os.symlink(outside, home / "runs" / "p" / "r1")
    runs.sweep_killed(home, "p")
    assert (outside / "precious").is_dir()


def test_7_gc_never_empties_a_symlinked_trash(tmp_path: Path) -> None:
    from mlpipe.core import gc

    home = tmp_path / "home"
    home.mkdir()
    outside = tmp_path / "outside"
    (outside / "precious").mkdir(parents=True)
    (home / ".trash").symlink_to(outside)
    gc.collect(home)
    assert (outside / "precious").is_dir()
    assert not (home / ".trash").is_symlink()
