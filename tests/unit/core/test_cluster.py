"""A pod's Secret references come from ``cluster.secrets`` and from what the chosen tracker and
registry declare (``pod_secrets``): core names no backend."""

from mlpipe.core.cluster import pod_secrets, step_container
from mlpipe.core.config import load_config
from mlpipe.core.pipelines import TRAINING
from tests.support import TINY_TRAINING

KEY = ("WANDB_API_KEY", "wandb", "api-key")


def _refs(sets: list[str]) -> list[tuple[str, str, str]]:
    config = load_config(TINY_TRAINING, ["runtime.mode=kubernetes", *sets])
    declared = [(s.env, s.secret, s.key) for s in pod_secrets(config)]
    pod = step_container(TRAINING, "train_model", config, "RUN")
    assert [(s.env, s.secret, s.key) for s in pod.secret_env] == declared
    return declared


def test_a_pod_references_only_the_secrets_its_backends_declare() -> None:
    assert _refs([]) == []  # no W&B: no pod waits for a `wandb` Secret
    assert _refs(["tracking.backend=wandb"]) == [KEY]
    assert _refs(["registry.backend=wandb"]) == [KEY]
    assert _refs(["tracking.backend=wandb", "registry.backend=wandb"]) == [KEY]  # once
    own = "cluster.secrets=[{env: WANDB_API_KEY, secret: team-wandb, key: token}]"
    assert _refs(["tracking.backend=wandb", own]) == [("WANDB_API_KEY", "team-wandb", "token")]
    db = "cluster.secrets=[{env: DB_URL, secret: db, key: url}]"
    assert _refs(["tracking.backend=wandb", db]) == [("DB_URL", "db", "url"), KEY]
