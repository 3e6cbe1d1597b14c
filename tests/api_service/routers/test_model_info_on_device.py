"""The on-device artifact in-process (httpx.ASGITransport, the model server faked): `on_device` in
GET /v1/model exactly as the page and apps rely on it (docs/mobile.md), the file route with
immutable caching and its ETag, and every way the file can be missing or wrong: `on_device: null`
and a logged error, never a 5xx."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import httpx
import pytest

from tests.api_service.conftest import PROBLEM_JSON
from tests.support.fake_model_server import FakeModelServer
from tests.support.paths import MODEL_REPOSITORY

pytestmark = pytest.mark.anyio
DEMO_DIR = MODEL_REPOSITORY / "cassava"
ARTIFACT = Path("assets.extra") / "model.tflite"
DEMO_ARTIFACT = (DEMO_DIR / "1" / ARTIFACT).read_bytes()
DEMO_SHA256 = hashlib.sha256(DEMO_ARTIFACT).hexdigest()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """The demo's labels, card and artifact as versions 1 and 2 (2 without an artifact)."""
    shutil.copy(DEMO_DIR / "labels.json", tmp_path / "labels.json")
    card = json.loads((DEMO_DIR / "model.json").read_text())["versions"]["1"]
    without = {key: value for key, value in card.items() if key != "on_device"}
    (tmp_path / "model.json").write_text(json.dumps({"versions": {"1": card, "2": without}}))
    (tmp_path / "1" / "assets.extra").mkdir(parents=True)
    (tmp_path / "1" / ARTIFACT).write_bytes(DEMO_ARTIFACT)
    return tmp_path


@pytest.fixture
def app_settings(model_dir: Path) -> dict[str, object]:
    return {"LABELS_PATH": model_dir / "labels.json"}


def url(version: int = 1, sha256: str = DEMO_SHA256) -> str:
    return f"/v1/model/versions/{version}/on-device/{sha256}.tflite"


async def test_the_served_version_names_its_file(app_client: httpx.AsyncClient) -> None:
    body = (await app_client.get("/v1/model")).json()
    assert body["on_device"] == {
        "format": "tflite", "url": url(), "sha256": DEMO_SHA256, "bytes": len(DEMO_ARTIFACT),
        "quantization": "dynamic_range", "version": 1}


async def test_the_file_is_the_one_named_and_cached_forever(
        app_client: httpx.AsyncClient) -> None:
    reply = await app_client.get(url())
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/octet-stream"
    assert reply.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert reply.headers["etag"] == f'"{DEMO_SHA256}"'
    assert hashlib.sha256(reply.content).hexdigest() == DEMO_SHA256


async def test_a_client_holding_the_file_gets_304(app_client: httpx.AsyncClient) -> None:
    reply = await app_client.get(url(), headers={"If-None-Match": f'"other", "{DEMO_SHA256}"'})
    assert (reply.status_code, reply.content) == (304, b"")
    assert reply.headers["etag"] == f'"{DEMO_SHA256}"'
    assert (await app_client.get(url(), headers={"If-None-Match": '"other"'})).status_code == 200


@pytest.mark.parametrize("version, sha256, code", [
    (1, "0" * 64, "on_device_model_not_found"), (2, DEMO_SHA256, "on_device_model_not_found"),
    (7, DEMO_SHA256, "on_device_model_not_found"), (-1, DEMO_SHA256, "on_device_model_not_found"),
    (1, DEMO_SHA256.upper(), "on_device_model_not_found"),
    (1, "..%2F..%2Fmodel.json", "not_found")])  # a decoded slash matches no route
async def test_any_other_file_is_a_404_problem(app_client: httpx.AsyncClient, version: int,
                                               sha256: str, code: str) -> None:
    reply = await app_client.get(url(version, sha256))
    assert (reply.status_code, reply.headers["content-type"]) == (404, PROBLEM_JSON)
    assert reply.json()["code"] == code


async def test_a_version_without_one_says_null(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer) -> None:
    fake_model_server.available = [1, 2]
    body = (await app_client.get("/v1/model")).json()
    assert (body["version"], body["on_device"]) == (2, None)


@pytest.mark.parametrize("damage", ["altered", "truncated", "missing", "unreadable"])
async def test_a_damaged_file_is_null_and_logged(
        app_client: httpx.AsyncClient, model_dir: Path, caplog: pytest.LogCaptureFixture,
        damage: str) -> None:
    path = model_dir / "1" / ARTIFACT
    if damage == "altered":  # same size, one byte different: only the SHA-256 tells
        path.write_bytes(DEMO_ARTIFACT[:-1] + bytes([DEMO_ARTIFACT[-1] ^ 1]))
    elif damage == "truncated":
        path.write_bytes(DEMO_ARTIFACT[:1000])
    elif damage == "missing":
        path.unlink()
    else:
        path.unlink()
        path.mkdir()  # a directory where the file should be
    with caplog.at_level(logging.ERROR, logger="app.on_device"):
        reply = await app_client.get("/v1/model")
        file_reply = await app_client.get(url())
    assert reply.status_code == 200 and reply.json()["on_device"] is None
    assert reply.json()["card"]["name"]  # the card itself stays
    assert file_reply.status_code == 404
    assert any("on-device model" in record.getMessage() and record.levelno == logging.ERROR
               for record in caplog.records)


@pytest.mark.parametrize("entry", [
    {"sha256": "not hex"}, {"bytes": "big"}, {"format": "onnx"}, {"file": "../../model.json"}])
async def test_a_malformed_card_entry_is_null(app_client: httpx.AsyncClient, model_dir: Path,
                                              entry: dict) -> None:
    cards = json.loads((model_dir / "model.json").read_text())
    cards["versions"]["1"]["on_device"].update(entry)
    (model_dir / "model.json").write_text(json.dumps(cards))
    reply = await app_client.get("/v1/model")
    assert reply.status_code == 200
    assert reply.json()["on_device"] is None and reply.json()["card"]["name"]
    assert (await app_client.get(url())).status_code == 404


async def test_a_file_replaced_after_the_check_is_not_served(
        app_client: httpx.AsyncClient, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the check and the read another file takes its place: the bytes sent are hashed
    again, so a client never receives a file that is not the one its URL names."""
    import app.on_device

    real = app.on_device.find_artifact

    def then_replaced(*args: object):
        found = real(*args)
        (model_dir / "1" / ARTIFACT).write_bytes(DEMO_ARTIFACT[::-1])
        return found

    monkeypatch.setattr(app.on_device, "find_artifact", then_replaced)
    monkeypatch.setattr("app.routers.model_info.find_artifact", then_replaced)
    reply = await app_client.get(url())
    assert reply.status_code == 404


async def test_documented_in_openapi(app_client: httpx.AsyncClient) -> None:
    document = (await app_client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/model/versions/{version}/on-device/{sha256}.tflite"]["get"]
    assert operation["summary"] or operation["description"]
    assert "application/octet-stream" in operation["responses"]["200"]["content"]
    assert "404" in operation["responses"]
    # a version that is not a number: the app's problem document, not FastAPI's default schema
    assert list(operation["responses"]["422"]["content"]) == [PROBLEM_JSON]
    described = document["components"]["schemas"]["OnDeviceModel"]["properties"]
    assert set(described) == {"format", "url", "sha256", "bytes", "quantization", "version"}
