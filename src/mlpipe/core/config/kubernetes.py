"""The ``cluster`` section: Kubernetes' own syntax checked when the config loads (quantities,
DNS names, env names, images), and no credential ever written as a plain env value."""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from mlpipe.core.config.base import StrictModel

# Kubernetes' syntax for what ends up in pod specs, so a typo fails at load time (exit 2), not when
# the API server rejects the pod: resource quantities (what both Kubernetes and kfp's
# set_cpu/memory_* accept: kfp takes no fractional memory, no exponent, no decimal "k"), DNS-1123
# labels (namespaces) and subdomains (object names), env var names and image references.
_QUANTITIES = {
    "cpu": (re.compile(r"^([0-9]*\.)?[0-9]+m?$"), "'500m', '0.5' or '2'"),
    "memory": (re.compile(r"^[0-9]+([KMGTPE]i|[MGTPE])?$"), "'512Mi' or '2Gi'"),
}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IMAGE = re.compile(
    r"^((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


def _k8s_syntax(value: str, pattern: re.Pattern[str], what: str, example: str) -> str:
    if not pattern.match(value):
        raise ValueError(f"{value!r} is not {what}, e.g. {example}")
    return value


def _syntax(pattern: re.Pattern[str], what: str, example: str) -> AfterValidator:
    """A string field Kubernetes takes only in ``pattern``'s syntax, checked at load time."""
    return AfterValidator(lambda value: _k8s_syntax(value, pattern, what, example))


Namespace = Annotated[str, _syntax(_DNS_LABEL, "a namespace (DNS-1123 label)", "'ml-team'")]
ObjectName = Annotated[
    str, _syntax(_DNS_SUBDOMAIN, "a Kubernetes name (DNS-1123)", "'mlpipe-data'")]
SecretName = Annotated[
    str, _syntax(_DNS_SUBDOMAIN, "a Secret name (DNS-1123)", "'tracker-keys'")]
Image = Annotated[
    str, _syntax(_IMAGE, "an image reference", "'registry.example/ml/mlpipe:1.2'")]


class ResourcesConfig(StrictModel):
    """Kubernetes requests/limits for one step's pod."""

    cpu: str | None = "1"
    memory: str | None = "2Gi"
    gpu: Annotated[int, Field(ge=0)] = 0
    gpu_resource: str = "nvidia.com/gpu"

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        pattern, example = _QUANTITIES[str(info.field_name)]
        return _k8s_syntax(value, pattern, f"a Kubernetes {info.field_name} quantity", example)


class SecretEnvConfig(StrictModel):
    """An environment variable filled from a Kubernetes Secret (never an inline value)."""

    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    secret: SecretName
    key: str


# Words that mark an env name as a credential (TOKENIZERS_PARALLELISM is not one): a name part
# equal to one of these, or ending with one (APITOKEN, DBPASS), or starting with one of the
# prefixes (PASSWD, AUTHORIZATION, CREDS).
_SECRET_WORDS = {
    "KEY",
    "KEYS",
    "APIKEY",
    "TOKEN",
    "TOKENS",
    "SECRET",
    "SECRETS",
    "PASS",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "PWD",
    "PIN",
    "AUTH",
    "CRED",
    "CREDS",
    "CREDENTIAL",
    "CREDENTIALS",
    "PRIVATE",
    "SESSION",
    "COOKIE",
    "SIGNATURE",
    "CERT",
    "DSN",
}
_SECRET_SUFFIXES = ("KEY", "TOKEN", "SECRET", "PASS", "PASSWORD", "PASSWD", "PWD", "AUTH")
_SECRET_PREFIXES = ("PASS", "AUTH", "CRED", "SECRET", "APIKEY", "PRIVATE")


_URL_CREDENTIALS = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def looks_secret(env_name: str) -> bool:
    """Whether an environment variable's name says it holds a credential."""
    parts = [p for p in re.split(r"[^A-Z0-9]+", env_name.upper()) if p]
    return any(
        p in _SECRET_WORDS or p.endswith(_SECRET_SUFFIXES) or p.startswith(_SECRET_PREFIXES)
        for p in parts
    )


class ClusterConfig(StrictModel):
    """Cluster mode: every step runs as ``mlpipe step`` in one image, as a Kubernetes pod."""

    image: Image = "mlpipe:latest"
    inference_image: Image | None = Field(
        None,
        description="the slim image (docker/Dockerfile.inference, no torch) run_inference runs "
        "in when inference.backend is onnx; unset, every step uses image",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    namespace: Namespace = "mlpipe"
    service_account: ObjectName | None = None
    resources: ResourcesConfig = ResourcesConfig()
    step_resources: dict[str, ResourcesConfig] = Field(
        default_factory=dict, description="per-step overrides, e.g. train_model: {gpu: 1}"
    )
    volume_claim: ObjectName | None = Field(
        "mlpipe-data", description="PVC shared by all step pods"
    )
    mount_path: str = "/data"
    home: str = Field("/data/mlpipe", description="MLPIPE_HOME inside the pods")
    storage_uri: str | None = Field(
        None, description="object storage (s3://, gs://) synced before and after each step"
    )
    secrets: list[SecretEnvConfig] = Field(
        default_factory=list,
        description="env vars from Kubernetes Secrets; the chosen tracker and registry add the "
        "ones they declare (pod_secrets) for env names not listed here",
    )
    env: dict[str, str] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            _k8s_syntax(name, _ENV_NAME, "an env var name", "'HF_HUB_OFFLINE'")
        return value

    @model_validator(mode="after")
    def _no_secrets_in_env(self) -> ClusterConfig:
        secretish = [k for k in self.env if looks_secret(k)]
        # whatever its name, a plain value equal to a declared secret's value here is a leak
        values = {os.environ.get(s.env) for s in self.secrets} - {None, ""}
        secretish += [k for k, v in self.env.items() if v in values and k not in secretish]
        secretish += [  # user:password@ in a URL (a proxy, a database DSN)
            k for k, v in self.env.items() if _URL_CREDENTIALS.search(v) and k not in secretish
        ]
        if secretish:
            raise ValueError(
                f"cluster.env: {', '.join(secretish)} look like secrets; plain env values are "
                "written into pod specs and compiled pipelines. Use cluster.secrets "
                "(env/secret/key: a Kubernetes Secret reference) instead"
            )
        return self

    def resources_for(self, step: str) -> ResourcesConfig:
        return self.step_resources.get(step, self.resources)
