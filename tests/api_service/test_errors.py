"""Every error is application/problem+json; unexpected failures say nothing about internals."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from tests.api_service.conftest import FIELD, PROBLEM_JSON, api_env, start_api
from tests.support.paths import SEED_LABELS


@pytest.mark.anyio
async def test_unknown_route_is_a_404_problem(app_client: httpx.AsyncClient) -> None:
    reply = await app_client.get("/no/such/thing")
    assert (reply.status_code, reply.headers["content-type"]) == (404, PROBLEM_JSON)
    assert reply.json()["code"] == "not_found"
    assert reply.json()["request_id"] == reply.headers["x-request-id"]


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "/predict/image", "POST"), ("PUT", "/v1/predict/image", "POST"),
    ("POST", "/healthz", "GET"), ("DELETE", "/readyz", "GET")])
async def test_wrong_method_is_a_405_problem_with_allow(app_client: httpx.AsyncClient,
                                                        method: str, path: str,
                                                        allowed: str) -> None:
    reply = await app_client.request(method, path)
    assert (reply.status_code, reply.headers["content-type"]) == (405, PROBLEM_JSON)
    assert reply.json()["code"] == "method_not_allowed"
    assert allowed in reply.headers["allow"].replace(" ", "").split(",")


SECRET = "s3cr3t-db-password-in-a-traceback"


@pytest.mark.anyio
async def test_unexpected_exception_is_a_500_problem_without_internals(
        caplog: pytest.LogCaptureFixture) -> None:
    """The catch-all, proven with a route that fails on purpose (no client input can)."""
    app = create_app(Settings(LABELS_PATH=SEED_LABELS))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET)

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR):
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            reply = await client.get("/boom", headers={"X-Request-ID": "trace-me"})
    assert (reply.status_code, reply.headers["content-type"]) == (500, PROBLEM_JSON)
    assert reply.json()["code"] == "internal_error"
    assert reply.json()["request_id"] == "trace-me"
    assert SECRET not in reply.text and "RuntimeError" not in reply.text
    assert SECRET in caplog.text  # ...but the operator's log has it


@pytest.mark.anyio
async def test_openapi_documents_the_field_and_every_error(app_client: httpx.AsyncClient) -> None:
    spec = (await app_client.get("/openapi.json")).json()
    for path in ("/predict/image", "/v1/predict/image"):
        operation = spec["paths"][path]["post"]
        form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert form["required"] == [FIELD]
        assert form["properties"][FIELD]["format"] == "binary"
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] \
            == "#/components/schemas/PredictionResponse"
        codes = {status: set(response["content"][PROBLEM_JSON]["examples"])
                 for status, response in operation["responses"].items() if status != "200"}
        assert codes == {
            "400": {"empty_image", "undecodable_image", "truncated_image"},
            "413": {"body_too_large", "image_too_large", "image_too_costly"},
            "415": {"unsupported_media_type"},
            "422": {"missing_field", "too_many_files", "not_multipart", "malformed_multipart",
                    "image_too_small", "blank_image"},
            "502": {"model_error"},
            "503": {"model_unavailable", "model_misconfigured", "decoder_busy"},
            "504": {"model_timeout"},
        }
    assert "Problem" in spec["components"]["schemas"]
    assert "/readyz" in spec["paths"] and "/healthz" in spec["paths"]
    assert (await app_client.get("/docs")).status_code == 200


@pytest.mark.slow
def test_labels_that_do_not_fit_the_model_make_it_unready(
        seed_model_server, logs_dir: Path, tmp_path: Path,
        leaf_photo_paths: list[Path]) -> None:
    four = tmp_path / "labels.json"
    four.write_text(json.dumps(json.loads(SEED_LABELS.read_text())[:4]))
    server = start_api(logs_dir, api_env(seed_model_server, LABELS_PATH=four), name="api-4labels")
    try:
        with server.client() as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["code"] == "model_misconfigured"
            photo = leaf_photo_paths[0]
            reply = client.post("/predict/image", files={FIELD: (photo.name, photo.read_bytes())})
            assert reply.status_code == 503 and reply.json()["code"] == "model_misconfigured"
            assert "4 classes" in reply.json()["detail"]
        assert "MISCONFIGURED" in server.process.log()  # said loudly at startup
    finally:
        server.stop()


@pytest.mark.slow
def test_unreadable_labels_stop_the_startup_with_a_clear_message(
        logs_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "labels.json"
    server = start_api(logs_dir, api_env("127.0.0.1:1", LABELS_PATH=missing), name="api-nolabels",
                       wait=False)
    try:
        server.process.proc.wait(60)
        assert server.process.proc.returncode != 0
        assert f"cannot read labels file {missing}" in server.process.log()
    finally:
        server.stop()
