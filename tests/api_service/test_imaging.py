"""app.imaging.image_to_tensor: formats, pixel caps, truncation, EXIF, colour modes, output."""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, JpegImagePlugin

import leafsynth
from app.imaging import (
    DCT_SCALES,
    BlankImage,
    EmptyImage,
    ImageRejected,
    ImageTooSmall,
    TooCostlyToDecode,
    TooManyPixels,
    TruncatedImage,
    UndecodableImage,
    UnsupportedImageFormat,
    dct_scale,
    decode_cost,
    image_to_tensor,
    pixel_spread,
    sniff_format,
)
from tests.support.images import png_chunk, zeros_png
from tests.support.reference import article_preprocess

MAX_PIXELS = 40_000_000
WHITE = (1.0, 1.0, 1.0)


def tensor(data: bytes, height: int = 150, width: int = 150, max_pixels: int = MAX_PIXELS):
    return image_to_tensor(data, height=height, width=width, max_pixels=max_pixels)


def encode(image: Image.Image, fmt: str, **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_kwargs)
    return buffer.getvalue()


def raw_png(
    width: int, height: int, bit_depth: int, colour_type: int, rows: bytes, *extra: bytes
) -> bytes:
    """A PNG written byte by byte: modes Pillow cannot save (16-bit) and lying headers."""
    stride = len(rows) // height if height else 0
    filtered = b"".join(b"\0" + rows[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            png_chunk(b"IHDR", header),
            *extra,
            png_chunk(b"IDAT", zlib.compress(filtered)),
            png_chunk(b"IEND", b""),
        ]
    )


def png16(pixel: tuple[int, ...], colour_type: int, size: int = 8, *extra: bytes) -> bytes:
    """A uniform 16-bit PNG of one pixel value (big-endian samples, as PNG stores them)."""
    samples = np.tile(np.array(pixel, dtype=">u2"), (size, size, 1))
    return raw_png(size, size, 16, colour_type, samples.tobytes(), *extra)


def assert_colour(result: np.ndarray, rgb: tuple[float, float, float], atol: float) -> None:
    """Every pixel of the tensor is the expected colour."""
    deviation = np.abs(result[0] - np.array(rgb, dtype=np.float32)).max()
    assert deviation <= atol, f"max deviation {deviation:.4f} from {rgb}"


