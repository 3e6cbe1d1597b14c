"""grpcio's server as the model server runs it: hostile clients on raw sockets (each followed by a
good Predict), compression, deadlines, concurrency, and the limits a client cannot get past."""

from __future__ import annotations

import select
import socket
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.model_service.clients import GREY_IMAGE, output_of, predict, predict_request
from tests.support.model_server import RunningModelServer, start_model_server
from tests.support.paths import SEED_MODEL_BASE_PATH, SEED_MODEL_NAME
from tests.support.sockets import read_until_closed

pytestmark = pytest.mark.slow
TIMEOUT = 10.0
PREDICT = b"/tensorflow.serving.PredictionService/Predict"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
INITIAL_WINDOW = 65_535
MAX_FRAME = 16_384


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags])
            + stream_id.to_bytes(4, "big") + payload)


def literal_header_block(headers: list[tuple[bytes, bytes]]) -> bytes:
    """HPACK literals without indexing or Huffman coding (RFC 7541 6.2.2), which every decoder
    reads; short strings only (7-bit lengths)."""
    block = b""
    for name, value in headers:
        assert len(name) < 127 and len(value) < 127
        block += b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    return block


STATIC_STATUS_200 = 0x88  # HPACK static table entry 8, ":status: 200"


def read_header_block(block: bytes) -> dict[bytes, bytes]:
    """The headers of a block as gRPC core writes them for one call: `:status: 200` from the
    static table and literals with new names, without Huffman coding (RFC 7541 6.1, 6.2). Any
    other representation fails loudly instead of being misread."""
    headers, position = {}, 0
    while position < len(block):
        if block[position] == STATIC_STATUS_200:
            headers[b":status"] = b"200"
            position += 1
            continue
        assert block[position] in (0x00, 0x10, 0x40), f"unexpected HPACK: {block[position:]!r}"
        strings = []
        position += 1
        for _ in range(2):
            length = block[position]
            assert length < 127, "Huffman-coded or long string"
            strings.append(block[position + 1:position + 1 + length])
            position += 1 + length
        headers[strings[0]] = strings[1]
    return headers


def frame_kinds(data: bytes) -> list[int]:
    kinds, position = [], 0
    while position + 9 <= len(data):
        kinds.append(data[position + 3])
        position += 9 + int.from_bytes(data[position:position + 3], "big")
    return kinds


