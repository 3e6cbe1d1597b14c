"""gRPC over HTTP/2, the wire rules (grpc/doc/PROTOCOL-HTTP2.md): pure functions, no I/O.

Request headers → a checked call; length-prefixed messages in and out; status as trailers.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

import grpc

CONTENT_TYPE = b"application/grpc"
ACCEPT_ENCODING = b"identity,deflate,gzip"
# What a unary request may carry before it is refused (TF Serving: INT_MAX, as here).
MAX_MESSAGE_BYTES = 2**31 - 1
MAX_REQUEST_BODY = MAX_MESSAGE_BYTES + 5  # one message and its length prefix

_PREFIX = struct.Struct(">BI")
_TIMEOUT = re.compile(rb"(\d{1,8})([HMSmun])")
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
_INFLATE_WBITS = {b"deflate": zlib.MAX_WBITS, b"gzip": 16 + zlib.MAX_WBITS}


class CallError(Exception):
    """The call fails with a gRPC status, before or instead of the method."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class HttpError(Exception):
    """Not a gRPC request at all: answer with a plain HTTP status (PROTOCOL-HTTP2.md)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class Call:
    path: str
    timeout: float | None  # seconds, from grpc-timeout
    encoding: bytes  # grpc-encoding of the request message
    request_id: bytes | None = None  # x-request-id metadata (monitoring.py logs it)


def parse_call(headers: list[tuple[bytes, bytes]]) -> Call:
    """Check a request's headers; HttpError for a non-gRPC request, CallError for a bad call."""
    method = path = content_type = None
    timeout = None
    encoding = b"identity"
    request_id = None
    for name, value in headers:
        if name == b":method":
            method = value
        elif name == b":path":
            path = value
        elif name == b"content-type":
            content_type = value
        elif name == b"grpc-timeout":
            timeout = parse_timeout(value)
        elif name == b"grpc-encoding":
            encoding = value
        elif name == b"x-request-id":
            request_id = value
    if method != b"POST":
        raise HttpError(405)
    if content_type is None or not (content_type == CONTENT_TYPE
                                    or content_type.startswith(CONTENT_TYPE + b"+")
                                    or content_type.startswith(CONTENT_TYPE + b";")):
        raise HttpError(415)
    if not path:
        raise CallError(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
    if encoding != b"identity" and encoding not in _INFLATE_WBITS:
        raise CallError(grpc.StatusCode.UNIMPLEMENTED,
                        f"Compression algorithm '{encoding.decode('latin-1')}' is not supported")
    return Call(path.decode("latin-1"), timeout, encoding, request_id)


def parse_timeout(value: bytes) -> float | None:
    """grpc-timeout ("100m", "5S", ...) in seconds; None if malformed (as if absent)."""
    match = _TIMEOUT.fullmatch(value)
    if match is None:
        return None
    return int(match[1]) * _TIMEOUT_UNITS[match[2]]


def unary_message(body: bytes | bytearray, encoding: bytes) -> bytes | memoryview:
    """The one length-prefixed message a unary request carries (a view, not a copy: protobuf
    parses views), decompressed if flagged."""
    if len(body) < _PREFIX.size:
        raise CallError(grpc.StatusCode.INTERNAL,
                        "the request carries no message" if not body else
                        "the request's message prefix is truncated")
    compressed, length = _PREFIX.unpack_from(body)
    end = _PREFIX.size + length
    if len(body) < end:
        raise CallError(grpc.StatusCode.INTERNAL, "the request's message is truncated")
    if len(body) > end:
        raise CallError(grpc.StatusCode.UNIMPLEMENTED,
                        "more than one request message for a unary method")
    message = memoryview(body)[_PREFIX.size:end]
    if compressed == 0:
        return message
    if compressed != 1:
        raise CallError(grpc.StatusCode.INTERNAL, "invalid message compression flag")
    wbits = _INFLATE_WBITS.get(encoding)
    if wbits is None:
        raise CallError(grpc.StatusCode.INTERNAL,
                        "compressed message without a grpc-encoding header")
    inflater = zlib.decompressobj(wbits)
    try:
        message = inflater.decompress(message, MAX_MESSAGE_BYTES)
    except zlib.error:
        raise CallError(grpc.StatusCode.INTERNAL,
                        "the request's message does not inflate") from None
    if inflater.unconsumed_tail:
        raise CallError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"Received message larger than max (> {MAX_MESSAGE_BYTES})")
    return message


def frame_message(message: bytes) -> bytes:
    """One uncompressed length-prefixed message."""
    return _PREFIX.pack(0, len(message)) + message


RESPONSE_HEADERS = ((b":status", b"200"), (b"content-type", CONTENT_TYPE),
                    (b"grpc-accept-encoding", ACCEPT_ENCODING))
OK_TRAILERS = ((b"grpc-status", b"0"),)


def status_trailers(code: grpc.StatusCode, message: str = "") -> list[tuple[bytes, bytes]]:
    trailers = [(b"grpc-status", str(code.value[0]).encode())]
    if message:
        trailers.append((b"grpc-message", percent_encode(message)))
    return trailers


def error_reply(code: grpc.StatusCode, message: str) -> list[tuple[bytes, bytes]]:
    """A trailers-only reply: the status rides in the one HEADERS frame."""
    return [*RESPONSE_HEADERS, *status_trailers(code, message)]


def http_error_reply(status: int) -> list[tuple[bytes, bytes]]:
    return [(b":status", str(status).encode()), (b"content-type", b"text/plain")]


def percent_encode(message: str) -> bytes:
    """grpc-message: UTF-8, with bytes outside printable ASCII and '%' as %XX."""
    out = bytearray()
    for byte in message.encode("utf-8"):
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)
