"""Bad input is expected input: each case gets its documented problem, then a good request works."""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import httpx
import numpy as np
import pytest
from PIL import Image

from app.upload import MAX_TEXT_FIELD_CHARS
from tests.api_service.conftest import FIELD, PROBLEM_JSON
from tests.support.fake_model_server import FakeModelServer
from tests.support.images import png_chunk, zeros_png
from tests.support.paths import leaf_photos
from tests.support.uploads import multipart


@cache
def photo_bytes() -> bytes:
    return leaf_photos()[0].read_bytes()


@cache
def photo() -> Image.Image:
    return Image.open(io.BytesIO(photo_bytes())).convert("RGB")


def encode(image: Image.Image, fmt: str, **save_kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_kwargs)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A 100-byte PNG whose header claims width x height RGB pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))


def sixteen_bit_grey_png() -> bytes:
    grey = np.asarray(photo().convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey), "PNG")


def palette_png_with_transparency() -> bytes:
    palette = photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return encode(palette, "PNG", transparency=0)


@dataclass(frozen=True)
class Case:
    """One bad (or odd) request and the answer it must get."""

    name: str
    request: Callable[[], dict]  # keyword arguments of httpx.Client.post
    status: int
    code: str | None = None  # None: accepted (200)


def upload(data: Callable[[], bytes], filename: str = "leaf.jpg",
           content_type: str = "image/jpeg") -> Callable[[], dict]:
    return lambda: {"files": {FIELD: (filename, data(), content_type)}}


def raw(body: Callable[[], tuple[bytes, str]]) -> Callable[[], dict]:
    def request() -> dict:
        content, content_type = body()
        return {"content": content, "headers": {"Content-Type": content_type}}
    return request


