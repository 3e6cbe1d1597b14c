"""The gRPC server against hostile and odd clients on raw sockets: each gets the answer HTTP/2 and
gRPC prescribe, and afterwards the official grpcio client is still served."""

from __future__ import annotations

import gzip
import socket
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import hpack
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from model_server.http2 import (
    CANCEL,
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    PING,
    PREFACE,
    PROTOCOL_ERROR,
    RST_STREAM,
    SETTINGS,
    frame,
)
from tests.model_service.clients import GREY_IMAGE, output_of, predict, predict_request
from tests.model_service.frames import Frame, take_frames
from tests.support.model_server import RunningModelServer

pytestmark = pytest.mark.slow
TIMEOUT = 10.0
PREDICT = "/tensorflow.serving.PredictionService/Predict"


def grpc_headers(path: str = PREDICT, **extra: str) -> list[tuple[str, str]]:
    headers = [(":method", "POST"), (":scheme", "http"), (":path", path),
               (":authority", "127.0.0.1"), ("content-type", "application/grpc"),
               ("te", "trailers")]
    return headers + [(name.replace("_", "-"), value) for name, value in extra.items()]


def grpc_message(payload: bytes, compressed: bool = False) -> bytes:
    return bytes([compressed]) + len(payload).to_bytes(4, "big") + payload


PREDICT_PAYLOAD = predict_request(GREY_IMAGE).SerializeToString()


