"""http2.ServerConnection without sockets: bytes in; events and the frames it emits checked."""

from __future__ import annotations

import tracemalloc

import grpc
import hpack
import pytest

from model_server import grpc_protocol, http2
from model_server.http2 import (
    ACK,
    CANCEL,
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    NO_ERROR,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    STREAM_CLOSED,
    WINDOW_UPDATE,
    Cancelled,
    ProtocolError,
    Request,
    ServerConnection,
    TooLarge,
    frame,
)
from tests.model_service.frames import Frame, parse_frames

REQUEST_HEADERS = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/tensorflow.serving.PredictionService/Predict"),
    (b":authority", b"127.0.0.1:8500"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]
BODY = b"\x00\x00\x00\x00\x05hello"


def sent(connection: ServerConnection) -> list[Frame]:
    return parse_frames(connection.data_to_send())


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def settings(*pairs: tuple[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(key.to_bytes(2, "big") + u32(value)
                                          for key, value in pairs))


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, u32(increment))


def rst_stream(stream_id: int, code: int = CANCEL) -> bytes:
    return frame(RST_STREAM, 0, stream_id, u32(code))


def block(headers=REQUEST_HEADERS) -> bytes:
    """A first header block on a connection (a fresh encoder: literals, Huffman-coded)."""
    return hpack.Encoder().encode(headers)


def request(stream_id: int, body: bytes = BODY, header_block: bytes | None = None) -> bytes:
    header_block = block() if header_block is None else header_block
    if not body:
        return frame(HEADERS, END_HEADERS | END_STREAM, stream_id, header_block)
    return (frame(HEADERS, END_HEADERS, stream_id, header_block)
            + frame(DATA, END_STREAM, stream_id, body))


def connected(*client_settings: tuple[int, int], **options) -> ServerConnection:
    """A connection past the preface and the client's SETTINGS, with its output drained."""
    connection = ServerConnection(**options)
    assert connection.receive(PREFACE + settings(*client_settings)) == []
    connection.data_to_send()
    return connection


def fails_with(connection: ServerConnection, data: bytes, code: int) -> None:
    """receive(data) raises ProtocolError(code) and queues GOAWAY(code) as the last frame."""
    with pytest.raises(ProtocolError) as caught:
        connection.receive(data)
    assert caught.value.code == code, caught.value
    last = sent(connection)[-1]
    assert last.kind == GOAWAY
    assert int.from_bytes(last.payload[4:8], "big") == code
    assert connection.closing


def requests_of(events: list) -> list[Request]:
    assert all(isinstance(event, Request) for event in events), events
    return events


def decoded(frames: list[Frame]) -> list[list[tuple[bytes, bytes]]]:
    """Each header block (HEADERS + CONTINUATION) decoded by a fresh hpack.Decoder."""
    blocks, current = [], None
    for item in frames:
        if item.kind == HEADERS:
            current = bytearray(item.payload)
        elif item.kind == CONTINUATION:
            current += item.payload
        else:
            continue
        if item.flags & END_HEADERS:
            blocks.append([tuple(field) for field in
                           hpack.Decoder().decode(bytes(current), raw=True)])
    return blocks


def reply_request(connection: ServerConnection, stream_id: int = 1) -> None:
    """Complete one request on stream_id (HEADERS only) and drain the output."""
    assert requests_of(connection.receive(request(stream_id, b"")))
    connection.data_to_send()


# -- preface and connection setup ---------------------------------------------------------------

def test_server_speaks_first_with_settings_and_a_connection_window():
    frames = sent(ServerConnection(max_concurrent_streams=7, initial_window=123_456))
    assert [item.kind for item in frames] == [SETTINGS, WINDOW_UPDATE]
    pairs = {int.from_bytes(frames[0].payload[i:i + 2], "big"):
             int.from_bytes(frames[0].payload[i + 2:i + 6], "big")
             for i in range(0, len(frames[0].payload), 6)}
    assert pairs[MAX_CONCURRENT_STREAMS] == 7
    assert pairs[INITIAL_WINDOW_SIZE] == 123_456
    assert frames[1].stream_id == 0


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"PRI * HTTP/1.1\r\n",
    PREFACE[:-1] + b"X" + settings(),
], ids=["http1", "wrong-prefix", "wrong-last-byte"])
def test_bad_preface_is_a_protocol_error_with_goaway(data):
    connection = ServerConnection()
    connection.data_to_send()
    fails_with(connection, data, PROTOCOL_ERROR)


