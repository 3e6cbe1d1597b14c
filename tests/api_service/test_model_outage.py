"""Model server down -> 503 problem + Retry-After; back on the same port -> predictions resume."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.api_service.conftest import FIELD, PROBLEM_JSON, ApiServer, api_env, start_api
from tests.support.model_server import start_model_server
from tests.support.paths import SEED_MODEL_BASE_PATH, SEED_MODEL_NAME
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def model_port() -> int:
    return free_port()


@pytest.fixture
def outage_api(model_port: int, logs_dir: Path) -> Iterator[ApiServer]:
    """An API whose model server this test starts and stops itself."""
    server = start_api(logs_dir, api_env(f"127.0.0.1:{model_port}", RETRY_AFTER_SECONDS=7),
                       name="api-outage")
    yield server
    server.stop()


def predict(client: httpx.Client, photo: Path) -> httpx.Response:
    return client.post("/predict/image", files={FIELD: (photo.name, photo.read_bytes())})


def assert_unavailable(reply: httpx.Response) -> None:
    assert reply.status_code == 503, reply.text
    assert reply.headers["content-type"] == PROBLEM_JSON
    assert reply.headers["retry-after"] == "7"
    assert reply.json()["code"] == "model_unavailable"
    assert "127.0.0.1" not in reply.json()["detail"]  # no internals in the answer


def test_api_starts_before_the_model_server_and_recovers_after_outage(
        outage_api: ApiServer, model_port: int, logs_dir: Path,
        leaf_photo_paths: list[Path]) -> None:
    photo = leaf_photo_paths[0]
    with outage_api.client() as client:
        # The API came up although nothing listens on the model port yet.
        assert client.get("/healthz").status_code == 200
        assert_unavailable(client.get("/readyz"))
        assert_unavailable(predict(client, photo))

        with model_server_on(model_port, logs_dir):
            wait_for_ready(client)
            first = predict(client, photo)
            assert first.status_code == 200, first.text

        # Down: readiness and predictions fail fast with 503, liveness stays green.
        assert_unavailable(client.get("/readyz"))
        assert_unavailable(predict(client, photo))
        assert client.get("/healthz").status_code == 200

        # Back on the same port: the same API process (same channel) answers again.
        with model_server_on(model_port, logs_dir):
            wait_for_ready(client)
            again = predict(client, photo)
            assert again.status_code == 200, again.text
            assert again.json()["probabilities"] == first.json()["probabilities"]
    assert outage_api.process.alive()


@contextmanager
def model_server_on(port: int, logs_dir: Path) -> Iterator[None]:
    """The seed model served on `port` for the duration of the block."""
    server = start_model_server(SEED_MODEL_NAME, SEED_MODEL_BASE_PATH, logs_dir, grpc_port=port)
    try:
        yield
    finally:
        server.stop()


def wait_for_ready(client: httpx.Client, timeout: float = 30) -> None:
    """The channel reconnects on its own (reconnect backoff is capped at 2 s)."""
    wait_until(lambda: client.get("/readyz").status_code == 200, timeout,
               "API readiness after the model server came back")


def test_model_deadline_exceeded_is_504(seed_model_server, logs_dir: Path,
                                        leaf_photo_paths: list[Path]) -> None:
    server = start_api(logs_dir, api_env(seed_model_server, MODEL_DEADLINE_SECONDS=0.0001),
                       name="api-deadline")
    try:
        with server.client() as client:
            reply = predict(client, leaf_photo_paths[0])
            assert reply.status_code == 504, reply.text
            assert reply.headers["content-type"] == PROBLEM_JSON
            assert reply.json()["code"] == "model_timeout"
            assert client.get("/healthz").status_code == 200
    finally:
        server.stop()
