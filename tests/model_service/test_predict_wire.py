"""predict_wire: tensor_content kept out of the parsed request, and exactly what protobuf makes."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.internal.encoder import _VarintBytes
from google.protobuf.message import DecodeError
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2

from model_server import grpc_service, predict_wire


def request_with(**inputs: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "cassava"
    request.model_spec.signature_name = "serving_default"
    request.model_spec.version.value = 3
    request.output_filter.append("probabilities")
    for alias, array in inputs.items():
        tensor = request.inputs[alias]
        tensor.dtype = types_pb2.DT_FLOAT
        for size in array.shape:
            tensor.tensor_shape.dim.add().size = size
        tensor.tensor_content = array.tobytes()
    return request


def rebuilt(stripped: bytes, contents: dict[str, memoryview]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest.FromString(stripped)
    for alias, content in contents.items():
        request.inputs[alias].tensor_content = bytes(content)
    return request


def test_a_single_image_request_splits_into_a_small_request_and_a_view():
    image = np.random.default_rng(0).random((1, 150, 150, 3), dtype=np.float32)
    payload = request_with(image=image).SerializeToString()
    stripped, contents = predict_wire.split_tensor_content(payload)
    assert len(stripped) < 200
    assert isinstance(contents["image"], memoryview)
    assert bytes(contents["image"]) == image.tobytes()
    assert rebuilt(stripped, contents) == predict_pb2.PredictRequest.FromString(payload)


def test_several_inputs_and_typed_values_are_kept():
    request = request_with(a=np.arange(6, dtype=np.float32).reshape(2, 3),
                           b=np.ones((1, 4), dtype=np.float32))
    request.inputs["c"].dtype = types_pb2.DT_INT32
    request.inputs["c"].int_val.extend([1, 2, 3])
    payload = request.SerializeToString()
    stripped, contents = predict_wire.split_tensor_content(payload)
    assert set(contents) == {"a", "b"}
    assert rebuilt(stripped, contents) == request


def test_a_view_costs_no_copy():
    body = bytearray(request_with(x=np.ones((1, 1000), np.float32)).SerializeToString())
    _, contents = predict_wire.split_tensor_content(memoryview(body))
    assert contents["x"].obj is body
    start = bytes(body).index(np.ones(1000, np.float32).tobytes())
    body[start:start + 4] = np.float32(7).tobytes()
    assert np.frombuffer(contents["x"], np.float32)[0] == 7


def entry(key: bytes, *values: bytes) -> bytes:
    fields = b"\x0a" + _VarintBytes(len(key)) + key
    for value in values:
        fields += b"\x12" + _VarintBytes(len(value)) + value
    return b"\x12" + _VarintBytes(len(fields)) + fields


TENSOR = b"\x08\x01" + b"\x22\x04" + np.float32(1).tobytes()  # dtype FLOAT, tensor_content

UNUSUAL = {
    "duplicate key (protobuf keeps the last)": entry(b"x", TENSOR) + entry(b"x", TENSOR),
    "value field twice (protobuf merges)": entry(b"x", TENSOR, TENSOR),
    "tensor_content twice": entry(b"x", TENSOR + b"\x22\x04" + np.float32(2).tobytes()),
    "no value": entry(b"x"),
    "a group": b"\x1b\x1c",
    "truncated varint": b"\x12\xff",
    "length past the end": b"\x12\x7f\x0a",
    "field number 0": b"\x02\x00",
    "key not UTF-8": entry(b"\xff", TENSOR),
}


@pytest.mark.parametrize("case", list(UNUSUAL))
def test_anything_unusual_is_left_to_protobuf(case):
    assert predict_wire.split_tensor_content(UNUSUAL[case]) is None


@pytest.mark.parametrize("case", list(UNUSUAL))
def test_the_server_parses_unusual_requests_as_protobuf_does(case):
    try:
        expected = predict_pb2.PredictRequest.FromString(UNUSUAL[case])
    except DecodeError:
        with pytest.raises(DecodeError):
            grpc_service.parse_predict(UNUSUAL[case])
        return
    request, contents = grpc_service.parse_predict(UNUSUAL[case])
    assert contents == {}
    assert request == expected


def test_random_requests_survive_the_round_trip():
    rng = np.random.default_rng(7)
    for _ in range(50):
        arrays = {f"in{i}": rng.random((1, int(rng.integers(0, 40))), dtype=np.float32)
                  for i in range(int(rng.integers(0, 4)))}
        request = request_with(**arrays)
        payload = request.SerializeToString()
        stripped, contents = predict_wire.split_tensor_content(payload)
        assert rebuilt(stripped, contents) == request
