"""Every manifest mlpipe renders or ships validates against the Kubernetes OpenAPI schema of one
named Kubernetes version (``kubernetes-validate``, strict: unknown fields fail too), and cluster
settings Kubernetes would reject (a malformed quantity, a bad name) are refused when the config
is loaded, with exit 2 from the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlpipe.core import INFERENCE, TRAINING, ConfigError, load_config
from tests.support import ROOT, TINY_TRAINING, venv_env
from tests.support.render import render_all

kv = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[dev]'")

#: The Kubernetes version whose OpenAPI schema the manifests must satisfy.
K8S_VERSION = "1.33"
KIND_DIR = ROOT / "docker" / "kind"
#: More than the kind configs use: GPU steps (training, and each shard of a two-shard
#: inference), node selector, a second Secret, and an object store instead of the PVC
#: (emptyDir volumes).
EXTRA = [
    "cluster.image=registry.example:5000/ml/mlpipe:1.2",
    "cluster.namespace=ml-team",
    "cluster.node_selector={pool: ml}",
    "cluster.step_resources={train_model: {cpu: 500m, memory: 1536Mi, gpu: 1},"
    " run_inference: {cpu: '2', memory: 3Gi, gpu: 1}}",
    "cluster.secrets=[{env: WANDB_API_KEY, secret: wandb, key: api-key},"
    " {env: AWS_SECRET_ACCESS_KEY, secret: s3.creds, key: secret}]",
    "cluster.env={TOKENIZERS_PARALLELISM: 'false'}",
]
STORE = ["cluster.volume_claim=null", "cluster.storage_uri=s3://bucket/mlpipe"]
#: Inference shards per variant (kind: the config's one shard); a map step's pods are a plan
#: pod, one pod per shard and a gather pod.
SHARDS = {"kind": 1, "extra": 2}
KFP_SHARD = "{{$.inputs.parameters['shard']}}"


def validate(resource: dict[str, Any]) -> None:
    kind = resource.get("kind")
    name = resource.get("metadata", {}).get("name", "?")
    try:
        kv.validate(resource, K8S_VERSION, strict=True)
    except kv.ValidationError as exc:
        raise AssertionError(f"{kind}/{name} fails the Kubernetes {K8S_VERSION} schema: "
                             f"{exc.message}") from None


def kfp_pods(path: Path, shards: int) -> list[dict[str, Any]]:
    """The pods a KFP backend makes from a compiled cluster pipeline: each executor's container
    (image, command, args, env, resources) plus its ``platforms.kubernetes`` settings; the
    executor inside a ParallelFor once per shard (its ``shard`` input filled)."""
    docs = list(yaml.safe_load_all(path.read_text()))
    executors = docs[0]["deploymentSpec"]["executors"]
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    pods = []
    for name, executor in executors.items():
        c, k8s = executor["container"], platform[name]
        res = c.get("resources", {})
        requests = {"cpu": res.get("resourceCpuRequest"),
                    "memory": res.get("resourceMemoryRequest")}
        limits = {"cpu": res.get("resourceCpuLimit"), "memory": res.get("resourceMemoryLimit")}
        if "accelerator" in res:
            limits[res["accelerator"]["resourceType"]] = res["accelerator"]["resourceCount"]
        env = list(c.get("env", []))
        for secret in k8s.get("secretAsEnv", []):
            env += [{"name": k["envVar"], "valueFrom": {"secretKeyRef": {
                "name": secret["secretName"], "key": k["secretKey"],
                "optional": secret.get("optional", False)}}} for k in secret["keyToEnv"]]
        volumes = [{"name": f"pvc-{i}", "persistentVolumeClaim": {"claimName": m["constant"]}}
                   for i, m in enumerate(k8s.get("pvcMount", []))]
        mounts = [{"name": f"pvc-{i}", "mountPath": m["mountPath"]}
                  for i, m in enumerate(k8s.get("pvcMount", []))]
        for m in k8s.get("emptyDirMounts", []):
            volumes.append({"name": m["volumeName"], "emptyDir": {}})
            mounts.append({"name": m["volumeName"], "mountPath": m["mountPath"]})
        security = {k: int(v) if k.startswith("runAs") and k != "runAsNonRoot" else v
                    for k, v in k8s.get("securityContext", {}).items()}
        spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main", "image": c["image"], "command": c["command"], "args": c["args"],
                "env": env, "volumeMounts": mounts,
                "imagePullPolicy": k8s.get("imagePullPolicy", "IfNotPresent"),
                "resources": {"requests": {k: v for k, v in requests.items() if v},
                              "limits": {k: v for k, v in limits.items() if v}},
                "securityContext": security,
            }],
            "volumes": volumes,
            "activeDeadlineSeconds": int(k8s.get("activeDeadlineSeconds", 3600)),
        }
        if "nodeSelector" in k8s:
            spec["nodeSelector"] = k8s["nodeSelector"]["labels"]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "labels": k8s.get("podMetadata", {})
                            .get("labels", {})}, "spec": spec}
        if KFP_SHARD not in c["args"]:
            pods.append(pod)
            continue
        for shard in range(shards):  # one iteration, one pod, per shard
            one = yaml.safe_load(yaml.safe_dump(pod))
            args = one["spec"]["containers"][0]["args"]
            one["spec"]["containers"][0]["args"] = [str(shard) if a == KFP_SHARD else a
                                                    for a in args]
            one["metadata"]["name"] = f"{name}-{shard}"
            pods.append(one)
    return pods


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """All three orchestrators, both pipelines, for the kind configs and the richer settings,
    through ``mlpipe render``'s command (in one process)."""
    root = tmp_path_factory.mktemp("k8s-render")
    env = venv_env()
    env.update(AIRFLOW_HOME=str(root / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               HF_HUB_OFFLINE="1")
    variants = {"kind": [], "extra": [*EXTRA, *STORE]}
    commands = []
    for variant, sets in variants.items():
        for orch in ("airflow", "kubeflow", "dagster"):
            for pipeline in ("training", "inference"):
                cmd = [orch, "--pipeline", pipeline,
                       "--config", str(KIND_DIR / f"{pipeline}.yaml"),
                       "-o", str(root / variant / orch)]
                shards = [f"inference.shards={SHARDS[variant]}"] if pipeline == "inference" else []
                for item in [*sets, *shards]:
                    cmd += ["--set", item]
                commands.append(cmd)
    stdout = render_all(commands, env)
    assert stdout.count("wrote") >= len(commands), stdout[-3000:]
    return {variant: root / variant for variant in variants}


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["kind", "extra"])
def test_rendered_pods_validate_against_the_kubernetes_schema(
    rendered: dict[str, Path], variant: str,
) -> None:
    root, shards = rendered[variant], SHARDS[variant]
    pods = {p: yaml.safe_load(p.read_text()) for p in sorted(root.glob("*/*.pod.yaml"))}
    # one pod per step of both pipelines; run_inference: plan, one per shard, gather
    steps = len(TRAINING.steps) + len(INFERENCE.steps) + 1 + shards
    assert len([p for p in pods if p.parent.name == "airflow"]) == steps
    assert len([p for p in pods if p.parent.name == "dagster"]) == steps
    for path, pod in pods.items():
        assert pod["kind"] == "Pod", path
        validate(pod)
    kfp = [pod for p in sorted(root.glob("kubeflow/*.kfp.yaml")) for pod in kfp_pods(p, shards)]
    assert len(kfp) == steps
    for pod in kfp:
        validate(pod)
    by_orch = {"airflow": [pod for p, pod in pods.items() if p.parent.name == "airflow"],
               "dagster": [pod for p, pod in pods.items() if p.parent.name == "dagster"],
               "kubeflow": kfp}
    for orch, orch_pods in by_orch.items():  # each shard its own pod, `--shard I`, step's size
        shard_pods = [pod for pod in orch_pods if "--shard" in pod["spec"]["containers"][0]["args"]]
        assert [pod["spec"]["containers"][0]["args"][-2:] for pod in shard_pods] == [
            ["--shard", str(i)] for i in range(shards)], orch
        size = ({"cpu": "1", "memory": "2Gi"} if variant == "kind"
                else {"cpu": "2", "memory": "3Gi", "nvidia.com/gpu": "1"})
        assert all(pod["spec"]["containers"][0]["resources"]["limits"] == size
                   for pod in shard_pods), orch
    gpu = [pod for pod in [*pods.values(), *kfp]
           if "nvidia.com/gpu" in pod["spec"]["containers"][0]["resources"]["limits"]]
    # train_model and each inference shard, in each orchestrator (not the plan or gather pods)
    assert len(gpu) == (0 if variant == "kind" else 3 * (1 + shards))


