"""Fault injection: kill the process at each named point, damage each kind of file, fill the
disk, interrupt; then check that nothing damaged is served, nothing is misreported and the next
run and inference succeed.

The kill points are real SIGKILLs (``MLPIPE_FAULT``, :mod:`mlpipe.core.faults`) of real
``mlpipe`` processes; the full disk is a real 2 MiB tmpfs (needs root, as CI runs; skipped with
the reason elsewhere).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpipe.core import artifacts
from mlpipe.core.cache import StepCache, step_key
from mlpipe.core.errors import ChecksumError, DivergedError
from mlpipe.core.faults import ENV, POINTS
from mlpipe.core.files import is_dead_temp, sweep_temp, write_json
from mlpipe.core.refs import ArtifactsRef, DatasetRef, ModelRef
from tests.support import ROOT, TINY_INFERENCE, TINY_TRAINING, make_artifact, venv_env

FAST = ["--set", "data.generated.n_samples=120", "--set", "training.epochs=1"]
INFER_FAST = ["--set", "data.generated.n_samples=40"]


def mlpipe(
    *args: str, home: Path, fault: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = venv_env()
    env.pop(ENV, None)
    if fault is not None:
        env[ENV] = fault
    cmd = [sys.executable, "-m", "mlpipe", *args, "--home", str(home)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed: one ``error:`` line and never a traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.tmp")] if root.exists() else []


# -- the hook -----------------------------------------------------------------------------------


def test_fault_point_kills_only_when_named(tmp_path: Path) -> None:
    code = "from mlpipe.core.faults import fault_point; fault_point('cache.put'); print('alive')"
    env = {**venv_env(), ENV: "run.start"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "alive"
    for wanted in ("cache.put", "cache.*"):
        env[ENV] = wanted
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              timeout=300)
        assert done.returncode == -signal.SIGKILL
    assert "cache.put" in POINTS and "run.start" in POINTS and "run.finish" in POINTS


def test_write_killed_before_rename_leaves_old_file_and_a_temp_the_sweep_removes(
    tmp_path: Path,
) -> None:
    target = tmp_path / "state.json"
    write_json(target, {"v": 1})
    code = (
        "import sys; from pathlib import Path; from mlpipe.core.files import write_json; "
        "write_json(Path(sys.argv[1]), {'v': 2})"
    )
    env = {**venv_env(), ENV: "replace:state.json"}
    done = subprocess.run([sys.executable, "-c", code, str(target)], env=env, timeout=300)
    assert done.returncode == -signal.SIGKILL
    assert json.loads(target.read_text()) == {"v": 1}  # the old content, whole
    (left,) = temp_files(tmp_path)
    assert is_dead_temp(left)
    host = re.fullmatch(r"\.state\.json\.(.+)-\d+\.[0-9a-f]{32}\.tmp", left.name)
    assert host is not None
    live = tmp_path / f".x.json.{host[1]}-{os.getpid()}.{'0' * 32}.tmp"
    live.write_text("{}")  # a temp file of a writer still running (this process) is kept
    assert sweep_temp(tmp_path) == [left]
    assert temp_files(tmp_path) == [live]


# -- integrity: the cache and manifests vouch for exactly what they hashed ----------------------


def _model_dir(root: Path) -> Path:
    model = root / "model"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "config.json").write_text('{"hidden": 4}')
    (model / "tokenizer.json").write_text('{"vocab": []}')
    artifacts.seal(model)
    return model


def test_cache_serves_a_model_only_while_every_file_is_as_produced(tmp_path: Path) -> None:
    from mlpipe.core.hashing import sha256_file

    model = _model_dir(tmp_path)
    ref = ModelRef(uri=str(model), sha256=sha256_file(model / "model.safetensors"))
    cache = StepCache(tmp_path / "cache")
    cache.put("k", ref, run_id="r1")
    assert cache.get("k") == ref
    damage = [
        lambda: (model / "config.json").write_text('{"hidden": 5}'),  # not the weights file
        lambda: (model / "extra.bin").write_bytes(b"x"),  # a file nobody hashed
        lambda: (model / "tokenizer.json").unlink(),
        lambda: (model / artifacts.MANIFEST).write_text("{"),
    ]
    for change in damage:
        saved = {p.name: p.read_bytes() for p in model.iterdir()}
        change()
        assert cache.get("k") is None, change
        for p in model.iterdir():
            p.unlink()
        for name, data in saved.items():
            (model / name).write_bytes(data)
        assert cache.get("k") == ref
    (tmp_path / "cache" / "k.json").write_text("not json")  # a damaged entry is a miss
    assert cache.get("k") is None


def test_cache_refuses_an_artifacts_dir_or_dataset_with_an_unlisted_file(tmp_path: Path) -> None:
    art = make_artifact(tmp_path, "a")
    ref = ArtifactsRef(uri=str(art), sha256=artifacts.manifest_sha256(art), files={})
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "train.parquet").write_bytes(b"rows")
    from mlpipe.core.data import dataset_sha256

    files = {"train": "train.parquet"}
    dataset = DatasetRef(
        uri=str(data_dir), sha256=dataset_sha256(data_dir, files, ()), files=files,
        rows={"train": 1}, columns=("text",), has_labels=False, label_names=(),
    )  # fmt: skip
    cache = StepCache(tmp_path / "cache")
    for key, r, directory in (("a", ref, art), ("d", dataset, data_dir)):
        cache.put(key, r, run_id="r")
        assert cache.get(key) == r
        (directory / "stray.txt").write_text("x")
        assert cache.get(key) is None
        (directory / "stray.txt").unlink()
        assert cache.get(key) == r


def test_verify_refuses_unlisted_missing_changed_files_and_a_damaged_manifest(
    tmp_path: Path,
) -> None:
    art = make_artifact(tmp_path, "v")
    artifacts.verify(art)
    (art / "notes.txt").write_text("x")
    with pytest.raises(ChecksumError, match=re.escape("notes.txt is not listed in the manifest")):
        artifacts.verify(art)
    (art / "notes.txt").unlink()
    (art / artifacts.MANIFEST).write_text('{"files": 3}')
    with pytest.raises(ChecksumError, match=re.escape("manifest.json: has no 'files' table")):
        artifacts.verify(art)
    (art / artifacts.MANIFEST).write_text("{not json")
    with pytest.raises(ChecksumError, match=re.escape("manifest.json: not valid JSON")):
        artifacts.verify(art)


def test_assemble_checks_the_trained_models_seal_and_never_certifies_damage(
    tmp_path: Path,
) -> None:
    model = _model_dir(tmp_path)
    (model / "config.json").write_text('{"hidden": 666}')  # damaged after training sealed it
    out = tmp_path / "artifacts"
    with pytest.raises(ChecksumError, match=re.escape("config.json does not match")):
        artifacts.assemble(model, out, metrics={"eval_accuracy": 1.0}, provenance={})
    assert not (out / artifacts.MANIFEST).exists()
    fresh = _model_dir(tmp_path / "fresh")
    manifest = artifacts.assemble(fresh, out, metrics={"eval_accuracy": 1.0}, provenance={})
    assert set(manifest["files"]) == {
        "config.json", "metrics.json", "model.safetensors", "provenance.json", "tokenizer.json",
    }  # fmt: skip
    artifacts.verify(out)
    with pytest.raises(DivergedError, match="eval_loss=nan"):
        artifacts.assemble(
            fresh, tmp_path / "a2", metrics={"eval_loss": math.nan}, provenance={}
        )


def test_a_local_base_model_is_keyed_by_its_content_not_its_path(tmp_path: Path) -> None:
    from mlpipe.core.config import load_config
    from mlpipe.core.pipelines import TRAINING

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"model_type": "bert"}')
    (base / "model.safetensors").write_bytes(b"v1")
    cfg = load_config(TINY_TRAINING, [f"model.base={base}"])
    dataset = DatasetRef(
        uri=str(tmp_path), sha256="d", files={}, rows={}, columns=(), has_labels=True,
        label_names=(),
    )  # fmt: skip
    step = TRAINING.step("train_model")
    before = step_key("training", step, cfg, {"dataset": dataset})
    assert step_key("training", step, cfg, {"dataset": dataset}) == before
    (base / "model.safetensors").write_bytes(b"v2")  # same path, new weights
    assert step_key("training", step, cfg, {"dataset": dataset}) != before


# -- diverged training is never saved ----------------------------------------------------------


def test_fit_stops_at_a_non_finite_loss_and_save_refuses_non_finite_weights(
    tmp_path: Path,
) -> None:
    import torch

    from mlpipe.core.config import TrainConfig
    from mlpipe.core.modeling import save_model
    from mlpipe.core.training import fit

    class Out:
        def __init__(self, loss: torch.Tensor) -> None:
            self.loss = loss

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, x: torch.Tensor) -> Out:
            return Out(self.linear(x).sum() * float("nan"))

    model = Model()
    with pytest.raises(DivergedError, match="the loss is nan at step 1"):
        fit(model, [1] * 4, lambda b: {"x": torch.ones(len(b), 2)}, TrainConfig(), 4,
            progress=False)  # fmt: skip
    with torch.no_grad():
        model.linear.weight[0, 0] = float("inf")
    out = tmp_path / "saved"
    out.mkdir()
    with pytest.raises(DivergedError, match=re.escape("weight 'linear.weight'")):
        save_model(model, None, out)
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_a_diverged_training_exits_1_naming_the_step_and_publishes_nothing(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    done = mlpipe(
        "train", "-c", str(TINY_TRAINING), *FAST, "--set", "training.learning_rate=1e30",
        "--set", "training.max_grad_norm=1e30", home=home,
    )  # fmt: skip
    assert done.returncode == 1
    line = one_line_error(done)
    assert "train_model" in line and "diverged" in line
    assert not (home / "registry").exists()


# -- the process is killed at each named point: nothing lost, nothing served damaged -------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home holding one successful training run (the cache warm, v1 published)."""
    home = tmp_path_factory.mktemp("faults") / "home"
    done = mlpipe("train", "-c", str(TINY_TRAINING), *FAST, home=home)
    assert done.returncode == 0, done.stderr
    return home


