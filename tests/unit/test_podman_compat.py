"""tests/support/podman.py: podman's 500 "no such container" reaches kfp.local as Docker's 404
(``NotFound``, which kfp.local handles for an auto-removed container); other errors unchanged."""

from __future__ import annotations

import json

import pytest

from tests.support.podman import not_found_as_docker_says_it

docker = pytest.importorskip("docker")
requests = pytest.importorskip("requests")


def _http_error(status: int, message: str) -> object:
    response = requests.models.Response()
    response.status_code = status
    response._content = json.dumps({"cause": message, "message": message,
                                    "response": status}).encode()
    return requests.exceptions.HTTPError(response=response)


def test_podmans_no_such_container_is_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    from docker.api import client

    gone = _http_error(500, 'no container with name or ID "abc" found: no such container')
    with pytest.raises(docker.errors.APIError) as before:
        client.create_api_error_from_http_exception(gone)
    assert not isinstance(before.value, docker.errors.NotFound)  # what kfp.local did not catch
    not_found_as_docker_says_it(monkeypatch)
    with pytest.raises(docker.errors.NotFound):
        client.create_api_error_from_http_exception(gone)
    with pytest.raises(docker.errors.APIError) as other:
        client.create_api_error_from_http_exception(_http_error(500, "disk full"))
    assert not isinstance(other.value, docker.errors.NotFound)
