"""HTTP/2 frames as the tests read them back from the server."""

from __future__ import annotations

from typing import NamedTuple


class Frame(NamedTuple):
    kind: int
    flags: int
    stream_id: int
    payload: bytes


def take_frames(data: bytes | bytearray) -> tuple[list[Frame], int]:
    """The whole frames at the start of `data`, and how many bytes they take."""
    frames = []
    position = 0
    while len(data) - position >= 9:
        length = int.from_bytes(data[position:position + 3], "big")
        if len(data) - position - 9 < length:
            break
        kind, flags = data[position + 3], data[position + 4]
        stream_id = int.from_bytes(data[position + 5:position + 9], "big") & 0x7FFF_FFFF
        start = position + 9
        position = start + length
        frames.append(Frame(kind, flags, stream_id, bytes(data[start:position])))
    return frames, position


def parse_frames(data: bytes) -> list[Frame]:
    """Split what the connection emitted into frames; every byte must belong to a whole frame."""
    frames, used = take_frames(data)
    assert used == len(data), f"truncated frame: {len(data) - used} bytes left over"
    return frames