@pytest.mark.slow
@pytest.mark.parametrize(
    "point", ["cache.put", "run.start", "run.finish", "replace:run.json", "replace:result.json"]
)
def test_killed_at_each_point_the_next_run_and_inference_succeed(
    trained: Path, tmp_path: Path, point: str
) -> None:
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    killed = mlpipe("train", "-c", str(TINY_TRAINING), *FAST, "--no-cache", home=home,
                    fault=point)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = mlpipe("train", "-c", str(TINY_TRAINING), *FAST, "--json", home=home)
    assert again.returncode == 0, again.stderr
    published = json.loads(again.stdout)["steps"][-1]["ref"]
    assert published["name"] == "tiny-sentiment" and published["version"] == 1  # same weights
    artifacts.verify(Path(published["uri"]))
    inferred = mlpipe("infer", "-c", str(TINY_INFERENCE), *INFER_FAST, home=home)
    assert inferred.returncode == 0, inferred.stderr
    listed = mlpipe("registry", "list", "--json", home=home)
    assert listed.returncode == 0, listed.stderr
    # what the killed writer left half-written was swept by the runs that followed
    assert temp_files(home / "cache") == []
    assert [p for p in temp_files(home / "runs") if is_dead_temp(p)] == []
    for step in (home / "runs").glob("*/*/[!.]*/"):  # no step folder without its outcome
        assert (step / "result.json").is_file() or (step / "error.json").is_file(), step


