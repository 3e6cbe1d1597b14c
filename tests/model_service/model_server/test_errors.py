"""Bad requests get TF Serving's status codes and messages, and the server keeps answering."""

from __future__ import annotations

import grpc
import httpx
import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from tests.model_service.clients import (
    GREY_IMAGE,
    INPUT,
    error_of,
    metadata_request,
    predict,
    predict_request,
    status_request,
)
from tests.support.paths import SEED_MODEL_NAME

pytestmark = pytest.mark.slow


def unknown_model():
    return predict_request(GREY_IMAGE, model="no_such_model")


def unknown_version():
    return predict_request(GREY_IMAGE, version=7)


def wrong_input_key():
    return predict_request(GREY_IMAGE, input_name="image")


def wrong_dtype():
    request = predict_request()
    tensor = request.inputs[INPUT]
    tensor.dtype = types_pb2.DT_STRING
    tensor.tensor_shape.dim.add().size = 1
    tensor.string_val.append(b"not an image")
    return request


def wrong_shape():
    return predict_request(np.zeros((1, 64, 64, 3), np.float32))


def wrong_rank():
    return predict_request(np.zeros((150, 150, 3), np.float32))


def empty_request():
    return predict_request()


def short_tensor_content():
    request = predict_request(GREY_IMAGE)
    request.inputs[INPUT].tensor_content = request.inputs[INPUT].tensor_content[:-4]
    return request


def unknown_signature():
    request = predict_request(GREY_IMAGE)
    request.model_spec.signature_name = "classify_everything"
    return request


def unknown_output_filter():
    request = predict_request(GREY_IMAGE)
    request.output_filter.append("logits")
    return request


def unknown_version_label():
    request = predict_request(GREY_IMAGE)
    request.model_spec.version_label = "stable"
    return request


def no_model_spec():
    request = predict_request(GREY_IMAGE)
    request.ClearField("model_spec")
    return request