class RawGrpcCall:
    """One gRPC call on stream 1 of a plain socket: request bytes exactly as given (a message
    compressed by the test, half a message), HTTP/2 flow control honoured, the reply read back."""

    def __init__(self, port: int, *extra_headers: tuple[bytes, bytes]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.connection_window = self.stream_window = INITIAL_WINDOW
        self.reply: dict[bytes, bytes] = {}
        self.ended = False  # the server ended the stream (trailers or RST_STREAM)
        self.kinds: list[int] = []  # of every frame received
        self._buffer = b""
        headers = literal_header_block([
            (b":method", b"POST"), (b":scheme", b"http"), (b":path", PREDICT),
            (b":authority", b"127.0.0.1"), (b"content-type", b"application/grpc"),
            (b"te", b"trailers"), *extra_headers])
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS, 1, headers))

    def __enter__(self) -> RawGrpcCall:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()

    def send(self, data: bytes, end_stream: bool = True) -> None:
        """DATA frames as the windows allow; stops early if the server ends the stream."""
        sent = 0
        while sent < len(data) and not self.ended:
            size = min(MAX_FRAME, len(data) - sent, self.connection_window, self.stream_window)
            if size <= 0:
                self._receive(block=True)
                continue
            last = end_stream and sent + size == len(data)
            self.sock.sendall(frame(DATA, END_STREAM if last else 0, 1, data[sent:sent + size]))
            sent += size
            self.connection_window -= size
            self.stream_window -= size
            self._receive(block=False)

    def cancel(self) -> None:
        """RST_STREAM with CANCEL (0x8): what a client's cancel sends, after every frame sent."""
        self.sock.sendall(frame(RST_STREAM, 0, 1, (0x8).to_bytes(4, "big")))

    def wait_for_reply(self) -> dict[bytes, bytes]:
        while not self.ended:
            assert self._receive(block=True), "the server closed the connection"
        return self.reply

    def wait_until_closed(self, timeout: float) -> list[int]:
        """The kinds of all frames received once the server has closed the connection."""
        self.sock.settimeout(timeout)
        try:
            while self._receive(block=True):
                pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            raise AssertionError(f"the server kept the connection open for {timeout} s") from None
        return self.kinds

    def _receive(self, block: bool) -> bool:
        if not block and not select.select([self.sock], [], [], 0)[0]:
            return True
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self._buffer += chunk
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < 9 + length:
                break
            kind, flags = self._buffer[3], self._buffer[4]
            stream_id = int.from_bytes(self._buffer[5:9], "big")
            payload, self._buffer = self._buffer[9:9 + length], self._buffer[9 + length:]
            self.kinds.append(kind)
            self._handle(kind, flags, stream_id, payload)
        return True

    def _handle(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if kind == SETTINGS and not flags & ACK:
            self.sock.sendall(frame(SETTINGS, ACK, 0))
            for offset in range(0, len(payload), 6):
                if int.from_bytes(payload[offset:offset + 2], "big") == 0x4:  # INITIAL_WINDOW
                    self.stream_window += (int.from_bytes(payload[offset + 2:offset + 6], "big")
                                           - INITIAL_WINDOW)
        elif kind == WINDOW_UPDATE:
            increment = int.from_bytes(payload, "big") & 0x7FFF_FFFF
            if stream_id == 0:
                self.connection_window += increment
            else:
                self.stream_window += increment
        elif kind == PING and not flags & ACK:
            self.sock.sendall(frame(PING, ACK, 0, payload))
        elif kind == HEADERS and stream_id == 1:
            self.reply.update(read_header_block(payload))
            self.ended = self.ended or bool(flags & END_STREAM)
        elif kind == RST_STREAM and stream_id == 1:
            self.ended = True


def grpc_message(payload: bytes, compressed: bool = False) -> bytes:
    return bytes([compressed]) + len(payload).to_bytes(4, "big") + payload


def gzip_of_zeros(size_mib: int) -> bytes:
    """A valid gzip stream of `size_mib` MiB of zeros, about 1 KB per MiB, built from one
    compressed MiB: after a full flush deflate's output for the same block repeats exactly."""
    block = bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    repeated = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    last_block = deflate.flush(zlib.Z_FINISH)[:-8]  # without the trailer of 2 MiB
    crc = 0
    for _ in range(size_mib):
        crc = zlib.crc32(block, crc)
    trailer = crc.to_bytes(4, "little") + ((size_mib << 20) & 0xFFFF_FFFF).to_bytes(4, "little")
    return first + repeated * (size_mib - 1) + last_block + trailer


@pytest.fixture(scope="module")
def expected(prediction_stub) -> np.ndarray:
    """The grey image's prediction, through grpcio before any hostile client."""
    return predict(prediction_stub, GREY_IMAGE)


@pytest.fixture
def still_serves(prediction_stub, expected):
    def check() -> None:
        np.testing.assert_array_equal(predict(prediction_stub, GREY_IMAGE), expected)
    return check


# -- hostile clients -----------------------------------------------------------------------------

def test_garbage_bytes_get_the_connection_closed(seed_model_server, still_serves):
    with socket.create_connection(("127.0.0.1", seed_model_server.grpc_port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 64)
        read_until_closed(sock, TIMEOUT)
    still_serves()


def test_garbage_frames_after_a_valid_preface_get_the_connection_closed(seed_model_server,
                                                                         still_serves):
    with socket.create_connection(("127.0.0.1", seed_model_server.grpc_port)) as sock:
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(SETTINGS, 0, 0, b"junk!")
                     + frame(DATA, 0, 0, b"data on stream zero"))
        assert frame_kinds(read_until_closed(sock, TIMEOUT))[0] == SETTINGS
    still_serves()


PREDICT_MESSAGE = grpc_message(predict_request(GREY_IMAGE).SerializeToString())


def test_a_client_stalled_mid_request_does_not_hold_up_others(seed_model_server, still_serves,
                                                              expected):
    with RawGrpcCall(seed_model_server.grpc_port) as stalled:
        stalled.send(PREDICT_MESSAGE[:1000], end_stream=False)  # and then nothing for a while
        with grpc.insecure_channel(seed_model_server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for _ in range(3):
                np.testing.assert_array_equal(predict(stub, GREY_IMAGE), expected)
        stalled.send(PREDICT_MESSAGE[1000:])  # the stalled client resumes and is answered
        assert stalled.wait_for_reply()[b"grpc-status"] == b"0"
    still_serves()


def test_a_client_that_disconnects_mid_call(seed_model_server, still_serves):
    """One drops its socket right after sending a whole request, one cancels a large call in
    flight: neither disturbs the next calls."""
    with RawGrpcCall(seed_model_server.grpc_port) as gone:
        gone.send(PREDICT_MESSAGE)
    big = grpc_message(predict_request(np.repeat(GREY_IMAGE, 32, axis=0)).SerializeToString())
    with RawGrpcCall(seed_model_server.grpc_port) as cancelled:
        # The whole request, then the cancel behind it on the same connection: the server has
        # the call (HTTP/2 frames arrive in order) and gets the cancel while working on it.
        cancelled.send(big)
        cancelled.cancel()
    still_serves()


# -- compression, deadlines, concurrency ---------------------------------------------------------

def test_gzip_request_equals_the_uncompressed_one(prediction_stub, expected):
    reply = prediction_stub.Predict(predict_request(GREY_IMAGE), timeout=30,
                                    compression=grpc.Compression.Gzip)
    np.testing.assert_array_equal(output_of(reply), expected)


def test_call_whose_deadline_passes_mid_flight_does_not_disturb_later_calls(
        prediction_stub, still_serves):
    big = predict_request(np.repeat(GREY_IMAGE, 64, axis=0))
    with pytest.raises(grpc.RpcError) as caught:
        prediction_stub.Predict(big, timeout=0.02)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    for _ in range(3):
        still_serves()


def test_concurrent_calls_on_one_channel_get_their_own_results(prediction_stub):
    batches = [np.full_like(GREY_IMAGE, i / 16) for i in range(16)]
    wanted = [predict(prediction_stub, batch) for batch in batches]

    def five_calls(index: int) -> list[np.ndarray]:
        return [predict(prediction_stub, batches[index]) for _ in range(5)]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(five_calls, range(16)))
    for index, outputs in enumerate(results):
        for output in outputs:
            np.testing.assert_array_equal(output, wanted[index])


# -- limits (issue 14): a server of our own with small limits --------------------------------------

def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class PeakRss:
    """Samples a process's RSS every 5 ms in a thread while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __enter__(self) -> PeakRss:
        self.before = rss_mib(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def limited_server(logs_dir: Path) -> Iterator[RunningModelServer]:
    """The default message limit, and idle / age / stream limits short enough to watch act."""
    server = start_model_server(
        SEED_MODEL_NAME, SEED_MODEL_BASE_PATH, logs_dir,
        "--grpc_channel_arguments=grpc.max_connection_idle_ms=1000,"
        "grpc.server_handshake_timeout_ms=1000,grpc.max_connection_age_ms=2000,"
        "grpc.max_connection_age_grace_ms=1000,grpc.max_concurrent_streams=2")
    yield server
    server.stop()


def test_gzip_bomb_is_refused_without_inflating_it(seed_model_server, still_serves):
    """1 GiB of zeros as a 1 MB gzip message: refused with RESOURCE_EXHAUSTED once inflating
    passes the 32 MiB default, and the server's memory grows by about that, not by a gigabyte
    (with TF Serving's 2 GiB limit it inflates all of it)."""
    bomb = grpc_message(gzip_of_zeros(1024), compressed=True)
    with PeakRss(seed_model_server.process.proc.pid) as memory, \
            RawGrpcCall(seed_model_server.grpc_port, (b"grpc-encoding", b"gzip")) as call:
        call.send(bomb)
        reply = call.wait_for_reply()
    assert reply[b"grpc-status"] == b"8", reply  # RESOURCE_EXHAUSTED
    assert memory.peak - memory.before < 200, (memory.before, memory.peak)
    still_serves()


def test_gzip_message_over_the_limit_from_grpcio(seed_model_server, still_serves):
    """The same limit as a grpcio client sees it: 64 MiB of zeros, compressed by the client."""
    with grpc.insecure_channel(seed_model_server.grpc_target) as channel:
        call = channel.unary_unary(PREDICT.decode())
        with pytest.raises(grpc.RpcError) as caught:
            call(bytes(64 << 20), timeout=60, compression=grpc.Compression.Gzip)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    still_serves()


def test_a_message_over_the_limit_is_refused_and_one_under_it_served(seed_model_server):
    over = predict_request(np.zeros((160, 150, 150, 3), np.float32))  # 43 MB > 32 MiB
    with grpc.insecure_channel(seed_model_server.grpc_target,
                               options=[("grpc.max_send_message_length", -1)]) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(over, timeout=60)
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        under = np.zeros((100, 150, 150, 3), np.float32)  # 27 MB
        assert predict(stub, under).shape[0] == 100


def test_idle_and_half_open_connections_are_closed(limited_server):
    port = limited_server.grpc_port
    with socket.create_connection(("127.0.0.1", port)) as silent, \
            socket.create_connection(("127.0.0.1", port)) as idle:
        idle.sendall(PREFACE + frame(SETTINGS, 0, 0))  # a connection, then no call
        read_until_closed(silent, 6)
        assert GOAWAY in frame_kinds(read_until_closed(idle, 6))


def test_a_stalled_stream_ends_with_the_connection_age(limited_server):
    with RawGrpcCall(limited_server.grpc_port) as stalled:
        stalled.send(PREDICT_MESSAGE[:1000], end_stream=False)
        assert GOAWAY in stalled.wait_until_closed(8)


def test_settings_announce_the_concurrent_stream_limit(limited_server):
    with socket.create_connection(("127.0.0.1", limited_server.grpc_port)) as sock:
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        sock.settimeout(TIMEOUT)
        data = b""
        while len(data) < 9 or len(data) < 9 + int.from_bytes(data[:3], "big"):
            data += sock.recv(65536)
    assert data[3] == SETTINGS
    payload = data[9:9 + int.from_bytes(data[:3], "big")]
    settings = {int.from_bytes(payload[i:i + 2], "big"): int.from_bytes(payload[i + 2:i + 6], "big")
                for i in range(0, len(payload), 6)}
    assert settings[0x3] == 2  # SETTINGS_MAX_CONCURRENT_STREAMS