def quadrants(width: int, height: int) -> Image.Image:
    """An image no flip or rotation maps onto itself: four colours, a white bar top-left."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[: height // 2, : width // 2] = (220, 30, 30)
    pixels[: height // 2, width // 2 :] = (30, 200, 40)
    pixels[height // 2 :, : width // 2] = (40, 60, 210)
    pixels[height // 2 :, width // 2 :] = (230, 210, 40)
    pixels[height // 8 : height // 4, width // 8 : width // 3] = 255
    return Image.fromarray(pixels, "RGB")


@pytest.fixture(scope="module")
def photo_bytes(leaf_photo_paths: list[Path]) -> bytes:
    return leaf_photo_paths[0].read_bytes()


@pytest.fixture(scope="module")
def photo(photo_bytes: bytes) -> Image.Image:
    with Image.open(io.BytesIO(photo_bytes)) as image:
        return image.convert("RGB")


@pytest.fixture(scope="module")
def leaf() -> Image.Image:
    """A synthetic cassava leaf (leafsynth), 640x480 RGB."""
    return leafsynth.render("CMD", seed=3, size=(640, 480))


# --- the output --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize(("height", "width"), [(150, 150), (224, 160), (96, 300), (1, 1)])
def test_output_is_contiguous_float32_batch_of_one_in_unit_range(photo, fmt, height, width):
    result = tensor(encode(photo, fmt), height=height, width=width)
    assert result.dtype == np.float32
    assert result.shape == (1, height, width, 3)
    assert result.flags.c_contiguous
    assert result.min() >= 0.0 and result.max() <= 1.0
    # The picture itself, not a blank frame: its average colour survives any target size.
    photo_mean = np.asarray(photo, dtype=np.float32).mean(axis=(0, 1)) / 255
    assert np.abs(result.mean(axis=(0, 1, 2)) - photo_mean).max() < 0.03


def test_non_square_target_keeps_the_picture_the_right_way_round():
    # Left half red, right half blue: a swapped width/height would mix them row-wise instead.
    pixels = np.zeros((300, 400, 3), dtype=np.uint8)
    pixels[:, :200] = (255, 0, 0)
    pixels[:, 200:] = (0, 0, 255)
    result = tensor(encode(Image.fromarray(pixels), "PNG"), height=50, width=120)
    assert_colour(result[:, :, :55], (1, 0, 0), atol=1e-6)
    assert_colour(result[:, :, 65:], (0, 0, 1), atol=1e-6)


def test_small_images_are_upscaled(photo):
    result = tensor(encode(photo.resize((40, 30)), "PNG"))
    assert result.shape == (1, 150, 150, 3)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_article_sized_photos_match_the_reference_pipeline_exactly(leaf_photo_paths, index):
    data = leaf_photo_paths[index].read_bytes()
    assert Image.open(io.BytesIO(data)).size == (800, 600)
    np.testing.assert_allclose(tensor(data), article_preprocess(data), rtol=0, atol=1e-6)


@pytest.fixture
def jpeg_decode_sizes(monkeypatch) -> list[tuple[int, int]]:
    """The size every JPEG is decoded at (after draft), recorded without changing anything."""
    sizes: list[tuple[int, int]] = []
    real_load = JpegImagePlugin.JpegImageFile.load

    def recording_load(self):
        if not hasattr(self, "_test_recorded"):  # load() runs again on later pixel accesses
            self._test_recorded = True
            sizes.append(self.size)
        return real_load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", recording_load)
    return sizes


def test_large_jpeg_is_decoded_at_reduced_scale_then_close_to_the_reference(
    photo, jpeg_decode_sizes
):
    big = encode(photo.resize((4000, 3000), Image.Resampling.LANCZOS), "JPEG", quality=92)
    result = tensor(big)
    # 4000x3000 / 8 = 500x375: 1/64 of the pixels, still 2.5x the target.
    assert jpeg_decode_sizes[0] == (500, 375)
    difference = np.abs(result - article_preprocess(big))
    assert difference.mean() < 0.5 / 255 and difference.max() < 6 / 255


@pytest.mark.parametrize(
    ("size", "target", "scale"),
    [
        ((800, 600), (150, 150), 1),  # the article's photos: decoded in full, like the reference
        ((1199, 1199), (150, 150), 1),
        ((1200, 1200), (150, 150), 2),
        ((1600, 1200), (150, 150), 2),
        ((2400, 1800), (150, 150), 2),
        ((3200, 2400), (150, 150), 4),
        ((3264, 2448), (150, 150), 4),
        ((3000, 3000), (150, 150), 8),
        ((4000, 3000), (150, 150), 8),
        ((4000, 3000), (100, 100), 8),
        ((4000, 3000), (300, 150), 2),  # the tighter side decides
        ((3000, 4000), (150, 300), 2),
        ((4000, 3000), (1000, 750), 1),
    ],
)
def test_dct_scale_keeps_each_scales_margin(size, target, scale):
    assert dct_scale(size, target) == scale
    needed = dict(DCT_SCALES).get(scale, 1)
    assert size[0] / scale >= needed * target[0] and size[1] / scale >= needed * target[1]


def test_progressive_and_mpo_jpegs_are_accepted(photo):
    upright = tensor(encode(photo, "JPEG", quality=95))
    progressive = tensor(encode(photo, "JPEG", quality=95, progressive=True))
    mpo = encode(photo, "MPO", quality=95, save_all=True, append_images=[photo.rotate(90)])
    assert Image.open(io.BytesIO(mpo)).format == "MPO"
    assert np.abs(progressive - upright).max() < 3 / 255
    assert np.abs(tensor(mpo) - upright).max() < 3 / 255


# --- what is accepted, what is rejected --------------------------------------------------------


def test_sniffing_uses_magic_bytes_only(photo):
    assert sniff_format(encode(photo, "JPEG")) == "JPEG"
    assert sniff_format(encode(photo, "PNG")) == "PNG"
    assert sniff_format(b"<!doctype html>") is None
    assert sniff_format(b"\xff\xd8") is None


def other_formats() -> dict[str, Callable[[Image.Image], bytes]]:
    return {
        "BMP": lambda im: encode(im, "BMP"),
        "GIF": lambda im: encode(im, "GIF"),
        "TIFF": lambda im: encode(im, "TIFF"),
        "WebP": lambda im: encode(im, "WEBP"),
        "JPEG 2000": lambda im: encode(im, "JPEG2000"),
        "ICO": lambda im: encode(im.resize((64, 64)), "ICO"),
        "HTML named .jpg": lambda im: b"<!DOCTYPE html><html><body>photo.jpg</body></html>",
        "random bytes": lambda im: b"\x00" + random.Random(7).randbytes(4096),
        "one JPEG byte": lambda im: b"\xff",
        "PNG magic, one byte short": lambda im: b"\x89PNG\r\n\x1a",
    }


@pytest.mark.parametrize("name", list(other_formats()))
def test_anything_but_jpeg_and_png_is_unsupported(photo, name):
    data = other_formats()[name](photo)
    with pytest.raises(UnsupportedImageFormat, match="not a JPEG or PNG"):
        tensor(data)


def test_zero_bytes_is_empty():
    with pytest.raises(EmptyImage, match="empty"):
        tensor(b"")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda jpg, png: b"\xff\xd8\xff<html><body>hi</body></html>", id="JPEG+HTML"),
        pytest.param(lambda jpg, png: png[:8] + b"<html></html>" * 20, id="PNG+HTML"),
        pytest.param(lambda jpg, png: b"\xff\xd8\xff\xd9", id="JPEG-SOI-EOI"),
        pytest.param(
            lambda jpg, png: png.replace(b"IHDR", b"IHDX", 1),
            id="PNG-without-IHDR",
        ),
    ],
)
def test_corrupt_files_behind_a_valid_signature_are_undecodable(photo, make):
    data = make(encode(photo, "JPEG"), encode(photo, "PNG"))
    with pytest.raises(UndecodableImage) as caught:
        tensor(data)
    assert type(caught.value) is UndecodableImage, "garbage is not a truncated file"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("keep", [0.02, 0.5, 0.97, "almost-all"])
def test_truncated_files_are_rejected(photo, fmt, keep):
    data = encode(photo, fmt)
    cut = int(len(data) * keep) if isinstance(keep, float) else len(data) - 2  # JPEG: no EOI
    if fmt == "PNG" and keep == "almost-all":
        # Without the last pixel data (not merely IEND, which a decoder does not need).
        cut = len(data) - len(b"IEND") - 12 - 64
    with pytest.raises(TruncatedImage, match="truncated"):
        tensor(data[:cut])


def test_jpeg_cut_inside_its_header_is_truncated(photo):
    with pytest.raises(TruncatedImage):
        tensor(encode(photo, "JPEG")[:100])


def test_png_declaring_50000x50000_is_rejected_from_the_header(monkeypatch):
    bomb = raw_png(50000, 50000, 8, 2, b"")  # IHDR claims 2.5 gigapixels; no pixel data at all
    assert len(bomb) < 200

    def no_decoding(self):
        raise AssertionError("pixel data must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(TooManyPixels, match="too many pixels"):
        tensor(bomb)


@pytest.mark.parametrize(
    "size", [(5000, 5000), (10000, 10000)], ids=["over-our-cap", "over-pillow-warning-cap"]
)
def test_pixel_cap_counts_header_pixels_before_decoding(monkeypatch, size):
    # 10000x10000 also exceeds Pillow's MAX_IMAGE_PIXELS, where Pillow only warns: an error too.
    header_only = raw_png(*size, 8, 2, b"")

    def no_decoding(self):
        raise AssertionError("pixel data must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(TooManyPixels):
        tensor(header_only, max_pixels=20_000_000)


def test_pixel_cap_applies_to_jpegs_and_is_inclusive(photo):
    data = encode(photo, "JPEG")
    assert tensor(data, max_pixels=800 * 600).shape == (1, 150, 150, 3)
    with pytest.raises(TooManyPixels):
        tensor(data, max_pixels=800 * 600 - 1)


def test_messages_are_for_people_not_stack_traces(photo):
    cases = [b"", b"GIF89a", b"\xff\xd8\xff\x00", encode(photo, "PNG")[:5000]]
    cases.append(raw_png(50000, 50000, 8, 2, b""))
    for data in cases:
        with pytest.raises(ImageRejected) as caught:
            tensor(data)
        message = str(caught.value)
        assert message.endswith(".")
        for internal in ("PIL", "Error", "BytesIO", "0x", "Traceback", "errno"):
            assert internal not in message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_mangled_uploads_give_a_tensor_or_image_rejected_never_anything_else(photo, fmt):
    source = encode(photo.resize((200, 150)), fmt)
    rng = random.Random(fmt)
    outcomes = {"tensor": 0, "rejected": 0}
    for _ in range(150):
        data = bytearray(source)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        try:
            result = tensor(bytes(data))
        except ImageRejected:
            outcomes["rejected"] += 1
        else:
            assert result.shape == (1, 150, 150, 3) and result.dtype == np.float32
            outcomes["tensor"] += 1
    assert outcomes["rejected"] > 0 and outcomes["tensor"] > 0, outcomes


@pytest.mark.parametrize(("height", "width", "max_pixels"), [(0, 150, 1), (150, 0, 1), (1, 1, 0)])
def test_nonsense_target_sizes_are_a_programming_error(photo, height, width, max_pixels):
    with pytest.raises(ValueError):
        image_to_tensor(encode(photo, "PNG"), height=height, width=width, max_pixels=max_pixels)


# --- colour modes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("RGB", (200, 100, 50), (200 / 255, 100 / 255, 50 / 255)),
        ("L", 100, (100 / 255,) * 3),
        ("1", 1, WHITE),
        ("1", 0, (0.0, 0.0, 0.0)),
        ("RGBA", (255, 0, 0, 0), WHITE),
        ("RGBA", (255, 0, 0, 255), (1.0, 0.0, 0.0)),
        ("RGBA", (0, 0, 0, 0), WHITE),
        ("LA", (0, 0), WHITE),
        ("LA", (0, 255), (0.0, 0.0, 0.0)),
        ("I;16", 0x8080, (128 / 255,) * 3),
    ],
)
def test_png_modes_become_the_expected_rgb(mode, value, expected):
    image = Image.new(mode, (32, 24), value)
    assert_colour(tensor(encode(image, "PNG")), expected, atol=1e-6)


def test_half_transparent_red_is_blended_onto_white():
    result = tensor(encode(Image.new("RGBA", (16, 16), (255, 0, 0, 128)), "PNG"))
    assert_colour(result, (1.0, 127 / 255, 127 / 255), atol=1.5 / 255)


def test_hidden_colour_under_transparency_does_not_bleed_into_visible_pixels():
    # Top half transparent green, bottom half opaque red: resizing must not blend the green in.
    pixels = np.zeros((64, 64, 4), dtype=np.uint8)
    pixels[:32] = (0, 255, 0, 0)
    pixels[32:] = (255, 0, 0, 255)
    result = tensor(encode(Image.fromarray(pixels, "RGBA"), "PNG"), height=64, width=64)
    assert_colour(result[:, :28], WHITE, atol=1e-6)
    assert_colour(result[:, 36:], (1.0, 0.0, 0.0), atol=1e-6)
    assert result[0, :, :, 1].max() <= 1.0 and result[0, 36:, :, 1].max() < 1e-6


def palette_image(transparency: int | bytes | None) -> bytes:
    """Left half palette index 0 (red), right half index 1 (blue)."""
    image = Image.new("P", (64, 32), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    image.paste(1, (32, 0, 64, 32))
    kwargs = {} if transparency is None else {"transparency": transparency}
    return encode(image, "PNG", **kwargs)


@pytest.mark.parametrize(
    ("transparency", "left", "right"),
    [
        (None, (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
        (0, WHITE, (0.0, 0.0, 1.0)),  # tRNS: index 0 fully transparent
        (b"\xff\x00", (1.0, 0.0, 0.0), WHITE),  # tRNS with per-entry alpha
    ],
    ids=["opaque", "index-transparent", "alpha-table"],
)
def test_palette_pngs_use_their_colours_and_transparency(transparency, left, right):
    data = palette_image(transparency)
    assert Image.open(io.BytesIO(data)).mode == "P"
    result = tensor(data, height=32, width=64)
    assert_colour(result[:, :, :28], left, atol=1e-6)
    assert_colour(result[:, :, 36:], right, atol=1e-6)


@pytest.mark.parametrize(("mode", "value"), [("L", 77), ("RGB", (10, 20, 30))])
def test_colour_key_transparency_becomes_white(mode, value):
    image = Image.new(mode, (16, 16), value)
    assert_colour(tensor(encode(image, "PNG", transparency=value)), WHITE, atol=1e-6)


@pytest.mark.parametrize(
    ("pixel", "colour_type", "expected"),
    [
        ((0xFFFF,), 0, WHITE),
        ((0x8080,), 0, (128 / 255,) * 3),
        ((0x0000,), 0, (0.0, 0.0, 0.0)),
        ((0x1000,), 0, (16 / 255,) * 3),  # dark grey stays dark: no clipping of 16-bit values
        ((0xFFFF, 0x8000, 0x0000), 2, (1.0, 128 / 255, 0.0)),
        ((0x0000, 0xFFFF, 0x0000, 0x0000), 6, WHITE),
        ((0x0000, 0xFFFF, 0x0000, 0xFFFF), 6, (0.0, 1.0, 0.0)),
        ((0x4000, 0x0000), 4, WHITE),
        ((0x4000, 0xFFFF), 4, (64 / 255,) * 3),
    ],
    ids=[
        "grey-white",
        "grey-mid",
        "grey-black",
        "grey-dark",
        "rgb",
        "rgba-clear",
        "rgba-opaque",
        "grey-alpha-clear",
        "grey-alpha-opaque",
    ],
)
def test_16_bit_pngs_keep_their_brightness(pixel, colour_type, expected):
    assert_colour(tensor(png16(pixel, colour_type)), expected, atol=1 / 255)


def test_16_bit_grey_colour_key_becomes_white():
    key = png_chunk(b"tRNS", struct.pack(">H", 0x1234))
    assert_colour(tensor(png16((0x1234,), 0, 8, key)), WHITE, atol=1e-6)
    assert_colour(tensor(png16((0x1235,), 0, 8, key)), (18 / 255,) * 3, atol=1e-6)


@pytest.mark.parametrize(
    ("cmyk", "rgb"),
    [
        ((0, 0, 0, 0), (255, 255, 255)),
        ((255, 0, 0, 0), (0, 255, 255)),
        ((0, 255, 255, 0), (255, 0, 0)),
        ((0, 0, 255, 0), (255, 255, 0)),
        ((0, 0, 0, 255), (0, 0, 0)),
        ((0, 0, 0, 128), (127, 127, 127)),
    ],
)
def test_cmyk_jpegs_are_converted_with_adobe_inversion(cmyk, rgb):
    data = encode(Image.new("CMYK", (32, 32), cmyk), "JPEG", quality=100)
    opened = Image.open(io.BytesIO(data))
    assert opened.mode == "CMYK" and "adobe" in opened.info  # stored inverted, Photoshop style
    assert_colour(tensor(data), tuple(c / 255 for c in rgb), atol=4 / 255)


def test_cmyk_photo_gives_the_same_tensor_as_its_rgb_original(leaf):
    rgb = tensor(leafsynth.encode(leaf, "JPEG", quality=95))
    cmyk = tensor(leafsynth.encode(leaf.convert("CMYK"), "JPEG", quality=95))
    assert np.abs(cmyk - rgb).mean() < 1 / 255
    assert np.abs(cmyk - rgb).max() < 16 / 255


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P"])
def test_opaque_photo_in_any_png_mode_matches_converting_it_to_rgb_first(leaf, mode):
    # Fully opaque alpha must change nothing; L and P are compared with their own RGB rendering.
    image = leaf.convert(mode)
    expected = tensor(leafsynth.encode(image.convert("RGB"), "PNG"))
    assert np.abs(tensor(leafsynth.encode(image, "PNG")) - expected).max() < 1e-6


def test_greyscale_jpeg(photo):
    grey = photo.convert("L")
    result = tensor(encode(grey, "JPEG", quality=95))
    assert np.abs(result[..., 0] - result[..., 1]).max() == 0
    expected = np.asarray(grey.resize((150, 150)), dtype=np.float32) / 255
    assert np.abs(result[0, ..., 0] - expected).max() < 4 / 255


# --- EXIF orientation --------------------------------------------------------------------------

# What a camera stores for each orientation tag when the scene is `upright` (EXIF 2.3, 0x0112),
# written with numpy so the test does not share the implementation's transpose table.
STORED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, 1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, -1),
}


def with_orientation(upright: Image.Image, orientation: int, fmt: str, **kwargs) -> bytes:
    stored = Image.fromarray(np.ascontiguousarray(STORED[orientation](np.asarray(upright))))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, fmt, exif=exif.tobytes(), **kwargs)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(("height", "width"), [(150, 150), (90, 160)])
def test_exif_orientation_gives_the_upright_picture_png(orientation, height, width):
    upright = quadrants(320, 240)
    expected = tensor(encode(upright, "PNG"), height=height, width=width)
    result = tensor(with_orientation(upright, orientation, "PNG"), height=height, width=width)
    assert np.abs(result - expected).max() < 1e-5


@pytest.fixture(scope="module")
def large_upright(photo: Image.Image) -> tuple[Image.Image, bytes]:
    """The leaf photo at 3200x2400, and as a JPEG (made once: the cases below share it)."""
    upright = photo.resize((3200, 2400), Image.Resampling.BICUBIC)
    return upright, encode(upright, "JPEG", quality=95)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(("height", "width"), [(90, 160), (160, 90)])
def test_exif_orientation_gives_the_upright_picture_large_jpeg(
    large_upright, jpeg_decode_sizes, orientation, height, width
):
    # 3200x2400 is drafted (DCT-scaled) before it is turned upright: the scale must be chosen
    # for the target as it will lie on the stored pixels, so it is the same for every orientation.
    upright, upright_jpeg = large_upright
    expected = tensor(upright_jpeg, height=height, width=width)
    data = with_orientation(upright, orientation, "JPEG", quality=95)
    result = tensor(data, height=height, width=width)
    upright_decode, stored_decode = jpeg_decode_sizes[0], jpeg_decode_sizes[-1]
    assert upright_decode == (stored_decode[::-1] if orientation >= 5 else stored_decode)
    assert np.abs(result - expected).mean() < 1 / 255
    assert np.abs(result - expected).max() < 12 / 255


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_leaf_photo(leaf, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = Image.fromarray(np.ascontiguousarray(STORED[orientation](np.asarray(leaf))))
    data = leafsynth.encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    expected = tensor(leafsynth.encode(leaf, "JPEG", quality=95))
    assert np.abs(tensor(data) - expected).mean() < 1 / 255


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_invalid_orientation_values_are_ignored(orientation):
    upright = quadrants(64, 48)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(upright, "PNG", exif=exif.tobytes())
    assert np.array_equal(tensor(data), tensor(encode(upright, "PNG")))


# Pillow warns about the broken block (a UserWarning, once per process outside pytest).
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
def test_damaged_exif_block_is_ignored_not_fatal(photo):
    clean = encode(photo, "JPEG", quality=90)
    garbage = b"Exif\0\0MM\0\x2a" + random.Random(5).randbytes(60)
    app1 = b"\xff\xe1" + struct.pack(">H", len(garbage) + 2) + garbage
    damaged = clean[:2] + app1 + clean[2:]
    assert np.array_equal(tensor(damaged), tensor(clean))


def test_concurrent_calls_match_sequential_ones(photo):
    # The API decodes in a thread pool: no shared state (warning filters, Pillow globals) may leak
    # between calls, and Pillow's cap warnings must stay errors in every thread.
    big = encode(photo.resize((2400, 1800)), "JPEG", quality=90)
    inputs = [encode(photo, "JPEG"), big, encode(photo, "PNG"), raw_png(10000, 10000, 8, 2, b"")]
    inputs += [with_orientation(photo, 6, "JPEG"), png16((0x8080,), 0)]

    def outcome(data: bytes):
        try:
            return tensor(data, max_pixels=200_000_000)
        except ImageRejected as error:
            return type(error)

    sequential = [outcome(data) for data in inputs]
    assert sequential[3] is TooManyPixels
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            for expected, got in zip(sequential, pool.map(outcome, inputs), strict=True):
                if isinstance(expected, np.ndarray):
                    assert np.array_equal(expected, got)
                else:
                    assert got is expected


# --- memory budget and pictures that cannot show a leaf -----------------------------------------


@pytest.mark.parametrize(("colour_type", "bytes_per_pixel"), [(0, 14), (2, 8), (6, 13)],
                         ids=["grey16", "rgb16", "rgba16"])
def test_decode_cost_is_read_from_the_header_before_any_decoding(monkeypatch, colour_type,
                                                                 bytes_per_pixel):
    giant = zeros_png(7000, 7000, 16, colour_type)
    assert len(giant) < 400_000
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    assert decode_cost(giant, height=150, width=150, max_pixels=MAX_PIXELS * 2) \
        == 7000 * 7000 * bytes_per_pixel
    with pytest.raises(TooCostlyToDecode, match="MiB of memory"):
        image_to_tensor(giant, height=150, width=150, max_pixels=MAX_PIXELS * 2,
                        max_decode_bytes=256 * 2**20)


def test_decode_cost_of_a_large_jpeg_counts_its_reduced_decode(photo):
    big = encode(photo.resize((4000, 3000)), "JPEG", quality=80)
    # Decoded at 1/8 (500x375): a 12 MP phone photo costs about 1.5 MB, not 96 MB.
    assert decode_cost(big, height=150, width=150, max_pixels=MAX_PIXELS) == 500 * 375 * 8


def test_decode_cost_refuses_what_image_to_tensor_refuses():
    with pytest.raises(EmptyImage):
        decode_cost(b"", height=150, width=150, max_pixels=MAX_PIXELS)
    with pytest.raises(TooManyPixels):
        decode_cost(raw_png(50000, 50000, 8, 2, b""), height=150, width=150,
                    max_pixels=MAX_PIXELS)


def test_every_16_bit_grey_value_is_scaled_to_the_nearest_8_bit_value():
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    data = raw_png(256, 256, 16, 0, values.astype(">u2").tobytes())
    result = image_to_tensor(data, height=256, width=256, max_pixels=MAX_PIXELS)  # no resize
    expected = ((values.astype(np.int64) + 128) // 257).astype(np.float32) / 255
    np.testing.assert_allclose(result[0, :, :, 0], expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("size", [(1, 1), (31, 400), (400, 31)])
def test_too_few_pixels_on_the_short_side_cannot_show_a_leaf(photo, size):
    data = encode(photo.resize(size), "PNG")
    with pytest.raises(ImageTooSmall, match="too small to show a leaf"):
        image_to_tensor(data, height=150, width=150, max_pixels=MAX_PIXELS, min_short_side=32)


def test_short_side_at_the_minimum_is_accepted(photo):
    data = encode(photo.resize((32, 48)), "PNG")
    assert image_to_tensor(data, height=150, width=150, max_pixels=MAX_PIXELS,
                           min_short_side=32).shape == (1, 150, 150, 3)


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (60, 140, 40)])
def test_flat_pictures_are_blank(colour):
    data = encode(Image.new("RGB", (800, 600), colour), "JPEG", quality=90)
    with pytest.raises(BlankImage, match="cannot show a leaf"):
        image_to_tensor(data, height=150, width=150, max_pixels=MAX_PIXELS, min_spread=0.015)


@pytest.mark.parametrize("seed", range(5))
def test_pixel_spread_is_the_tensor_s_largest_channel_std(seed):
    rng = np.random.default_rng(seed)
    scale = rng.uniform(1, 255, size=3)  # channels of different spread
    pixels = (rng.random((150, 150, 3)) * scale).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    expected = (pixels.astype(np.float64) / 255).std(axis=(0, 1)).max()
    assert pixel_spread(image) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_a_dark_real_photo_is_not_blank(photo):
    dark = Image.eval(photo, lambda value: value // 10)  # 10 % brightness
    result = image_to_tensor(encode(dark, "JPEG", quality=90), height=150, width=150,
                             max_pixels=MAX_PIXELS, min_spread=0.015)
    assert result.std(axis=(0, 1, 2)).max() > 0.015
