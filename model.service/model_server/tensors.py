"""TensorProto <-> numpy, with TensorFlow's own rules (Tensor::FromProto / AsProtoField).

Requests may pack values in `tensor_content` (raw little-endian bytes) or in the typed value field
of the dtype (`float_val`, `int_val`, `half_val`, ...). With a typed field TensorFlow fills a tensor
from fewer values than it has elements by repeating the last value (one value = a broadcast scalar),
fills it with zeros when no value is given, and ignores values beyond the element count. The API
reads the model server's replies by the same rule (app/tfserving/tensors.py; docs/model-server.md,
"Tensors").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ml_dtypes
import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2


@dataclass(frozen=True)
class DType:
    enum: int
    name: str  # as TensorFlow spells it in messages: float, int32, string, ...
    numpy: np.dtype
    field: str  # the TensorProto value field
    field_numpy: np.dtype | None = None  # how the field stores it, when not as `numpy`

    @property
    def is_string(self) -> bool:
        return self.numpy.kind == "O"


def _dtypes() -> dict[int, DType]:
    t = types_pb2
    table = [
        DType(t.DT_FLOAT, "float", np.dtype(np.float32), "float_val"),
        DType(t.DT_DOUBLE, "double", np.dtype(np.float64), "double_val"),
        DType(t.DT_INT32, "int32", np.dtype(np.int32), "int_val"),
        DType(t.DT_UINT8, "uint8", np.dtype(np.uint8), "int_val", np.dtype(np.int32)),
        DType(t.DT_INT16, "int16", np.dtype(np.int16), "int_val", np.dtype(np.int32)),
        DType(t.DT_INT8, "int8", np.dtype(np.int8), "int_val", np.dtype(np.int32)),
        DType(t.DT_UINT16, "uint16", np.dtype(np.uint16), "int_val", np.dtype(np.int32)),
        DType(t.DT_INT64, "int64", np.dtype(np.int64), "int64_val"),
        DType(t.DT_UINT32, "uint32", np.dtype(np.uint32), "uint32_val"),
        DType(t.DT_UINT64, "uint64", np.dtype(np.uint64), "uint64_val"),
        DType(t.DT_BOOL, "bool", np.dtype(np.bool_), "bool_val"),
        DType(t.DT_HALF, "half", np.dtype(np.float16), "half_val", np.dtype(np.int32)),
        DType(t.DT_BFLOAT16, "bfloat16", np.dtype(ml_dtypes.bfloat16), "half_val",
              np.dtype(np.int32)),
        DType(t.DT_COMPLEX64, "complex64", np.dtype(np.complex64), "scomplex_val",
              np.dtype(np.float32)),
        DType(t.DT_COMPLEX128, "complex128", np.dtype(np.complex128), "dcomplex_val",
              np.dtype(np.float64)),
        DType(t.DT_STRING, "string", np.dtype(object), "string_val"),
    ]
    return {d.enum: d for d in table}


DTYPES = _dtypes()
BY_NUMPY = {d.numpy: d for d in DTYPES.values()}


class TensorParseError(ValueError):
    """A TensorProto TensorFlow could not turn into a tensor."""


def dtype_name(enum: int) -> str:
    known = DTYPES.get(enum)
    if known:
        return known.name
    name = types_pb2.DataType.Name(enum) if enum in types_pb2.DataType.values() else str(enum)
    return name.removeprefix("DT_").lower()


def shape_of(proto: tensor_shape_pb2.TensorShapeProto) -> tuple[int, ...]:
    if proto.unknown_rank:
        raise TensorParseError("a tensor's shape must have a known rank")
    dims = tuple(dim.size for dim in proto.dim)
    if any(size < 0 for size in dims):
        raise TensorParseError(f"a tensor's dimensions must not be negative: {list(dims)}")
    return dims


def _from_bits(values: np.ndarray, dtype: DType) -> np.ndarray:
    """half_val holds float16/bfloat16 bit patterns, *complex_val holds (real, imag) pairs."""
    if dtype.field == "half_val":
        return values.astype(np.uint16).view(dtype.numpy)
    if dtype.field in ("scomplex_val", "dcomplex_val"):
        return values.view(dtype.numpy) if values.size % 2 == 0 else values[:-1].view(dtype.numpy)
    return values.astype(dtype.numpy)


def to_numpy(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """The tensor a TensorProto describes; TensorParseError where TensorFlow would fail too."""
    dtype = DTYPES.get(proto.dtype)
    if dtype is None:
        raise TensorParseError(f"unsupported dtype {dtype_name(proto.dtype)}")
    shape = shape_of(proto.tensor_shape)
    count = math.prod(shape)  # Python ints: no overflow, and far cheaper than np.prod
    content = proto.tensor_content  # read once: upb copies a bytes field on every access
    if content:
        if dtype.is_string:
            raise TensorParseError("string tensors cannot use tensor_content")
        if len(content) != count * dtype.numpy.itemsize:
            raise TensorParseError(
                f"tensor_content holds {len(content)} bytes, shape {list(shape)} of "
                f"{dtype.name} needs {count * dtype.numpy.itemsize}")
        # Zero-copy view of the request's bytes (read-only, which inference never minds).
        return np.frombuffer(content, dtype=dtype.numpy).reshape(shape)
    values = getattr(proto, dtype.field)
    if dtype.is_string:
        flat = np.empty(len(values), dtype=object)
        flat[:] = list(values)
        fill: bytes | int = b""
    else:
        flat = _from_bits(np.array(values, dtype=dtype.field_numpy or dtype.numpy), dtype)
        fill = 0
    if flat.size >= count:
        data = flat[:count]
    else:
        data = np.empty(count, dtype=dtype.numpy)
        data[: flat.size] = flat
        last = flat[-1] if flat.size else fill
        if dtype.is_string:  # a list: numpy would strip trailing NULs from a bytes scalar
            data[flat.size:] = [last] * (count - flat.size)
        else:
            data[flat.size:] = last
    return data.reshape(shape)


def numpy_dtype(array: np.ndarray) -> DType:
    if array.dtype.kind in "SUO":
        return DTYPES[types_pb2.DT_STRING]
    try:
        return BY_NUMPY[array.dtype]
    except KeyError:
        raise TypeError(f"no TensorFlow dtype for numpy {array.dtype}") from None


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def fill_proto(proto: tensor_pb2.TensorProto, array: np.ndarray, as_content: bool = False) -> None:
    """Write `array` into `proto` as TF's AsProtoField (typed values) or AsProtoTensorContent."""
    dtype = numpy_dtype(array)
    proto.dtype = dtype.enum
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    if dtype.is_string:
        proto.string_val.extend(_as_bytes(v) for v in array.ravel())
    elif as_content:
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
    elif dtype.field == "half_val":
        getattr(proto, dtype.field).extend(array.view(np.uint16).ravel().tolist())
    elif dtype.field in ("scomplex_val", "dcomplex_val"):
        getattr(proto, dtype.field).extend(
            np.ascontiguousarray(array).view(dtype.field_numpy or dtype.numpy).ravel().tolist())
    else:
        getattr(proto, dtype.field).extend(array.ravel().tolist())