def test_shipped_kind_manifests_validate_against_the_kubernetes_schema() -> None:
    checked = 0
    for path in sorted(KIND_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or "apiVersion" not in doc:
                continue  # mlpipe configs
            if doc["apiVersion"].startswith("kind.x-k8s.io/"):
                continue  # kind's own cluster config, not a Kubernetes API object
            validate(doc)
            checked += 1
    assert checked == 5  # Namespace, PVC, ServiceAccount, Role, RoleBinding


def test_the_schema_check_catches_a_malformed_pod() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
           "spec": {"containers": [{"name": "c", "image": "i", "args": "not-a-list"}]}}
    with pytest.raises(AssertionError, match="schema"):
        validate(pod)
    pod["spec"]["containers"][0]["args"] = ["ok"]
    pod["spec"]["containers"][0]["resource"] = {}  # typo: strict rejects unknown fields
    with pytest.raises(AssertionError, match="schema"):
        validate(pod)


# -- refused at load time ------------------------------------------------------------------------

BAD = [
    ("cluster.resources.cpu=two", "cluster.resources.cpu", "'500m'"),
    ("cluster.resources.memory=2GB", "cluster.resources.memory", "'2Gi'"),
    ("cluster.step_resources={train_model: {memory: -1Gi}}",
     "cluster.step_resources.train_model.memory", "'2Gi'"),
    ("cluster.resources.cpu=1.5 cores", "cluster.resources.cpu", "'500m'"),
    # valid for Kubernetes, refused by kfp's set_memory_limit: refused for every orchestrator
    ("cluster.resources.memory=1.5Gi", "cluster.resources.memory", "'2Gi'"),
    ("cluster.resources.memory=1e9", "cluster.resources.memory", "'2Gi'"),
    ("cluster.namespace=ML_Team", "cluster.namespace", "'ml-team'"),
    ("cluster.namespace=" + "a" * 64, "cluster.namespace", "'ml-team'"),
    ("cluster.image=Registry/MLPipe:latest", "cluster.image", "registry.example"),
    ("cluster.image=mlpipe:la test", "cluster.image", "registry.example"),
    ("cluster.secrets=[{env: WANDB_API_KEY, secret: W&B, key: api-key}]",
     "cluster.secrets.0.secret", "'tracker-keys'"),
    ("cluster.secrets=[{env: 1KEY, secret: wandb, key: api-key}]", "cluster.secrets.0.env", ""),
    ("cluster.env={my-var: x}", "cluster.env", "'HF_HUB_OFFLINE'"),
    ("cluster.volume_claim=Data_PVC", "cluster.volume_claim", "'mlpipe-data'"),
    ("cluster.service_account=runner!", "cluster.service_account", "'mlpipe-data'"),
]


