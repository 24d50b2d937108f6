"""podman's Docker-compatible API, classified as Docker's: a removed container is a 404."""

from __future__ import annotations

from typing import Any

import pytest


def not_found_as_docker_says_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the Docker SDK raise ``NotFound`` where podman answers 500 "no such container".

    kfp.local's DockerRunner starts each task's container with ``auto_remove`` and handles
    ``NotFound`` from its log stream and ``wait`` (the container already gone); podman removes
    a finished container at once and, for some of those requests, answers 500 rather than
    Docker's 404, so the SDK raised a bare ``APIError`` that failed the run (seen in CI).
    """
    import docker.api.client as client

    from docker import errors

    original = errors.create_api_error_from_http_exception

    def classify(e: Any) -> Any:
        response = e.response
        text = (getattr(response, "text", "") or "").lower()
        if response is not None and response.status_code == 500 and "no such container" in text:
            raise errors.NotFound(e, response=response, explanation=text.strip()) from e
        return original(e)

    monkeypatch.setattr(client, "create_api_error_from_http_exception", classify)