def test_preface_may_arrive_a_byte_at_a_time():
    connection = ServerConnection()
    connection.data_to_send()
    for byte in PREFACE:
        assert connection.receive(bytes([byte])) == []
    assert connection.data_to_send() == b""
    connection.receive(settings())
    assert [item.kind for item in sent(connection)] == [SETTINGS]


@pytest.mark.parametrize("first", [
    frame(PING, 0, 0, bytes(8)),
    window_update(0, 1000),
    frame(HEADERS, END_HEADERS, 1, b"\x82"),
], ids=["ping", "window-update", "headers"])
def test_first_frame_must_be_settings(first):
    fails_with(ServerConnection(), PREFACE + first, PROTOCOL_ERROR)


def test_client_settings_are_acknowledged_once():
    connection = ServerConnection()
    connection.data_to_send()
    connection.receive(PREFACE + settings((MAX_FRAME_SIZE, 20_000)))
    assert sent(connection) == [Frame(SETTINGS, ACK, 0, b"")]
    connection.receive(frame(SETTINGS, ACK, 0))  # the client's ACK of ours: nothing to answer
    assert connection.data_to_send() == b""


def test_settings_with_a_partial_entry_is_a_frame_size_error():
    fails_with(ServerConnection(), PREFACE + frame(SETTINGS, 0, 0, b"\x00\x04\x00"),
               FRAME_SIZE_ERROR)


def test_ping_is_acknowledged_with_its_payload():
    connection = connected()
    connection.receive(frame(PING, 0, 0, b"12345678") + frame(PING, ACK, 0, b"ignored!"))
    assert sent(connection) == [Frame(PING, ACK, 0, b"12345678")]


# -- requests ------------------------------------------------------------------------------------

def test_request_split_at_every_byte_boundary_is_one_request():
    wire = PREFACE + settings() + request(1)
    for cut in range(1, len(wire)):
        connection = ServerConnection()
        events = connection.receive(wire[:cut]) + connection.receive(wire[cut:])
        assert len(events) == 1, cut
        assert events[0] == Request(1, REQUEST_HEADERS, bytearray(BODY)), cut


def test_request_fed_a_byte_at_a_time_is_one_request():
    connection = ServerConnection()
    wire = PREFACE + settings() + request(1)
    events = [event for byte in wire for event in connection.receive(bytes([byte]))]
    assert events == [Request(1, REQUEST_HEADERS, bytearray(BODY))]


def test_continuation_frames_assemble_a_header_block():
    connection = connected()
    header_block = block()
    a, b = len(header_block) // 3, 2 * len(header_block) // 3
    events = connection.receive(frame(HEADERS, END_STREAM, 1, header_block[:a])
                                + frame(CONTINUATION, 0, 1, header_block[a:b])
                                + frame(CONTINUATION, END_HEADERS, 1, header_block[b:]))
    assert events == [Request(1, REQUEST_HEADERS, bytearray())]


@pytest.mark.parametrize("intruder", [
    frame(PING, 0, 0, bytes(8)),
    frame(DATA, 0, 1, b"x"),
    frame(CONTINUATION, END_HEADERS, 3, b"\x82"),
    frame(HEADERS, END_HEADERS, 3, b"\x82"),
], ids=["ping", "data-same-stream", "continuation-other-stream", "headers-other-stream"])
def test_frame_inside_a_header_block_is_a_protocol_error(intruder):
    connection = connected()
    header_block = block()
    connection.receive(frame(HEADERS, 0, 1, header_block[:5]))
    fails_with(connection, intruder, PROTOCOL_ERROR)


def test_continuation_without_headers_is_a_protocol_error():
    fails_with(connected(), frame(CONTINUATION, END_HEADERS, 1, b"\x82"), PROTOCOL_ERROR)


def test_padded_headers_and_data_are_unpadded():
    connection = connected()
    header_block = block()
    priority = u32(0) + b"\x10"  # depends on stream 0, weight 16
    headers = frame(HEADERS, PADDED | PRIORITY_FLAG | END_HEADERS, 1,
                    b"\x07" + priority + header_block + b"\xaa" * 7)
    first = frame(DATA, PADDED, 1, b"\x03" + BODY[:6] + b"\xbb" * 3)
    second = frame(DATA, PADDED | END_STREAM, 1, b"\x00" + BODY[6:])
    assert connection.receive(headers + first + second) == [
        Request(1, REQUEST_HEADERS, bytearray(BODY))]


