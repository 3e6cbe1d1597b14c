"""GET /v1/model against real model servers: served version, labels, and the card (demo or not);
no card -> nulls; model server down -> 503 problem; documented in /docs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_service.conftest import PROBLEM_JSON, ApiServer, api_env, start_api
from tests.support.model_server import RunningModelServer
from tests.support.paths import DEMO_MODEL_NAME, MODEL_REPOSITORY
from tests.support.ports import free_port

pytestmark = pytest.mark.slow
CODES = ["CBB", "CBSD", "CGM", "CMD", "Healthy"]


@pytest.fixture(scope="module")
def demo_api(demo_model_server: RunningModelServer, logs_dir: Path) -> Iterator[ApiServer]:
    env = api_env(demo_model_server, MODEL_NAME=DEMO_MODEL_NAME,
                  LABELS_PATH=MODEL_REPOSITORY / DEMO_MODEL_NAME / "labels.json")
    server = start_api(logs_dir, env, name="api-demo")
    yield server
    server.stop()


def test_the_bundled_demo_is_described_as_a_demo(demo_api: ApiServer) -> None:
    with demo_api.client() as client:
        reply = client.get("/v1/model")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["name"], body["version"], body["demo"]) == ("cassava", 1, True)
    assert [label["code"] for label in body["labels"]] == CODES
    assert body["card"]["demo"] is True
    assert "synthetic" in body["card"]["training_data"]
    assert body["card"]["metrics"][0]["value"] == 0.984


def test_a_model_without_a_card_says_so(api: httpx.Client) -> None:
    """The article's SavedModel in ../shared has labels.json but no model.json."""
    body = api.get("/v1/model").json()
    assert (body["name"], body["version"], body["demo"], body["card"]) == (
        "saved_model", 1, None, None)
    assert [label["code"] for label in body["labels"]] == CODES


def test_model_server_down_is_a_503_problem(logs_dir: Path) -> None:
    server = start_api(logs_dir, api_env(f"127.0.0.1:{free_port()}", RETRY_AFTER_SECONDS=4,
                                         MODEL_DEADLINE_SECONDS=2), name="api-model-down")
    try:
        with server.client() as client:
            reply = client.get("/v1/model")
    finally:
        server.stop()
    assert reply.status_code == 503
    assert reply.headers["content-type"] == PROBLEM_JSON
    assert reply.json()["code"] == "model_unavailable"
    assert reply.headers["retry-after"] == "4"


def test_documented_in_openapi(api: httpx.Client) -> None:
    operation = api.get("/openapi.json").json()["paths"]["/v1/model"]["get"]
    assert operation["description"].startswith("Describe the served model")
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ModelDescription"}
    assert {"503", "504"} <= set(operation["responses"])