@pytest.mark.slow
def test_a_training_killed_while_publishing_is_published_once_by_the_next(
    trained: Path, tmp_path: Path
) -> None:
    """Killed with v2 renamed into place but not committed: no reader ever sees v2 half-made;
    ``registry verify`` passes; the next run publishes it as v2, with its aliases, once."""
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    other = [*FAST, "--set", "training.seed=7"]  # other weights: a new version
    killed = mlpipe("train", "-c", str(TINY_TRAINING), *other, home=home,
                    fault="publish.after_rename")  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    listed = json.loads(mlpipe("registry", "list", "--json", home=home).stdout)
    assert [(v["version"], v["aliases"]) for v in listed] == [(1, ["latest", "staging"])]
    verified = mlpipe("registry", "verify", home=home)
    assert verified.returncode == 0 and "interrupted write" in verified.stdout, verified.stdout
    again = mlpipe("train", "-c", str(TINY_TRAINING), *other, "--json", home=home)
    assert again.returncode == 0, again.stderr
    published = json.loads(again.stdout)["steps"][-1]["ref"]
    assert published["version"] == 2 and "staging" in published["aliases"]
    assert mlpipe("registry", "verify", home=home).stdout.startswith("every version verifies")
    inferred = mlpipe("infer", "-c", str(TINY_INFERENCE), *INFER_FAST, home=home)
    assert inferred.returncode == 0, inferred.stderr