CASES = [
    Case("zero-bytes", upload(lambda: b""), 400, "empty_image"),
    Case("random-bytes", upload(lambda: random.Random(1).randbytes(4096)), 415,
         "unsupported_media_type"),
    Case("html-named-jpg", upload(lambda: b"<!doctype html><html><body>hi</body></html>"), 415,
         "unsupported_media_type"),
    Case("bmp", upload(lambda: encode(photo(), "BMP"), "leaf.bmp", "image/bmp"), 415,
         "unsupported_media_type"),
    Case("gif", upload(lambda: encode(photo(), "GIF"), "leaf.gif", "image/gif"), 415,
         "unsupported_media_type"),
    Case("tiff", upload(lambda: encode(photo(), "TIFF"), "leaf.tiff", "image/tiff"), 415,
         "unsupported_media_type"),
    Case("webp", upload(lambda: encode(photo(), "WEBP"), "leaf.webp", "image/webp"), 415,
         "unsupported_media_type"),
    Case("jpeg-named-png", upload(photo_bytes, "leaf.png", "image/png"), 200),
    Case("truncated-jpeg", upload(lambda: photo_bytes()[: len(photo_bytes()) // 2]), 400,
         "truncated_image"),
    Case("truncated-png", upload(lambda: (lambda png: png[: len(png) * 2 // 3])(
        encode(photo(), "PNG")), "leaf.png", "image/png"), 400, "truncated_image"),
    Case("jpeg-magic-then-garbage",
         upload(lambda: b"\xff\xd8\xff\xe0\x00\x10" + b"garbage" * 100), 400,
         "undecodable_image"),
    Case("png-declaring-50000x50000", upload(lambda: png_declaring(50_000, 50_000), "bomb.png",
                                             "image/png"), 413, "image_too_large"),
    # Under the pixel cap, under 100 KB, but about 890 MiB to decode before the budget (issue 14).
    Case("png-16-bit-grey-7000x7000", upload(lambda: zeros_png(7000, 7000, 16, 0), "g.png",
                                             "image/png"), 413, "image_too_costly"),
    Case("png-1x1", upload(lambda: encode(Image.new("RGB", (1, 1), (60, 140, 40)), "PNG"),
                           "dot.png", "image/png"), 422, "image_too_small"),
    Case("jpeg-all-black", upload(lambda: encode(Image.new("RGB", (800, 600)), "JPEG")), 422,
         "blank_image"),
    Case("jpeg-all-white", upload(lambda: encode(Image.new("RGB", (800, 600), (255,) * 3),
                                                 "JPEG")), 422, "blank_image"),
    Case("png-16-bit-grey", upload(sixteen_bit_grey_png, "grey16.png", "image/png"), 200),
    Case("png-palette-transparent", upload(palette_png_with_transparency, "p.png", "image/png"),
         200),
    Case("jpeg-cmyk", upload(lambda: encode(photo().convert("CMYK"), "JPEG", quality=95)), 200),
    Case("body-over-cap", upload(lambda: photo_bytes() + os.urandom(10 * 1024 * 1024)), 413,
         "body_too_large"),
    Case("two-files", lambda: {"files": [(FIELD, ("a.jpg", photo_bytes())),
                                         (FIELD, ("b.jpg", photo_bytes()))]}, 422,
         "too_many_files"),
    Case("two-files-two-fields", lambda: {"files": [(FIELD, ("a.jpg", photo_bytes())),
                                                    ("other", ("b.jpg", photo_bytes()))]}, 422,
         "too_many_files"),
    Case("missing-field", raw(lambda: multipart(("note", None, b"no file here"))), 422,
         "missing_field"),
    Case("wrong-field-name", lambda: {"files": {"image": ("leaf.jpg", photo_bytes())}}, 422,
         "missing_field"),
    Case("field-as-text-not-file", raw(lambda: multipart((FIELD, None, b"not a file"))), 422,
         "missing_field"),
    Case("empty-multipart", raw(lambda: multipart()), 422, "missing_field"),
    Case("json-body", lambda: {"json": {"image_to_predict": "aGVsbG8="}}, 422, "not_multipart"),
    Case("urlencoded-body", lambda: {"data": {FIELD: "x"}}, 422, "not_multipart"),
    Case("no-body", dict, 422, "not_multipart"),
    Case("multipart-without-boundary", lambda: {
        "content": b"whatever", "headers": {"Content-Type": "multipart/form-data"}}, 422,
         "malformed_multipart"),
    Case("multipart-garbage", lambda: {
        "content": b"not multipart at all",
        "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}}, 422,
         "malformed_multipart"),
    Case("too-many-parts", raw(lambda: multipart(*[(f"f{i}", None, b"x") for i in range(20)])),
         422, "malformed_multipart"),
    # Text parts: the schema declares at most MAX_TEXT_FIELD_CHARS characters (JSON Schema
    # counts characters), within the parser's byte cap; the API holds the same line.
    Case("text-part-at-the-declared-length", raw(lambda: multipart(
        ("note", None, b"n" * MAX_TEXT_FIELD_CHARS), (FIELD, "leaf.jpg", photo_bytes()))), 200),
    Case("text-part-over-the-declared-length", raw(lambda: multipart(
        ("note", None, b"n" * (MAX_TEXT_FIELD_CHARS + 1)), (FIELD, "leaf.jpg", photo_bytes()))),
         422, "malformed_multipart"),
]


def good_request() -> dict:
    return {"files": {FIELD: ("leaf.jpg", photo_bytes())}}


def assert_good_answer(reply: httpx.Response) -> None:
    """The answer to good_request(), sent after a bad one: the API still works."""
    assert reply.status_code == 200, reply.text
    assert reply.json()["probabilities"][0]["code"] == reply.json()["code"]


@pytest.mark.anyio
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_bad_input_gets_its_documented_answer(app_client: httpx.AsyncClient,
                                                    fake_model_server: FakeModelServer,
                                                    case: Case) -> None:
    """In-process (the app's own validation; uvicorn's side is in core/test_body_limit.py)."""
    reply = await app_client.post("/predict/image", **case.request())
    assert reply.status_code == case.status, reply.text
    # An accepted photo reaches the model as one image; a refused upload never does.
    assert [t.shape for t in fake_model_server.received] == (
        [(1, 150, 150, 3)] if case.code is None else [])
    if case.code is None:
        assert reply.json()["code"] == "CMD"  # the fake model's answer
    else:
        assert reply.headers["content-type"] == PROBLEM_JSON
        problem = reply.json()
        assert problem["code"] == case.code
        assert problem["status"] == case.status
        assert problem["type"].endswith(case.code)
        assert problem["title"] and problem["detail"]
        assert problem["request_id"] == reply.headers["x-request-id"]
        if case.status == 415:
            assert "send a JPEG or PNG photo" in problem["detail"]
    assert_good_answer(await app_client.post("/predict/image", **good_request()))


@pytest.mark.slow
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_photo_answers_like_the_upright_one(api: httpx.Client,
                                                         orientation: int) -> None:
    def predict(data: bytes) -> dict[str, float]:
        reply = api.post("/predict/image", files={FIELD: ("leaf.jpg", data)})
        assert reply.status_code == 200, reply.text
        return {p["code"]: p["probability"] for p in reply.json()["probabilities"]}

    def distance(a: dict[str, float], b: dict[str, float]) -> float:
        return max(abs(a[code] - b[code]) for code in a)

    # The pixels as a phone stores them, and the EXIF tag that tells viewers how to turn them.
    stored = photo().transpose({3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
                                8: Image.Transpose.ROTATE_270}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright = predict(encode(photo(), "JPEG", quality=95))
    tagged = predict(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    untagged = predict(encode(stored, "JPEG", quality=95))
    assert max(tagged, key=tagged.get) == max(upright, key=upright.get)
    assert distance(tagged, upright) < 0.002
    # The same pixels without the tag answer measurably differently: the tag was applied.
    assert distance(untagged, upright) > 2 * distance(tagged, upright)


@pytest.mark.slow
def test_random_mutations_never_cause_a_server_error(api: httpx.Client) -> None:
    """Bit flips, cuts and splices of a real photo: 200 or a problem, never a 5xx."""
    rng = random.Random(7)
    original = photo_bytes()
    for _ in range(60):
        data = bytearray(original)
        action = rng.choice(["flip", "cut", "splice", "zero"])
        if action == "flip":
            for _ in range(rng.randint(1, 64)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif action == "cut":
            del data[rng.randrange(2, len(data)):]
        elif action == "splice":
            start = rng.randrange(len(data))
            data[start:start] = rng.randbytes(rng.randint(1, 4096))
        else:
            start = rng.randrange(len(data))
            data[start:start + rng.randint(1, 20000)] = b"\0" * 100
        reply = api.post("/predict/image", files={FIELD: ("m.jpg", bytes(data))})
        assert reply.status_code in (200, 400, 413, 415), (action, reply.text)
        if reply.status_code != 200:
            assert reply.headers["content-type"] == PROBLEM_JSON
    assert_good_answer(api.post("/predict/image", **good_request()))
