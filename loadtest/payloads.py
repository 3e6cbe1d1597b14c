"""The request mix: phone JPEGs of several sizes, the page's downscaled uploads, bad inputs.

Each payload knows the statuses that count as a correct answer, so a "failed request" is any
answer outside them (a 5xx, a timeout, a refused connection, or a wrong 4xx) - not any 4xx."""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FIELD = "image_to_predict"
API_HOST = "api.service.localhost"
UI_HOST = "ui.service.localhost"
PAGE_MAX_SIDE = 512  # ui.service/html/app.js MAX_SIDE; the page posts JPEG q85 to /api/...
BOUNDARY = "loadtest-boundary-7d1f"


@dataclass(frozen=True)
class Payload:
    name: str
    host: str
    path: str
    body: bytes  # a complete multipart/form-data body
    expected: frozenset[int]
    weight: int

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={BOUNDARY}"


def multipart(data: bytes, filename: str, content_type: str) -> bytes:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{FIELD}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n").encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _phone(photo: Image.Image, size: tuple[int, int], seed: int) -> bytes:
    """The photo resized to a phone's sensor size with sensor-like noise (a real file's entropy)."""
    big = np.asarray(photo.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    noise = np.random.default_rng(seed).normal(0, 3, big.shape).astype(np.int16)
    return _jpeg(Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8)), 92)


def _png_header_bomb() -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
            ">I", zlib.crc32(kind + payload))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 2,
                                                             0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def build_mix(photos: list[Path], *, large: bool = True, api_host: str = API_HOST,
              ui_host: str = UI_HOST) -> list[Payload]:
    """The mix, about 80 % good photos and 20 % bad input. `large` adds 12 MP photos (slow on 2
    cores: over 1 MB each), left out of the CI smoke run. The hosts are the stack's UI_HOST and
    API_HOST (a real domain's names over HTTPS)."""
    if not photos:
        raise ValueError("no leaf photos to build the mix from")
    mix: list[Payload] = []
    predict = "/predict/image"
    for index, path in enumerate(photos):
        original = path.read_bytes()
        photo = Image.open(io.BytesIO(original)).convert("RGB")
        mix.append(Payload(f"phone-800x600-{index}", api_host, predict,
                           multipart(original, path.name, "image/jpeg"), frozenset({200}), 6))
        page = photo.copy()
        page.thumbnail((PAGE_MAX_SIDE, PAGE_MAX_SIDE))
        mix.append(Payload(f"page-512-{index}", ui_host, "/api" + predict,
                           multipart(_jpeg(page, 85), "photo.jpg", "image/jpeg"),
                           frozenset({200}), 8))
        mix.append(Payload(f"phone-1600x1200-{index}", api_host, predict,
                           multipart(_phone(photo, (1600, 1200), index), "p.jpg", "image/jpeg"),
                           frozenset({200}), 3))
        if large:
            mix.append(Payload(f"phone-4000x3000-{index}", api_host, predict,
                               multipart(_phone(photo, (4000, 3000), index), "p.jpg",
                                         "image/jpeg"), frozenset({200}), 1))
    sample = photos[0].read_bytes()
    bad = [
        ("bad-empty", multipart(b"", "e.jpg", "image/jpeg"), {400}),
        ("bad-text", multipart(b"not a photo " * 40, "n.jpg", "image/jpeg"), {415}),
        ("bad-truncated", multipart(sample[: len(sample) // 2], "t.jpg", "image/jpeg"), {400}),
        ("bad-1x1-png", multipart(_png_1x1(), "d.png", "image/png"), {422}),
        ("bad-all-black", multipart(_jpeg(Image.new("RGB", (800, 600)), 85), "b.jpg",
                                    "image/jpeg"), {422}),
        ("bad-png-bomb", multipart(_png_header_bomb(), "bomb.png", "image/png"), {413}),
        ("bad-random", multipart(random.Random(3).randbytes(20_000), "r.jpg", "image/jpeg"),
         {415}),
    ]
    good_weight = sum(p.weight for p in mix)
    each = max(1, round(good_weight * 0.25 / len(bad)))  # 20 % of all requests
    mix += [Payload(name, api_host, predict, body, frozenset(statuses), each)
            for name, body, statuses in bad]
    return mix


def _png_1x1() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (60, 140, 40)).save(buffer, "PNG")
    return buffer.getvalue()
