"""TensorProto <-> numpy matches TensorFlow's own C++ parser (tf.io.parse_tensor) and writer."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from model_server import tensors

# (dtype, TF dtype, values for the typed field)
TYPED = [
    (types_pb2.DT_FLOAT, tf.float32, [1.5, -2.25, 3.0]),
    (types_pb2.DT_DOUBLE, tf.float64, [1e-300, 2.5, -3.0]),
    (types_pb2.DT_INT32, tf.int32, [1, -2, 2**31 - 1]),
    (types_pb2.DT_INT16, tf.int16, [1, -2, 300]),
    (types_pb2.DT_INT8, tf.int8, [1, -2, 100]),
    (types_pb2.DT_UINT8, tf.uint8, [1, 2, 255]),
    (types_pb2.DT_UINT16, tf.uint16, [1, 2, 65535]),
    (types_pb2.DT_INT64, tf.int64, [1, -2, 2**62]),
    (types_pb2.DT_UINT32, tf.uint32, [1, 2, 2**32 - 1]),
    (types_pb2.DT_UINT64, tf.uint64, [1, 2, 2**63]),
    (types_pb2.DT_BOOL, tf.bool, [True, False, True]),
    (types_pb2.DT_HALF, tf.half, [15360, 16384, 48128]),  # bit patterns of 1.0, 2.0, -1.0
    (types_pb2.DT_BFLOAT16, tf.bfloat16, [16256, 16384, 49024]),
    (types_pb2.DT_COMPLEX64, tf.complex64, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
    (types_pb2.DT_STRING, tf.string, [b"cassava", b"", b"\xff\x00"]),
]


def proto(dtype: int, shape: tuple[int, ...], field_values: list | None = None,
          content: bytes | None = None) -> tensor_pb2.TensorProto:
    message = tensor_pb2.TensorProto(dtype=dtype)
    for size in shape:
        message.tensor_shape.dim.add().size = size
    if field_values is not None:
        getattr(message, tensors.DTYPES[dtype].field).extend(field_values)
    if content is not None:
        message.tensor_content = content
    return message


def tensorflow_reads(message: tensor_pb2.TensorProto, tf_dtype) -> np.ndarray:
    return tf.io.parse_tensor(message.SerializeToString(), tf_dtype).numpy()


def values_per_element(dtype: int) -> int:
    return 2 if dtype == types_pb2.DT_COMPLEX64 else 1


@pytest.mark.parametrize(("dtype", "tf_dtype", "values"), TYPED,
                         ids=[tensors.dtype_name(t[0]) for t in TYPED])
@pytest.mark.parametrize("count", ["exact", "one", "fewer", "none", "more"])
def test_typed_fields_parse_like_tensorflow(dtype, tf_dtype, values, count):
    per = values_per_element(dtype)
    elements = len(values) // per
    shape = {"exact": (elements,), "one": (2, 2), "fewer": (2, elements), "none": (2, 1),
             "more": (1,)}[count]
    given = {"one": values[:per], "none": []}.get(count, values)
    message = proto(dtype, shape, given)
    ours = tensors.to_numpy(message)
    theirs = tensorflow_reads(message, tf_dtype)
    assert ours.shape == theirs.shape
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(("dtype", "tf_dtype", "values"), TYPED[:-1],
                         ids=[tensors.dtype_name(t[0]) for t in TYPED[:-1]])
def test_tensor_content_parses_like_tensorflow(dtype, tf_dtype, values):
    array = tensors.to_numpy(proto(dtype, (len(values) // values_per_element(dtype),), values))
    message = proto(dtype, array.shape, content=array.tobytes())
    np.testing.assert_array_equal(tensors.to_numpy(message), tensorflow_reads(message, tf_dtype))


@pytest.mark.parametrize("message", [
    proto(types_pb2.DT_FLOAT, (2, 2), content=b"\x00" * 12),  # 3 floats for 4 elements
    proto(types_pb2.DT_STRING, (1,), content=b"abcd"),
    proto(types_pb2.DT_RESOURCE, (1,)),
    proto(types_pb2.DT_FLOAT, (-1, 3), [1.0]),
], ids=["short content", "string content", "resource", "negative dim"])
def test_unparseable_protos_are_refused(message):
    with pytest.raises(tensors.TensorParseError):
        tensors.to_numpy(message)


def test_unknown_rank_is_refused():
    message = proto(types_pb2.DT_FLOAT, (), [1.0])
    message.tensor_shape.unknown_rank = True
    with pytest.raises(tensors.TensorParseError):
        tensors.to_numpy(message)


@pytest.mark.parametrize("array", [
    np.arange(10, dtype=np.float32).reshape(2, 5) / 7,
    np.arange(6, dtype=np.int64).reshape(3, 2),
    np.array([True, False]),
    np.array([1.0, -2.5], dtype=np.float16),
    np.array([1 + 2j, 3 - 4j], dtype=np.complex64),
    np.array([b"a", b"bc"], dtype=object),
    np.float32(0.5).reshape(()),
], ids=["float32", "int64", "bool", "half", "complex64", "string", "scalar"])
@pytest.mark.parametrize("as_content", [False, True], ids=["fields", "content"])
def test_replies_round_trip_through_tensorflow(array, as_content):
    message = tensor_pb2.TensorProto()
    tensors.fill_proto(message, array, as_content)
    if as_content and array.dtype != object:
        assert message.tensor_content and not message.float_val
    np.testing.assert_array_equal(tf.make_ndarray(message), array)