@pytest.mark.parametrize(("setting", "field", "example"), BAD, ids=[b[0] for b in BAD])
def test_bad_kubernetes_values_are_refused_at_load_time(
    setting: str, field: str, example: str,
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(TINY_TRAINING, [setting])
    assert f"{field}:" in str(info.value)
    assert example in str(info.value)


GOOD = ["cluster.resources.cpu=250m", "cluster.resources.cpu='0.5'", "cluster.resources.cpu='2'",
        "cluster.resources.memory=512Mi", "cluster.resources.memory=1G",
        "cluster.resources.memory=1000M", "cluster.resources.memory=null",
        "cluster.image=localhost/mlpipe:3ef3f04853ca", "cluster.image=mlpipe",
        "cluster.image=registry.example:5000/team/ml-pipe_x:v1.2-rc.1",
        "cluster.image=ghcr.io/o/mlpipe@sha256:" + "a" * 64,
        "cluster.namespace=ml-team", "cluster.volume_claim=data.v1"]


@pytest.mark.parametrize("setting", GOOD)
def test_valid_kubernetes_values_load(setting: str) -> None:
    load_config(TINY_TRAINING, [setting])


def test_cli_refuses_a_bad_quantity_with_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlpipe", "render", "airflow", "--pipeline", "training",
         "--config", str(KIND_DIR / "training.yaml"), "--set", "cluster.resources.cpu=two",
         "-o", str(tmp_path)],
        capture_output=True, text=True, env=venv_env(), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "cluster.resources.cpu" in proc.stderr and "'500m'" in proc.stderr
    assert not list(tmp_path.iterdir())