BAD_PREDICTS = {
    "unknown model": (unknown_model, grpc.StatusCode.NOT_FOUND,
                      "Servable not found for request: Latest(no_such_model)"),
    "unknown version": (unknown_version, grpc.StatusCode.NOT_FOUND,
                        f"Servable not found for request: Specific({SEED_MODEL_NAME}, 7)"),
    "wrong input key": (wrong_input_key, grpc.StatusCode.INVALID_ARGUMENT,
                        "input tensor alias not found in signature: image"),
    "wrong dtype": (wrong_dtype, grpc.StatusCode.INVALID_ARGUMENT,
                    "Expects arg[0] to be float but string is provided"),
    "wrong shape": (wrong_shape, grpc.StatusCode.INVALID_ARGUMENT, "[1,64,64,3]"),
    "wrong rank": (wrong_rank, grpc.StatusCode.INVALID_ARGUMENT, "[-1,150,150,3]"),
    "empty request": (empty_request, grpc.StatusCode.INVALID_ARGUMENT,
                      "input size does not match signature: 0!=1"),
    "short tensor_content": (short_tensor_content, grpc.StatusCode.INVALID_ARGUMENT,
                             f"tensor parsing error: {INPUT}"),
    "unknown signature": (unknown_signature, grpc.StatusCode.FAILED_PRECONDITION,
                          'Serving signature key "classify_everything" not found.'),
    "unknown output": (unknown_output_filter, grpc.StatusCode.INVALID_ARGUMENT,
                       "output tensor alias not found in signature: logits"),
    "unknown version label": (unknown_version_label, grpc.StatusCode.INVALID_ARGUMENT,
                              "Unrecognized servable version label: stable"),
    "no model spec": (no_model_spec, grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec"),
}


@pytest.mark.parametrize("case", list(BAD_PREDICTS))
def test_bad_predict_then_good_predict(prediction_stub, reference_predict, case):
    build, code, message = BAD_PREDICTS[case]
    error = error_of(prediction_stub.Predict, build())
    assert error.code() == code, error.details()
    assert message in error.details()
    served = predict(prediction_stub, GREY_IMAGE)
    assert np.max(np.abs(served - reference_predict(GREY_IMAGE))) <= 1e-5


def test_metadata_errors(prediction_stub):
    error = error_of(prediction_stub.GetModelMetadata, metadata_request("no_such_model"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    request = metadata_request()
    del request.metadata_field[:]
    error = error_of(prediction_stub.GetModelMetadata, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must specify at least one metadata_field" in error.details()
    request.metadata_field.append("graph")
    error = error_of(prediction_stub.GetModelMetadata, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Metadata field graph is not supported" in error.details()


def test_status_errors(model_stub):
    error = error_of(model_stub.GetModelStatus, status_request("no_such_model"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Could not find any versions of model no_such_model"
    error = error_of(model_stub.GetModelStatus, status_request(version=7))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"Could not find version 7 of model {SEED_MODEL_NAME}"


def test_unimplemented_apis_say_so(prediction_stub):
    from tensorflow_serving.apis import classification_pb2

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = SEED_MODEL_NAME
    assert error_of(prediction_stub.Classify, request).code() == grpc.StatusCode.UNIMPLEMENTED


BAD_REST = {
    "unknown model": ("POST", "/v1/models/no_such_model:predict", {"instances": [[1.0]]}, 404,
                      "Servable not found for request: Latest(no_such_model)"),
    "unknown version": ("POST", f"/v1/models/{SEED_MODEL_NAME}/versions/7:predict",
                        {"instances": GREY_IMAGE.tolist()}, 404, "Specific(saved_model, 7)"),
    "wrong input key": ("POST", f"/v1/models/{SEED_MODEL_NAME}:predict",
                        {"inputs": {"image": GREY_IMAGE.tolist()}}, 400,
                        "input tensor alias not found in signature: image"),
    "wrong shape": ("POST", f"/v1/models/{SEED_MODEL_NAME}:predict",
                    {"instances": [[[0.5, 0.5, 0.5]]]}, 400, "[1,1,3]"),
    "ragged": ("POST", f"/v1/models/{SEED_MODEL_NAME}:predict",
               {"instances": [[[[0.5, 0.5, 0.5]]], [[[0.5, 0.5]]]]}, 400, "ragged"),
    "strings for floats": ("POST", f"/v1/models/{SEED_MODEL_NAME}:predict",
                           {"instances": ["cassava"]}, 400, "expected a number"),
    "no inputs": ("POST", f"/v1/models/{SEED_MODEL_NAME}:predict", {"signature_name": ""}, 400,
                  "Missing 'inputs' or 'instances' key"),
    "both formats": ("POST", f"/v1/models/{SEED_MODEL_NAME}:predict",
                     {"inputs": [], "instances": []}, 400, "only one of 'inputs' or 'instances'"),
    "empty instances": ("POST", f"/v1/models/{SEED_MODEL_NAME}:predict", {"instances": []}, 400,
                        "'instances' is empty"),
    "unknown signature": ("POST", f"/v1/models/{SEED_MODEL_NAME}:predict",
                          {"signature_name": "nope", "instances": GREY_IMAGE.tolist()}, 412,
                          'Serving signature key "nope" not found.'),
    "status of unknown model": ("GET", "/v1/models/no_such_model", None, 404,
                                "Could not find any versions of model no_such_model"),
    "unknown path": ("GET", "/v2/models", None, 404, "Malformed request: GET /v2/models"),
    "classify": ("POST", f"/v1/models/{SEED_MODEL_NAME}:classify", {"examples": []}, 501,
                 ":classify"),
}


@pytest.mark.parametrize("case", list(BAD_REST))
def test_bad_rest_request_then_good_one(seed_model_server, reference_predict, case):
    method, path, body, status, message = BAD_REST[case]
    reply = httpx.request(method, seed_model_server.rest_url + path, json=body, timeout=30)
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]
    good = httpx.post(f"{seed_model_server.rest_url}/v1/models/{SEED_MODEL_NAME}:predict",
                      json={"instances": GREY_IMAGE.tolist()}, timeout=30)
    assert good.status_code == 200
    predictions = np.array(good.json()["predictions"], np.float32)
    assert np.max(np.abs(predictions - reference_predict(GREY_IMAGE))) <= 1e-5


def test_rest_body_that_is_not_json(seed_model_server):
    reply = httpx.post(f"{seed_model_server.rest_url}/v1/models/{SEED_MODEL_NAME}:predict",
                       content=b"{instances: nope", timeout=30)
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("JSON Parse error")
