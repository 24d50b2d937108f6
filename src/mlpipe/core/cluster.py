"""The pod for one step, described once: every cluster mode translates this, nothing else.

In cluster mode (``runtime.mode: kubernetes``) each step runs as ``mlpipe step NAME ...`` in the
``cluster.image`` container. :func:`step_container` turns a pipeline, a step and a config into a
:class:`ContainerSpec`: image, command and args, plain env, env from Secrets (references only,
never values), resources, volumes, node selector, service account and namespace. The Airflow,
Kubeflow and Dagster adapters only translate it (a pod template for KubernetesPodOperator, a
kfp container component plus kfp-kubernetes calls, a pod body for dagster-k8s Pipes).

A map step (``Step.map_over``) is three kinds of pod (``part``): ``plan`` lists the shards the
upstream made (``mlpipe step NAME --plan``), ``shard`` runs one shard with the step's resources
(``--shard I``; one pod per shard, fanned out by the orchestrator over the plan at run time) and
``gather`` records the step from its shards (``--gather``); plan and gather are light and get
``cluster.resources``.

Pure data: no kubernetes or orchestrator import. The run id is whatever string the orchestrator
substitutes at run time (a Jinja template, a kfp placeholder...); ``mlpipe step`` makes it safe.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any

from mlpipe.core import plugins
from mlpipe.core.config import (
    BACKEND_SECTIONS,
    PipelineSettings,
    SecretEnvConfig,
    looks_secret,
)
from mlpipe.core.errors import ConfigError
from mlpipe.core.pipeline import Pipeline, portable_ref

#: The image's non-root user (docker/Dockerfile): pods run as it, volumes are group-writable by it.
IMAGE_UID = 10001
#: Name of the volume that holds the mlpipe home in every step pod.
DATA_VOLUME = "mlpipe-data"
CONTAINER_NAME = "mlpipe"
#: The pods of a map step, in order; ``step`` is the one pod of any other step.
MAP_PARTS = ("plan", "shard", "gather")
#: How many shard pods ``mlpipe render`` shows for a map step whose config fixes no count
#: (the real count is the plan's, at run time).
RENDER_SHARDS = 2


@dataclass(frozen=True)
class SecretRef:
    """An env var filled by Kubernetes from ``secret``/``key`` when the pod starts."""

    env: str
    secret: str
    key: str


@dataclass(frozen=True)
class Volume:
    """A volume mounted at ``mount_path``: a PVC (``claim``) or, without one, an emptyDir."""

    name: str
    mount_path: str
    claim: str | None = None

    @property
    def empty_dir(self) -> bool:
        return self.claim is None


#: What ``TaskSpec.container`` leaves in a pod's arguments for ``ContainerSpec.filled``.
RUN_ID_SLOT = "<<run_id>>"
SHARD_SLOT = "<<shard>>"


@dataclass(frozen=True)
class ContainerSpec:
    """Everything about the pod that runs one step, in orchestrator-neutral terms."""

    pipeline: str
    step: str
    name: str  # DNS-1123 friendly: train-model
    image: str
    image_pull_policy: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: dict[str, str]
    secret_env: tuple[SecretRef, ...]
    requests: dict[str, str]
    limits: dict[str, str]
    gpu: int
    gpu_resource: str
    volumes: tuple[Volume, ...]
    node_selector: dict[str, str]
    service_account: str | None
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    run_as_user: int = IMAGE_UID
    timeout_s: int = 3600
    retries: int = 0
    retry_delay_s: float = 10.0

    def filled(self, *, run_id: str | None = None, shard: int | str | None = None
               ) -> ContainerSpec:
        """This spec with the run id and shard slots ``TaskSpec.container`` leaves filled in
        (an orchestrator's template, a Kubernetes ``$(VAR)``, or the values themselves)."""
        def fill(text: str) -> str:
            if run_id is not None:
                text = text.replace(RUN_ID_SLOT, run_id)
            return text.replace(SHARD_SLOT, str(shard)) if shard is not None else text

        labels = {k: fill(v) for k, v in self.labels.items()}
        name = self.name
        if isinstance(shard, int):
            labels["mlpipe/shard"] = str(shard)
            name = f"{name}-{shard:04d}"
        return dataclasses.replace(self, args=tuple(fill(a) for a in self.args), name=name,
                                   labels=labels)

    @property
    def config_json(self) -> str:
        """The config JSON the step receives (the value after ``--config-json``)."""
        return self.args[self.args.index("--config-json") + 1]


def k8s_name(step: str) -> str:
    """``train_model`` -> ``train-model``: a valid pod/container/task name part."""
    return re.sub(r"[^a-z0-9-]+", "-", step.lower()).strip("-")


def check_cluster(config: PipelineSettings) -> None:
    """Reject cluster settings under which the steps' pods could not see each other's outputs."""
    cluster = config.cluster
    if cluster.volume_claim is None and cluster.storage_uri is None:
        raise ConfigError(
            "cluster: set cluster.volume_claim (a PVC all step pods mount) or cluster.storage_uri "
            "(s3://, gs://, file://): each step pod reads the earlier steps' outputs from one"
        )
    home = cluster.home.rstrip("/")
    mount = cluster.mount_path.rstrip("/")
    if cluster.volume_claim is not None and not (home == mount or home.startswith(mount + "/")):
        raise ConfigError(
            f"cluster.home: {cluster.home!r} must be under cluster.mount_path "
            f"{cluster.mount_path!r}, or the steps' outputs are not on the shared volume"
        )
    if not home.startswith("/"):
        raise ConfigError(f"cluster.home: must be an absolute path in the pod (got {home!r})")


def step_args(pipeline: str, step: str, config: PipelineSettings, run_id: str) -> tuple[str, ...]:
    """``mlpipe``'s arguments for one step; ``pipeline`` is a registered name or ``module:ATTR``.

    The config JSON holds no secret (only env refs do).
    """
    return (
        "step",
        step,
        "--pipeline",
        pipeline,
        "--run-id",
        run_id,
        "--config-json",
        config.model_dump_json(),
        "--home",
        config.cluster.home,
    )


#: shorter values are too common to tell apart from ordinary text
MIN_SECRET_LEN = 6


def pod_secrets(config: PipelineSettings) -> list[SecretEnvConfig]:
    """The env vars a pod fills from Kubernetes Secrets: ``cluster.secrets``, then each Secret
    the chosen tracker and registry declare (``pod_secrets``; W&B's API key) for an env name
    ``cluster.secrets`` does not list. Core names no backend: each says what it needs."""
    found = list(config.cluster.secrets)
    for section, kind in BACKEND_SECTIONS:
        backend = getattr(getattr(config, section, None), "backend", None)
        if not isinstance(backend, str):
            continue
        declared = getattr(plugins.load(kind, backend), "pod_secrets", ())
        found += [s for s in declared if s.env not in {f.env for f in found}]
    return found


def secret_values(config: PipelineSettings) -> dict[str, str]:
    """env name -> value, from this process's environment, of every declared secret
    (``pod_secrets``) and every variable whose name says it is a credential."""
    declared = {s.env for s in pod_secrets(config)}
    return {
        name: value
        for name, value in os.environ.items()
        if (name in declared or looks_secret(name)) and len(value) >= MIN_SECRET_LEN
    }


def check_no_secret_values(
    config: PipelineSettings, *, args: tuple[str, ...], env: dict[str, str]
) -> None:
    """Refuse to render a pod whose arguments or plain env contain a secret's value.

    Secrets reach pods only as Secret references; a value pasted into any config field (it
    travels in ``--config-json``) or into ``cluster.env`` would be written in plain text into
    pod specs and compiled pipelines, whatever the field is called. The value is never printed.
    """
    values = secret_values(config)
    if not values:
        return
    places = [("argument " + a.split("=", 1)[0][:40], a) for a in args]
    places += [(f"cluster.env.{k}", v) for k, v in env.items()]
    for where, text in places:
        for name, value in values.items():
            if value in text:
                field = where
                if text.startswith("{"):  # --config-json: name the config field
                    field = _config_field_with(config, value) or "the config (--config-json)"
                raise ConfigError(
                    f"{field}: holds the value of the secret {name}; secrets reach pods only "
                    "as Secret references (cluster.secrets: env/secret/key), never as values. "
                    "Remove it from the config"
                )


def _config_field_with(config: PipelineSettings, value: str) -> str | None:
    def walk(node: Any, path: str) -> str | None:
        if isinstance(node, dict):
            for k, v in node.items():
                found = walk(v, f"{path}.{k}" if path else str(k))
                if found:
                    return found
        elif isinstance(node, list):
            for i, v in enumerate(node):
                found = walk(v, f"{path}[{i}]")
                if found:
                    return found
        elif isinstance(node, str) and value in node:
            return path
        return None

    return walk(config.model_dump(mode="json"), "")


def part_args(part: str, shard: int | str | None = None, plan_out: str | None = None
              ) -> tuple[str, ...]:
    """What ``mlpipe step`` takes after the step's own arguments for one part of a map step;
    ``shard`` may be an orchestrator's placeholder, ``plan_out`` the file the plan goes to."""
    if part == "plan":
        return ("--plan", "--plan-out", plan_out) if plan_out else ("--plan",)
    if part == "shard":
        if shard is None:
            raise ValueError("a shard pod needs its shard (a number or a placeholder)")
        return ("--shard", str(shard))
    if part == "gather":
        return ("--gather",)
    if part == "step":
        return ()
    raise ValueError(f"part {part!r}: one of step, {', '.join(MAP_PARTS)}")


def rendered_shards(pipeline: Pipeline, step_name: str, config: PipelineSettings) -> int:
    """How many shard pods to render for a map step: a fixed ``shards`` count in one of the
    step's config sections (``inference.shards``), else :data:`RENDER_SHARDS`."""
    for section in pipeline.step(step_name).config_sections:
        shards = getattr(getattr(config, section, None), "shards", None)
        if isinstance(shards, int) and not isinstance(shards, bool):
            return shards
    return RENDER_SHARDS


def step_image(config: PipelineSettings, step_name: str) -> str:
    """``cluster.inference_image`` for ``run_inference`` with the onnx backend (it needs no
    torch), else ``cluster.image``."""
    cluster = config.cluster
    inference = getattr(config, "inference", None)
    if (
        cluster.inference_image
        and step_name == "run_inference"
        and getattr(inference, "backend", "torch") == "onnx"
    ):
        return cluster.inference_image
    return cluster.image


def step_container(
    pipeline: Pipeline,
    step_name: str,
    config: PipelineSettings,
    run_id: str,
    *,
    part: str = "step",
    shard: int | str | None = None,
    plan_out: str | None = None,
) -> ContainerSpec:
    """The pod that runs ``step_name`` of ``pipeline`` with ``config`` in the cluster image, or
    one ``part`` of a map step (:data:`MAP_PARTS`; see :func:`part_args`)."""
    pipeline.check_config(config)
    check_cluster(config)
    try:
        step = pipeline.step(step_name)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    if part != "step" and step.map_over is None:
        raise ConfigError(f"step '{step.name}' is not a map step: no {part!r} pod for it")
    cluster = config.cluster
    # the work (a step, or one shard of it) gets the step's resources; plan and gather the default
    res = cluster.resources_for(step.name) if part in ("step", "shard") else cluster.resources
    requests = {k: v for k, v in (("cpu", res.cpu), ("memory", res.memory)) if v}
    limits = dict(requests)
    if res.gpu:
        limits[res.gpu_resource] = str(res.gpu)
    env = {"MLPIPE_HOME": cluster.home, **cluster.env}
    secrets = pod_secrets(config)
    clash = {s.env for s in secrets} & set(env)
    if clash:
        raise ConfigError(
            f"cluster.env: {', '.join(sorted(clash))} also come from cluster.secrets (or a "
            "backend's pod_secrets); keep one"
        )
    args = step_args(portable_ref(pipeline), step.name, config, run_id)
    args += part_args(part, shard, plan_out)
    check_no_secret_values(config, args=args, env=env)
    if cluster.volume_claim is not None:
        volumes = (Volume(DATA_VOLUME, cluster.mount_path, cluster.volume_claim),)
    else:  # object storage carries the data; each pod's home is scratch space
        volumes = (Volume(DATA_VOLUME, cluster.mount_path, None),)
    labels = {
        "app.kubernetes.io/name": "mlpipe",
        "mlpipe/pipeline": pipeline.name,
        "mlpipe/step": k8s_name(step.name),
    }
    name = k8s_name(step.name)
    if part != "step":
        labels["mlpipe/part"] = part
        name += {"plan": "-shards", "shard": "-shard", "gather": ""}[part]
    if part == "shard" and isinstance(shard, int):
        labels["mlpipe/shard"] = str(shard)
        name += f"-{shard:04d}"
    return ContainerSpec(
        pipeline=pipeline.name,
        step=step.name,
        name=name,
        image=step_image(config, step.name),
        image_pull_policy=cluster.image_pull_policy,
        command=("mlpipe",),
        args=args,
        env=env,
        secret_env=tuple(SecretRef(s.env, s.secret, s.key) for s in secrets),
        requests=requests,
        limits=limits,
        gpu=res.gpu,
        gpu_resource=res.gpu_resource,
        volumes=volumes,
        node_selector=dict(cluster.node_selector),
        service_account=cluster.service_account,
        namespace=cluster.namespace,
        labels=labels,
        timeout_s=int(config.runtime.timeout_s),
        retries=config.runtime.retries,
        retry_delay_s=config.runtime.retry_delay_s,
    )


def pipeline_containers(
    pipeline: Pipeline, config: PipelineSettings, run_id: str
) -> list[ContainerSpec]:
    """One ContainerSpec per step, in pipeline order; a map step's is its gather pod."""
    return [step_container(pipeline, s.name, config, run_id,
                           part="gather" if s.map_over else "step") for s in pipeline.steps]


def pod_manifest(spec: ContainerSpec, pod_name: str | None = None) -> dict[str, Any]:
    """A plain Kubernetes Pod manifest (camelCase dict) for ``spec``.

    Adapters that take a raw pod spec use it as is (dagster-k8s Pipes; Airflow's
    KubernetesPodOperator as its pod template); kfp builds its objects from the same fields.
    """
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in spec.env.items()]
    env += [
        {"name": s.env, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}}
        for s in spec.secret_env
    ]
    volumes = [
        {"name": v.name, "emptyDir": {}}
        if v.empty_dir
        else {"name": v.name, "persistentVolumeClaim": {"claimName": v.claim}}
        for v in spec.volumes
    ]
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": list(spec.command),
        "args": list(spec.args),
        "env": env,
        "resources": {"requests": dict(spec.requests), "limits": dict(spec.limits)},
        "volumeMounts": [{"name": v.name, "mountPath": v.mount_path} for v in spec.volumes],
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": volumes,
        "securityContext": {
            "runAsUser": spec.run_as_user,
            "runAsGroup": spec.run_as_user,
            "fsGroup": spec.run_as_user,
            "runAsNonRoot": True,
        },
        "activeDeadlineSeconds": spec.timeout_s,
    }
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    metadata: dict[str, Any] = {"namespace": spec.namespace, "labels": dict(spec.labels)}
    if pod_name:
        metadata["name"] = pod_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}