@pytest.mark.parametrize("bad_frame", [
    frame(DATA, PADDED | END_STREAM, 1, b"\x04abc"),
    frame(DATA, PADDED | END_STREAM, 1, b"\x01"),
    frame(HEADERS, PADDED | END_HEADERS | END_STREAM, 3, b"\x03\x82\x86"),
], ids=["data-pad-past-end", "data-pad-only", "headers-pad-past-end"])
def test_padding_longer_than_the_frame_is_a_protocol_error(bad_frame):
    connection = connected()
    connection.receive(frame(HEADERS, END_HEADERS, 1, block()))
    fails_with(connection, bad_frame, PROTOCOL_ERROR)


def test_even_stream_id_is_a_protocol_error():
    fails_with(connected(), request(2, b""), PROTOCOL_ERROR)


@pytest.mark.parametrize("next_id", [1, 3], ids=["lower", "reused"])
def test_stream_id_that_does_not_increase_is_a_protocol_error(next_id):
    connection = connected()
    reply_request(connection, 3)
    connection.respond(3, [(b":status", b"200")])
    connection.release(3)
    connection.data_to_send()
    fails_with(connection, frame(HEADERS, END_HEADERS | END_STREAM, next_id, b"\x83\x86"),
               PROTOCOL_ERROR)


# -- stream life ---------------------------------------------------------------------------------

def test_reset_of_a_running_request_cancels_it_and_its_reply_is_dropped():
    connection = connected()
    reply_request(connection, 1)
    assert connection.receive(rst_stream(1)) == [Cancelled(1)]
    connection.respond(1, grpc_protocol.RESPONSE_HEADERS, b"\x00\x00\x00\x00\x00",
                       grpc_protocol.OK_TRAILERS)
    assert connection.data_to_send() == b""
    connection.release(1)
    assert connection.idle()


def test_reset_of_an_upload_cancels_it_and_later_data_is_refused():
    connection = connected()
    assert connection.receive(frame(HEADERS, END_HEADERS, 1, block())) == []
    assert connection.receive(rst_stream(1)) == [Cancelled(1)]
    assert connection.idle()
    assert connection.receive(frame(DATA, END_STREAM, 1, BODY)) == []
    assert sent(connection) == [Frame(RST_STREAM, 0, 1, u32(STREAM_CLOSED))]


def test_data_on_a_stream_the_client_ended_is_reset_stream_closed():
    connection = connected()
    reply_request(connection, 1)
    connection.receive(frame(DATA, 0, 1, b"late"))  # reply still owed
    assert sent(connection) == [Frame(RST_STREAM, 0, 1, u32(STREAM_CLOSED))]
    connection.respond(1, [(b":status", b"200")])
    connection.data_to_send()
    connection.receive(frame(DATA, 0, 1, b"later"))  # stream closed
    assert sent(connection) == [Frame(RST_STREAM, 0, 1, u32(STREAM_CLOSED))]


def test_stream_reset_for_a_bad_priority_frame_stays_closed():
    """RFC 9113, 6.3: a PRIORITY frame that is not 5 bytes is a stream error: the stream ends."""
    connection = connected()
    connection.receive(frame(HEADERS, END_HEADERS, 1, block()) + frame(PRIORITY, 0, 1, b"1234"))
    assert sent(connection) == [Frame(RST_STREAM, 0, 1, u32(FRAME_SIZE_ERROR))]
    assert connection.receive(frame(DATA, END_STREAM, 1, BODY)) == []


def test_data_on_an_idle_stream_is_a_protocol_error():
    fails_with(connected(), frame(DATA, 0, 5, b"x"), PROTOCOL_ERROR)


def test_concurrent_streams_are_limited_and_a_reset_stream_keeps_its_slot_until_released():
    connection = connected(max_concurrent_streams=2)
    assert [event.stream_id for event in connection.receive(request(1, b"") + request(3, b""))
            ] == [1, 3]
    assert connection.receive(request(5, b"")) == []
    assert sent(connection) == [Frame(RST_STREAM, 0, 5, u32(REFUSED_STREAM))]
    assert connection.receive(rst_stream(1)) == [Cancelled(1)]
    assert connection.receive(request(7, b"")) == []  # stream 1's work has not ended yet
    assert sent(connection) == [Frame(RST_STREAM, 0, 7, u32(REFUSED_STREAM))]
    connection.release(1)
    assert [event.stream_id for event in connection.receive(request(9, b""))] == [9]
    assert connection.data_to_send() == b""


