"""The article's SavedModel served over real gRPC and HTTP, checked against in-process inference."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from tests.model_service.clients import (
    AVAILABLE,
    INPUT,
    OUTPUT,
    metadata_request,
    output_of,
    predict,
    predict_request,
    status_request,
)
from tests.support.paths import SEED_MODEL_NAME

pytestmark = pytest.mark.slow
TOLERANCE = 1e-5


def test_predictions_equal_in_process_inference(prediction_stub, leaf_inputs, reference_predict):
    for name, batch in leaf_inputs.items():
        served = predict(prediction_stub, batch)
        expected = reference_predict(batch)
        assert served.shape == (1, 5), name
        assert np.max(np.abs(served - expected)) <= TOLERANCE, name


def test_batch_of_all_photos_in_one_request(prediction_stub, leaf_inputs, reference_predict):
    batch = np.concatenate(list(leaf_inputs.values()))
    served = predict(prediction_stub, batch)
    assert served.shape == (len(leaf_inputs), 5)
    assert np.max(np.abs(served - reference_predict(batch))) <= TOLERANCE


def test_float_val_input_equals_tensor_content_input(prediction_stub, leaf_inputs):
    batch = next(iter(leaf_inputs.values()))
    packed = predict(prediction_stub, batch)
    typed = predict(prediction_stub, batch, as_float_val=True)
    np.testing.assert_array_equal(typed, packed)


def test_single_float_val_is_broadcast_like_tensorflow(prediction_stub, reference_predict):
    request = predict_request(np.zeros((1, 150, 150, 3), np.float32))
    tensor = request.inputs[INPUT]
    tensor.ClearField("tensor_content")
    tensor.float_val.append(0.5)  # one value fills the whole [1,150,150,3] tensor
    served = output_of(prediction_stub.Predict(request, timeout=30))
    expected = reference_predict(np.full((1, 150, 150, 3), 0.5, np.float32))
    assert np.max(np.abs(served - expected)) <= TOLERANCE


def test_reply_names_model_version_and_signature(prediction_stub, leaf_inputs):
    reply = prediction_stub.Predict(predict_request(next(iter(leaf_inputs.values()))), timeout=30)
    assert reply.model_spec.name == SEED_MODEL_NAME
    assert reply.model_spec.version.value == 1
    assert reply.model_spec.signature_name == "serving_default"
    assert list(reply.outputs) == [OUTPUT]
    # TF Serving's default reply: typed values (AsProtoField), which clients read as float_val.
    assert reply.outputs[OUTPUT].dtype == types_pb2.DT_FLOAT
    assert len(reply.outputs[OUTPUT].float_val) == 5


def test_default_signature_when_request_names_none(prediction_stub, leaf_inputs, reference_predict):
    batch = next(iter(leaf_inputs.values()))
    request = predict_request(batch)
    request.model_spec.ClearField("signature_name")
    reply = prediction_stub.Predict(request, timeout=30)
    assert reply.model_spec.signature_name == "serving_default"
    assert np.max(np.abs(output_of(reply) - reference_predict(batch))) <= TOLERANCE


def test_output_filter_is_honoured(prediction_stub, leaf_inputs):
    request = predict_request(next(iter(leaf_inputs.values())))
    request.output_filter.append(OUTPUT)
    assert list(prediction_stub.Predict(request, timeout=30).outputs) == [OUTPUT]


def test_metadata_reports_the_signature(prediction_stub):
    reply = prediction_stub.GetModelMetadata(metadata_request(), timeout=30)
    assert reply.model_spec.name == SEED_MODEL_NAME
    assert reply.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert reply.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    (name,) = signature.inputs
    assert name == INPUT
    assert signature.inputs[INPUT].dtype == types_pb2.DT_FLOAT
    assert [d.size for d in signature.inputs[INPUT].tensor_shape.dim] == [-1, 150, 150, 3]
    (name,) = signature.outputs
    assert name == OUTPUT
    assert [d.size for d in signature.outputs[OUTPUT].tensor_shape.dim] == [-1, 5]


def test_status_is_available(model_stub):
    for request in (status_request(), status_request(version=1)):
        reply = model_stub.GetModelStatus(request, timeout=30)
        (status,) = reply.model_version_status
        assert (status.version, status.state) == (1, AVAILABLE)
        assert status.status.error_code == 0
        assert status.status.error_message == ""


# -- REST ----------------------------------------------------------------------------------------
def rest(server, path: str) -> str:
    return f"{server.rest_url}/v1/models/{SEED_MODEL_NAME}{path}"


def test_rest_status(seed_model_server):
    for path in ("", "/versions/1"):
        reply = httpx.get(rest(seed_model_server, path), timeout=30)
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json"
        assert reply.json() == {"model_version_status": [{
            "version": "1", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]}


def test_rest_metadata(seed_model_server):
    reply = httpx.get(rest(seed_model_server, "/metadata"), timeout=30)
    assert reply.status_code == 200
    body = reply.json()
    assert body["model_spec"]["name"] == SEED_MODEL_NAME
    assert body["model_spec"]["version"] == "1"
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert list(signature["inputs"]) == [INPUT]
    assert signature["inputs"][INPUT]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in signature["inputs"][INPUT]["tensor_shape"]["dim"]] == [
        "-1", "150", "150", "3"]
    assert list(signature["outputs"]) == [OUTPUT]


@pytest.mark.parametrize("path", [":predict", "/versions/1:predict"])
def test_rest_predict_row_format(seed_model_server, leaf_inputs, reference_predict, path):
    batch = np.concatenate(list(leaf_inputs.values()))
    reply = httpx.post(rest(seed_model_server, path), timeout=30,
                       json={"instances": batch.tolist()})
    assert reply.status_code == 200, reply.text
    predictions = np.array(reply.json()["predictions"], np.float32)
    assert predictions.shape == (len(leaf_inputs), 5)
    assert np.max(np.abs(predictions - reference_predict(batch))) <= TOLERANCE


def test_rest_predict_named_instances(seed_model_server, leaf_inputs, reference_predict):
    batch = next(iter(leaf_inputs.values()))
    reply = httpx.post(rest(seed_model_server, ":predict"), timeout=30,
                       json={"signature_name": "serving_default",
                             "instances": [{INPUT: batch[0].tolist()}]})
    assert reply.status_code == 200, reply.text
    predictions = np.array(reply.json()["predictions"], np.float32)
    assert np.max(np.abs(predictions - reference_predict(batch))) <= TOLERANCE


@pytest.mark.parametrize("named", [False, True])
def test_rest_predict_columnar_format(seed_model_server, leaf_inputs, reference_predict, named):
    batch = np.concatenate(list(leaf_inputs.values()))
    inputs = {INPUT: batch.tolist()} if named else batch.tolist()
    reply = httpx.post(rest(seed_model_server, ":predict"), json={"inputs": inputs}, timeout=30)
    assert reply.status_code == 200, reply.text
    outputs = np.array(reply.json()["outputs"], np.float32)
    assert np.max(np.abs(outputs - reference_predict(batch))) <= TOLERANCE
