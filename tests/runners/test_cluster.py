"""Cluster mode without a cluster: render what each orchestrator would submit, check it, and run
the ``mlpipe step`` commands those specs contain, in pipeline order, against a shared directory
(the PVC) or a ``file://`` store, to prove they chain into the same outputs as a local run.

Inference runs with two shards: its map step is a plan pod, one pod per shard (the step's
resources, ``--shard I``) and a gather pod, and its predictions equal a one-shard local run's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlpipe.core import INFERENCE, TRAINING, ConfigError, load_config
from mlpipe.core import run_pipeline as run_local
from mlpipe.core.cluster import pod_manifest, step_container
from mlpipe.core.config import BuiltinConfig
from mlpipe.core.execution import load_step_result
from mlpipe.core.pipeline import Pipeline
from tests.support import TINY_INFERENCE, TINY_TRAINING, venv_env
from tests.support.render import render_all

FAKE_KEY = "sk-fake-wandb-key-0123456789"
ORCHESTRATORS = ("airflow", "kubeflow", "dagster")
PIPELINES = {"training": TRAINING, "inference": INFERENCE}
#: The run-id placeholder each orchestrator leaves in its rendered args.
PLACEHOLDERS = {
    "airflow": "{{ (dag_run.conf or {}).get('mlpipe_run_id') or run_id }}",
    "kubeflow": "{{$.inputs.parameters['run_id']}}",
    "dagster": "{{dagster_run_id}}",
}
CLUSTER = [
    "runtime.mode=kubernetes",
    "cluster.image=registry.example/mlpipe:1.2",
    "cluster.namespace=ml-team",
    "cluster.service_account=mlpipe-runner",
    "cluster.node_selector={pool: ml}",
    "cluster.step_resources={train_model: {cpu: '4', memory: 8Gi, gpu: 1},"
    " run_inference: {cpu: '2', memory: 3Gi}}",
    "cluster.env={TOKENIZERS_PARALLELISM: 'false'}",
    "cluster.secrets=[{env: WANDB_API_KEY, secret: wandb, key: api-key}]",  # none by default
]
TRAIN_SET = ["data.generated.n_samples=300", "training.epochs=1", *CLUSTER]
#: 100 rows in chunks of 50: two shards
INFER_SET = ["data.generated.n_samples=100", "inference.chunk_rows=50", "inference.shards=2",
             *CLUSTER]
SHARDS = 2
#: An Airflow shard pod's run id: Kubernetes fills it from the env var Airflow rendered.
AIRFLOW_SHARD_RUN_ID = "$(MLPIPE_RUN_ID)"


def _config(pipeline: str, extra: list[str] = ()) -> BuiltinConfig:  # type: ignore[assignment]
    if pipeline == "training":
        return load_config(TINY_TRAINING, [*TRAIN_SET, *extra])
    return load_config(TINY_INFERENCE, [*INFER_SET, *extra])


# -- core: the one description of a step's pod ---------------------------------------------------


def test_container_spec_from_config_has_no_secret_and_a_gpu_only_where_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    cfg = _config("training")
    train = step_container(TRAINING, "train_model", cfg, "RUN")
    load = step_container(TRAINING, "load_training_data", cfg, "RUN")
    assert train.command == ("mlpipe",)
    assert train.args[:6] == ("step", "train_model", "--pipeline", "training", "--run-id", "RUN")
    assert train.args[-2:] == ("--home", "/data/mlpipe")
    assert json.loads(train.config_json) == json.loads(cfg.model_dump_json())
    assert train.limits == {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"}
    assert load.limits == {"cpu": "1", "memory": "2Gi"} and load.gpu == 0
    assert [(s.env, s.secret, s.key) for s in train.secret_env] == [
        ("WANDB_API_KEY", "wandb", "api-key")]
    manifest = json.dumps(pod_manifest(train))
    assert FAKE_KEY not in manifest and "secretKeyRef" in manifest


def test_cluster_settings_that_cannot_share_data_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="volume_claim"):
        step_container(TRAINING, "train_model",
                       _config("training", ["cluster.volume_claim=null"]), "r")
    with pytest.raises(ConfigError, match="mount_path"):
        step_container(TRAINING, "train_model", _config("training", ["cluster.home=/tmp/x"]), "r")
    with pytest.raises(ConfigError, match=r"WANDB_API_KEY look like secrets"):
        _config("training", ["cluster.env={WANDB_API_KEY: x}"])
    secret_named = ["cluster.secrets=[{env: DB_URL, secret: db, key: url}]",
                    "cluster.env={DB_URL: postgres://x}"]
    with pytest.raises(ConfigError, match=r"also come from cluster\.secrets"):
        step_container(TRAINING, "train_model", _config("training", secret_named), "r")
    with pytest.raises(ConfigError, match="no step"):
        step_container(TRAINING, "nope", _config("training"), "r")


@pytest.mark.parametrize("name", ["DB_PASS", "HF_AUTH", "MY_APITOKEN", "PGPASSWORD", "AWS_CREDS"])
def test_credential_like_env_names_are_refused_whatever_the_spelling(name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} look like secrets"):
        _config("training", [f"cluster.env={{{name}: hunter2}}"])


def test_proxy_urls_with_passwords_are_refused() -> None:
    with pytest.raises(ConfigError, match="HTTPS_PROXY look like secrets"):
        _config("training", ["cluster.env={HTTPS_PROXY: 'http://bob:pw@proxy:3128'}"])


def test_a_declared_secrets_value_never_reaches_a_pod_whatever_the_field_is_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = "s3cr3t-value-4242"
    monkeypatch.setenv("MODEL_STORE", value)  # a declared secret with an innocent name
    declared = "cluster.secrets=[{env: MODEL_STORE, secret: store, key: k}]"
    with pytest.raises(ConfigError, match="OTHER look like secrets"):  # copied into plain env
        _config("training", [declared, f"cluster.env={{OTHER: {value}}}"])
    pasted = _config("training", [declared, f"registry.model_name=m-{value}"])
    with pytest.raises(ConfigError) as info:  # pasted into a config field: --config-json
        step_container(TRAINING, "train_model", pasted, "r")
    assert "registry.model_name" in str(info.value) and "MODEL_STORE" in str(info.value)
    assert value not in str(info.value)
    spec = step_container(TRAINING, "train_model", _config("training", [declared]), "r")
    assert value not in json.dumps(pod_manifest(spec))


# -- render all three, both pipelines, through the CLI -------------------------------------------


def _write_configs(directory: Path, extra: list[str] = ()) -> dict[str, Path]:
    paths = {}
    for name in PIPELINES:
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(_config(name, list(extra)).model_dump(mode="json")))
        paths[name] = path
    return paths


# session, not module: this file's tests run in several xdist work units (one per runner)
@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``mlpipe render`` for every orchestrator and pipeline (in one process), fake key in env."""
    root = tmp_path_factory.mktemp("render")
    configs = _write_configs(root)
    env = venv_env()
    env.update(WANDB_API_KEY=FAKE_KEY, AIRFLOW_HOME=str(root / "airflow"),
               HF_HUB_OFFLINE="1", AIRFLOW__CORE__LOAD_EXAMPLES="False")
    started = time.perf_counter()
    commands = [[orch, "--pipeline", name, "--config", str(config), "-o", str(root / orch)]
                for orch in ORCHESTRATORS for name, config in configs.items()]
    stdout = render_all(commands, env, timeout=240)
    assert stdout.count("wrote") >= len(commands), stdout[-3000:]
    yield {"root": root, "configs": configs, "seconds": time.perf_counter() - started}


