"""TF Serving's JSON tensor format: request values -> numpy by the signature's dtypes, and back.

Row format `{"instances": [...]}` lists one entry per example (an object keyed by input alias, or a
bare value when the signature has one input); columnar `{"inputs": ...}` gives whole tensors.
Strings are JSON strings or `{"b64": "..."}`; floats are written as TensorFlow writes them
(shortest of %.6g / %.9g that round-trips, `.0` on integral values, NaN / Infinity).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import numpy as np

from model_server import tensors
from model_server.errors import invalid_argument
from model_server.servable import CallableSignature

# numpy's limit on dimensions (TensorFlow allows 254); deeper nests are refused, not recursed into.
MAX_RANK = 64


def _nested_shape(value, where: str, depth: int = 0) -> tuple[int, ...]:
    """The shape of a rectangular nest of lists; INVALID_ARGUMENT if ragged or too deep."""
    if not isinstance(value, list):
        return ()
    if depth == MAX_RANK:
        raise invalid_argument(f"{where}: lists nested deeper than {MAX_RANK} levels")
    if not value:
        return (0,)
    inner = _nested_shape(value[0], where, depth + 1)
    for item in value[1:]:
        if _nested_shape(item, where, depth + 1) != inner:
            raise invalid_argument(f"{where}: expecting tensors in list to be of the same shape "
                                   "(the list is ragged)")
    return (len(value), *inner)


def _leaves(value):
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _string_leaf(value, where: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error:
            raise invalid_argument(f"{where}: unable to base64 decode") from None
    raise invalid_argument(f"{where}: expected a string or {{\"b64\": ...}} for a string tensor, "
                           f"got {json.dumps(value)[:80]}")


NUMERIC_KINDS = {"f": "iuf", "c": "iuf", "i": "iu", "u": "iu", "b": "b"}


def to_array(value, dtype_enum: int, where: str) -> np.ndarray:
    """One JSON value as a tensor of the signature's dtype."""
    dtype = tensors.DTYPES.get(dtype_enum)
    if dtype is None:
        raise invalid_argument(f"{where}: dtype {tensors.dtype_name(dtype_enum)} is not supported "
                               "by the REST API")
    shape = _nested_shape(value, where)
    if dtype.is_string:
        flat = np.empty(math.prod(shape), dtype=object)
        flat[:] = [_string_leaf(v, where) for v in _leaves(value)]
        return flat.reshape(shape)
    for leaf in _leaves(value):
        if isinstance(leaf, (dict, str)) or leaf is None:
            raise invalid_argument(f"{where}: expected a number for a {dtype.name} tensor, got "
                                   f"{json.dumps(leaf)[:80]}")
    raw = np.asarray(value) if shape != (0,) else np.zeros(0, dtype=dtype.numpy)
    allowed = NUMERIC_KINDS.get(dtype.numpy.kind, "iuf")
    if raw.size and raw.dtype.kind not in allowed:
        raise invalid_argument(f"{where}: expected {dtype.name} values, got "
                               f"{'booleans' if raw.dtype.kind == 'b' else raw.dtype.name}")
    if dtype.numpy.kind in "iu" and raw.size:
        limits = np.iinfo(dtype.numpy)
        if raw.min() < limits.min or raw.max() > limits.max:
            raise invalid_argument(f"{where}: value out of range for {dtype.name}")
    return raw.astype(dtype.numpy).reshape(shape)


