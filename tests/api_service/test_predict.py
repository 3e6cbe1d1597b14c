"""POST /predict/image end to end: real uvicorn, real gRPC, the real model server. The contract,
request ids, health and failures in-process with a fake model server: routers/."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from app.schemas import PredictionResponse
from tests.api_service.conftest import FIELD
from tests.support.paths import leaf_photos

pytestmark = pytest.mark.slow
CODES = ["CBB", "CBSD", "CGM", "CMD", "Healthy"]


@pytest.mark.parametrize("photo", leaf_photos(), ids=lambda p: p.stem)
def test_leaf_photos_match_in_process_tensorflow(
        api: httpx.Client, photo: Path, reference_predictions: dict[str, np.ndarray]) -> None:
    reply = api.post("/predict/image", files={FIELD: (photo.name, photo.read_bytes(),
                                                      "image/jpeg")})
    assert reply.status_code == 200, reply.text
    body = PredictionResponse.model_validate(reply.json())
    assert body.model.name == "saved_model" and body.model.version == 1
    assert body.request_id == reply.headers["x-request-id"]
    reference = reference_predictions[photo.name]
    assert body.code == CODES[int(np.argmax(reference))]
    ours = np.array([next(p.probability for p in body.probabilities if p.code == code)
                     for code in CODES])
    assert np.abs(ours - reference).max() < 0.01  # the fidelity bound, end to end