def _pod_args(pod: dict[str, Any]) -> list[str]:
    return list(pod["spec"]["containers"][0]["args"])


def _kfp(root: Path, pipeline: str) -> tuple[dict[str, Any], dict[str, Any]]:
    docs = list(yaml.safe_load_all((root / "kubeflow" / f"{pipeline}.kfp.yaml").read_text()))
    return docs[0], docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


KFP_SHARD = "{{$.inputs.parameters['shard']}}"


def step_commands(root: Path, orch: str, pipeline: Pipeline) -> list[tuple[str, list[str]]]:
    """(step, container args) of every pod, in pipeline order, as the rendered files hold them;
    a map step's are its plan pod, one pod per shard and its gather pod."""
    out = []
    for step in pipeline.steps:
        names = [step.name]
        if step.map_over:
            names = [f"{step.name}__shards",
                     *[f"{step.name}__shard-{i:04d}" for i in range(SHARDS)], step.name]
        for name in names:
            if orch == "kubeflow":
                spec, _ = _kfp(root, pipeline.name)
                task = name.split("__shard-")[0].replace("__", "-").replace("_", "-")
                task += "-shard" if "__shard-" in name else ""
                container = spec["deploymentSpec"]["executors"][f"exec-{task}"]["container"]
                assert container["command"] == ["mlpipe"]
                args = list(container["args"])
                if "__shard-" in name:  # the ParallelFor item
                    args = [str(int(name[-4:])) if a == KFP_SHARD else a for a in args]
            else:
                pod = yaml.safe_load((root / orch / f"{pipeline.name}-{name}.pod.yaml")
                                     .read_text())
                container = pod["spec"]["containers"][0]
                assert container["command"] in (["mlpipe"], [  # Dagster's plan pod: via Pipes
                    "python", "-m", "mlpipe.adapters.dagster.pipes_plan"])
                args = _pod_args(pod)
            out.append((step.name, args))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("orch", ["airflow", "dagster"])
