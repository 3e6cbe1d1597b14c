"""The server side of HTTP/2 (RFC 9113) as gRPC uses it, without I/O: bytes in, events, bytes out.

Only what a gRPC server needs: requests arrive as HEADERS (+ CONTINUATION) and DATA and are handed
over whole once the client ends its stream; replies are headers, body and trailers. Flow control,
SETTINGS, PING, GOAWAY, RST_STREAM and every protocol error are handled here, so the layer above
never sees a malformed frame. Header blocks are decoded by the `hpack` package (python-hyper, the
HPACK of `h2`); replies are encoded as literals without indexing, which needs no shared state.

Why not a general HTTP/2 library: grpclib (on `h2`) served a 270 KB echo in 1.0-1.2 ms on the build
machine, slower than grpcio itself (docs/model-server.md).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
# Flags.
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
# Error codes.
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM = range(12)
# SETTINGS identifiers.
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)

MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65_535
DEFAULT_FRAME_SIZE = 16_384
LARGEST_FRAME_SIZE = 2**24 - 1

_HEADER = struct.Struct(">HBBBI")  # length split as 16+8 bits, type, flags, stream id
_U32 = struct.Struct(">I")
_SETTING = struct.Struct(">HI")


class ProtocolError(Exception):
    """The peer broke the protocol: the connection ends with GOAWAY(code)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Request:
    """A client stream that has ended: its decoded headers and its whole body."""
    stream_id: int
    headers: list[tuple[bytes, bytes]]
    body: bytearray


@dataclass
class Cancelled:
    """The client reset a stream (or the connection failed it): drop its reply."""
    stream_id: int


@dataclass
class TooLarge:
    """A request body passed `max_request_body`: answer it; the rest of the upload is dropped."""
    stream_id: int


@dataclass
class _Stream:
    stream_id: int
    send_window: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    remote_closed: bool = False  # the client sent END_STREAM (or its upload is being dropped)
    client_ended: bool = False  # the client really sent END_STREAM
    pending: bytearray = field(default_factory=bytearray)  # DATA waiting for window
    trailers: Sequence[tuple[bytes, bytes]] | None = None  # sent once `pending` drains


