"""--grpc_server_core=grpcio: the same methods, statuses and replies on grpcio's server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import classification_pb2

from tests.model_service.clients import (
    GREY_IMAGE,
    error_of,
    predict,
    predict_request,
    status_request,
)
from tests.support.model_server import RunningModelServer, start_model_server
from tests.support.paths import SEED_MODEL_BASE_PATH, SEED_MODEL_NAME

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seed_model_server(logs_dir: Path) -> Iterator[RunningModelServer]:
    """Overrides the session's server for this module: conftest's stubs talk to this one."""
    server = start_model_server(SEED_MODEL_NAME, SEED_MODEL_BASE_PATH, logs_dir,
                                "--grpc_server_core=grpcio")
    yield server
    server.stop()


def test_grpcio_serves(seed_model_server):
    assert "(grpcio core)" in seed_model_server.process.log()


def test_predictions_equal_in_process_inference(prediction_stub, reference_predict):
    served = predict(prediction_stub, GREY_IMAGE)
    assert np.max(np.abs(served - reference_predict(GREY_IMAGE))) <= 1e-5


def test_errors_keep_their_status(prediction_stub, model_stub):
    error = error_of(prediction_stub.Predict, predict_request(GREY_IMAGE, model="no_such_model"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = SEED_MODEL_NAME
    assert error_of(prediction_stub.Classify, request).code() == grpc.StatusCode.UNIMPLEMENTED
    status = model_stub.GetModelStatus(status_request())
    assert [v.version for v in status.model_version_status] == [1]


def test_an_unknown_core_is_refused(logs_dir):
    server = start_model_server(SEED_MODEL_NAME, SEED_MODEL_BASE_PATH, logs_dir,
                                "--grpc_server_core=fast", wait=False)
    try:
        assert server.process.proc.wait(30) == 2
        assert "--grpc_server_core must be own or grpcio" in server.process.log()
    finally:
        server.stop()
