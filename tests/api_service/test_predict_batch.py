"""POST /v1/predict/images: several photos, one batched Predict, one result per file in order.

The API talks to the real model server through a recording gRPC proxy, so the tests see exactly
which Predict calls reached the model server and with which tensor shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tensorflow_serving.apis import predict_pb2

from tests.api_service.conftest import FIELD, PROBLEM_JSON, ApiServer, api_env, start_api
from tests.support.grpc_proxy import RecordingGrpcProxy
from tests.support.model_server import RunningModelServer
from tests.support.ports import free_port

pytestmark = pytest.mark.slow

BATCH = "/v1/predict/images"
PREDICT = "/Predict"
MAX_FILES = 4
MAX_BYTES = 450_000  # the three leaf photos (85-145 KB each) fit, with room for small files


@pytest.fixture(scope="module")
def proxy(seed_model_server: RunningModelServer) -> Iterator[RecordingGrpcProxy]:
    recorder = RecordingGrpcProxy(seed_model_server.grpc_target)
    yield recorder
    recorder.stop()


@pytest.fixture(scope="module")
def batch_api(proxy: RecordingGrpcProxy, logs_dir: Path) -> Iterator[ApiServer]:
    server = start_api(logs_dir, api_env(proxy.target, MAX_BATCH_FILES=MAX_FILES,
                                         MAX_BATCH_BYTES=MAX_BYTES), name="api-batch")
    yield server
    server.stop()


@pytest.fixture
def client(batch_api: ApiServer, proxy: RecordingGrpcProxy) -> Iterator[httpx.Client]:
    with batch_api.client() as http:
        http.get("/readyz")  # the signature is fetched and cached before the calls are counted
        proxy.clear()
        yield http


def files(*parts: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (name, data, "application/octet-stream")) for name, data in parts]


def batch_shapes(proxy: RecordingGrpcProxy) -> list[list[int]]:
    """The input tensor shape of every Predict call the model server received."""
    shapes = []
    for call in proxy.calls(PREDICT):
        request = predict_pb2.PredictRequest.FromString(call.request)
        (tensor,) = request.inputs.values()
        shapes.append([dim.size for dim in tensor.tensor_shape.dim])
    return shapes


def test_good_and_bad_photos_get_results_in_order_from_one_predict_call(
        client: httpx.Client, proxy: RecordingGrpcProxy, leaf_photo_paths: list[Path]) -> None:
    first, second, third = (path.read_bytes() for path in leaf_photo_paths)
    reply = client.post(BATCH, files=files(
        ("a.jpg", first), ("notes.txt", b"plot 7: leaves yellowing\n"),
        ("b.jpg", second), ("cut.jpg", third[: len(third) // 2]), ("empty.jpg", b"")),
        headers={"X-Request-ID": "survey-1"})
    assert reply.status_code == 413  # five files: over MAX_BATCH_FILES, nothing was predicted
    assert reply.json()["code"] == "too_many_images"
    assert proxy.calls(PREDICT) == []

    reply = client.post(BATCH, files=files(
        ("a.jpg", first), ("notes.txt", b"plot 7: leaves yellowing\n"),
        ("b.jpg", second), ("cut.jpg", third[: len(third) // 2])),
        headers={"X-Request-ID": "survey-1"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["request_id"] == reply.headers["x-request-id"] == "survey-1"
    results = body["results"]
    assert [(r["index"], r["filename"]) for r in results] == [
        (0, "a.jpg"), (1, "notes.txt"), (2, "b.jpg"), (3, "cut.jpg")]
    assert [("prediction" in r, "problem" in r) for r in results] == [
        (True, False), (False, True), (True, False), (False, True)]
    assert results[1]["problem"]["code"] == "unsupported_media_type"
    assert results[1]["problem"]["status"] == 415
    assert results[3]["problem"]["code"] == "truncated_image"
    assert results[3]["problem"]["request_id"] == "survey-1"
    assert results[0]["prediction"]["request_id"] == "survey-1"
    # The two usable photos went to the model server together: one call, batch of two.
    assert batch_shapes(proxy) == [[2, 150, 150, 3]]


def test_each_result_equals_the_single_endpoint_answer(
        client: httpx.Client, proxy: RecordingGrpcProxy, leaf_photo_paths: list[Path]) -> None:
    photos = [path.read_bytes() for path in leaf_photo_paths]
    reply = client.post(BATCH, files=files(*((f"{i}.jpg", data) for i, data in enumerate(photos))))
    assert reply.status_code == 200, reply.text
    assert batch_shapes(proxy) == [[3, 150, 150, 3]]
    for result, data in zip(reply.json()["results"], photos, strict=True):
        single = client.post("/v1/predict/image", files={FIELD: ("leaf.jpg", data)}).json()
        batched = result["prediction"]
        assert batched["code"] == single["code"]
        assert batched["entropy"] == pytest.approx(single["entropy"], abs=1e-6)
        assert [p["code"] for p in batched["probabilities"]] == \
            [p["code"] for p in single["probabilities"]]
        assert [p["probability"] for p in batched["probabilities"]] == pytest.approx(
            [p["probability"] for p in single["probabilities"]], abs=1e-6)
    assert len(proxy.calls(PREDICT)) == 1 + len(photos)  # the batch, then one call per photo


def test_a_batch_of_only_bad_files_is_answered_without_calling_the_model(
        client: httpx.Client, proxy: RecordingGrpcProxy) -> None:
    reply = client.post(BATCH, files=files(("x.gif", b"GIF89a..."), ("e.png", b"")))
    assert reply.status_code == 200
    assert [r["problem"]["code"] for r in reply.json()["results"]] == [
        "unsupported_media_type", "empty_image"]
    assert proxy.calls(PREDICT) == []


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"files": [("other", ("a.jpg", b"\xff\xd8\xff", "image/jpeg"))]}, 422, "unexpected_file"),
    ({"files": [("images", ("a.jpg", b"\xff\xd8\xff", "image/jpeg")),
                ("image_to_predict", ("b.jpg", b"\xff\xd8\xff", "image/jpeg"))]},
     422, "unexpected_file"),
    ({"data": {"images": "not a file"}, "files": [("note", ("n.txt", b"x", "text/plain"))]},
     422, "unexpected_file"),
    ({"data": {"images": "not a file"}}, 422, "not_multipart"),
    ({"files": {"images": ("big.jpg", b"\xff\xd8\xff" + b"\0" * MAX_BYTES)}}, 413,
     "body_too_large"),
    ({"files": files(*((f"{i}.png", b"x") for i in range(MAX_FILES + 1)))}, 413,
     "too_many_images"),
    ({"json": {"images": []}}, 422, "not_multipart"),
], ids=["wrong-field", "mixed-fields", "text-and-file", "urlencoded", "too-large", "too-many",
        "json"])
def test_whole_request_errors_are_problems(client: httpx.Client, proxy: RecordingGrpcProxy,
                                           kwargs: dict, status: int, code: str) -> None:
    reply = client.post(BATCH, **kwargs)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == PROBLEM_JSON
    assert reply.json()["code"] == code
    assert proxy.calls(PREDICT) == []


def test_no_file_at_all_is_a_missing_field(client: httpx.Client) -> None:
    reply = client.post(BATCH, files={"comment": (None, b"no photos today")})
    assert reply.status_code == 422
    assert reply.json()["code"] == "missing_field"
    assert "'images'" in reply.json()["detail"]


def test_the_batch_cap_does_not_change_the_single_endpoint(
        client: httpx.Client, leaf_photo_paths: list[Path]) -> None:
    """MAX_BATCH_BYTES is the batch path's own cap; /predict/image keeps MAX_UPLOAD_BYTES."""
    padded = leaf_photo_paths[0].read_bytes() + b"\0" * MAX_BYTES  # trailing bytes after EOI
    assert client.post("/predict/image", files={FIELD: ("a.jpg", padded)}).status_code == 200


