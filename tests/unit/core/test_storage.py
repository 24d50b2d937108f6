"""Pods without a shared volume move registry files through the store only when the registry
backend declares it (``sync_pull`` / ``sync_push``): core asks the backend, never names one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mlpipe.core import artifacts, plugins
from mlpipe.core.config import RegistryConfig, load_config
from mlpipe.core.pipelines import INFERENCE, TRAINING
from mlpipe.core.refs import ModelVersionRef
from mlpipe.core.storage import pull_for_step, push_for_step
from mlpipe.registries.local import LocalRegistry
from tests.support import TINY_INFERENCE, TINY_TRAINING


class ServerRegistry:
    """A backend whose versions live on its own server: it declares no sync."""

    config_type: ClassVar[type[RegistryConfig]] = RegistryConfig


@pytest.fixture
def server_backend() -> Iterator[str]:
    plugins.register("registry", "server", f"{__name__}:ServerRegistry")
    yield "server"
    plugins.unregister("registry", "server")


def _store(tmp_path: Path, config: Path, *sets: str) -> Any:
    uri = f"cluster.storage_uri=file://{tmp_path / 'bucket'}"
    return load_config(config, ["cluster.volume_claim=null", uri, *sets])


def _publish(home: Path, name: str) -> ModelVersionRef:
    model = home / "model"
    model.mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"w" * 64)
    artifacts.seal(model)
    return LocalRegistry(home / "registry").publish(model, name, ["staging"], {})


def test_the_local_registry_syncs_a_version_from_one_empty_home_to_another(
    tmp_path: Path,
) -> None:
    training = _store(tmp_path, TINY_TRAINING)
    name = training.registry.model_name
    ref = _publish(tmp_path / "pod-a", name)
    pushed = push_for_step(training, TRAINING, "upload_model", tmp_path / "pod-a", "r1", ref)
    assert pushed["pushed"] >= 3  # the file, its manifest, state.json
    inference = _store(tmp_path, TINY_INFERENCE, f"inference.model={name}:staging")
    pod_b = tmp_path / "pod-b"
    pulled = pull_for_step(inference, INFERENCE, "load_model", pod_b, "r2")
    assert pulled["pulled"] >= 3
    fetched = LocalRegistry(pod_b / "registry").fetch(f"{name}:staging")  # checksums verified
    assert (fetched.name, fetched.version) == (name, ref.version)
    # a step that does not read the registry pulls none of it
    pull_for_step(inference, INFERENCE, "split_inference_data", tmp_path / "pod-c", "r2")
    assert not (tmp_path / "pod-c" / "registry").exists()


def test_a_backend_that_declares_no_sync_moves_nothing_through_the_store(
    tmp_path: Path, server_backend: str,
) -> None:
    inference = _store(tmp_path, TINY_INFERENCE, f"registry.backend={server_backend}")
    assert pull_for_step(inference, INFERENCE, "load_model", tmp_path / "pod", "r1")["pulled"] == 0
    training = _store(tmp_path, TINY_TRAINING)
    for backend in (server_backend, "wandb-offline"):  # a ref's backend may be no plugin at all
        ref = _publish(tmp_path / backend, "m").model_copy(update={"backend": backend})
        out = push_for_step(training, TRAINING, "upload_model", tmp_path / backend, "r1", ref)
        assert out["pushed"] == 0
    assert not (tmp_path / "bucket" / "registry").exists()
