"""The embedded registry under faults: every change is one commit, damage stays where it is.

Kills are real SIGKILLs (``MLPIPE_FAULT``) of a real process at each named point of publish,
promote and delete; damage is real files changed on disk. After each, ``mlpipe registry verify``,
reads by alias and by version, and the next publish must all work, with nothing lost, nothing
half-visible and every leftover removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlpipe.core.errors import ChecksumError, MlpipeError, RegistryDamagedError
from mlpipe.core.faults import ENV, POINTS
from mlpipe.registries.local import LocalRegistry
from tests.support import ROOT, make_artifact, venv_env

CHANGE = """
import sys
from pathlib import Path
from mlpipe.registries.local import LocalRegistry
reg = LocalRegistry(Path(sys.argv[1]))
op = sys.argv[2]
if op == "publish":
    reg.publish(Path(sys.argv[3]), "m", ["staging"], {"run_id": "killed"})
elif op == "promote":
    reg.promote("m", int(sys.argv[3]), "production")
else:
    reg.delete("m", int(sys.argv[3]))
print("done")
"""


def change(root: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = venv_env()
    env.pop(ENV, None)
    if fault:
        env[ENV] = fault
    cmd = [sys.executable, "-c", CHANGE, str(root), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mlpipe", *args, "--home", str(home)]
    return subprocess.run(cmd, env=venv_env(), capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def consistent(reg: LocalRegistry) -> dict[str, int]:
    """Every alias names a version that verifies; latest is the highest; no leftovers listed
    as damage; returns the alias table."""
    listed = reg.versions("m")
    numbers = [v.version for v in listed]
    assert numbers == sorted(numbers) and numbers
    table = {a: v.version for v in listed for a in v.aliases}
    assert table["latest"] == max(numbers)
    for alias in table:
        reg.fetch(f"m:{alias}")  # resolves and verifies every file
    assert [f for f in reg.verify("m") if f.damage] == []
    return table


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home whose registry has m:v1 (latest, staging) and m:v2 (latest)."""
    home = tmp_path / "home"
    reg = LocalRegistry(home / "registry")
    reg.publish(make_artifact(tmp_path, "a"), "m", ["staging"], {"run_id": "r1"})
    reg.publish(make_artifact(tmp_path, "b"), "m", [], {"run_id": "r2"})
    return home


def test_every_registry_kill_point_is_listed() -> None:
    source = (ROOT / "src" / "mlpipe" / "registries" / "local.py").read_text()
    for point in ("publish.before_rename", "publish.after_rename", "publish.after_commit"):
        assert point in POINTS and f'"{point}"' in source
    for point in ("promote.before_commit", "promote.after_commit", "delete.after_commit"):
        assert point in POINTS and f'"{point}"' in source


