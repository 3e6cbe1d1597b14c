"""POST /predict/image end to end: real uvicorn, real gRPC, the real model server."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from app.labels import load_labels
from app.prediction import normalised_entropy
from app.schemas import PredictionResponse
from tests.api_service.conftest import FIELD
from tests.support.paths import SEED_LABELS, leaf_photos

pytestmark = pytest.mark.slow
CODES = ["CBB", "CBSD", "CGM", "CMD", "Healthy"]


@pytest.mark.parametrize("photo", leaf_photos(), ids=lambda p: p.stem)
def test_leaf_photos_match_in_process_tensorflow(
        api: httpx.Client, photo: Path, reference_predictions: dict[str, np.ndarray]) -> None:
    reply = api.post("/predict/image", files={FIELD: (photo.name, photo.read_bytes(),
                                                      "image/jpeg")})
    assert reply.status_code == 200, reply.text
    body = PredictionResponse.model_validate(reply.json())
    reference = reference_predictions[photo.name]
    assert body.code == CODES[int(np.argmax(reference))]
    ours = np.array([next(p.probability for p in body.probabilities if p.code == code)
                     for code in CODES])
    assert np.abs(ours - reference).max() < 0.01  # the fidelity bound, end to end


def test_response_contract(api: httpx.Client, leaf_photo_paths: list[Path]) -> None:
    photo = leaf_photo_paths[0]
    reply = api.post("/predict/image", files={FIELD: (photo.name, photo.read_bytes())})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert set(body) == {"prediction", "code", "confidence", "low_confidence", "entropy",
                         "probabilities", "model", "request_id"}
    labels = {label.code: label.name for label in load_labels(SEED_LABELS)}
    assert body["prediction"] == labels[body["code"]]
    probabilities = body["probabilities"]
    assert sorted(p["code"] for p in probabilities) == sorted(labels)
    assert [p["probability"] for p in probabilities] == sorted(
        (p["probability"] for p in probabilities), reverse=True)
    assert all(p["name"] == labels[p["code"]] for p in probabilities)
    assert probabilities[0]["code"] == body["code"]
    assert body["confidence"] == probabilities[0]["probability"]
    assert body["low_confidence"] is (body["confidence"] < 0.5)
    assert body["entropy"] == pytest.approx(normalised_entropy(
        [p["probability"] for p in probabilities]), abs=1e-6)
    assert 0 < body["entropy"] < 1
    assert abs(sum(p["probability"] for p in probabilities) - 1) < 1e-4
    assert body["model"] == {"name": "saved_model", "version": 1}
    assert body["request_id"] == reply.headers["x-request-id"]


def test_versioned_path_is_the_same_endpoint(api: httpx.Client,
                                             leaf_photo_paths: list[Path]) -> None:
    data = leaf_photo_paths[1].read_bytes()
    old = api.post("/predict/image", files={FIELD: ("leaf.jpg", data)}).json()
    new = api.post("/v1/predict/image", files={FIELD: ("leaf.jpg", data)}).json()
    assert old["probabilities"] == new["probabilities"]


def test_request_id_is_taken_from_the_client_when_sane(api: httpx.Client,
                                                       leaf_photo_paths: list[Path]) -> None:
    data = leaf_photo_paths[0].read_bytes()
    reply = api.post("/predict/image", files={FIELD: ("a.jpg", data)},
                     headers={"X-Request-ID": "phone-42"})
    assert reply.headers["x-request-id"] == reply.json()["request_id"] == "phone-42"
    reply = api.post("/predict/image", files={FIELD: ("a.jpg", data)},
                     headers={"X-Request-ID": "<script>"})
    assert reply.headers["x-request-id"] == reply.json()["request_id"] != "<script>"
    # Errors carry it too.
    reply = api.post("/predict/image", files={FIELD: ("a.jpg", b"")},
                     headers={"X-Request-ID": "phone-43"})
    assert reply.headers["x-request-id"] == reply.json()["request_id"] == "phone-43"


def test_health_endpoints(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model": "saved_model", "available_versions": [1]}