def test_streams_after_goaway_are_refused():
    connection = connected()
    connection.goaway()
    connection.data_to_send()
    assert connection.receive(request(1, b"")) == []
    assert sent(connection) == [Frame(RST_STREAM, 0, 1, u32(REFUSED_STREAM))]


def test_request_body_over_the_limit_is_too_large_and_the_upload_is_stopped():
    connection = connected(max_request_body=10)
    events = connection.receive(frame(HEADERS, END_HEADERS, 1, block())
                                + frame(DATA, 0, 1, b"12345678") + frame(DATA, 0, 1, b"9abc"))
    assert events == [TooLarge(1)]
    assert connection.receive(frame(DATA, 0, 1, b"more")) == []  # the tail is dropped quietly
    assert connection.data_to_send() == b""
    connection.respond(1, [(b":status", b"200"), (b"grpc-status", b"8")])
    connection.release(1)
    frames = sent(connection)
    assert [(item.kind, item.flags & END_STREAM) for item in frames] == [
        (HEADERS, END_STREAM), (RST_STREAM, 0)]
    assert frames[1].payload == u32(NO_ERROR)
    assert connection.idle()


# -- flow control --------------------------------------------------------------------------------

@pytest.fixture
def small_connection_window(monkeypatch) -> int:
    """Shrink the connection's receive window from 2**31-1 to 2**20-1: overrunning the real one
    takes more than a GiB in one receive(). Stream ids stay below the mask it also serves as."""
    monkeypatch.setattr(http2, "MAX_WINDOW", 2**20 - 1)
    return 2**20 - 1


def advertised_connection_window(connection: ServerConnection) -> int:
    updates = [item for item in sent(connection) if item.kind == WINDOW_UPDATE]
    assert [item.stream_id for item in updates] == [0]
    return http2.DEFAULT_WINDOW + int.from_bytes(updates[0].payload, "big")


def data_frames(stream_id: int, size: int, chunk: int = 16_384) -> bytes:
    return b"".join(frame(DATA, 0, stream_id, bytes(min(chunk, size - offset)))
                    for offset in range(0, size, chunk))


def test_client_using_exactly_the_connection_window_is_accepted(small_connection_window):
    connection = ServerConnection()
    window = advertised_connection_window(connection)
    assert window == small_connection_window
    connection.receive(PREFACE + settings() + frame(HEADERS, END_HEADERS, 1, block())
                       + data_frames(1, window))
    assert not connection.closing


def test_client_overrunning_the_connection_window_is_a_flow_control_error(
        small_connection_window):
    connection = ServerConnection()
    window = advertised_connection_window(connection)
    fails_with(connection, PREFACE + settings() + frame(HEADERS, END_HEADERS, 1, block())
               + data_frames(1, window + 1), FLOW_CONTROL_ERROR)


def test_connection_window_is_given_back_once_half_is_used(small_connection_window):
    connection = connected()
    connection.receive(frame(HEADERS, END_HEADERS, 1, block()))
    half = (small_connection_window + 1) // 2
    connection.receive(data_frames(1, half - 1))
    assert connection.data_to_send() == b""
    connection.receive(frame(DATA, 0, 1, b"x"))
    assert sent(connection) == [Frame(WINDOW_UPDATE, 0, 0, u32(half))]
    # The window given back can be used again: twice the window in all, no error.
    connection.receive(data_frames(1, small_connection_window))
    assert not connection.closing


def test_stream_window_is_given_back_once_half_is_used():
    connection = connected(initial_window=65_536)
    connection.receive(frame(HEADERS, END_HEADERS, 1, block()) + data_frames(1, 32_767))
    assert connection.data_to_send() == b""
    connection.receive(frame(DATA, 0, 1, b"x"))
    assert sent(connection) == [Frame(WINDOW_UPDATE, 0, 1, u32(32_768))]


def test_typical_requests_get_no_window_update():
    """100 uploads of 270 KB (a Predict of one 150x150 image) in 16 KB frames: no small writes."""
    connection = connected()
    for stream_id in range(1, 200, 2):
        connection.receive(frame(HEADERS, END_HEADERS, stream_id, block())
                           + data_frames(stream_id, 270_000)
                           + frame(DATA, END_STREAM, stream_id, BODY))
        connection.respond(stream_id, [(b":status", b"200")])
        connection.release(stream_id)
    assert {item.kind for item in sent(connection)} == {HEADERS}