@pytest.mark.parametrize(
    "point",
    ["publish.before_rename", "publish.after_rename", "replace:state.json", "publish.after_commit"],
)
def test_a_publish_killed_anywhere_is_all_or_nothing(
    home: Path, tmp_path: Path, point: str
) -> None:
    root = home / "registry"
    killed = change(root, "publish", str(make_artifact(tmp_path, "c")), fault=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    reg = LocalRegistry(root)
    table = consistent(reg)
    committed = point == "publish.after_commit"
    # the new version and its aliases appear together, or neither does
    assert [v.version for v in reg.versions("m")] == ([1, 2, 3] if committed else [1, 2])
    assert table == ({"latest": 3, "staging": 3} if committed else {"latest": 2, "staging": 1})
    verified = cli("registry", "verify", home=home)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # the next change cleans what the killed one left and numbers on
    again = reg.publish(make_artifact(tmp_path, "d"), "m", ["staging"])
    assert again.version == (4 if committed else 3)
    model = root / "m"
    assert sorted(p.name for p in model.iterdir() if p.name.startswith("v")) == [
        f"v{n}" for n in ([1, 2, 3, 4] if committed else [1, 2, 3])
    ]
    assert [p.name for p in model.iterdir() if p.name.startswith((".staging", ".deleted"))] == []
    assert list(model.rglob("*.tmp")) == []
    assert [f for f in reg.verify() if not f.damage] == []


@pytest.mark.parametrize("point", ["promote.before_commit", "replace:state.json",
                                   "promote.after_commit"])  # fmt: skip
def test_a_promote_killed_anywhere_moves_the_alias_or_not(home: Path, point: str) -> None:
    root = home / "registry"
    killed = change(root, "promote", "1", fault=point)
    assert killed.returncode == -signal.SIGKILL
    table = consistent(LocalRegistry(root))
    assert table.get("production") == (1 if point == "promote.after_commit" else None)
    history = [e for e in LocalRegistry(root).history("m") if e["alias"] == "production"]
    assert len(history) == (1 if point == "promote.after_commit" else 0)  # moved = recorded


def test_a_delete_killed_after_its_commit_leaves_a_leftover_repair_removes(home: Path) -> None:
    root = home / "registry"
    LocalRegistry(root).promote("m", 2, "staging")
    killed = change(root, "delete", "1", fault="delete.after_commit")
    assert killed.returncode == -signal.SIGKILL
    reg = LocalRegistry(root)
    assert [v.version for v in reg.versions("m")] == [2]
    notes = reg.verify("m")
    assert [Path(f.path).name for f in notes] == ["v1"] and not notes[0].damage
    repaired = cli("registry", "repair", "--json", home=home)
    assert repaired.returncode == 0, repaired.stderr
    assert [Path(f["path"]).name for f in json.loads(repaired.stdout)] == ["v1"]
    assert not (root / "m" / "v1").exists() and reg.verify() == []


def test_a_failed_commit_rolls_the_new_version_back(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk (or Ctrl-C) between the rename and the commit: the command fails and the
    version it was publishing is gone with it, so the failure it reports is the whole truth."""
    import mlpipe.registries.local as local

    real = local.write_json

    def full_disk_at_commit(path: Path, obj: object) -> None:
        if path.name == "state.json":
            raise OSError(28, "No space left on device")
        real(path, obj)

    monkeypatch.setattr(local, "write_json", full_disk_at_commit)
    reg = LocalRegistry(home / "registry")
    with pytest.raises(OSError, match="No space left"):
        reg.publish(make_artifact(tmp_path, "c"), "m", ["staging"])
    monkeypatch.setattr(local, "write_json", real)
    assert consistent(reg) == {"latest": 2, "staging": 1}
    assert not (home / "registry" / "m" / "v3").exists()
    assert reg.verify() == []


def test_promote_checks_its_target_before_moving_anything(home: Path) -> None:
    reg = LocalRegistry(home / "registry")
    weights = home / "registry" / "m" / "v2" / "model.safetensors"
    weights.write_bytes(b"tampered")
    before = (home / "registry" / "m" / "state.json").read_bytes()
    with pytest.raises(ChecksumError, match=r"not promoting m:v2: .*model.safetensors"):
        reg.promote("m", 2, "production")
    refused = cli("registry", "promote", "m", "7", "production", home=home)
    assert refused.returncode == 2 and "no version 7" in refused.stderr
    assert (home / "registry" / "m" / "state.json").read_bytes() == before  # nothing moved


def test_a_damaged_state_file_is_named_and_the_rest_keeps_working(
    home: Path, tmp_path: Path
) -> None:
    reg = LocalRegistry(home / "registry")
    reg.publish(make_artifact(tmp_path, "n"), "n", ["staging"])
    reg.promote("m", 1, "production")
    state = home / "registry" / "m" / "state.json"
    state.write_text('{"versions": [1, 2], "aliases": ')  # cut short
    listed = cli("registry", "list", "--json", home=home)
    assert listed.returncode == 0, listed.stderr
    assert {v["name"] for v in json.loads(listed.stdout)} == {"n"}
    assert "state.json" in listed.stderr and "registry repair m" in listed.stderr
    assert reg.resolve("m:v1").version == 1  # an explicit version needs no aliases
    with pytest.raises(RegistryDamagedError, match=r"m/state.json is damaged"):
        reg.resolve("m:production")
    new = make_artifact(tmp_path, "c")
    with pytest.raises(RegistryDamagedError, match="registry repair m"):
        reg.publish(new, "m", [])
    verified = cli("registry", "verify", home=home)
    assert verified.returncode == 1 and "Traceback" not in verified.stderr
    assert "state.json is damaged" in verified.stdout and "fix: mlpipe registry repair m" in (
        verified.stdout
    )
    repaired = cli("registry", "repair", "m", home=home)
    assert repaired.returncode == 0, repaired.stderr
    assert consistent(reg) == {"latest": 2, "production": 1, "staging": 1}  # from the backup
    assert cli("registry", "verify", home=home).returncode == 0
    assert reg.publish(new, "m", []).version == 3


def test_a_version_without_manifest_and_a_stray_directory_damage_nothing_else(
    home: Path, tmp_path: Path
) -> None:
    root = home / "registry"
    (root / "m" / "v1" / "manifest.json").unlink()
    (root / "m" / "v9").mkdir()  # a stray empty version directory
    reg = LocalRegistry(root)
    assert [v.version for v in reg.versions("m")] == [2]
    assert reg.resolve("m:v2").version == 2
    with pytest.raises(ChecksumError, match=r"m:v1 is damaged: .*no manifest.json"):
        reg.resolve("m:staging")
    listed = cli("registry", "list", home=home)
    assert listed.returncode == 0 and "v1" in listed.stderr and "manifest" in listed.stderr
    found = {Path(f.path).name: f.damage for f in reg.verify("m")}
    assert found == {"v1": True, "v9": False}
    verified = cli("registry", "verify", "m", home=home)
    assert verified.returncode == 1 and "registry delete m 1" in verified.stdout
    new = reg.publish(make_artifact(tmp_path, "c"), "m", [])
    assert new.version == 3 and not (root / "m" / "v9").exists()  # the stray one is swept


def test_a_registry_written_before_the_state_file_reads_and_migrates(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    reg = LocalRegistry(root)
    reg.publish(make_artifact(tmp_path, "a"), "m", ["staging"])
    model = root / "m"
    state = json.loads((model / "state.json").read_text())
    (model / "state.json").unlink()  # the old layout: three files
    (model / "aliases.json").write_text(json.dumps(state["aliases"]))
    (model / "last_version").write_text("4\n")
    (model / "history.json").write_text(json.dumps(state["history"]))
    assert reg.resolve("m:staging").version == 1 and len(reg.history("m")) == 2
    assert reg.publish(make_artifact(tmp_path, "b"), "m", []).version == 5  # numbers not reused
    files = sorted(p.name for p in model.iterdir() if p.is_file())
    assert files == [".lock", "state.backup.json", "state.json"]  # the old three are gone
    assert reg.resolve("m:staging").version == 1 and reg.resolve("m:latest").version == 5


def test_a_held_registry_lock_names_its_holder_and_gives_up(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = (
        "import sys, time; from pathlib import Path; from mlpipe.core.files import exclusive\n"
        "with exclusive(Path(sys.argv[1]), what='holder'):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    lock = home / "registry" / "m" / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", code, str(lock)], env=venv_env(),
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("MLPIPE_LOCK_TIMEOUT_S", "1.5")
        started = time.monotonic()
        with pytest.raises(MlpipeError, match=rf"registry m: publish: .*pid {holder.pid}"):
            LocalRegistry(home / "registry").publish(make_artifact(tmp_path, "c"), "m", [])
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert [p for p in (home / "registry" / "m").iterdir() if p.name.startswith(".staging")] == []
    assert os.environ.get(ENV) is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["registry", "promote", "../..", "1", "prod"], "model name '../..'"),
        (["registry", "list", "/etc"], "model name '/etc'"),
        (["registry", "verify", "../x"], "model name '../x'"),
        (["registry", "promote", "m", "1", "v2"], "alias 'v2': looks like a version number"),
        (["step", "train_model", "--pipeline", "training", "--run-id", ".."], "--run-id '..'"),
        (["runs", "show", "../x"], "run id '../x'"),
    ],
)
def test_names_from_the_cli_are_checked_like_names_from_a_config(
    tmp_path: Path, args: list[str], words: str
) -> None:
    home = tmp_path / "home"
    done = cli(*args, home=home)
    assert done.returncode == 2 and words in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing created, inside the home or outside it