class RawClient:
    """An HTTP/2 client on a plain socket: frames in by hand, frames and header blocks out."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.frames: list[Frame] = []
        self.headers: dict[int, dict[bytes, bytes]] = {}  # every header block of a stream
        self.closed = False
        self._buffer = bytearray()
        self._block = bytearray()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def start(self) -> None:
        """Preface and empty SETTINGS; waits for the server's SETTINGS, as a client must before
        it uses the server's larger windows."""
        self.send(PREFACE + frame(SETTINGS, 0, 0))
        self.read_until(lambda: any(item.kind == SETTINGS and not item.flags
                                    for item in self.frames))

    def header_block(self, headers: list[tuple[str, str]]) -> bytes:
        return self.encoder.encode(headers)

    def request(self, stream_id: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """HEADERS, then the body in DATA frames of the default maximum size."""
        wire = frame(HEADERS, END_HEADERS | (0 if body else END_STREAM), stream_id,
                     self.header_block(headers))
        for offset in range(0, len(body), 16_384):
            chunk = body[offset:offset + 16_384]
            wire += frame(DATA, END_STREAM if offset + len(chunk) == len(body) else 0,
                          stream_id, chunk)
        self.send(wire)

    def reply(self, stream_id: int) -> tuple[dict[bytes, bytes], bytes]:
        """The stream's headers (trailers merged in) and its DATA, once the server ends it."""
        self.read_until(lambda: any(item.stream_id == stream_id and item.flags & END_STREAM
                                    and item.kind in (HEADERS, DATA) for item in self.frames))
        data = b"".join(item.payload for item in self.frames
                        if item.kind == DATA and item.stream_id == stream_id)
        return self.headers.get(stream_id, {}), data

    def read_until(self, done: Callable[[], bool]) -> None:
        while not done():
            assert not self.closed, f"the server closed the connection; frames: {self.frames}"
            self._receive()

    def read_until_closed(self) -> list[Frame]:
        while not self.closed:
            self._receive()
        return self.frames

    def _receive(self) -> None:
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            return
        self._buffer += chunk
        frames, used = take_frames(self._buffer)
        for item in frames:
            self.frames.append(item)
            if item.kind in (HEADERS, CONTINUATION):
                self._block += item.payload
                if item.flags & END_HEADERS:
                    decoded = self.decoder.decode(bytes(self._block), raw=True)
                    self.headers.setdefault(item.stream_id, {}).update(decoded)
                    self._block.clear()
        del self._buffer[:used]


def goaway_code(frames: list[Frame]) -> int:
    goaways = [item for item in frames if item.kind == GOAWAY]
    assert len(goaways) == 1, frames
    return int.from_bytes(goaways[0].payload[4:8], "big")


def raw_call(port: int, headers: list[tuple[str, str]], body: bytes,
             ) -> tuple[dict[bytes, bytes], bytes]:
    with RawClient(port) as client:
        client.start()
        client.request(1, headers, body)
        return client.reply(1)


@pytest.fixture(scope="module")
def port(seed_model_server: RunningModelServer) -> int:
    return seed_model_server.grpc_port


@pytest.fixture(scope="module")
def expected(prediction_stub) -> np.ndarray:
    """The grey image's prediction, through grpcio before any hostile client."""
    return predict(prediction_stub, GREY_IMAGE)


# -- hostile clients: each case does its thing and checks the server's immediate answer ----------

def not_http2(port: int, still_serves: Callable[[], None]) -> None:
    with RawClient(port) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert goaway_code(client.read_until_closed()) == PROTOCOL_ERROR


def truncated_preface_then_close(port: int, still_serves: Callable[[], None]) -> None:
    with RawClient(port) as client:
        client.send(PREFACE[:10])
        client.sock.shutdown(socket.SHUT_WR)
        assert GOAWAY not in {item.kind for item in client.read_until_closed()}


def garbage_frame(port: int, still_serves: Callable[[], None]) -> None:
    with RawClient(port) as client:
        client.start()
        client.send(frame(SETTINGS, 0, 0, b"junk!"))  # not a whole number of 6-byte settings
        assert goaway_code(client.read_until_closed()) == FRAME_SIZE_ERROR


def garbage_hpack(port: int, still_serves: Callable[[], None]) -> None:
    with RawClient(port) as client:
        client.start()
        client.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xbf\xff\xff\x00\x05ab"))
        assert goaway_code(client.read_until_closed()) == COMPRESSION_ERROR


def data_on_stream_zero(port: int, still_serves: Callable[[], None]) -> None:
    with RawClient(port) as client:
        client.start()
        client.send(frame(DATA, 0, 0, b"hello"))
        assert goaway_code(client.read_until_closed()) == PROTOCOL_ERROR


def huge_frame_length(port: int, still_serves: Callable[[], None]) -> None:
    """A frame that announces 16 MiB and never comes: the server waits; others are served."""
    with RawClient(port) as client:
        client.start()
        client.send(b"\xff\xff\xff" + bytes([DATA, 0]) + (1).to_bytes(4, "big") + bytes(1000))
        still_serves()
        client.sock.shutdown(socket.SHUT_WR)
        assert GOAWAY not in {item.kind for item in client.read_until_closed()}


def huge_header_block_in_one_frame(port: int, still_serves: Callable[[], None]) -> None:
    """100 KB of HPACK table-size updates (they decode to no header at all) in one HEADERS
    frame: refused by size, not decoded at ~1 us a byte while holding the GIL."""
    with RawClient(port) as client:
        client.start()
        client.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x20" * 100_000))
        assert goaway_code(client.read_until_closed()) == ENHANCE_YOUR_CALM


def ping_flood(port: int, still_serves: Callable[[], None]) -> None:
    """10,000 PINGs, replies left unread while another client is served; then every ACK, in
    order."""
    with RawClient(port) as client:
        client.start()
        client.send(b"".join(frame(PING, 0, 0, number.to_bytes(8, "big"))
                             for number in range(10_000)))
        still_serves()
        client.read_until(lambda: sum(item.kind == PING for item in client.frames) == 10_000)
        acks = [item for item in client.frames if item.kind == PING]
        assert all(item.flags == 1 for item in acks)
        assert [int.from_bytes(item.payload, "big") for item in acks] == list(range(10_000))


def rapid_reset(port: int, still_serves: Callable[[], None]) -> None:
    """500 streams opened and reset at once; the connection still answers a call after."""
    with RawClient(port) as client:
        client.start()
        client.send(b"".join(
            frame(HEADERS, END_HEADERS, stream_id, client.header_block(grpc_headers()))
            + frame(RST_STREAM, 0, stream_id, CANCEL.to_bytes(4, "big"))
            for stream_id in range(1, 1000, 2)))
        client.request(1001, grpc_headers(), grpc_message(PREDICT_PAYLOAD))
        headers, _ = client.reply(1001)
        assert headers[b"grpc-status"] == b"0"
        assert {item.stream_id for item in client.frames if item.stream_id} == {1001}


def http_status(status: bytes, headers: list[tuple[str, str]]) -> Callable[..., None]:
    def case(port: int, still_serves: Callable[[], None]) -> None:
        reply, _ = raw_call(port, headers, grpc_message(PREDICT_PAYLOAD))
        assert reply[b":status"] == status
        assert b"grpc-status" not in reply
    return case


def grpc_status(code: grpc.StatusCode, headers: list[tuple[str, str]], body: bytes,
                ) -> Callable[..., None]:
    def case(port: int, still_serves: Callable[[], None]) -> None:
        reply, data = raw_call(port, headers, body)
        assert reply[b":status"] == b"200"
        assert reply[b"grpc-status"] == str(code.value[0]).encode(), reply
        assert data == b""
    return case


text_plain = http_status(b"415", [*grpc_headers()[:4], ("content-type", "text/plain")])
get_method = http_status(b"405", [(":method", "GET"), *grpc_headers()[1:]])
unknown_method = grpc_status(grpc.StatusCode.UNIMPLEMENTED,
                             grpc_headers("/tensorflow.serving.PredictionService/Nope"),
                             grpc_message(PREDICT_PAYLOAD))
truncated_prefix = grpc_status(grpc.StatusCode.INTERNAL, grpc_headers(), b"\x00\x00\x00")
compressed_without_encoding = grpc_status(
    grpc.StatusCode.INTERNAL, grpc_headers(), grpc_message(gzip.compress(PREDICT_PAYLOAD), True))
timeout_of_1n = grpc_status(grpc.StatusCode.DEADLINE_EXCEEDED, grpc_headers(grpc_timeout="1n"),
                            grpc_message(PREDICT_PAYLOAD))


HOSTILE = {case.__name__: case for case in (
    not_http2, truncated_preface_then_close, garbage_frame, garbage_hpack, data_on_stream_zero,
    huge_frame_length, huge_header_block_in_one_frame, ping_flood, rapid_reset)}
HOSTILE.update(text_plain=text_plain, get_method=get_method, unknown_method=unknown_method,
               truncated_prefix=truncated_prefix,
               compressed_without_encoding=compressed_without_encoding,
               timeout_of_1n=timeout_of_1n)


@pytest.mark.parametrize("case", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_client_is_answered_and_the_server_keeps_serving(case, port, prediction_stub,
                                                                 expected):
    def still_serves() -> None:
        np.testing.assert_array_equal(predict(prediction_stub, GREY_IMAGE), expected)

    started = time.monotonic()
    case(port, still_serves)
    still_serves()
    assert time.monotonic() - started < 5


# -- compression ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress),
                                                    ("deflate", zlib.compress)])