def decode_request(body: dict, signature: CallableSignature) -> tuple[dict[str, np.ndarray], bool]:
    """The inputs of a :predict body, and whether it used the row (instances) format."""
    if "instances" in body and "inputs" in body:
        raise invalid_argument("Not formatted correctly expecting only one of 'inputs' or "
                               "'instances' keys exist")
    if "instances" in body:
        return _decode_instances(body["instances"], signature), True
    if "inputs" in body:
        return _decode_inputs(body["inputs"], signature), False
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _decode_instances(instances, signature: CallableSignature) -> dict[str, np.ndarray]:
    if not isinstance(instances, list):
        raise invalid_argument("'instances' must be a list of examples")
    if not instances:
        raise invalid_argument("'instances' is empty: send at least one example")
    named = all(isinstance(item, dict) and "b64" not in item for item in instances)
    if not named:
        if any(isinstance(item, dict) and "b64" not in item for item in instances):
            raise invalid_argument("'instances' mixes named (objects) and unnamed examples")
        if len(signature.inputs) != 1:
            raise invalid_argument(
                f"The signature has {len(signature.inputs)} inputs "
                f"({','.join(signature.input_order)}): each instance must be an object "
                "keyed by input name")
        (alias,) = signature.input_order
        return {alias: to_array(instances, signature.inputs[alias].dtype, "'instances'")}
    keys = set(instances[0])
    for index, item in enumerate(instances):
        if set(item) != keys:
            raise invalid_argument(f"'instances' element {index} has keys {sorted(item)}, "
                                   f"element 0 has {sorted(keys)}: all must name the same inputs")
    signature.check_input_aliases(keys)
    return {alias: to_array([item[alias] for item in instances], signature.inputs[alias].dtype,
                          f"'instances' input {alias}")
            for alias in sorted(keys)}


def _decode_inputs(inputs, signature: CallableSignature) -> dict[str, np.ndarray]:
    if isinstance(inputs, dict) and "b64" not in inputs:
        signature.check_input_aliases(inputs.keys())
        return {alias: to_array(value, signature.inputs[alias].dtype, f"'inputs' input {alias}")
                for alias, value in inputs.items()}
    if len(signature.inputs) != 1:
        raise invalid_argument(
            f"The signature has {len(signature.inputs)} inputs "
            f"({','.join(signature.input_order)}): 'inputs' must be an object keyed by input name")
    (alias,) = signature.input_order
    return {alias: to_array(inputs, signature.inputs[alias].dtype, "'inputs'")}


# -- writing ---------------------------------------------------------------------------------
class Raw(str):
    """A number already formatted as JSON text."""


def _format_float(value: float, single: bool) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    short, full = (6, 9) if single else (15, 17)
    text = f"{value:.{short}g}"
    parsed = np.float32(text) if single else float(text)
    if parsed != value:
        text = f"{value:.{full}g}"
    if not any(c in text for c in ".en"):
        text += ".0"
    return text


def _json_value(array: np.ndarray, alias: str):
    """An array as nested lists of JSON-ready leaves."""
    kind = array.dtype.kind
    if kind == "f" or array.dtype.name == "bfloat16":
        single = array.dtype != np.float64
        flat: list[Any] = [Raw(_format_float(float(v), single))
                           for v in array.ravel().astype(np.float64)]
    elif kind == "O" or kind == "S":
        as_b64 = alias.endswith("_bytes")
        flat = [{"b64": base64.b64encode(bytes(v)).decode()} if as_b64
                else bytes(v).decode("utf-8", "replace") for v in array.ravel()]
    elif kind == "c":
        raise invalid_argument(f"output {alias}: complex tensors cannot be written as JSON")
    else:
        flat = array.ravel().tolist()
    return _unflatten(flat, array.shape)


def _unflatten(flat: list, shape: tuple[int, ...]):
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return flat
    step = math.prod(shape[1:])
    return [_unflatten(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def encode_response(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    """{"predictions": ...} for the row format, {"outputs": ...} for the columnar format."""
    aliases = sorted(outputs)
    if not row_format:
        if len(aliases) == 1:
            return {"outputs": _json_value(outputs[aliases[0]], aliases[0])}
        return {"outputs": {a: _json_value(outputs[a], a) for a in aliases}}
    if len(aliases) == 1:
        return {"predictions": _json_value(outputs[aliases[0]], aliases[0])}
    batch = {outputs[a].shape[0] if outputs[a].ndim else None for a in aliases}
    if len(batch) != 1 or None in batch:
        raise invalid_argument("Output tensors have different batch sizes (or are scalars): use "
                               "the columnar 'inputs' format for this signature")
    (rows,) = batch
    assert rows is not None  # not a scalar: checked above
    columns = {a: _json_value(outputs[a], a) for a in aliases}
    return {"predictions": [{a: columns[a][i] for a in aliases} for i in range(rows)]}


def dumps(value) -> bytes:
    """JSON text with Raw numbers written verbatim."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts).encode()


def _write(value, out: list[str]) -> None:
    if isinstance(value, Raw):
        out.append(str.__str__(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        out.append(json.dumps(value))