def encode_headers(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """An HPACK block of literals without indexing (RFC 7541, 6.2.2), no Huffman coding: valid
    for any peer table size and state, cached for the few fixed header lists a server sends."""
    key = tuple(headers)
    block = _BLOCKS.get(key)
    if block is None:
        block = b"".join(b"\x00" + _hpack_string(name) + _hpack_string(value)
                         for name, value in headers)
        if len(_BLOCKS) < 64 and not any(name == b"grpc-message" for name, _ in headers):
            _BLOCKS[key] = block
    return block


_BLOCKS: dict[tuple[tuple[bytes, bytes], ...], bytes] = {}


def _hpack_string(value: bytes) -> bytes:
    return _hpack_integer(len(value), 7) + value


def _hpack_integer(value: int, prefix_bits: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((value,))
    out = bytearray((limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    length = len(payload)
    return _HEADER.pack(length >> 8, length & 0xFF, kind, flags, stream_id) + payload


class ServerConnection:
    """One HTTP/2 connection seen from the server. Call `receive(data)` with what the socket read;
    it returns events and queues bytes, which `data_to_send()` hands over for writing."""

    def __init__(self, *, max_concurrent_streams: int = 256, max_header_list_size: int = 16_384,
                 max_header_block: int = 65_536, initial_window: int = 4 * 1024 * 1024,
                 max_request_body: int = 2**31 + 4) -> None:
        self.max_concurrent_streams = max_concurrent_streams
        self.max_request_body = max_request_body
        self.max_header_block = max_header_block
        self._stream_window = initial_window
        self._decoder = hpack.Decoder()
        self._decoder.max_header_list_size = max_header_list_size
        self._decoded: dict[bytes, list[tuple[bytes, bytes]]] = {}
        self._in = bytearray()
        self._out: list[bytes] = []
        self._preface_seen = False
        self._settings_seen = False
        self._streams: dict[int, _Stream] = {}
        self._busy: set[int] = set()  # streams whose reply is owed: they hold a concurrency slot
        self._last_stream_id = 0
        self._continuing: tuple[int, int, bytearray] | None = None  # (stream, flags, block)
        self._peer_initial_window = DEFAULT_WINDOW
        self._peer_max_frame = DEFAULT_FRAME_SIZE
        self._send_window = DEFAULT_WINDOW
        self._recv_window = MAX_WINDOW  # of the connection; each stream's is _stream_window
        self._unacked: dict[int, int] = {}  # received bytes not yet given back (0: connection)
        self.closing = False  # GOAWAY sent or received: no new streams
        settings = b"".join(_SETTING.pack(key, value) for key, value in (
            (ENABLE_PUSH, 0),
            (MAX_CONCURRENT_STREAMS, max_concurrent_streams),
            (INITIAL_WINDOW_SIZE, initial_window),
            (MAX_FRAME_SIZE, LARGEST_FRAME_SIZE),
            (MAX_HEADER_LIST_SIZE, max_header_list_size),
        ))
        self._out.append(frame(SETTINGS, 0, 0, settings))
        self._out.append(frame(WINDOW_UPDATE, 0, 0, _U32.pack(MAX_WINDOW - DEFAULT_WINDOW)))

    # -- input -------------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Request | Cancelled | TooLarge]:
        """Parse what arrived; ProtocolError if the peer broke the protocol (GOAWAY queued)."""
        buffer = self._in
        buffer += data
        events: list[Request | Cancelled | TooLarge] = []
        position = 0
        try:
            if not self._preface_seen:
                if len(buffer) < len(PREFACE):
                    if not PREFACE.startswith(bytes(buffer)):
                        raise ProtocolError(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                    return events
                if buffer[:len(PREFACE)] != PREFACE:
                    raise ProtocolError(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                self._preface_seen = True
                position = len(PREFACE)
            end = len(buffer)
            while end - position >= 9:
                high, low, kind, flags, stream_id = _HEADER.unpack_from(buffer, position)
                length = (high << 8) | low  # <= LARGEST_FRAME_SIZE, which the server allows
                if end - position - 9 < length:
                    break
                start = position + 9
                position = start + length
                self._frame(kind, flags, stream_id & MAX_WINDOW, buffer, start, length, events)
        except ProtocolError as error:
            self.goaway(error.code, str(error))
            raise
        finally:
            del buffer[:position]
        self._give_back_window()
        return events

    def _frame(self, kind: int, flags: int, stream_id: int, buffer: bytearray, start: int,
               length: int, events: list) -> None:
        if not self._settings_seen and kind != SETTINGS:
            raise ProtocolError(PROTOCOL_ERROR, "the first frame must be SETTINGS")
        if self._continuing is not None and (kind != CONTINUATION
                                             or stream_id != self._continuing[0]):
            raise ProtocolError(PROTOCOL_ERROR, "expected CONTINUATION")
        if kind == DATA:
            self._data(flags, stream_id, buffer, start, length, events)
        elif kind == HEADERS:
            self._headers(flags, stream_id, bytes(buffer[start:start + length]), events)
        elif kind == CONTINUATION:
            self._continuation(flags, stream_id, bytes(buffer[start:start + length]), events)
        elif kind == SETTINGS:
            self._settings(flags, stream_id, bytes(buffer[start:start + length]))
        elif kind == PING:
            if stream_id:
                raise ProtocolError(PROTOCOL_ERROR, "PING on a stream")
            if length != 8:
                raise ProtocolError(FRAME_SIZE_ERROR, "PING payload must be 8 bytes")
            if not flags & ACK:
                self._out.append(frame(PING, ACK, 0, bytes(buffer[start:start + 8])))
        elif kind == WINDOW_UPDATE:
            self._window_update(stream_id, bytes(buffer[start:start + length]), events)
        elif kind == RST_STREAM:
            if not stream_id:
                raise ProtocolError(PROTOCOL_ERROR, "RST_STREAM on stream 0")
            if length != 4:
                raise ProtocolError(FRAME_SIZE_ERROR, "RST_STREAM payload must be 4 bytes")
            if stream_id > self._last_stream_id:
                raise ProtocolError(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            self._unacked.pop(stream_id, None)
            if self._streams.pop(stream_id, None) is not None or stream_id in self._busy:
                events.append(Cancelled(stream_id))
        elif kind == GOAWAY:
            if stream_id:
                raise ProtocolError(PROTOCOL_ERROR, "GOAWAY on a stream")
            self.closing = True
        elif kind == PRIORITY:
            if not stream_id:
                raise ProtocolError(PROTOCOL_ERROR, "PRIORITY on stream 0")
            if length != 5:
                self._fail_stream(stream_id, FRAME_SIZE_ERROR, events)
        elif kind == PUSH_PROMISE:
            raise ProtocolError(PROTOCOL_ERROR, "clients must not push")
        # Unknown frame types are ignored (RFC 9113, 4.1).

    def _data(self, flags: int, stream_id: int, buffer: bytearray, start: int, length: int,
              events: list) -> None:
        if not stream_id:
            raise ProtocolError(PROTOCOL_ERROR, "DATA on stream 0")
        self._consume_window(length)
        self._unacked[0] = self._unacked.get(0, 0) + length
        stream = self._streams.get(stream_id)
        if stream is None or stream.remote_closed:
            if stream_id > self._last_stream_id:
                raise ProtocolError(PROTOCOL_ERROR, "DATA on an idle stream")
            if stream is None or stream.client_ended:
                self._reset(stream_id, STREAM_CLOSED)
            return  # else: the tail of an upload that was too large
        begin, stop = start, start + length
        if flags & PADDED:
            if not length:
                raise ProtocolError(FRAME_SIZE_ERROR, "padded DATA without a pad length")
            pad = buffer[start]
            begin += 1
            stop -= pad
            if stop < begin:
                raise ProtocolError(PROTOCOL_ERROR, "padding longer than the DATA frame")
        if len(stream.body) + stop - begin > self.max_request_body:
            stream.remote_closed = True
            stream.body = bytearray()
            self._busy.add(stream_id)
            self._unacked.pop(stream_id, None)
            events.append(TooLarge(stream_id))
            return
        stream.body += memoryview(buffer)[begin:stop]
        if flags & END_STREAM:
            self._end_of_request(stream, events)
        else:
            self._unacked[stream_id] = self._unacked.get(stream_id, 0) + length

    def _headers(self, flags: int, stream_id: int, payload: bytes, events: list) -> None:
        if not stream_id:
            raise ProtocolError(PROTOCOL_ERROR, "HEADERS on stream 0")
        if flags & PADDED:
            if not payload:
                raise ProtocolError(FRAME_SIZE_ERROR, "padded HEADERS without a pad length")
            pad = payload[0]
            if pad > len(payload) - 1:
                raise ProtocolError(PROTOCOL_ERROR, "padding longer than the HEADERS frame")
            payload = payload[1:len(payload) - pad]
        if flags & PRIORITY_FLAG:
            if len(payload) < 5:
                raise ProtocolError(FRAME_SIZE_ERROR, "HEADERS too short for its priority")
            if _U32.unpack_from(payload)[0] & MAX_WINDOW == stream_id:
                raise ProtocolError(PROTOCOL_ERROR, "a stream cannot depend on itself")
            payload = payload[5:]
        self._check_block_size(len(payload))
        if flags & END_HEADERS:
            self._header_block(flags, stream_id, payload, events)
        else:
            self._continuing = (stream_id, flags, bytearray(payload))

    def _continuation(self, flags: int, stream_id: int, payload: bytes, events: list) -> None:
        if self._continuing is None:
            raise ProtocolError(PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        _, first_flags, block = self._continuing
        block += payload
        self._check_block_size(len(block))
        if flags & END_HEADERS:
            self._continuing = None
            self._header_block(first_flags, stream_id, bytes(block), events)

    def _check_block_size(self, size: int) -> None:
        if size > self.max_header_block:
            raise ProtocolError(ENHANCE_YOUR_CALM, "header block too large")

    def _header_block(self, flags: int, stream_id: int, block: bytes, events: list) -> None:
        try:
            headers = self._decode(block)
        except hpack.OversizedHeaderListError:
            raise ProtocolError(ENHANCE_YOUR_CALM, "header list too large") from None
        except (hpack.HPACKError, IndexError, ValueError, UnicodeDecodeError):
            raise ProtocolError(COMPRESSION_ERROR, "undecodable header block") from None
        stream = self._streams.get(stream_id)
        if stream is not None:  # trailers from the client: gRPC sends none; accept and end
            if stream.remote_closed:
                self._fail_stream(stream_id, STREAM_CLOSED, events)
                return
            if not flags & END_STREAM:
                self._fail_stream(stream_id, PROTOCOL_ERROR, events)
                return
            self._end_of_request(stream, events)
            return
        if stream_id <= self._last_stream_id or not stream_id % 2:
            raise ProtocolError(PROTOCOL_ERROR, "stream id not new or not client-initiated")
        self._last_stream_id = stream_id
        if self.closing:
            self._reset(stream_id, REFUSED_STREAM)
            return
        if len(self._busy | self._streams.keys()) >= self.max_concurrent_streams:
            self._reset(stream_id, REFUSED_STREAM)
            return
        stream = _Stream(stream_id, self._peer_initial_window, headers)
        self._streams[stream_id] = stream
        if flags & END_STREAM:
            self._end_of_request(stream, events)

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """HPACK-decode; a block of one-byte indexed fields only (what gRPC clients send for a
        repeated call) cannot change the decoder's table, so its result is reused until a block
        that may change the table arrives. Decoding costs ~30 us in pure Python."""
        headers = self._decoded.get(block)
        if headers is not None:
            return headers
        headers = self._decoder.decode(block, raw=True)
        if all(byte & 0x80 and byte != 0xFF for byte in block):
            headers = [tuple(field) for field in headers]
            if len(self._decoded) < 64:  # a client repeats a few; a hostile one sends endless ones
                self._decoded[block] = headers
        else:
            self._decoded.clear()
        return headers

    def _end_of_request(self, stream: _Stream, events: list) -> None:
        stream.remote_closed = stream.client_ended = True
        self._unacked.pop(stream.stream_id, None)
        self._busy.add(stream.stream_id)
        events.append(Request(stream.stream_id, stream.headers, stream.body))
        stream.body = bytearray()

    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise ProtocolError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise ProtocolError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise ProtocolError(FRAME_SIZE_ERROR, "SETTINGS payload not a multiple of 6")
        self._settings_seen = True
        for offset in range(0, len(payload), 6):
            key, value = _SETTING.unpack_from(payload, offset)
            # HEADER_TABLE_SIZE needs nothing: replies never index into the peer's table.
            if key == ENABLE_PUSH and value > 1:
                raise ProtocolError(PROTOCOL_ERROR, "ENABLE_PUSH must be 0 or 1")
            elif key == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ProtocolError(FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large")
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
            elif key == MAX_FRAME_SIZE:
                if not DEFAULT_FRAME_SIZE <= value <= LARGEST_FRAME_SIZE:
                    raise ProtocolError(PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range")
                self._peer_max_frame = value
        self._out.append(frame(SETTINGS, ACK, 0))
        self._flush_streams()

    def _window_update(self, stream_id: int, payload: bytes, events: list) -> None:
        if len(payload) != 4:
            raise ProtocolError(FRAME_SIZE_ERROR, "WINDOW_UPDATE payload must be 4 bytes")
        increment = _U32.unpack(payload)[0] & MAX_WINDOW
        if not stream_id:
            if not increment:
                raise ProtocolError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise ProtocolError(FLOW_CONTROL_ERROR, "connection window overflow")
            self._flush_streams()
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self._last_stream_id:
                raise ProtocolError(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
            return  # closed already: harmless
        if not increment:
            self._fail_stream(stream_id, PROTOCOL_ERROR, events)
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self._fail_stream(stream_id, FLOW_CONTROL_ERROR, events)
            return
        self._flush(stream)

    def _consume_window(self, length: int) -> None:
        self._recv_window -= length
        if self._recv_window < 0:
            raise ProtocolError(FLOW_CONTROL_ERROR, "the client overran the connection window")

    def _give_back_window(self) -> None:
        """Give back receive window once half of it is used. The windows are large (the body is
        buffered whole anyway; the limit is the message size), so a typical request sends no
        WINDOW_UPDATE at all: each small write costs both processes ~50 us on loopback."""
        for stream_id, size in list(self._unacked.items()):
            if size * 2 >= (MAX_WINDOW if stream_id == 0 else self._stream_window):
                self._out.append(frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(size)))
                del self._unacked[stream_id]
                if stream_id == 0:
                    self._recv_window += size

    # -- output ------------------------------------------------------------------------------

    def respond(self, stream_id: int, headers: Sequence[tuple[bytes, bytes]], body: bytes = b"",
                trailers: Sequence[tuple[bytes, bytes]] | None = None) -> None:
        """Queue a whole reply; without body and trailers the headers end the stream. A stream
        that is gone (reset, connection failed) is skipped."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        only_headers = not body and trailers is None
        self._send_headers(stream_id, headers, end_stream=only_headers)
        if only_headers:
            self._close(stream)
            return
        stream.pending += body
        stream.trailers = trailers or []
        self._flush(stream)

    def release(self, stream_id: int) -> None:
        """The work for a request has ended: its concurrency slot is free again. Slots are held
        until then even if the client resets the stream, so resets cannot pile up work."""
        self._busy.discard(stream_id)

    def goaway(self, code: int = NO_ERROR, message: str = "") -> None:
        """Refuse new streams; streams up to the last one seen still get their replies."""
        self.closing = True
        self._out.append(frame(GOAWAY, 0, 0, _U32.pack(self._last_stream_id) + _U32.pack(code)
                               + message.encode()[:256]))

    def idle(self) -> bool:
        """No stream is waiting for a reply or for flow-control window."""
        return not self._streams and not self._busy

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _send_headers(self, stream_id: int, headers: Sequence[tuple[bytes, bytes]],
                      end_stream: bool) -> None:
        block = encode_headers(headers)
        limit = self._peer_max_frame
        first, rest = block[:limit], block[limit:]
        flags = (END_STREAM if end_stream else 0) | (0 if rest else END_HEADERS)
        self._out.append(frame(HEADERS, flags, stream_id, first))
        while rest:
            chunk, rest = rest[:limit], rest[limit:]
            self._out.append(frame(CONTINUATION, 0 if rest else END_HEADERS, stream_id, chunk))

    def _flush(self, stream: _Stream) -> None:
        pending = stream.pending
        while pending:
            size = min(len(pending), stream.send_window, self._send_window, self._peer_max_frame)
            if size <= 0:
                return
            self._out.append(frame(DATA, 0, stream.stream_id, bytes(pending[:size])))
            del pending[:size]
            stream.send_window -= size
            self._send_window -= size
        if stream.trailers is not None:
            self._send_headers(stream.stream_id, stream.trailers, end_stream=True)
            self._close(stream)

    def _flush_streams(self) -> None:
        for stream in list(self._streams.values()):
            if stream.trailers is not None:
                self._flush(stream)

    def _close(self, stream: _Stream) -> None:
        self._streams.pop(stream.stream_id, None)
        if not stream.client_ended:  # replied before the upload ended: stop it (RFC 9113, 8.1)
            self._reset(stream.stream_id, NO_ERROR)

    def _fail_stream(self, stream_id: int, code: int, events: list) -> None:
        """A stream error (RFC 9113, 5.4.2): the stream ends; a call running for it is cancelled."""
        self._reset(stream_id, code)
        self._unacked.pop(stream_id, None)
        if self._streams.pop(stream_id, None) is not None and stream_id in self._busy:
            events.append(Cancelled(stream_id))

    def _reset(self, stream_id: int, code: int) -> None:
        self._out.append(frame(RST_STREAM, 0, stream_id, _U32.pack(code)))
