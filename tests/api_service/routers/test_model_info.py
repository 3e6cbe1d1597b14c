"""GET /v1/model in-process (httpx.ASGITransport), the model server faked: the served version,
the labels and that version's card from model.json beside LABELS_PATH; 503 problems when no
version is served; documented in OpenAPI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from app.tfserving.client import ModelFailed, ModelUnavailable
from tests.api_service.conftest import PROBLEM_JSON
from tests.support.fake_model_server import FakeModelServer
from tests.support.paths import MODEL_REPOSITORY

pytestmark = pytest.mark.anyio
CODES = ["CBB", "CBSD", "CGM", "CMD", "Healthy"]
DEMO_DIR = MODEL_REPOSITORY / "cassava"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """labels.json and a model.json with the demo's card as version 1 and a real model's as 2."""
    shutil.copy(DEMO_DIR / "labels.json", tmp_path / "labels.json")
    demo = json.loads((DEMO_DIR / "model.json").read_text())["versions"]["1"]
    real = {**demo, "name": "real", "demo": False, "licence": "MIT"}
    (tmp_path / "model.json").write_text(json.dumps({"versions": {"1": demo, "2": real}}))
    return tmp_path


@pytest.fixture
def app_settings(model_dir: Path) -> dict[str, object]:
    return {"LABELS_PATH": model_dir / "labels.json"}


async def test_the_highest_available_version_and_its_card(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer) -> None:
    fake_model_server.available = [1, 2]
    body = (await app_client.get("/v1/model")).json()
    assert (body["version"], body["demo"], body["card"]["name"]) == (2, False, "real")
    assert [label["code"] for label in body["labels"]] == CODES


async def test_the_demo_is_described_as_a_demo(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer) -> None:
    reply = await app_client.get("/v1/model")
    assert reply.status_code == 200
    body = reply.json()
    assert (body["name"], body["version"], body["demo"]) == ("saved_model", 1, True)
    assert body["card"]["demo"] is True and "synthetic" in body["card"]["training_data"]
    assert body["card"]["metrics"][0] == {
        "name": "accuracy", "value": 0.984, "data": "500 synthetic validation images (leafsynth)",
        "source": "measured by scripts/train-demo-model", "quote": None}


@pytest.mark.parametrize("app_settings", [{"LABELS_PATH": DEMO_DIR / "labels.json",
                                           "MODEL_VERSION": 1}])
async def test_a_pinned_version_is_the_one_described(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer) -> None:
    fake_model_server.available = [1, 2]
    body = (await app_client.get("/v1/model")).json()
    assert (body["version"], body["demo"]) == (1, True)


async def test_a_card_written_while_running_is_read(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer,
        model_dir: Path) -> None:
    fake_model_server.available = [3]
    assert (await app_client.get("/v1/model")).json()["card"] is None
    cards = json.loads((model_dir / "model.json").read_text())
    cards["versions"]["3"] = cards["versions"]["2"]
    (model_dir / "model.json").write_text(json.dumps(cards))
    assert (await app_client.get("/v1/model")).json()["demo"] is False


@pytest.mark.parametrize("app_settings", [{}])  # the seed model's labels: no model.json beside
async def test_no_card_is_null(app_client: httpx.AsyncClient) -> None:
    body = (await app_client.get("/v1/model")).json()
    assert (body["version"], body["demo"], body["card"]) == (1, None, None)
    assert [label["code"] for label in body["labels"]] == CODES


@pytest.mark.parametrize("state", ["down", "no-version"])
async def test_no_served_version_is_a_503_problem(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer, state: str) -> None:
    if state == "down":
        fake_model_server.failure = ModelUnavailable("UNAVAILABLE: down")
    else:
        fake_model_server.available = []
    assert_unavailable(await app_client.get("/v1/model"))


@pytest.mark.parametrize("app_settings", [{"MODEL_VERSION": 1}])
async def test_a_pinned_version_that_is_not_loaded_is_a_503_problem(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer) -> None:
    fake_model_server.available = [2]
    assert_unavailable(await app_client.get("/v1/model"))


async def test_a_model_server_error_is_a_502_problem(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer) -> None:
    fake_model_server.failure = ModelFailed("INTERNAL: broken")
    reply = await app_client.get("/v1/model")
    assert (reply.status_code, reply.headers["content-type"]) == (502, PROBLEM_JSON)
    assert reply.json()["code"] == "model_error"


def assert_unavailable(reply: httpx.Response) -> None:
    assert (reply.status_code, reply.headers["content-type"]) == (503, PROBLEM_JSON)
    assert reply.json()["code"] == "model_unavailable"
    assert int(reply.headers["retry-after"]) > 0


async def test_documented_in_openapi(app_client: httpx.AsyncClient) -> None:
    operation = (await app_client.get("/openapi.json")).json()["paths"]["/v1/model"]["get"]
    assert operation["description"] == (
        "Describe the served model: version, labels, model card (is it a demo?), on-device file.")
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ModelDescription"}
    assert {"502", "503", "504"} <= set(operation["responses"])
