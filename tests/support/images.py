"""Image bytes made for tests."""

from __future__ import annotations

import struct
import zlib


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
        ">I", zlib.crc32(kind + payload))


def zeros_png(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """A real, fully decodable PNG of black pixels: huge dimensions compress to a few KB (a 16-bit
    7000x7000 grey one is 95 KB and took ~890 MiB to decode before the budget, issue 14)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = bytes(1 + width * channels * bit_depth // 8)  # filter byte 0, then zero samples
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))