@pytest.mark.slow
def test_a_damaged_cached_model_is_retrained_not_published(trained: Path) -> None:
    home = trained
    warm = mlpipe("train", "-c", str(TINY_TRAINING), *FAST, home=home)  # the cache, this code
    assert warm.returncode == 0, warm.stderr
    newest = sorted((home / "cache").glob("*.json"), key=lambda p: p.stat().st_mtime)
    entries = [json.loads(p.read_text()) for p in newest]
    model = [Path(e["ref"]["uri"]) for e in entries if e["ref"]["kind"] == "model"][-1]
    # damage a file that is not the weights: rewritten as a new file (an editor, a re-save), so
    # copies elsewhere that share its bytes by hardlink are not changed with it
    damaged = model / "config.json.new"
    damaged.write_bytes((model / "config.json").read_bytes() + b" ")
    damaged.replace(model / "config.json")
    done = mlpipe("train", "-c", str(TINY_TRAINING), *FAST, "--json", home=home)
    assert done.returncode == 0, done.stderr
    steps = {s["step"]: s for s in json.loads(done.stdout)["steps"]}
    assert steps["load_training_data"]["cached"] is True
    assert steps["train_model"]["cached"] is False  # the damaged entry was not served
    assert steps["upload_model"]["ref"]["version"] == 1  # identical retrain: same version
    artifacts.verify(Path(steps["upload_model"]["ref"]["uri"]))


# -- failures of the machine: one line and the right exit code, never a traceback ----------------


def test_a_home_that_is_a_file_is_one_line_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("")
    done = mlpipe("train", "-c", str(TINY_TRAINING), home=blocker)
    assert done.returncode == 1
    assert f"{blocker} is a file, not a directory" in one_line_error(done)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs (root only: CI runs as root)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
        timeout=300
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=300)


@pytest.mark.slow
def test_a_full_disk_is_one_line_exit_1_and_the_next_run_works(
    small_disk: Path, tmp_path: Path
) -> None:
    home = small_disk / "home"
    filler = small_disk / "filler"
    with filler.open("wb", buffering=0) as fh:  # fill the disk to the last byte
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    done = mlpipe("train", "-c", str(TINY_TRAINING), *FAST, home=home)
    assert done.returncode == 1
    assert "No space left on device" in one_line_error(done)
    filler.unlink()
    # room for the run records but not the 8 MB model: the step fails, named, exit 1
    done = mlpipe("train", "-c", str(TINY_TRAINING), *FAST, home=home)
    assert done.returncode == 1
    line = one_line_error(done)
    assert "No space left on device" in line and "step '" in line
    assert temp_files(home) == []
    # the same home on a disk with room: the next run succeeds
    big = tmp_path / "home"
    shutil.copytree(home, big)
    done = mlpipe("train", "-c", str(TINY_TRAINING), *FAST, home=big)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "words"), [
    (signal.SIGINT, 130, "interrupted (Ctrl-C)"), (signal.SIGTERM, 143, "terminated (SIGTERM)"),
])  # fmt: skip
def test_interrupting_training_exits_with_the_signal_code_and_a_message(
    tmp_path: Path, sig: signal.Signals, code: int, words: str
) -> None:
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "mlpipe", "train", "-c", str(TINY_TRAINING), "--home", str(home)]
    proc = subprocess.Popen(cmd, env=venv_env(), stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 240
    while not list((home / "runs" / "training").glob("*/load_training_data/result.json")):
        assert proc.poll() is None and time.monotonic() < deadline, "training never started"
        time.sleep(0.2)
    time.sleep(1.0)  # inside train_model
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert f"error: {words}" in stderr
    (record,) = (home / "runs" / "training").glob("*/run.json")
    data = json.loads(record.read_text())
    assert data["status"] == "failed" and data["error"]["exit_code"] == 130
    assert not (home / "registry").exists()


def test_a_held_lock_names_its_holder_and_gives_up_after_the_timeout(tmp_path: Path) -> None:
    from mlpipe.core.errors import MlpipeError
    from mlpipe.core.files import exclusive

    lock = tmp_path / ".lock"
    code = (
        "import sys, time; from pathlib import Path; from mlpipe.core.files import exclusive\n"
        "with exclusive(Path(sys.argv[1]), what='holder'):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(lock)], env=venv_env(),
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        told: list[str] = []
        started = time.monotonic()
        with pytest.raises(MlpipeError) as info, exclusive(
            lock, what="publish", timeout_s=2.5, on_wait=told.append
        ):
            pass
        assert 2.0 <= time.monotonic() - started < 10
        assert f"pid {holder.pid}" in str(info.value) and "gave up after 2s" in str(info.value)
        assert info.value.exit_code == 1
        assert told and f"pid {holder.pid}" in told[0]
    finally:
        holder.kill()
        holder.wait(timeout=60)
    with exclusive(lock, what="publish", timeout_s=5):  # a killed holder frees the lock
        assert (tmp_path / ".lock.holder").is_file()
    assert not (tmp_path / ".lock.holder").exists()
