"""The model server's metrics endpoint, TF Serving's way: only with --monitoring_config_file, on
the REST port, its request counter equal to the Predict calls made; the request id the caller
sends as gRPC metadata in its JSON log lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.model_service.clients import GREY_IMAGE, predict_request
from tests.support.model_server import RunningModelServer, start_model_server
from tests.support.paths import SEED_MODEL_BASE_PATH, SEED_MODEL_NAME
from tests.support.prometheus import parse_samples, value

pytestmark = pytest.mark.slow

METRICS_PATH = "/monitoring/prometheus/metrics"
CONFIG = f'prometheus_config {{\n  enable: true,\n  path: "{METRICS_PATH}"\n}}\n'


@pytest.fixture(scope="module")
def monitored_server(logs_dir: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[RunningModelServer]:
    config = tmp_path_factory.mktemp("monitoring") / "monitoring.config"
    config.write_text(CONFIG)
    server = start_model_server(SEED_MODEL_NAME, SEED_MODEL_BASE_PATH, logs_dir,
                                f"--monitoring_config_file={config}",
                                env={"LOG_FORMAT": "json"})
    yield server
    server.stop()


def scrape(server: RunningModelServer) -> str:
    reply = httpx.get(server.rest_url + METRICS_PATH, timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return reply.text


def test_request_count_matches_the_predict_calls(monitored_server: RunningModelServer) -> None:
    page = scrape(monitored_server)
    # Loaded once, successfully, from the version directory (TF's loader metric).
    version_dir = str(SEED_MODEL_BASE_PATH / "1")
    assert value(parse_samples(page), ":tensorflow:cc:saved_model:load_attempt_count",
                 model_path=version_dir, status="success") == 1
    with grpc.insecure_channel(monitored_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(5):
            stub.Predict(predict_request(GREY_IMAGE), timeout=30)
        with pytest.raises(grpc.RpcError):
            stub.Predict(predict_request(GREY_IMAGE, model="absent"), timeout=30)
    samples = parse_samples(scrape(monitored_server))
    count = ":tensorflow:serving:request_count"
    assert value(samples, count, model_name=SEED_MODEL_NAME, status="OK") == 5
    assert value(samples, count, model_name="absent", status="NOT_FOUND") == 1
    assert value(samples, ":tensorflow:serving:request_latency_count", model_name=SEED_MODEL_NAME,
                 API="Predict", entrypoint="GRPC") == 5


def test_the_request_id_is_in_the_json_log(monitored_server: RunningModelServer) -> None:
    with grpc.insecure_channel(monitored_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stub.Predict(predict_request(GREY_IMAGE), timeout=30,
                     metadata=(("x-request-id", "trace-me-42"),))
    records = [json.loads(line) for line in monitored_server.process.log().splitlines()
               if line.startswith("{")]
    (call,) = [r for r in records if r.get("request_id") == "trace-me-42"]
    assert call["model_name"] == SEED_MODEL_NAME and call["model_version"] == 1
    assert call["status"] == "OK" and call["duration_ms"] > 0
    assert {"timestamp", "level", "logger", "message"} <= call.keys()


def test_no_endpoint_without_the_flag(seed_model_server: RunningModelServer) -> None:
    reply = httpx.get(seed_model_server.rest_url + METRICS_PATH, timeout=10)
    assert reply.status_code == 404