def test_model_server_down_is_a_503_for_the_whole_request(
        logs_dir: Path, leaf_photo_paths: list[Path]) -> None:
    server = start_api(logs_dir, api_env(f"127.0.0.1:{free_port()}", RETRY_AFTER_SECONDS=9),
                       name="api-batch-down")
    try:
        with server.client() as http:
            reply = http.post(BATCH, files=files(("a.jpg", leaf_photo_paths[0].read_bytes()),
                                                 ("t.txt", b"text")))
    finally:
        server.stop()
    assert reply.status_code == 503
    assert reply.headers["content-type"] == PROBLEM_JSON
    assert reply.headers["retry-after"] == "9"
    assert reply.json()["code"] == "model_unavailable"


def test_openapi_documents_the_batch_endpoint(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"][BATCH]["post"]
    assert operation["description"] == \
        "Classify every photo in the multipart field `images`: one result per part, in order."
    body = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["images"]["type"] == "array"
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] == \
        "#/components/schemas/BatchPredictionResponse"
    assert {"too_many_images", "body_too_large", "model_unavailable"} <= set(
        operation["responses"]["413"]["content"][PROBLEM_JSON]["examples"]) | set(
        operation["responses"]["503"]["content"][PROBLEM_JSON]["examples"])
    item = spec["components"]["schemas"]["BatchPredictionResponse"]["properties"]["results"]
    assert {ref["$ref"] for ref in item["items"]["anyOf"]} == {
        "#/components/schemas/BatchPrediction", "#/components/schemas/BatchProblem"}
