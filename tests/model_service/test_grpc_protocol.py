"""gRPC's wire rules: request headers, timeouts, message framing, compression, status trailers."""

from __future__ import annotations

import gzip
import struct
import zlib

import grpc
import pytest

from model_server import grpc_protocol
from model_server.grpc_protocol import CallError, HttpError

HEADERS = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/pkg.Svc/Method"),
           (b"content-type", b"application/grpc"), (b"te", b"trailers")]


def with_header(name: bytes, value: bytes | None) -> list[tuple[bytes, bytes]]:
    kept = [(n, v) for n, v in HEADERS if n != name]
    return kept if value is None else [*kept, (name, value)]


def test_a_plain_call():
    call = grpc_protocol.parse_call(HEADERS)
    assert (call.path, call.timeout, call.encoding) == ("/pkg.Svc/Method", None, b"identity")


@pytest.mark.parametrize("content_type", [b"application/grpc+proto", b"application/grpc;x=y"])
def test_content_type_variants_are_grpc(content_type):
    grpc_protocol.parse_call(with_header(b"content-type", content_type))


@pytest.mark.parametrize(("name", "value", "status"), [
    (b":method", b"GET", 405),
    (b"content-type", b"text/plain", 415),
    (b"content-type", None, 415),
    (b"content-type", b"application/grpcweb", 415),
])
def test_requests_that_are_not_grpc_get_http_statuses(name, value, status):
    with pytest.raises(HttpError) as raised:
        grpc_protocol.parse_call(with_header(name, value))
    assert raised.value.status == status


def test_unknown_compression_is_unimplemented():
    with pytest.raises(CallError) as raised:
        grpc_protocol.parse_call(with_header(b"grpc-encoding", b"snappy"))
    assert raised.value.code is grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(("value", "seconds"), [
    (b"1H", 3600.0), (b"2M", 120.0), (b"3S", 3.0), (b"250m", 0.25), (b"7u", 7e-6),
    (b"9n", 9e-9), (b"12345678S", 12345678.0),
    (b"", None), (b"123456789S", None), (b"10", None), (b"-1S", None), (b"1.5S", None),
    (b"1s", None),
])
def test_grpc_timeout(value, seconds):
    parsed = grpc_protocol.parse_timeout(value)
    if seconds is None:
        assert parsed is None
    else:
        assert parsed == pytest.approx(seconds)


def framed(message: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(message)) + message


def test_unary_message_is_a_view_of_the_body():
    body = bytearray(framed(b"hello"))
    message = grpc_protocol.unary_message(body, b"identity")
    assert bytes(message) == b"hello" and message.obj is body


@pytest.mark.parametrize(("body", "code"), [
    (b"", grpc.StatusCode.INTERNAL),
    (b"\x00\x00\x00", grpc.StatusCode.INTERNAL),
    (framed(b"hello")[:-1], grpc.StatusCode.INTERNAL),
    (framed(b"one") + framed(b"two"), grpc.StatusCode.UNIMPLEMENTED),
    (framed(b"x", flag=2), grpc.StatusCode.INTERNAL),
    (framed(b"not compressed", flag=1), grpc.StatusCode.INTERNAL),
])
def test_malformed_bodies_are_statuses(body, code):
    with pytest.raises(CallError) as raised:
        grpc_protocol.unary_message(body, b"identity")
    assert raised.value.code is code


@pytest.mark.parametrize(("encoding", "compress"), [
    (b"gzip", gzip.compress), (b"deflate", zlib.compress)])
def test_compressed_messages_inflate(encoding, compress):
    assert bytes(grpc_protocol.unary_message(framed(compress(b"leaf" * 100), flag=1),
                                             encoding)) == b"leaf" * 100


def test_a_corrupt_compressed_message_is_internal():
    with pytest.raises(CallError) as raised:
        grpc_protocol.unary_message(framed(b"\x1f\x8b not gzip", flag=1), b"gzip")
    assert raised.value.code is grpc.StatusCode.INTERNAL


def test_status_trailers_percent_encode_the_message():
    trailers = dict(grpc_protocol.status_trailers(grpc.StatusCode.NOT_FOUND, "100% fünf\n"))
    assert trailers == {b"grpc-status": b"5", b"grpc-message": b"100%25 f%C3%BCnf%0A"}


def test_an_error_reply_is_trailers_only():
    reply = dict(grpc_protocol.error_reply(grpc.StatusCode.UNAVAILABLE, "no model"))
    assert reply[b":status"] == b"200" and reply[b"content-type"] == b"application/grpc"
    assert reply[b"grpc-status"] == b"14" and reply[b"grpc-message"] == b"no model"
