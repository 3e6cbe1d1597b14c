"""numpy <-> TensorProto without TensorFlow, checked against TensorFlow's own conversions."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2 as tf_tensor_pb2

from app.tfserving.protos import tensor_pb2, types_pb2
from app.tfserving.tensors import TensorDecodeError, from_tensor_proto, to_tensor_proto
from model_server import tensors


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "uint8", "float16"])
def test_packed_tensor_is_what_tensorflow_reads(dtype: str) -> None:
    array = (np.random.default_rng(1).random((1, 4, 5, 3)) * 100).astype(dtype)
    proto = to_tensor_proto(array)
    assert proto.tensor_content and not proto.float_val  # one blob, not a value per element
    official = tf_tensor_pb2.TensorProto.FromString(proto.SerializeToString())
    np.testing.assert_array_equal(tf.make_ndarray(official), array)
    np.testing.assert_array_equal(from_tensor_proto(proto), array)


def test_big_endian_and_non_contiguous_arrays_are_packed_little_endian() -> None:
    array = np.arange(24, dtype=">f4").reshape(2, 3, 4)[:, ::2, :]
    official = tf_tensor_pb2.TensorProto.FromString(to_tensor_proto(array).SerializeToString())
    np.testing.assert_array_equal(tf.make_ndarray(official), array)


def test_unsupported_dtype_is_refused() -> None:
    with pytest.raises(TypeError):
        to_tensor_proto(np.array(["a"]))


@pytest.mark.parametrize("use_content", [True, False], ids=["tensor_content", "float_val"])
def test_reads_what_tensorflow_writes(use_content: bool) -> None:
    array = np.array([[0.1, 0.2, 0.3, 0.15, 0.25]], dtype=np.float32)
    official = tf.make_tensor_proto(array)
    if not use_content:
        official.ClearField("tensor_content")
        official.float_val.extend(array.ravel().tolist())
    ours = tensor_pb2.TensorProto.FromString(official.SerializeToString())
    np.testing.assert_array_equal(from_tensor_proto(ours), array)


def test_short_val_list_repeats_the_last_value_like_tensorflow() -> None:
    official = tf.make_tensor_proto(7.5, dtype=tf.float32, shape=[2, 3])  # one float_val
    assert len(official.float_val) == 1
    ours = tensor_pb2.TensorProto.FromString(official.SerializeToString())
    np.testing.assert_array_equal(from_tensor_proto(ours), tf.make_ndarray(official))


def test_half_and_int_vals() -> None:
    halves = np.array([1.5, -2.0, 0.25], dtype=np.float16)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_HALF)
    proto.tensor_shape.dim.add().size = 3
    proto.half_val.extend(halves.view(np.uint16).tolist())
    np.testing.assert_array_equal(from_tensor_proto(proto), halves)
    ints = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[1, 2])
    ints.tensor_shape.dim.add().size = 2
    np.testing.assert_array_equal(from_tensor_proto(ints), [1, 2])


@pytest.mark.parametrize("case", ["bad_size", "unknown_dim", "string"])
def test_malformed_tensors_raise_tensor_decode_error(case: str) -> None:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add().size = 2
    if case == "bad_size":
        proto.tensor_content = b"\0" * 7
    elif case == "unknown_dim":
        proto.tensor_shape.dim[0].size = -1
    elif case == "string":
        proto.dtype = types_pb2.DT_STRING
    with pytest.raises(TensorDecodeError):
        from_tensor_proto(proto)


COUNTS = {  # float_val for a [2, 3] tensor: as many, one, fewer, none, more
    "exact": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "one": [7.5], "fewer": [1.0, 2.0],
    "none": [], "more": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]}


@pytest.mark.parametrize("count", list(COUNTS))
def test_too_few_or_too_many_values_are_read_as_tensorflow_and_the_model_server_read_them(
        count: str) -> None:
    """One rule for the API and the model server: TensorFlow's C++ parser (tf.io.parse_tensor runs
    Tensor::FromProto, as TF Serving does) decides, and both read the same tensor."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=COUNTS[count])
    proto.tensor_shape.dim.add().size = 2
    proto.tensor_shape.dim.add().size = 3
    wire = proto.SerializeToString()
    tensorflow = tf.io.parse_tensor(wire, tf.float32).numpy()
    model_server = tensors.to_numpy(tf_tensor_pb2.TensorProto.FromString(wire))
    api = from_tensor_proto(proto)
    np.testing.assert_array_equal(api, tensorflow)
    np.testing.assert_array_equal(model_server, tensorflow)
    assert api.shape == model_server.shape == (2, 3)
