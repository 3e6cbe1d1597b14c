"""HTTP/2 frames as the tests read them back from the server."""

from __future__ import annotations

from typing import NamedTuple


class Frame(NamedTuple):
    kind: int
    flags: int
    stream_id: int
    payload: bytes


def parse_frames(data: bytes) -> list[Frame]:
    """Split what the connection emitted into frames; every byte must belong to a whole frame."""
    frames = []
    position = 0
    while position < len(data):
        assert len(data) - position >= 9, "truncated frame header"
        length = int.from_bytes(data[position:position + 3], "big")
        kind, flags = data[position + 3], data[position + 4]
        stream_id = int.from_bytes(data[position + 5:position + 9], "big") & 0x7FFF_FFFF
        payload = data[position + 9:position + 9 + length]
        assert len(payload) == length, "truncated frame payload"
        frames.append(Frame(kind, flags, stream_id, payload))
        position += 9 + length
    return frames
