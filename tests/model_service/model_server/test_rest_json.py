"""TF Serving's JSON tensor format: both request formats, strings, and how numbers are written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from model_server import rest_json
from model_server.errors import ServingError
from model_server.servable import CallableSignature


def signature(**inputs: tuple[int, list[int]]) -> CallableSignature:
    definition = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for alias, (dtype, shape) in inputs.items():
        info = definition.inputs[alias]
        info.name, info.dtype = f"{alias}:0", dtype
        for size in shape:
            info.tensor_shape.dim.add().size = size
    return CallableSignature("serving_default", definition, session=None)


IMAGE = signature(image=(types_pb2.DT_FLOAT, [-1, 2]))
TWO = signature(image=(types_pb2.DT_FLOAT, [-1, 2]), tag=(types_pb2.DT_STRING, [-1]))


def test_row_format_single_input():
    inputs, rows = rest_json.decode_request({"instances": [[1, 2], [3.5, 4]]}, IMAGE)
    assert rows
    np.testing.assert_array_equal(inputs["image"], np.array([[1, 2], [3.5, 4]], np.float32))
    assert inputs["image"].dtype == np.float32


def test_row_format_named_inputs_with_b64_strings():
    inputs, _ = rest_json.decode_request({"instances": [
        {"image": [1, 2], "tag": "leaf"}, {"image": [3, 4], "tag": {"b64": "AP8="}}]}, TWO)
    assert inputs["tag"].tolist() == [b"leaf", b"\x00\xff"]
    assert inputs["image"].shape == (2, 2)


def test_columnar_format():
    inputs, rows = rest_json.decode_request(
        {"inputs": {"image": [[1, 2]], "tag": ["x"]}}, TWO)
    assert not rows
    assert inputs["tag"].tolist() == [b"x"]
    inputs, _ = rest_json.decode_request({"inputs": [[1, 2]]}, IMAGE)
    assert inputs["image"].shape == (1, 2)


@pytest.mark.parametrize("sig, body, message", [
    (IMAGE, {"instances": [[1, 2], [3]]}, "ragged"),
    (IMAGE, {"instances": json.loads("[" * 900 + "1" + "]" * 900)}, "nested deeper than 64"),
    (IMAGE, {"instances": [[1, "2"]]}, "expected a number"),
    (IMAGE, {"instances": [[True, False]]}, "booleans"),
    (IMAGE, {"instances": {"image": [1, 2]}}, "must be a list"),
    (TWO, {"instances": [{"image": [1, 2]}, {"tag": "x"}]}, "same inputs"),
    (TWO, {"instances": [[1, 2]]}, "each instance must be an object"),
    (TWO, {"inputs": {"image": [[1, 2]]}}, "Missing but required: {tag}"),
    (TWO, {"instances": [{"image": [1, 2], "tag": {"b64": "%%"}}]}, "base64"),
    (TWO, {"instances": [{"image": [1, 2], "tag": 5}]}, "expected a string"),
])
def test_bad_bodies_are_invalid_argument(sig, body, message):
    with pytest.raises(ServingError) as failure:
        rest_json.decode_request(body, sig)
    assert failure.value.http_status == 400
    assert message in failure.value.message


def test_integer_range_is_checked():
    sig = signature(ids=(types_pb2.DT_INT32, [-1]))
    with pytest.raises(ServingError, match="out of range"):
        rest_json.decode_request({"inputs": [2**40]}, sig)
    with pytest.raises(ServingError, match="float64"):
        rest_json.decode_request({"inputs": [1.5]}, sig)


def test_float32_written_like_tensorflow():
    outputs = {"dense_3": np.array([[0.1, 1.0, 1 / 3, np.nan, np.inf]], np.float32)}
    text = rest_json.dumps(rest_json.encode_response(outputs, row_format=True)).decode()
    assert text == '{"predictions":[[0.1,1.0,0.333333343,NaN,Infinity]]}'
    values = json.loads(text)["predictions"][0]
    np.testing.assert_array_equal(np.float32(values[:3]), outputs["dense_3"][0, :3])


def test_several_outputs_per_format():
    outputs = {"scores": np.array([[0.5], [0.25]], np.float32),
               "label_bytes": np.array([b"\x00a", b"b"], object),
               "label": np.array([b"CMD", b"CBB"], object)}
    rows = rest_json.encode_response(outputs, row_format=True)["predictions"]
    assert rows[0] == {"label": "CMD", "label_bytes": {"b64": "AGE="},
                       "scores": [rest_json.Raw("0.5")]}
    columns = rest_json.encode_response(outputs, row_format=False)["outputs"]
    assert columns["label"] == ["CMD", "CBB"]
    assert json.loads(rest_json.dumps(columns))["scores"] == [[0.5], [0.25]]
