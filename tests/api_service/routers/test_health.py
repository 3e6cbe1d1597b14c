"""/healthz and /readyz in-process (httpx.ASGITransport), the model server faked."""

from __future__ import annotations

import httpx
import pytest

from app.tfserving.client import ModelUnavailable
from tests.api_service.conftest import PROBLEM_JSON
from tests.support.fake_model_server import FakeModelServer
from tests.support.paths import SEED_MODEL_NAME

pytestmark = pytest.mark.anyio


async def test_liveness_asks_nothing_of_the_model_server(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer) -> None:
    fake_model_server.failure = ModelUnavailable("UNAVAILABLE: down")
    reply = await app_client.get("/healthz")
    assert (reply.status_code, reply.json()) == (200, {"status": "ok"})


async def test_ready_when_a_version_is_available(app_client: httpx.AsyncClient,
                                                 fake_model_server: FakeModelServer) -> None:
    fake_model_server.available = [1, 2]
    reply = await app_client.get("/readyz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ready", "model": SEED_MODEL_NAME,
                            "available_versions": [1, 2]}


@pytest.mark.parametrize("state", ["down", "no-version", "wrong-class-count"])
async def test_not_ready_is_a_503_problem_with_retry_after(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer, state: str) -> None:
    if state == "down":
        fake_model_server.failure = ModelUnavailable("UNAVAILABLE: down")
    elif state == "no-version":
        fake_model_server.available = []
    else:
        fake_model_server.num_classes = 4
    reply = await app_client.get("/readyz")
    assert (reply.status_code, reply.headers["content-type"]) == (503, PROBLEM_JSON)
    code = "model_misconfigured" if state == "wrong-class-count" else "model_unavailable"
    assert reply.json()["code"] == code
    if code == "model_unavailable":
        assert int(reply.headers["retry-after"]) > 0