def test_reply_larger_than_the_peer_window_waits_for_window_updates():
    connection = connected()
    reply_request(connection, 1)
    body = bytes(range(256)) * 400  # 102,400 bytes against the default 65,535 windows
    connection.respond(1, grpc_protocol.RESPONSE_HEADERS, body, grpc_protocol.OK_TRAILERS)
    first = sent(connection)
    assert first[0].kind == HEADERS and not first[0].flags & END_STREAM
    assert {item.kind for item in first[1:]} == {DATA}
    assert all(len(item.payload) <= 16_384 for item in first[1:])
    assert sum(len(item.payload) for item in first[1:]) == 65_535

    connection.receive(window_update(1, 40_000))  # the connection window is still empty
    assert connection.data_to_send() == b""
    connection.receive(window_update(0, 20_000))
    second = sent(connection)
    assert {item.kind for item in second} == {DATA}
    assert sum(len(item.payload) for item in second) == 20_000

    connection.receive(window_update(0, 50_000))
    third = sent(connection)
    assert [item.kind for item in third[:-1]] == [DATA] * (len(third) - 1)
    assert sum(len(item.payload) for item in third[:-1]) == len(body) - 85_535
    assert third[-1].kind == HEADERS and third[-1].flags & END_STREAM
    assert decoded(third) == [list(grpc_protocol.OK_TRAILERS)]
    assert b"".join(item.payload for item in first[1:] + second + third[:-1]) == body
    connection.release(1)
    assert connection.idle()


def test_larger_initial_window_setting_releases_a_held_reply():
    connection = connected()
    reply_request(connection, 1)
    connection.receive(window_update(0, 1_000_000))
    connection.respond(1, grpc_protocol.RESPONSE_HEADERS, bytes(100_000),
                       grpc_protocol.OK_TRAILERS)
    assert sum(len(item.payload) for item in sent(connection) if item.kind == DATA) == 65_535
    connection.receive(settings((INITIAL_WINDOW_SIZE, 200_000)))
    frames = sent(connection)
    assert frames[0] == Frame(SETTINGS, ACK, 0, b"")
    assert sum(len(item.payload) for item in frames if item.kind == DATA) == 100_000 - 65_535
    assert frames[-1].kind == HEADERS and frames[-1].flags & END_STREAM


def test_peer_max_frame_size_splits_data_and_header_blocks():
    connection = connected((MAX_FRAME_SIZE, 20_000), (INITIAL_WINDOW_SIZE, 1_000_000))
    connection.receive(window_update(0, 1_000_000))
    reply_request(connection, 1)
    headers = [(b":status", b"200"), (b"x-long", b"v" * 30_000)]
    body = bytes(50_000)
    connection.respond(1, headers, body, grpc_protocol.OK_TRAILERS)
    frames = sent(connection)
    assert [(item.kind, len(item.payload)) for item in frames[1:-1]] == [
        (CONTINUATION, len(http2.encode_headers(headers)) - 20_000),
        (DATA, 20_000), (DATA, 20_000), (DATA, 10_000)]
    assert (frames[0].kind, len(frames[0].payload), frames[0].flags) == (HEADERS, 20_000, 0)
    assert frames[1].flags == END_HEADERS
    assert frames[-1].kind == HEADERS and frames[-1].flags == END_STREAM | END_HEADERS
    assert decoded(frames) == [headers, list(grpc_protocol.OK_TRAILERS)]


# -- header blocks -------------------------------------------------------------------------------

@pytest.mark.parametrize("in_one_frame", [False, True], ids=["continuations", "one-frame"])
def test_header_block_over_the_limit_is_enhance_your_calm(in_one_frame):
    connection = connected(max_header_block=1_000)
    header_block = block([*REQUEST_HEADERS, (b"x-pad", b"!" * 1_500)])
    assert 1_000 < len(header_block) < 16_384  # within the header list limit
    if in_one_frame:
        data = frame(HEADERS, END_HEADERS | END_STREAM, 1, header_block)
    else:
        data = (frame(HEADERS, END_STREAM, 1, header_block[:600])
                + frame(CONTINUATION, END_HEADERS, 1, header_block[600:]))
    fails_with(connection, data, ENHANCE_YOUR_CALM)