@pytest.mark.parametrize("pipeline", [TRAINING, INFERENCE], ids=["training", "inference"])
def test_rendered_pod_specs(rendered: dict[str, Any], orch: str, pipeline: Pipeline) -> None:
    root: Path = rendered["root"]
    cfg = _config(pipeline.name)
    for step in pipeline.steps:
        pod = yaml.safe_load((root / orch / f"{pipeline.name}-{step.name}.pod.yaml").read_text())
        assert pod["metadata"]["namespace"] == "ml-team"
        assert pod["metadata"]["labels"]["mlpipe/step"] == step.name.replace("_", "-")
        spec = pod["spec"]
        (container,) = spec["containers"]
        assert container["image"] == "registry.example/mlpipe:1.2"
        assert container["command"] == ["mlpipe"]
        args = container["args"]
        assert args[:5] == ["step", step.name, "--pipeline", pipeline.name, "--run-id"]
        assert args[5] == PLACEHOLDERS[orch]
        assert args[6] == "--config-json" and args[8:10] == ["--home", "/data/mlpipe"]
        assert args[10:] == (["--gather"] if step.map_over else [])  # a map step's: the gather
        assert json.loads(args[7]) == json.loads(cfg.model_dump_json())
        env = {e["name"]: e for e in container["env"]}
        assert env["WANDB_API_KEY"] == {
            "name": "WANDB_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "api-key"}}}
        assert env["MLPIPE_HOME"]["value"] == "/data/mlpipe"
        assert env["TOKENIZERS_PARALLELISM"]["value"] == "false"
        gpu = step.name == "train_model"
        assert container["resources"]["limits"] == (
            {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"} if gpu
            else {"cpu": "1", "memory": "2Gi"})
        assert container["resources"]["requests"] == (
            {"cpu": "4", "memory": "8Gi"} if gpu else {"cpu": "1", "memory": "2Gi"})
        assert container["volumeMounts"] == [{"name": "mlpipe-data", "mountPath": "/data"}]
        assert spec["volumes"] == [
            {"name": "mlpipe-data", "persistentVolumeClaim": {"claimName": "mlpipe-data"}}]
        assert spec["nodeSelector"] == {"pool": "ml"}
        assert spec["serviceAccountName"] == "mlpipe-runner"
        assert spec["restartPolicy"] == "Never"
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["activeDeadlineSeconds"] == int(cfg.runtime.timeout_s)
    for step in [s for s in pipeline.steps if s.map_over]:  # a pod per shard, the step's size
        shards = sorted((root / orch).glob(f"{pipeline.name}-{step.name}__shard-*.pod.yaml"))
        assert len(shards) == SHARDS
        for i, path in enumerate(shards):
            (container,) = yaml.safe_load(path.read_text())["spec"]["containers"]
            assert container["args"][-2:] == ["--shard", str(i)]
            assert container["args"][5] == (AIRFLOW_SHARD_RUN_ID if orch == "airflow"
                                            else PLACEHOLDERS[orch])
            assert container["resources"]["limits"] == {"cpu": "2", "memory": "3Gi"}
    if orch == "airflow":
        shape = yaml.safe_load((root / orch / f"{pipeline.name}.dag.yaml").read_text())
        mapped = [s.name for s in pipeline.steps if s.map_over]
        assert [t["task_id"] for t in shape["tasks"]] == [
            t for s in pipeline.step_names
            for t in ([f"{s}__shards", f"{s}__shard", s] if s in mapped else [s])]
        assert {t["operator"] for t in shape["tasks"]} == {"KubernetesPodOperator"}
        for task in shape["tasks"]:
            step_name, _, part = task["task_id"].partition("__")
            upstream = sorted(pipeline.step(step_name).upstream)
            if step_name in mapped:
                upstream = {"shards": upstream, "shard": [f"{step_name}__shards"],
                            "": sorted([*upstream, f"{step_name}__shard"])}[part]
            assert task["upstream"] == upstream
    else:
        job = yaml.safe_load((root / orch / f"{pipeline.name}.dagster.yaml").read_text())
        assert [a["step"] for a in job["assets"]] == list(pipeline.step_names)


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", [TRAINING, INFERENCE], ids=["training", "inference"])
def test_compiled_kfp_yaml(rendered: dict[str, Any], pipeline: Pipeline) -> None:
    from kfp import components

    root: Path = rendered["root"]
    path = root / "kubeflow" / f"{pipeline.name}.kfp.yaml"
    loaded = components.load_component_from_file(str(path))  # kfp reads it back
    assert loaded.name == f"mlpipe-{pipeline.name}"
    spec, platform = _kfp(root, pipeline.name)
    cfg = _config(pipeline.name)
    tasks = spec["root"]["dag"]["tasks"]
    for step in pipeline.steps:
        name = step.name.replace("_", "-")
        container = spec["deploymentSpec"]["executors"][f"exec-{name}"]["container"]
        assert container["image"] == "registry.example/mlpipe:1.2"
        assert container["command"] == ["mlpipe"]
        assert container["args"][5] == PLACEHOLDERS["kubeflow"]
        assert json.loads(container["args"][7]) == json.loads(cfg.model_dump_json())
        assert tasks[name]["inputs"]["parameters"]["run_id"]["runtimeValue"]["constant"] == (
            "{{$.pipeline_job_name}}")
        upstream = {s.replace("_", "-") for s in step.upstream}
        if step.map_over:  # plan after the upstream, a ParallelFor of shards, then the gather
            assert set(tasks[f"{name}-shards"]["dependentTasks"]) == upstream
            (loop,) = [t for t in tasks.values() if "parameterIterator" in t]
            assert loop["dependentTasks"] == [f"{name}-shards"]
            assert loop["inputs"]["parameters"][loop["parameterIterator"]["items"][
                "inputParameter"]]["taskOutputParameter"] == {
                "outputParameterKey": "shards", "producerTask": f"{name}-shards"}
            shard = spec["deploymentSpec"]["executors"][f"exec-{name}-shard"]["container"]
            assert shard["args"][-2:] == ["--shard", KFP_SHARD]
            assert shard["resources"]["resourceCpuLimit"] == "2"
            upstream |= {loop["taskInfo"]["name"]}  # the plan's gather: after both, as Airflow's
        assert set(tasks[name].get("dependentTasks", [])) == upstream
        res = container["resources"]
        gpu = step.name == "train_model"
        assert res["resourceCpuLimit"] == ("4" if gpu else "1")
        assert res["resourceMemoryLimit"] == ("8Gi" if gpu else "2Gi")
        assert ("accelerator" in res) is gpu
        if gpu:
            assert res["accelerator"]["resourceType"] == "nvidia.com/gpu"
            assert res["accelerator"]["resourceCount"] == "1"
        assert {"name": "TOKENIZERS_PARALLELISM", "value": "false"} in container["env"]
        k8s = platform[f"exec-{name}"]
        assert k8s["secretAsEnv"][0]["secretName"] == "wandb"
        assert k8s["secretAsEnv"][0]["keyToEnv"] == [
            {"secretKey": "api-key", "envVar": "WANDB_API_KEY"}]
        assert k8s["pvcMount"][0]["mountPath"] == "/data"
        assert k8s["pvcMount"][0]["constant"] == "mlpipe-data"
        assert k8s["nodeSelector"]["labels"] == {"pool": "ml"}
        assert k8s["securityContext"]["runAsNonRoot"] is True
    run = yaml.safe_load((root / "kubeflow" / f"{pipeline.name}.run.yaml").read_text())
    assert run["namespace"] == "ml-team" and run["service_account"] == "mlpipe-runner"


def test_every_cluster_translation_runs_a_fused_group_as_one_pod(tmp_path: Path) -> None:
    """runtime.fuse in cluster mode: Airflow's, Dagster's and kfp's renderings each run the group
    as one pod, ``mlpipe step save_artifacts__upload_model``, and no pod per fused step."""
    from mlpipe.core.execution.plan import plan
    from mlpipe.core.execution.runner import get_runner

    cfg = _config("training", ["runtime.fuse=[[save_artifacts, upload_model]]"])
    group = "save_artifacts__upload_model"
    for orch in ORCHESTRATORS:
        get_runner(orch).render_cluster(TRAINING, cfg, tmp_path / orch)
        if orch == "kubeflow":
            spec, _ = _kfp(tmp_path, "training")
            executors = spec["deploymentSpec"]["executors"]
            assert set(executors) == {f"exec-{s}" for s in (
                "load-training-data", "train-model", "save-artifacts-upload-model")}
            args = executors["exec-save-artifacts-upload-model"]["container"]["args"]
            assert set(spec["root"]["dag"]["tasks"]["save-artifacts-upload-model"][
                "dependentTasks"]) == {u.replace("_", "-") for u in plan(TRAINING, cfg).task(
                    group).upstream}
        else:
            pods = sorted(p.name for p in (tmp_path / orch).glob("*.pod.yaml"))
            assert pods == [f"training-{t}.pod.yaml" for t in sorted(
                ("load_training_data", "train_model", group))], orch
            args = _pod_args(yaml.safe_load((tmp_path / orch / f"training-{group}.pod.yaml")
                                            .read_text()))
        assert args[:4] == ["step", group, "--pipeline", "training"], orch


@pytest.mark.slow
def test_no_secret_value_in_any_rendered_file(rendered: dict[str, Any]) -> None:
    files = sorted(p for p in rendered["root"].rglob("*") if p.is_file())
    per_orch = {o: [p for p in files if p.parent.name == o] for o in ORCHESTRATORS}
    # airflow: a pod per step (a map step: plan, a pod per shard, gather) + the DAG per
    # pipeline; kubeflow: YAML + run settings; dagster: the same pods + the job per pipeline
    per_pipeline = len(TRAINING.steps) + len(INFERENCE.steps) + 2 + 1 + SHARDS
    assert {o: len(v) for o, v in per_orch.items()} == {"airflow": per_pipeline, "kubeflow": 4,
                                                        "dagster": per_pipeline}
    for path in files:
        assert FAKE_KEY not in path.read_text(errors="replace"), path


def test_render_bad_input_exits_2(tmp_path: Path) -> None:
    configs = _write_configs(tmp_path, ["cluster.volume_claim=null"])
    proc = subprocess.run(
        [sys.executable, "-m", "mlpipe", "render", "kubeflow", "--pipeline", "training",
         "--config", str(configs["training"]), "-o", str(tmp_path / "out")],
        capture_output=True, text=True, env=venv_env(), timeout=120)
    assert proc.returncode == 2
    assert "cluster.volume_claim" in proc.stderr


@pytest.mark.parametrize(("flags", "named"), [
    (["load_model", "--shard", "0"], "--shard: step 'load_model' of pipeline inference is not a"),
    (["run_inference", "--plan", "--gather"], "--plan and --gather: choose one"),
])
def test_step_shard_flags_refuse_bad_input_with_exit_2(
    tmp_path: Path, flags: list[str], named: str,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlpipe", "step", *flags, "--pipeline", "inference",
         "--run-id", "r1", "-c", str(TINY_INFERENCE), "--home", str(tmp_path / "home")],
        capture_output=True, text=True, env=venv_env(), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr and not (tmp_path / "home" / "runs").exists()


@pytest.mark.parametrize("runner", ["airflow", "kubeflow", "dagster"])
def test_running_a_cluster_config_here_is_refused_with_exit_2(tmp_path: Path, runner: str) -> None:
    """Runners that run steps on this machine refuse `runtime.mode: kubernetes` before any work."""
    configs = _write_configs(tmp_path, [])
    proc = subprocess.run(
        [sys.executable, "-m", "mlpipe", "run", "training", "--runner", runner,
         "--config", str(configs["training"]), "--home", str(tmp_path / "home")],
        capture_output=True, text=True, env=venv_env(), timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "mlpipe render" in proc.stderr and not (tmp_path / "home").exists()


# -- run the rendered commands: they chain into the same outputs as a local run -------------------


def _run_step(args: list[str], run_id: str, placeholder: str, home: Path) -> Any:
    """Run one rendered command here: placeholder -> run id, the pod's home -> ``home``; a plan
    pod's file for the orchestrator (``--plan-out``) goes next to ``home``."""
    args = [run_id if a in (placeholder, AIRFLOW_SHARD_RUN_ID) else a for a in args]
    args[args.index("--home") + 1] = str(home)
    if "--plan-out" in args:
        args[args.index("--plan-out") + 1] = str(home.parent / "plan.json")
    proc = subprocess.run([sys.executable, "-m", "mlpipe", *args], capture_output=True,
                          text=True, env=venv_env(), timeout=300)
    assert proc.returncode == 0, f"{args[1]}: {proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _hashes(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    """What must match a local run: weights, artifacts manifest, results (the predictions
    joined to the inputs: the sha256 of predictions.parquet)."""
    keys = {"train_model": "weights", "save_artifacts": "artifacts", "save_results": "results"}
    return {keys[s]: r["ref"]["sha256"] for s, r in results.items() if s in keys}


def _run_pods(commands: list[tuple[str, list[str]]], run_id: str, placeholder: str,
              home: Path, *, fresh: bool = False) -> dict[str, Any]:
    """Each pod's command in order, as its own process (``fresh``: each with an empty home);
    step -> its (last) pod's output. A map step's plan must list exactly the shard pods
    rendered, and its gather their outputs."""
    results: dict[str, Any] = {}
    plan: Any = None
    for step, args in commands:
        if fresh:
            shutil.rmtree(home.parent, ignore_errors=True)
        out = _run_step(args, run_id, placeholder, home)
        if "--plan" in args:
            plan = out
            assert plan == list(range(SHARDS))
            if "--plan-out" in args:  # Airflow's XCom file, kfp's output parameter
                assert json.loads((home.parent / "plan.json").read_text()) == plan
        elif "--shard" in args:
            assert out["step"] == step and out["ref"]["kind"] == "predictions"
        else:
            results[step] = out
            assert out["step"] == step
            if "--gather" in args:
                assert len(out["ref"]["shards"]) == len(plan)
    return results


# session, not module: this file's tests run in several xdist work units (one per runner)
@pytest.fixture(scope="session")
def local_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("local-home")
    out: dict[str, dict[str, Any]] = {}
    # as in the pods (the image sets it): the saved tokenizer_config.json records it
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        for name, pipeline in PIPELINES.items():
            # the same steps, run here (the local runner refuses pod mode), inference unsharded
            cfg = _config(name, ["inference.shards=1"] if name == "inference" else [])
            local_mode = cfg.runtime.model_copy(update={"mode": "local"})
            cfg = cfg.model_copy(update={"runtime": local_mode})
            run = run_local(pipeline, cfg, home=home, use_cache=False)
            out.update({s.step: s.to_json() for s in run.steps})
    return _hashes(out)


def _neutral(commands: list[tuple[str, list[str]]], orch: str) -> list[tuple[str, list[str]]]:
    """An orchestrator's pod commands without what is its own: the run-id placeholder and the
    file a plan pod writes its plan to (Airflow's XCom file, kfp's output parameter)."""
    out = []
    for step, args in commands:
        args = ["RUN_ID" if a in (PLACEHOLDERS[orch], AIRFLOW_SHARD_RUN_ID) else a for a in args]
        if "--plan-out" in args:
            args[args.index("--plan-out") + 1] = "PLAN_OUT"
        out.append((step, args))
    return out


def _without_plan_out(args: list[str]) -> list[str]:
    if "--plan-out" not in args:
        return args
    i = args.index("--plan-out")
    return args[:i] + args[i + 2:]


@pytest.mark.slow
def test_rendered_commands_chain_like_a_local_run(
    rendered: dict[str, Any], local_reference: dict[str, str], tmp_path: Path,
) -> None:
    """Every orchestrator renders the same pod commands but for its run-id placeholder and where
    a plan pod hands its plan over (Airflow and kfp: ``--plan-out``; Dagster reads the plan pod's
    output through Pipes), so the pods run once, as Airflow renders them, each plan pod also as
    Dagster renders it; the chain ends in a local run's outputs."""
    shared = tmp_path / "pvc" / "mlpipe"  # what every pod sees at cluster.home
    results: dict[str, dict[str, Any]] = {}
    for name, pipeline in PIPELINES.items():
        run_id = f"chain-{name}-1"
        per_orch = {o: step_commands(rendered["root"], o, pipeline) for o in ORCHESTRATORS}
        chain = _neutral(per_orch["airflow"], "airflow")
        assert _neutral(per_orch["kubeflow"], "kubeflow") == chain
        dagster = _neutral(per_orch["dagster"], "dagster")
        assert [(s, _without_plan_out(a)) for s, a in chain] == dagster
        assert ["--plan-out" in a for _, a in dagster] == [False] * len(dagster)
        commands = []
        for (step, args), (_, dagster_args) in zip(per_orch["airflow"], per_orch["dagster"],
                                                   strict=True):
            commands.append((step, args))
            if "--plan" in args:  # and Dagster's plan pod as rendered: its plan on stdout
                commands.append((step, [PLACEHOLDERS["airflow"] if a == PLACEHOLDERS["dagster"]
                                        else a for a in dagster_args]))
        results.update(_run_pods(commands, run_id, PLACEHOLDERS["airflow"], shared))
        for step in pipeline.steps:  # each pod's output is on the shared volume, same run id
            assert load_step_result(shared, name, run_id, step.name).step == step.name
        shard_dirs = sorted((shared / "runs" / name / run_id).glob("*/shard-*/result.json"))
        assert len(shard_dirs) == (SHARDS if name == "inference" else 0)
    assert results["upload_model"]["ref"]["name"] == "tiny-sentiment"
    assert results["load_model"]["ref"]["version"] == results["upload_model"]["ref"]["version"]
    assert _hashes(results) == local_reference


@pytest.mark.slow
def test_object_store_variant_each_pod_starts_with_an_empty_home(
    local_reference: dict[str, str], tmp_path: Path,
) -> None:
    """storage_uri=file://...: every step runs with an empty local home (an emptyDir) and gets
    its inputs only through the store; nothing is shared on disk between steps."""
    from mlpipe.adapters.kubeflow.compiler import render_cluster

    store = tmp_path / "bucket"
    extra = ["cluster.volume_claim=null", f"cluster.storage_uri=file://{store}"]
    pod_home = tmp_path / "pod" / "mlpipe"
    results: dict[str, dict[str, Any]] = {}
    for name, pipeline in PIPELINES.items():
        cfg = _config(name, extra)
        paths = render_cluster(pipeline, cfg, tmp_path / "kubeflow")
        docs = list(yaml.safe_load_all(paths[0].read_text()))
        platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for executor in platform.values():
            assert executor["emptyDirMounts"][0]["mountPath"] == "/data"
            assert "pvcMount" not in executor
        results.update(_run_pods(step_commands(tmp_path, "kubeflow", pipeline), f"store-{name}",
                                 PLACEHOLDERS["kubeflow"], pod_home, fresh=True))
        for step in pipeline.steps:
            step_dir = store / "runs" / name / f"store-{name}" / step.name
            assert (step_dir / "result.json").is_file(), f"{step.name} was not pushed"
        pushed = sorted(store.glob(f"runs/{name}/store-{name}/*/shard-*/result.json"))
        assert len(pushed) == (SHARDS if name == "inference" else 0)  # each shard pod's own
    assert _hashes(results) == local_reference
    registry = store / "registry" / "tiny-sentiment"
    assert (registry / "state.json").is_file()
    assert (registry / "v1" / "manifest.json").is_file()
    # the store mirrors the home: a step's files are at the same relative paths
    weights = Path(results["train_model"]["ref"]["uri"]).relative_to(pod_home)
    assert (store / weights / "model.safetensors").is_file()


# -- the orchestrators' own run-time pieces, without a cluster --------------------------------


@pytest.mark.slow
def test_airflow_renders_the_run_id_template_per_run(tmp_path: Path) -> None:
    """Airflow fills the args template from the DAG run (conf's mlpipe_run_id, else run_id); a
    shard pod (expanded arguments are never templated) gets it through its env var, which
    Kubernetes puts in ``$(MLPIPE_RUN_ID)``. The sharded DAG survives Airflow's serialization."""
    code = """
import copy, json, sys
from types import SimpleNamespace
from airflow.serialization.serialized_objects import DagSerialization
from mlpipe.core import INFERENCE, TRAINING, load_config
from mlpipe.adapters.airflow.dags import build_dag
cfg = load_config(sys.argv[1])
op = build_dag(TRAINING, cfg).get_task("train_model")
dag = build_dag(INFERENCE, load_config(sys.argv[2]))
DagSerialization.from_dict(DagSerialization.to_dict(dag))  # what the DAG processor stores
mapped = dag.get_task("run_inference__shard")
(to_args,) = mapped.expand_input.value["arguments"].callables  # applied to each XCom item
out = []
for conf in ({}, {"mlpipe_run_id": "chosen-1"}):
    shard = mapped.unmap({"arguments": to_args(1)})  # as a mapped task instance runs it
    shard.env_vars = copy.deepcopy(shard.env_vars)  # a task instance's own (rendered in place)
    ctx = {"dag_run": SimpleNamespace(conf=conf), "run_id": "manual__2026-01-01T00:00:00+00:00"}
    env = {e.name: e.value for e in shard.render_template(shard.env_vars, ctx)}
    pod = op.render_template(op.pod_template_dict, ctx)  # core's pod manifest, templated
    out.append([pod["spec"]["containers"][0]["args"], shard.arguments, env["MLPIPE_RUN_ID"]])
print(json.dumps(out))
"""
    configs = _write_configs(tmp_path)
    env = venv_env()
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    proc = subprocess.run([sys.executable, "-c", code, str(configs["training"]),
                           str(configs["inference"])],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (plain, shard, plain_env), (chosen, _, chosen_env) = json.loads(
        proc.stdout.strip().splitlines()[-1])
    assert plain[5] == "manual__2026-01-01T00:00:00+00:00"  # `mlpipe step` makes it safe
    assert chosen[5] == "chosen-1"
    assert json.loads(plain[7]) == json.loads(_config("training").model_dump_json())
    assert shard[5] == AIRFLOW_SHARD_RUN_ID and shard[-2:] == ["--shard", "1"]
    assert (plain_env, chosen_env) == ("manual__2026-01-01T00:00:00+00:00", "chosen-1")


class LocalPods:
    """Stands in for the cluster, not for Dagster: ``run`` takes what the assets hand to
    ``PipesK8sClient.run`` and runs that pod's container command here through Dagster's own
    ``PipesSubprocessClient``, with the pod's home pointed at a local shared directory."""

    def __init__(self, shared: Path) -> None:
        self.shared = shared
        self.pods: list[dict[str, Any]] = []

    def run(self, *, context: Any, namespace: str, base_pod_meta: dict[str, Any],
            base_pod_spec: dict[str, Any]) -> Any:
        import dagster as dg

        self.pods.append({"namespace": namespace, "meta": base_pod_meta, "spec": base_pod_spec})
        (container,) = base_pod_spec["containers"]
        args = list(container["args"])
        args[args.index("--home") + 1] = str(self.shared)
        plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        plain["MLPIPE_HOME"] = str(self.shared)
        command = list(container["command"])  # the image's `mlpipe` and `python`, here
        command = ([sys.executable, "-m", "mlpipe"] if command == ["mlpipe"]
                   else [sys.executable, *command[1:]])
        return dg.PipesSubprocessClient().run(
            context=context, command=[*command, *args], env={**venv_env(), **plain})


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::dagster.PreviewWarning")
def test_dagster_cluster_job_launches_one_pod_per_step(
    local_reference: dict[str, str], tmp_path: Path,
) -> None:
    """A real Dagster run of the cluster-mode jobs; each asset hands its pod to the client."""
    from mlpipe.adapters.dagster.build import build_definitions, job_name
    from mlpipe.adapters.dagster.cluster import PIPES_KEY

    shared = tmp_path / "pvc" / "mlpipe"
    pods = LocalPods(shared)
    results: dict[str, dict[str, Any]] = {}
    for name, pipeline in PIPELINES.items():
        cfg = _config(name)
        defs = build_definitions([(pipeline, cfg)], home=tmp_path / "unused")
        job = defs.resolve_job_def(job_name(name))
        run = job.execute_in_process(resources={PIPES_KEY: pods}, tags={"mlpipe/run_id": "d-1"})
        assert run.success
        for step in pipeline.steps:
            results[step.name] = load_step_result(shared, name, "d-1", step.name).to_json()
    launched = [p["meta"]["labels"]["mlpipe/step"] for p in pods.pods]  # steps with no order
    assert sorted(launched) == sorted(  # between them (after the same upstream) run in any order
        [s.replace("_", "-") for p in PIPELINES.values() for s in p.step_names]
        + ["run-inference"] * (1 + SHARDS))  # the map step: plan, a pod per shard, gather
    shard_pods = [p for p in pods.pods if p["meta"]["labels"].get("mlpipe/part") == "shard"]
    assert sorted(p["meta"]["labels"]["mlpipe/shard"] for p in shard_pods) == ["0", "1"]
    for pod in shard_pods:  # each its own pod, with the step's resources and its shard
        (container,) = pod["spec"]["containers"]
        assert container["args"][-2:] == ["--shard", pod["meta"]["labels"]["mlpipe/shard"]]
        assert container["resources"]["limits"] == {"cpu": "2", "memory": "3Gi"}
    assert {p["namespace"] for p in pods.pods} == {"ml-team"}
    gpu = [p for p in pods.pods if "nvidia.com/gpu" in p["spec"]["containers"][0]["resources"]
           ["limits"]]
    assert [p["meta"]["labels"]["mlpipe/step"] for p in gpu] == ["train-model"]
    assert _hashes(results) == local_reference