def test_compressed_request_by_hand_is_inflated(encoding, compress, port, expected):
    headers, data = raw_call(port, grpc_headers(grpc_encoding=encoding),
                             grpc_message(compress(PREDICT_PAYLOAD), compressed=True))
    assert headers[b"grpc-status"] == b"0"
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == len(data) - 5
    np.testing.assert_array_equal(output_of(predict_pb2.PredictResponse.FromString(data[5:])),
                                  expected)


def test_gzip_request_from_grpcio_equals_the_uncompressed_one(prediction_stub, expected):
    reply = prediction_stub.Predict(predict_request(GREY_IMAGE), timeout=30,
                                    compression=grpc.Compression.Gzip)
    np.testing.assert_array_equal(output_of(reply), expected)


# -- grpcio under load and trouble ---------------------------------------------------------------

def test_concurrent_calls_on_one_channel_get_their_own_results(prediction_stub):
    values = [i / 16 for i in range(16)]
    batches = [np.full_like(GREY_IMAGE, value) for value in values]
    wanted = [predict(prediction_stub, batch) for batch in batches]

    def five_calls(index: int) -> list[np.ndarray]:
        return [predict(prediction_stub, batches[index]) for _ in range(5)]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(five_calls, range(16)))
    for index, outputs in enumerate(results):
        for output in outputs:
            np.testing.assert_array_equal(output, wanted[index])


def test_call_whose_deadline_passes_mid_flight_does_not_disturb_later_calls(
        prediction_stub, expected):
    big = predict_request(np.repeat(GREY_IMAGE, 64, axis=0))
    with pytest.raises(grpc.RpcError) as caught:
        prediction_stub.Predict(big, timeout=0.02)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    for _ in range(3):
        np.testing.assert_array_equal(predict(prediction_stub, GREY_IMAGE), expected)


def test_second_channel_is_served_while_a_client_stalls_mid_request(port, seed_model_server,
                                                                     expected):
    body = grpc_message(PREDICT_PAYLOAD)
    half = len(body) // 2
    with RawClient(port) as stalled:
        stalled.start()
        stalled.send(frame(HEADERS, END_HEADERS, 1, stalled.header_block(grpc_headers()))
                     + frame(DATA, 0, 1, body[:half]))
        with grpc.insecure_channel(seed_model_server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for _ in range(3):
                np.testing.assert_array_equal(predict(stub, GREY_IMAGE), expected)
        stalled.send(frame(DATA, END_STREAM, 1, body[half:]))  # the stalled client resumes
        headers, data = stalled.reply(1)
    assert headers[b"grpc-status"] == b"0"
    np.testing.assert_array_equal(output_of(predict_pb2.PredictResponse.FromString(data[5:])),
                                  expected)
