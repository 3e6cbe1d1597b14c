"""POST /predict/image and /v1/predict/image in-process (httpx.ASGITransport), the model server
faked: the response contract, request ids, the tensor handed to the model, and each model-server
failure as its documented problem. End to end with the real model: ../test_predict.py."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from app.imaging import image_to_tensor
from app.labels import load_labels
from app.schemas import PredictionResponse
from app.tfserving.client import ModelFailed, ModelServerError, ModelTimeout, ModelUnavailable
from tests.api_service.conftest import FIELD, PROBLEM_JSON
from tests.support.fake_model_server import FakeModelServer
from tests.support.paths import SEED_LABELS, SEED_MODEL_NAME, leaf_photos
from tests.support.uploads import multipart

pytestmark = pytest.mark.anyio


def leaf() -> dict:
    photo = leaf_photos()[0]
    return {"files": {FIELD: (photo.name, photo.read_bytes(), "image/jpeg")}}


async def test_response_contract(app_client: httpx.AsyncClient,
                                 fake_model_server: FakeModelServer) -> None:
    fake_model_server.probabilities = (0.1, 0.2, 0.05, 0.6, 0.05)
    reply = await app_client.post("/predict/image", **leaf())
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    PredictionResponse.model_validate(body)
    assert set(body) == {"prediction", "code", "confidence", "low_confidence", "entropy",
                         "probabilities", "model", "request_id"}
    labels = {label.code: label.name for label in load_labels(SEED_LABELS)}
    assert (body["code"], body["prediction"]) == ("CMD", labels["CMD"])
    assert [(p["code"], p["name"]) for p in body["probabilities"]] == [
        (code, labels[code]) for code in ("CMD", "CBSD", "CBB", "CGM", "Healthy")]
    assert [p["probability"] for p in body["probabilities"]] == pytest.approx(
        [0.6, 0.2, 0.1, 0.05, 0.05])
    assert body["confidence"] == pytest.approx(0.6) and body["low_confidence"] is False
    # -(0.6 ln 0.6 + 0.2 ln 0.2 + 0.1 ln 0.1 + 2 * 0.05 ln 0.05) / ln 5
    assert body["entropy"] == pytest.approx(0.7196, abs=1e-4)
    assert body["model"] == {"name": SEED_MODEL_NAME, "version": 1, "label": None, "demo": None}
    assert body["request_id"] == reply.headers["x-request-id"]


async def test_low_confidence_is_flagged(app_client: httpx.AsyncClient,
                                         fake_model_server: FakeModelServer) -> None:
    fake_model_server.probabilities = (0.3, 0.25, 0.15, 0.2, 0.1)
    body = (await app_client.post("/predict/image", **leaf())).json()
    assert (body["code"], body["low_confidence"]) == ("CBB", True)


async def test_the_model_gets_the_photo_as_the_signature_asks(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer) -> None:
    request = leaf()
    await app_client.post("/predict/image", **request)
    (tensor,) = fake_model_server.received
    data = request["files"][FIELD][1]
    expected = image_to_tensor(data, height=150, width=150, max_pixels=40_000_000)
    assert tensor.shape == (1, 150, 150, 3) and tensor.dtype == np.float32
    np.testing.assert_array_equal(tensor, expected)


async def test_versioned_path_is_the_same_endpoint(app_client: httpx.AsyncClient,
                                                   fake_model_server: FakeModelServer) -> None:
    old = (await app_client.post("/predict/image", **leaf())).json()
    new = (await app_client.post("/v1/predict/image", **leaf())).json()
    assert len(fake_model_server.received) == 2
    assert old["probabilities"] == new["probabilities"] and old["code"] == new["code"]


async def test_request_id_is_taken_from_the_client_when_sane(
        app_client: httpx.AsyncClient) -> None:
    reply = await app_client.post("/predict/image", **leaf(), headers={"X-Request-ID": "phone-42"})
    assert reply.headers["x-request-id"] == reply.json()["request_id"] == "phone-42"
    reply = await app_client.post("/predict/image", **leaf(), headers={"X-Request-ID": "<script>"})
    assert reply.headers["x-request-id"] == reply.json()["request_id"] != "<script>"
    # Errors carry it too.
    reply = await app_client.post("/predict/image", files={FIELD: ("a.jpg", b"")},
                                  headers={"X-Request-ID": "phone-43"})
    assert reply.headers["x-request-id"] == reply.json()["request_id"] == "phone-43"


@pytest.mark.parametrize(("failure", "status", "code", "retry_after"), [
    (ModelUnavailable("UNAVAILABLE: connection refused"), 503, "model_unavailable", True),
    (ModelTimeout("DEADLINE_EXCEEDED: slow"), 504, "model_timeout", False),
    (ModelFailed("INTERNAL: boom"), 502, "model_error", False),
], ids=["unavailable", "timeout", "failed"])
async def test_model_server_failures_are_their_problems(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer,
        failure: ModelServerError, status: int, code: str, retry_after: bool) -> None:
    fake_model_server.failure = failure
    reply = await app_client.post("/predict/image", **leaf())
    assert (reply.status_code, reply.headers["content-type"]) == (status, PROBLEM_JSON)
    assert reply.json()["code"] == code
    assert ("retry-after" in reply.headers) is retry_after
    assert "boom" not in reply.text and "connection refused" not in reply.text
    fake_model_server.failure = None
    assert (await app_client.post("/predict/image", **leaf())).status_code == 200


@pytest.mark.parametrize("probabilities", [(0.5, 0.5, 0.0, 0.0), (0.2,) * 6],
                         ids=["4-classes", "6-classes"])
async def test_a_reply_that_does_not_fit_the_labels_is_a_misconfiguration(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer,
        probabilities: tuple[float, ...]) -> None:
    fake_model_server.num_classes = None  # the metadata does not tell; the reply does
    fake_model_server.probabilities = probabilities
    reply = await app_client.post("/predict/image", **leaf())
    assert (reply.status_code, reply.json()["code"]) == (503, "model_misconfigured")
    assert f"returned {len(probabilities)} values" in reply.json()["detail"]


async def test_a_non_finite_reply_is_a_model_error(app_client: httpx.AsyncClient,
                                                   fake_model_server: FakeModelServer) -> None:
    fake_model_server.probabilities = (float("nan"), 0.2, 0.2, 0.3, 0.3)
    reply = await app_client.post("/predict/image", **leaf())
    assert (reply.status_code, reply.json()["code"]) == (502, "model_error")


def batch(*parts: tuple[str, str | None, bytes]) -> dict:
    """Keyword arguments for a POST of these ('images' parts: filename None = a text part)."""
    body, content_type = multipart(*((name, filename, data) for name, filename, data in parts))
    return {"content": body, "headers": {"Content-Type": content_type}}


async def test_a_text_part_named_images_is_a_problem_in_its_place(
        app_client: httpx.AsyncClient) -> None:
    photo = leaf_photos()[0].read_bytes()
    reply = await app_client.post("/v1/predict/images", **batch(
        ("images", "a.jpg", photo), ("images", None, b"hello"), ("images", "b.jpg", photo)))
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert [result["index"] for result in results] == [0, 1, 2]
    assert "prediction" in results[0] and "prediction" in results[2]
    assert results[1]["filename"] is None
    assert (results[1]["problem"]["status"], results[1]["problem"]["code"]) == (
        422, "missing_field")
    assert "text field" in results[1]["problem"]["detail"]


# The budget fits one leaf photo's decode, and a part waits a millisecond for it: the second
# part of a pair cannot get it while the first decodes.
@pytest.mark.parametrize("app_settings", [{"DECODE_MEMORY_BYTES": 5_000_000,
                                           "DECODE_WAIT_SECONDS": 0.001, "DECODE_WORKERS": 2}])
async def test_a_part_that_waits_too_long_for_the_decode_budget_is_a_problem_in_its_place(
        app_client: httpx.AsyncClient) -> None:
    photo = leaf_photos()[0].read_bytes()
    reply = await app_client.post("/v1/predict/images", **batch(
        ("images", "a.jpg", photo), ("images", "b.jpg", photo)))
    assert reply.status_code == 200, reply.text
    first, second = reply.json()["results"]
    assert "prediction" in first
    assert (second["problem"]["status"], second["problem"]["code"]) == (503, "decoder_busy")
    assert second["filename"] == "b.jpg"
