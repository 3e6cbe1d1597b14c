"""A new model version with other signature keys (the demo's `image` -> `probabilities`, then the
article's `conv2d_4_input` -> `dense_3`, as scripts/get-model installs it) answers the very first
request after the switch: the API refreshes the signature and retries once, no 502. The same for
the batch endpoint's first request (PredictionService.predict_many)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import pytest

from tests.api_service.conftest import FIELD, api_env, start_api
from tests.support.model_server import start_model_server
from tests.support.paths import DEMO_MODEL_NAME, MODEL_REPOSITORY, SEED_MODEL_BASE_PATH
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def post_one_photo(client: httpx.Client, photo: bytes) -> dict:
    reply = client.post("/v1/predict/image", files={FIELD: ("leaf.jpg", photo)})
    assert reply.status_code == 200, reply.text
    return reply.json()


def post_a_batch(client: httpx.Client, photo: bytes) -> dict:
    reply = client.post("/v1/predict/images", files=[("images", ("a.jpg", photo)),
                                                      ("images", ("b.jpg", photo))])
    assert reply.status_code == 200, reply.text
    predictions = [result["prediction"] for result in reply.json()["results"]]
    assert len(predictions) == 2
    return predictions[0]


@pytest.mark.parametrize("post", [post_one_photo, post_a_batch], ids=["single", "batch"])
def test_the_first_request_after_a_signature_change_is_answered(
        post: Callable[[httpx.Client, bytes], dict], tmp_path: Path, logs_dir: Path,
        leaf_photo_paths: list[Path]) -> None:
    model_dir = tmp_path / DEMO_MODEL_NAME
    shutil.copytree(MODEL_REPOSITORY / DEMO_MODEL_NAME / "1", model_dir / "1")
    server = start_model_server(DEMO_MODEL_NAME, model_dir, logs_dir)
    api = start_api(logs_dir, api_env(server, MODEL_NAME=DEMO_MODEL_NAME,
                                      LABELS_PATH=MODEL_REPOSITORY / DEMO_MODEL_NAME
                                      / "labels.json"), name="api-switch")
    photo = leaf_photo_paths[0].read_bytes()

    def available(version: int) -> bool:
        try:
            return server.model_available(version)
        except grpc.RpcError:  # NOT_FOUND: not loaded (yet, or any more)
            return False
    try:
        with api.client() as client:
            def predict() -> dict:
                return post(client, photo)

            assert predict()["model"]["version"] == 1
            shutil.copytree(SEED_MODEL_BASE_PATH / "1", model_dir / ".staging-2")
            os.rename(model_dir / ".staging-2", model_dir / "2")
            wait_until(lambda: available(2) and not available(1), 90,
                       "version 2 alone served")
            assert predict()["model"]["version"] == 2
            assert client.get("/v1/model").json()["version"] == 2
    finally:
        api.stop()
        server.stop()