def test_header_list_over_the_limit_is_enhance_your_calm():
    connection = connected(max_header_list_size=1_000)
    header_block = http2.encode_headers([*REQUEST_HEADERS, (b"x-pad", b"!" * 1_000)])
    fails_with(connection, frame(HEADERS, END_HEADERS | END_STREAM, 1, header_block),
               ENHANCE_YOUR_CALM)


@pytest.mark.parametrize("garbage", [
    b"\x80", b"\xbf", b"\x00\x05ab", b"\xff\x80", b"\x00\x81\xff\x00", b"\x3f\xe2\x1f",
    b"\x82\x20", b"\x01",
], ids=["index-0", "index-beyond-table", "truncated-literal", "unterminated-integer",
        "bad-huffman", "table-too-large", "late-table-update", "missing-value"])
def test_undecodable_header_block_is_a_compression_error(garbage):
    fails_with(connected(), frame(HEADERS, END_HEADERS | END_STREAM, 1, garbage),
               COMPRESSION_ERROR)


def test_repeated_indexed_header_block_gives_the_same_headers():
    connection = connected()
    encoder = hpack.Encoder()
    first = encoder.encode(REQUEST_HEADERS)
    indexed = encoder.encode(REQUEST_HEADERS)
    assert all(byte & 0x80 for byte in indexed) and len(indexed) == len(REQUEST_HEADERS)
    events = requests_of(connection.receive(request(1, b"", first) + request(3, b"", indexed)
                                            + request(5, b"", indexed)
                                            + request(7, b"", indexed)))
    assert [event.headers for event in events] == [REQUEST_HEADERS] * 4


def test_repeated_indexed_block_follows_changes_to_the_dynamic_table():
    """The same indexed bytes name other headers once new entries shift the table."""
    connection = connected()
    encoder, reference = hpack.Encoder(), hpack.Decoder()
    indexed_headers = [(b":method", b"POST"), (b":path", b"/a"), (b"x-a", b"1")]
    blocks = [encoder.encode(indexed_headers)]
    indexed = encoder.encode(indexed_headers)
    blocks += [indexed, indexed, encoder.encode([(b":path", b"/b"), (b"x-b", b"2")]), indexed,
               indexed, encoder.encode([(b"x-c", b"3")]), indexed]
    expected = [[tuple(field) for field in reference.decode(item, raw=True)] for item in blocks]
    assert expected[1] == indexed_headers and expected[4] != indexed_headers != expected[7]
    assert expected[4] != expected[7]
    for number, header_block in enumerate(blocks):
        events = requests_of(connection.receive(request(2 * number + 1, b"", header_block)))
        assert [event.headers for event in events] == [expected[number]], number


def test_distinct_indexed_header_blocks_do_not_grow_memory_without_bound():
    """Every all-indexed block is a cache candidate; a client can send endlessly many."""
    connection = connected()
    static = range(0x82, 0xBE)  # static table entries 2..61
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is already in use")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        stream_id = 1
        for first in static:
            wire = b""
            for second in static:
                for third in (0x84, 0x85):
                    wire += frame(HEADERS, END_HEADERS | END_STREAM, stream_id,
                                  bytes((first, second, third, 0x86)))
                    stream_id += 2
            for event in connection.receive(wire):
                connection.respond(event.stream_id, [(b":status", b"405")])
                connection.release(event.stream_id)
            connection.data_to_send()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert stream_id > 7_000
    assert growth < 500_000, f"{growth} bytes kept after {stream_id // 2} distinct header blocks"


def test_reply_header_blocks_decode_with_a_fresh_decoder():
    connection = connected()
    for stream_id in (1, 3, 5):
        reply_request(connection, stream_id)
    error = grpc_protocol.error_reply(grpc.StatusCode.INVALID_ARGUMENT, "bad \u00e9 100% " * 20)
    connection.respond(1, grpc_protocol.RESPONSE_HEADERS, b"\x00\x00\x00\x00\x01x",
                       grpc_protocol.OK_TRAILERS)
    connection.respond(3, error)
    connection.respond(5, grpc_protocol.http_error_reply(415))
    assert decoded(sent(connection)) == [
        list(grpc_protocol.RESPONSE_HEADERS), list(grpc_protocol.OK_TRAILERS), error,
        [(b":status", b"415"), (b"content-type", b"text/plain")]]
