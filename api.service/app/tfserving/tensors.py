"""numpy arrays <-> tensorflow.TensorProto, without TensorFlow. Pure functions."""

from __future__ import annotations

import numpy as np

from app.tfserving.protos import tensor_pb2, tensor_shape_pb2, types_pb2

# DataType -> little-endian numpy dtype, for the types an image model reads or writes.
NUMPY_DTYPES: dict[int, np.dtype] = {
    types_pb2.DT_FLOAT: np.dtype("<f4"),
    types_pb2.DT_DOUBLE: np.dtype("<f8"),
    types_pb2.DT_HALF: np.dtype("<f2"),
    types_pb2.DT_INT32: np.dtype("<i4"),
    types_pb2.DT_INT64: np.dtype("<i8"),
    types_pb2.DT_UINT8: np.dtype("u1"),
}
# Keyed by kind and size ("f4"), so native, little- and big-endian arrays all find their type.
_DATA_TYPES = {dtype.str[1:]: data_type for data_type, dtype in NUMPY_DTYPES.items()}


class TensorDecodeError(ValueError):
    """A TensorProto this module cannot turn into an array (unknown dtype, wrong size)."""


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Pack an array as one `tensor_content` blob: a single memcpy, not a value per element."""
    data_type = _DATA_TYPES.get(array.dtype.str[1:])
    if data_type is None:
        raise TypeError(f"unsupported dtype {array.dtype}")
    proto = tensor_pb2.TensorProto(dtype=data_type)
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=size)
                                  for size in array.shape)
    proto.tensor_content = np.ascontiguousarray(array, dtype=NUMPY_DTYPES[data_type]).tobytes()
    return proto


def from_tensor_proto(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """Read a tensor from `tensor_content` or from the typed `*_val` fields (TF Serving uses both).

    TensorFlow's rule (Tensor::FromProto, what TF Serving runs; the model server's
    model_server/tensors.py is the same, docs/model-server.md "Tensors"): `tensor_content` must
    hold exactly the shape's bytes; in a typed field fewer values than elements repeat the last
    one, no value means zeros, and values beyond the element count are ignored.
    """
    dtype = NUMPY_DTYPES.get(proto.dtype)
    if dtype is None:
        raise TensorDecodeError(f"unsupported tensor dtype {proto.dtype}")
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    if any(size < 0 for size in shape):
        raise TensorDecodeError(f"tensor with unknown dimension: {shape}")
    count = int(np.prod(shape, dtype=np.int64))
    if proto.tensor_content:
        if len(proto.tensor_content) != count * dtype.itemsize:
            raise TensorDecodeError(
                f"tensor_content holds {len(proto.tensor_content)} bytes, shape {shape} needs "
                f"{count * dtype.itemsize}")
        return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape)
    values = _typed_values(proto, dtype)
    if values.size >= count:
        return values[:count].reshape(shape)
    padded = np.full(count, values[-1] if values.size else 0, dtype=dtype)
    padded[: values.size] = values
    return padded.reshape(shape)


def _typed_values(proto: tensor_pb2.TensorProto, dtype: np.dtype) -> np.ndarray:
    if proto.dtype == types_pb2.DT_HALF:  # halves travel as their 16-bit patterns in int32s
        return np.asarray(proto.half_val, dtype=np.uint16).view(np.float16)
    field = {types_pb2.DT_FLOAT: proto.float_val, types_pb2.DT_DOUBLE: proto.double_val,
             types_pb2.DT_INT64: proto.int64_val}.get(proto.dtype, proto.int_val)
    return np.asarray(field, dtype=dtype)
