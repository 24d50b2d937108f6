"""Cluster mode for real: build the image, then run every step of the training and inference
pipelines as its own container, exactly as the rendered pod specs say, and get a local run's
outputs, byte for byte.

* ``docker/build-image.sh`` builds ``docker/Dockerfile`` (or reuses the image whose tag is the
  hash of the build inputs).
* ``mlpipe render airflow`` writes the KubernetesPodOperator pods (inference's map step: a plan
  pod whose shard list the XCom sidecar would read, one pod per shard, a gather pod); each pod
  becomes one
  ``podman run`` (or ``docker run``): the container's command, args, env (``secretKeyRef``: the
  value from this process's env, as the Secret would give it), user and group, volume mounts,
  cpu/memory limits, labels, deadline; plus ``--read-only`` (no tmpfs either) and
  ``--network none``. The PVC is one host directory; an emptyDir a fresh one per pod.
* Once more with no shared volume and a ``file://`` object store (the "bucket" directory is the
  only thing the pods share), with ``inference.backend: onnx``: ``run_inference``'s pods run in
  the slim inference image (``docker/build-image.sh inference``, no torch), the other steps in
  the step image.
* The Kubeflow cluster-mode pipeline (container components) with ``kfp.local.DockerRunner``
  (training: kfp.local cannot run the ParallelFor of inference's shard pods)
  against podman's Docker-compatible API.
* A planted ``WANDB_API_KEY`` is in no layer of the image, no rendered file, no container log.

Needs docker or podman; without one these tests skip (CI=true makes that a failure instead).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlpipe.core.execution import load_step_result
from tests.support import ROOT, TINY_INFERENCE, TINY_TRAINING, venv_env
from tests.support.podman import not_found_as_docker_says_it
from tests.support.render import render_all

FAKE_KEY = "sk-planted-wandb-key-5e1f0c9a"
AIRFLOW_RUN_ID = "{{ (dag_run.conf or {}).get('mlpipe_run_id') or run_id }}"
PIPELINES = {"training": ["load_training_data", "train_model", "save_artifacts", "upload_model"],
             "inference": ["load_inference_data", "split_inference_data", "load_model",
                           "run_inference", "save_results"]}
SETS = {"training": ["data.generated.n_samples=300", "training.epochs=1", "artifacts.onnx=true"],
        "inference": ["data.generated.n_samples=100", "inference.chunk_rows=50",
                      "inference.shards=2"]}
#: A rendered Airflow shard pod's run id: the kubelet fills it from the env var Airflow renders.
SHARD_RUN_ID = "$(MLPIPE_RUN_ID)"
CONFIGS = {"training": TINY_TRAINING, "inference": TINY_INFERENCE}
#: Where the file:// object store (the stand-in for a bucket) is mounted in every pod.
BUCKET = "/bucket"
TIMINGS: dict[str, dict[str, float]] = {}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]


def _engine() -> str:
    proc = subprocess.run([str(ROOT / "docker" / "engine.sh")], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode == 0:
        return proc.stdout.strip()
    why = ("no container engine (docker or podman) works here; install one to run these tests "
           "(Debian: apt-get install -y podman buildah runc debootstrap; .ci/run does that in CI)")
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: container tests must run, but {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def engine() -> str:
    return _engine()


def _engine_flags(engine: str) -> list[str]:
    """What this host needs for any container: runc (crun cannot set up cgroups on some hosts)
    and explicit rlimits (podman's defaults can be refused)."""
    if engine != "podman":
        return []
    return ["--runtime", "runc", "--ulimit", "nofile=1024:4096", "--ulimit", "nproc=1024:4096"]


@pytest.fixture(scope="module")
def image(engine: str) -> str:
    """The step image, built (or reused: same build inputs, same tag) by docker/build-image.sh."""
    # the planted key is in the build's environment too: no layer may pick it up
    env = {**os.environ, "ENGINE": engine, "PYTHON": sys.executable, "WANDB_API_KEY": FAKE_KEY}
    started = time.perf_counter()
    proc = subprocess.run([str(ROOT / "docker" / "build-image.sh")], capture_output=True,
                          text=True, env=env, timeout=2400)
    assert proc.returncode == 0, proc.stderr[-5000:]
    TIMINGS["image"] = {"build_or_reuse_s": round(time.perf_counter() - started, 1)}
    return _local_tag(engine, proc.stdout)


def _local_tag(engine: str, stdout: str) -> str:
    tag = stdout.strip().splitlines()[-1]
    return tag if engine == "docker" or "/" in tag.split(":")[0] else f"localhost/{tag}"


@pytest.fixture(scope="module")
def inference_image(engine: str) -> str:
    """The slim inference image (no torch), built (or reused) by docker/build-image.sh inference;
    only ``run_inference``'s pods run in it, with ``inference.backend: onnx``."""
    env = {**os.environ, "ENGINE": engine, "PYTHON": sys.executable, "WANDB_API_KEY": FAKE_KEY}
    started = time.perf_counter()
    proc = subprocess.run([str(ROOT / "docker" / "build-image.sh"), "inference"],
                          capture_output=True, text=True, env=env, timeout=2400)
    assert proc.returncode == 0, proc.stderr[-5000:]
    TIMINGS["inference_image"] = {"build_or_reuse_s": round(time.perf_counter() - started, 1)}
    return _local_tag(engine, proc.stdout)


def _cluster_sets(image: str, extra: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    return ["runtime.mode=kubernetes", f"cluster.image={image}",
            "cluster.image_pull_policy=Never", *extra]


def _hashes(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    keys = {"train_model": "weights", "save_artifacts": "artifacts",
            "run_inference": "predictions", "save_results": "results"}
    return {keys[s]: r["ref"]["sha256"] for s, r in results.items() if s in keys}


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """``mlpipe train`` / ``mlpipe infer`` here, runtime.mode local, the same tiny configs: the
    hashes per inference backend (``torch``, ``onnx``; the training run is the same)."""
    home = tmp_path_factory.mktemp("local-home")
    env = {**venv_env(), "HF_HUB_OFFLINE": "1"}  # as the image sets it
    results: dict[str, dict[str, Any]] = {}
    by_backend: dict[str, dict[str, str]] = {}
    for name, command, backend in (("training", "train", ""), ("inference", "infer", "torch"),
                                   ("inference", "infer", "onnx")):
        sets = [*SETS[name], *([f"inference.backend={backend}"] if backend else [])]
        proc = subprocess.run(
            [sys.executable, "-m", "mlpipe", command, "-c", str(CONFIGS[name]),
             *[a for s in sets for a in ("--set", s)], "--home", str(home), "--json",
             "--no-cache"], capture_output=True, text=True, env=env, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        run = json.loads(proc.stdout)
        results.update({s["step"]: s for s in run["steps"]})
        key = f"local-{name}" + (f"-{backend}" if backend == "onnx" else "")
        TIMINGS[key] = {s["step"]: round(s["seconds"], 1) for s in run["steps"]}
        TIMINGS[key]["total"] = round(run["seconds"], 1)
        if backend:
            by_backend[backend] = _hashes(results)
    return by_backend


def _render(image: str, out: Path, extra: list[str] = (),  # type: ignore[assignment]
            inference_extra: list[str] = ()) -> Path:  # type: ignore[assignment]
    """``mlpipe render airflow`` for both pipelines, with the planted key in the env;
    ``inference_extra``: settings of the inference pipeline only."""
    env = {**venv_env(), "WANDB_API_KEY": FAKE_KEY, "AIRFLOW_HOME": str(out / "airflow-home"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    commands = []
    for name in PIPELINES:
        sets = [*SETS[name], *_cluster_sets(image, list(extra)),
                *(inference_extra if name == "inference" else ())]
        commands.append(["airflow", "--pipeline", name, "--config", str(CONFIGS[name]),
                         *[a for s in sets for a in ("--set", s)], "-o", str(out / "airflow")])
    render_all(commands, env)  # both in one process
    return out / "airflow"


def _quantity_to_engine(memory: str) -> str:
    units = {"Ki": "k", "Mi": "m", "Gi": "g", "Ti": "t"}
    for suffix, unit in units.items():
        if memory.endswith(suffix):
            return memory[: -len(suffix)] + unit
    factor = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    if memory[-1] in factor:
        return str(int(memory[:-1]) * factor[memory[-1]])
    return memory


def run_flags(engine: str, pod: dict[str, Any], *, run_id: str,
              volumes: dict[str, Path], extra_mounts: dict[str, Path]) -> list[str]:
    """``<engine> run`` for a rendered V1Pod: what the kubelet would do with it, on one host.

    ``volumes`` maps the pod's volume names to host directories (the PVC, or a fresh emptyDir).
    """
    spec = pod["spec"]
    # the step's container (a plan pod also has Airflow's XCom sidecar, which reads its file)
    (container,) = [c for c in spec["containers"] if c["name"] == "mlpipe"]
    pod_sc, sc = spec.get("securityContext", {}), container.get("securityContext", {})
    user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    group = sc.get("runAsGroup", pod_sc.get("runAsGroup", user))
    assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and user not in (None, 0)
    flags = [engine, "run", "--rm", "--pull", "never", *_engine_flags(engine),
             "--network", "none", "--read-only", "--user", f"{user}:{group}"]
    if engine == "podman":
        flags += ["--read-only-tmpfs=false"]  # no writable /tmp either: only the volumes
    if "fsGroup" in pod_sc:
        flags += ["--group-add", str(pod_sc["fsGroup"])]
    if sc.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    limits = container.get("resources", {}).get("limits", {})
    if "cpu" in limits:
        cpu = limits["cpu"]
        flags += ["--cpus", str(int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu))]
    if "memory" in limits:
        flags += ["--memory", _quantity_to_engine(limits["memory"])]
    for key, value in pod["metadata"].get("labels", {}).items():
        flags += ["--label", f"{key}={value}"]
    for env in container.get("env", []):
        if "value" in env:
            value = run_id if env["value"] == AIRFLOW_RUN_ID else env["value"]
            flags += ["--env", f"{env['name']}={value}"]
        elif "secretKeyRef" in env.get("valueFrom", {}) and env["name"] in os.environ:
            flags += ["--env", env["name"]]  # the value comes from our env, not the command line
    by_name = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        assert mount["name"] in by_name, mount
        flags += ["--volume", f"{volumes[mount['name']]}:{mount['mountPath']}"]
    for path, host in extra_mounts.items():
        flags += ["--volume", f"{host}:{path}"]
    command = container["command"]
    flags += ["--entrypoint", command[0] if len(command) == 1 else json.dumps(command)]
    flags.append(container["image"])
    flags += [run_id if a in (AIRFLOW_RUN_ID, SHARD_RUN_ID) else a for a in container["args"]]
    return flags


def _fs_group_dir(path: Path, gid: int) -> Path:
    """A volume as the kubelet prepares it for ``fsGroup``: group-owned, setgid, writable."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, -1, gid)
    path.chmod(0o2775)
    return path


def _run_pod(engine: str, path: Path, run_id: str, *, work: Path, pvc: Path | None,
             bucket: Path | None, env: dict[str, str], logs: list[str],
             ) -> tuple[Any, dict[str, Path], float]:
    """One rendered pod as its own container: its output line, its volumes, its seconds."""
    pod = yaml.safe_load(path.read_text())
    gid = pod["spec"]["securityContext"]["fsGroup"]
    volumes = {}
    for volume in pod["spec"]["volumes"]:
        if "persistentVolumeClaim" in volume:
            assert pvc is not None, "a PVC in the object-store variant"
            volumes[volume["name"]] = _fs_group_dir(pvc, gid)
        else:  # emptyDir: new and empty for every pod
            volumes[volume["name"]] = _fs_group_dir(
                work / f"{path.name.removesuffix('.pod.yaml')}-{volume['name']}", gid)
    extra = {BUCKET: _fs_group_dir(bucket, gid)} if bucket is not None else {}
    flags = run_flags(engine, pod, run_id=run_id, volumes=volumes, extra_mounts=extra)
    started = time.perf_counter()
    proc = subprocess.run(flags, capture_output=True, text=True, env=env,
                          timeout=pod["spec"]["activeDeadlineSeconds"])
    seconds = round(time.perf_counter() - started, 1)
    logs += [proc.stdout, proc.stderr]
    assert proc.returncode == 0, f"{path.name}: {proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), volumes, seconds


def _run_pods(engine: str, rendered: Path, run_ids: dict[str, str], *, work: Path,
              pvc: Path | None, bucket: Path | None, logs: list[str],
              timing_key: str) -> dict[str, dict[str, Any]]:
    """Every step pod of both pipelines, in order, each its own container; inference's map
    step as Airflow runs it: the plan pod, one pod per shard it lists, the gather pod."""
    results: dict[str, dict[str, Any]] = {}
    env = {**os.environ, "WANDB_API_KEY": FAKE_KEY}  # what the Secret `wandb` would hold
    for name, steps in PIPELINES.items():
        timings: dict[str, float] = {}
        started_all = time.perf_counter()

        def pod(stem: str, name: str = name, timings: dict[str, float] = timings,
                ) -> tuple[Any, dict[str, Path]]:
            out, volumes, timings[stem] = _run_pod(
                engine, rendered / f"{name}-{stem}.pod.yaml", run_ids[name], work=work, pvc=pvc,
                bucket=bucket, env=env, logs=logs)
            return out, volumes

        for step in steps:
            if step == "run_inference":
                shards, volumes = pod(f"{step}__shards")
                # what the XCom sidecar reads and Airflow expands the shard pods over
                assert json.loads((volumes["xcom"] / "return.json").read_text()) == shards
                assert shards == [0, 1]
                for shard in shards:
                    assert pod(f"{step}__shard-{shard:04d}")[0]["ref"]["kind"] == "predictions"
            results[step] = pod(step)[0]
            assert results[step]["step"] == step
        timings["total"] = round(time.perf_counter() - started_all, 1)
        TIMINGS[timing_key + "-" + name] = timings
    return results


@pytest.fixture(scope="module")
def logs() -> list[str]:
    return []


@pytest.fixture(scope="module")
def render_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("container-render")


def test_each_step_in_its_own_container_on_a_shared_volume(
    engine: str, image: str, local_reference: dict[str, str], tmp_path: Path,
    render_root: Path, logs: list[str],
) -> None:
    rendered = _render(image, render_root / "pvc")
    pvc = tmp_path / "pvc"
    run_ids = {"training": "podman-train-1", "inference": "podman-infer-1"}
    results = _run_pods(engine, rendered, run_ids, work=tmp_path, pvc=pvc, bucket=None,
                        logs=logs, timing_key="containers-pvc")
    assert _hashes(results) == local_reference["torch"]
    # the outputs are on the shared volume, written by the image's user
    for name, steps in PIPELINES.items():
        for step in steps:
            assert load_step_result(pvc / "mlpipe", name, run_ids[name], step).step == step
    weights = pvc / "mlpipe" / "runs" / "training" / run_ids["training"] / "train_model"
    assert weights.stat().st_uid == 10001


def test_each_step_in_its_own_container_with_a_file_object_store(
    engine: str, image: str, inference_image: str, local_reference: dict[str, dict[str, str]],
    tmp_path: Path, render_root: Path, logs: list[str],
) -> None:
    """No shared volume: each pod's home is an emptyDir; only the bucket is shared. Inference
    with the onnx backend: ``run_inference``'s plan, shard and gather pods run ``mlpipe step`` in
    the slim image (no torch), every other step in the step image."""
    rendered = _render(image, render_root / "store",
                       ["cluster.volume_claim=null", f"cluster.storage_uri=file://{BUCKET}/mlpipe"],
                       ["inference.backend=onnx", f"cluster.inference_image={inference_image}"])
    images = {path.name: {c["image"] for c in yaml.safe_load(path.read_text())["spec"]["containers"]
                          if c["name"] == "mlpipe"}
              for path in rendered.glob("inference-*.pod.yaml")}
    slim = {name for name, used in images.items() if used == {inference_image}}
    assert slim == {n for n in images if n.startswith("inference-run_inference")} and len(slim) == 4
    assert all(used == {image} for name, used in images.items() if name not in slim)
    bucket = tmp_path / "bucket"
    run_ids = {"training": "store-train-1", "inference": "store-infer-1"}
    results = _run_pods(engine, rendered, run_ids, work=tmp_path, pvc=None, bucket=bucket,
                        logs=logs, timing_key="containers-store")
    assert _hashes(results) == local_reference["onnx"]
    for name, steps in PIPELINES.items():
        for step in steps:
            assert (bucket / "mlpipe" / "runs" / name / run_ids[name] / step
                    / "result.json").is_file()
    assert (bucket / "mlpipe" / "registry" / "tiny-sentiment" / "state.json").is_file()


# -- Kubeflow: the compiled cluster pipeline on kfp.local.DockerRunner ---------------------------


@pytest.fixture(scope="module")
def docker_api(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Docker-compatible API socket: podman's service (started here), or docker's own."""
    if engine == "docker":
        yield os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return
    sock = tmp_path_factory.mktemp("podman-api") / "podman.sock"
    service = subprocess.Popen(
        ["podman", "--runtime", "runc", "system", "service", "--time=0", f"unix://{sock}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert service.poll() is None, service.stderr.read() if service.stderr else ""
            assert time.monotonic() < deadline, "podman system service did not start"
            time.sleep(0.2)
        yield f"unix://{sock}"
    finally:
        service.terminate()
        service.wait(timeout=30)


def test_kubeflow_cluster_pipeline_on_kfp_local_docker_runner(
    engine: str, image: str, docker_api: str, local_reference: dict[str, dict[str, str]],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: list[str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The same compiled container components a KFP backend runs, one container per task.

    kfp.local ignores ``platforms.kubernetes`` (PVC, Secrets, security context), and mounts only
    its pipeline root, at the same path: so the steps share data through a ``file://`` store
    under the pipeline root, each container's /data is its own (the emptyDir), and the user and
    no-network settings are given to the runner.

    kfp.local reports a task whose container exited non-zero as SUCCESS when the container is
    already gone (``auto_remove``) by the time it asks for the exit code, which is always the
    case with podman; so success here is read from the store and the logs, not from kfp.
    """
    docker = pytest.importorskip("docker", reason="pip install -e '.[kubeflow]'")
    from kfp import local

    from mlpipe.adapters.kubeflow.compiler import build_cluster_pipeline
    from mlpipe.core import TRAINING, load_config

    monkeypatch.setenv("DOCKER_HOST", docker_api)
    not_found_as_docker_says_it(monkeypatch)  # podman's answer for an auto-removed container
    root = tmp_path / "kfp-root"
    store = _fs_group_dir(root / "store", 10001)
    root.chmod(0o755)
    extra = ["cluster.volume_claim=null", f"cluster.storage_uri=file://{store}"]
    runner = local.DockerRunner(
        # Kubernetes semantics: the component's command replaces the image's ENTRYPOINT (kfp.local
        # passes command + args as the container's command; [] would keep ENTRYPOINT)
        entrypoint=[""],
        # /data is the image's own (owned by uid 10001), fresh in every container: the
        # emptyDir. Not read_only: podman's compat API mounts a tmpfs at /data root-owned 0755
        # whatever mode= says, so the image's user could not write its home there.
        user="10001:10001", network_mode="none", security_opt=["no-new-privileges"],
        ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=4096),
                 docker.types.Ulimit(name="nproc", soft=1024, hard=4096)],
    )
    local.init(runner=runner, pipeline_root=str(root), raise_on_error=True)
    # training only: inference's map step is a ParallelFor over the plan component's output
    # parameter, which KFP backends run and kfp.local 2.17 cannot (it iterates only over a Python
    # component's return value); its pods run above as containers, its YAML in test_cluster.py
    for pipeline in (TRAINING,):
        cfg = load_config(CONFIGS[pipeline.name],
                          [*SETS[pipeline.name], *_cluster_sets(image, extra)])
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                build_cluster_pipeline(pipeline, cfg)()
                break
            except docker.errors.APIError as exc:
                # the race above, surfacing the other way: kfp.local inspects a container podman
                # has already removed ("no such container", seen once in CI); once more, clean
                if attempt == 2 or "no such container" not in str(exc):
                    raise
                for leftover in store.iterdir():
                    shutil.rmtree(leftover, ignore_errors=True)
        TIMINGS[f"kfp-docker-{pipeline.name}"] = {
            "total": round(time.perf_counter() - started, 1)}
    out = capfd.readouterr().out
    logs.append(out)
    assert "error: step" not in out, out[-4000:]
    results: dict[str, dict[str, Any]] = {}
    (run_dir,) = (store / "runs" / "training").iterdir()  # the kfp run name, made safe
    for step in PIPELINES["training"]:
        results[step] = load_step_result(store, "training", run_dir.name, step).to_json()
    assert _hashes(results) == {k: v for k, v in local_reference["torch"].items()
                                if k in ("weights", "artifacts")}


# -- the planted key is nowhere ------------------------------------------------------------------


def _contains(stream: Any, needle: bytes, chunk: int = 8 * 2**20) -> bool:
    """Whether a binary stream holds ``needle``, read in chunks (layers hold GB of libraries)."""
    tail = b""
    while block := stream.read(chunk):
        if needle in tail + block:
            return True
        tail = block[-len(needle):]
    return False


def _is_plain_tar(head: bytes) -> bool:
    """Whether a member of the saved archive starts as an uncompressed (ustar or GNU) tar: each
    of its files is stored whole and in order, so the scan of the raw archive has read them."""
    return len(head) == 512 and head[257:262] == b"ustar"


def test_planted_key_in_no_layer_no_rendered_file_no_log(
    engine: str, image: str, render_root: Path, logs: list[str], tmp_path: Path,
) -> None:
    needle = FAKE_KEY.encode()
    files = [p for p in render_root.rglob("*") if p.is_file()]
    rendered = {p.relative_to(render_root).parts[0] for p in files if p.suffix == ".yaml"}
    assert rendered >= {"pvc", "store"}, "runs after the container tests (they render and log)"
    for path in files:
        assert needle not in path.read_bytes(), path
    assert len(logs) >= 32 and all(FAKE_KEY not in log for log in logs)
    archive = tmp_path / "image.tar"
    subprocess.run([engine, "save", "-o", str(archive), image], check=True, timeout=900,
                   capture_output=True)
    with archive.open("rb") as raw:
        assert not _contains(raw, needle), "the key is in the saved image"
    # and inside each layer, decompressed if the archive holds it compressed
    layers = 0
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            data = outer.extractfile(member) if member.isfile() else None
            if data is None:
                continue
            if _is_plain_tar(data.read(512)):
                layers += 1  # every file's bytes lie in the archive as they are: scanned above
                continue
            data.seek(0)
            try:
                layer = tarfile.open(fileobj=data, mode="r|*")  # noqa: SIM115 (with below)
            except tarfile.ReadError:
                continue  # the manifest and config JSON: covered by the scan above
            layers += 1
            with layer:
                for entry in layer:
                    content = layer.extractfile(entry) if entry.isfile() else None
                    if content is not None:
                        assert not _contains(content, needle), f"{member.name}: {entry.name}"
    assert layers >= 2
    for command in (["image", "inspect", image], ["history", "--no-trunc", image]):
        proc = subprocess.run([engine, *command], capture_output=True, text=True, check=True,
                              timeout=300)
        assert FAKE_KEY not in proc.stdout
    archive.unlink()


@pytest.fixture(scope="module", autouse=True)
def _report_timings(request: pytest.FixtureRequest) -> Iterator[None]:
    """The measured wall times (docs/kubernetes.md), in .mlpipe/container-timings.json."""
    yield
    if TIMINGS:
        out = Path(str(request.config.rootpath)) / ".mlpipe" / "container-timings.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(TIMINGS, indent=1) + "\n")
