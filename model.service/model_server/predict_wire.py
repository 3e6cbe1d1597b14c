"""Take the tensor_content bytes out of a serialized PredictRequest without copying them.

A single-image Predict is 270 KB, almost all of it one `tensor_content` field. Parsing with protobuf
copies it into the message and reading the field copies it again; on a machine whose caches
TensorFlow has just flushed each copy costs ~30 us. This walks the wire format (protobuf encoding
docs) for the canonical layout every protobuf library writes, returns the request without those
fields (a few hundred bytes to parse) plus a view of each input's bytes. Anything unusual (repeated
fields that protobuf would merge, groups, bad varints) returns None, and the caller parses the plain
way, so the result is always what protobuf itself would make of the bytes.
"""

from __future__ import annotations

INPUTS_FIELD = 2  # PredictRequest.inputs: map<string, TensorProto>
ENTRY_KEY, ENTRY_VALUE = 1, 2  # map entry fields
TENSOR_CONTENT_FIELD = 4  # TensorProto.tensor_content
_LENGTH_DELIMITED = 2


class _Unusual(Exception):
    pass


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise _Unusual
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fields(data: memoryview, start: int, end: int):
    """(field number, wire type, field start, value start, value end) of each field."""
    position = start
    while position < end:
        field_start = position
        tag, position = _varint(data, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            _, position = _varint(data, position)
            value_start = value_end = position
        elif wire_type == 1:
            value_start, value_end = position, position + 8
        elif wire_type == _LENGTH_DELIMITED:
            length, value_start = _varint(data, position)
            value_end = value_start + length
        elif wire_type == 5:
            value_start, value_end = position, position + 4
        else:  # groups (3, 4) or garbage
            raise _Unusual
        if value_end > end or not number:
            raise _Unusual
        position = value_end
        yield number, wire_type, field_start, value_start, value_end


def split_tensor_content(payload: memoryview | bytes) -> tuple[bytes, dict[str, memoryview]] | None:
    """(request without inputs' tensor_content, {alias: view of that input's tensor_content}), or
    None when the request is not in the canonical layout this handles."""
    data = memoryview(payload)
    try:
        return _split(data)
    except (_Unusual, UnicodeDecodeError):
        return None


def _split(data: memoryview) -> tuple[bytes, dict[str, memoryview]]:
    out = bytearray()
    contents: dict[str, memoryview] = {}
    for number, wire_type, field_start, value_start, value_end in _fields(data, 0, len(data)):
        if number != INPUTS_FIELD or wire_type != _LENGTH_DELIMITED:
            out += data[field_start:value_end]
            continue
        entry = bytearray()
        key = content = None
        values = 0
        for e_number, e_type, e_start, e_value_start, e_end in _fields(data, value_start,
                                                                       value_end):
            if e_number == ENTRY_KEY and e_type == _LENGTH_DELIMITED:
                if key is not None:
                    raise _Unusual
                key = str(data[e_value_start:e_end], "utf-8")
                entry += data[e_start:e_end]
            elif e_number == ENTRY_VALUE and e_type == _LENGTH_DELIMITED:
                values += 1
                tensor = bytearray()
                for t_number, t_type, t_start, t_value_start, t_end in _fields(
                        data, e_value_start, e_end):
                    if t_number == TENSOR_CONTENT_FIELD and t_type == _LENGTH_DELIMITED:
                        if content is not None:
                            raise _Unusual
                        content = data[t_value_start:t_end]
                    else:
                        tensor += data[t_start:t_end]
                entry += bytes((ENTRY_VALUE << 3 | _LENGTH_DELIMITED,))
                entry += _encode_varint(len(tensor)) + tensor
            else:
                entry += data[e_start:e_end]
        if key is None or values != 1 or key in contents:
            raise _Unusual  # protobuf would merge or default these: leave it to protobuf
        if content is not None and len(content):
            contents[key] = content
        out += bytes((INPUTS_FIELD << 3 | _LENGTH_DELIMITED,))
        out += _encode_varint(len(entry)) + entry
    return bytes(out), contents
