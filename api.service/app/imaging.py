"""Uploaded photo bytes -> the model's input tensor: strict format checks, EXIF, modes, resize.

Pure: no I/O, no web framework, no TensorFlow. Every way a client's bytes can fail ends in an
`ImageRejected` subclass with a message fit to show the client; nothing else escapes for bad input.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, ImageStat

# Pillow warns (it does not raise) between MAX_IMAGE_PIXELS and twice that. Make the warning an
# error once, at import, instead of toggling filters per call (warning filters are process-global
# and not thread-safe). Our own cap (max_pixels, checked from the header below) normally fires
# first; this only keeps Pillow's own, larger cap from being a mere log line.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)

ALLOWED_FORMATS = ("JPEG", "PNG")
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Phones often write MPO (a JPEG with extra frames appended); Pillow opens those as "MPO".
_PILLOW_FORMATS = {"JPEG": ("JPEG", "MPO"), "PNG": ("PNG",)}

# Large JPEGs are decoded with DCT scaling (libjpeg's 1/2, 1/4, 1/8) before the final BICUBIC
# resize, which does the anti-aliasing. How much margin each scale needs, as a multiple of the
# target size, was measured against the article's full decode with the seed model
# (docs/api-benchmarks.md): 1/8 keeps only each 8x8 block's mean (a clean box filter) and is
# within ~0.005 of the reference at 2.5x; 1/2 and 1/4 are scaled inverse DCTs that alias more and
# need 4x for the same. 800x600 photos, the article's own, are never scaled: identical results.
DCT_SCALES = ((8, 2.5), (4, 4.0), (2, 4.0))  # (denominator, minimum decoded size / target size)

# EXIF orientation -> the transpose that shows the stored pixels upright (EXIF 2.3, tag 0x0112).
_ORIENTATION_TAG = 0x0112
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})

# Bytes per pixel Pillow stores for a decoded image of each mode (Storage.c: 1, 2 or 4).
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# Bytes per decoded pixel the pipeline allocates on top of the decoded image at its peak, an upper
# bound of ru_maxrss measured on 7000x7000 PNGs (docs/reliability.md: RGB 4.1, RGBA 9.0, 16-bit
# grey 13.0 bytes per pixel in all): an RGB copy (convert or transpose) for any image; for alpha
# and colour keys a white background and the alpha band; for 16-bit grey the 8-bit copies.
_PIPELINE_BYTES = 4
_ALPHA_BYTES = 5
_GREY16_BYTES = 8

_WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_GREY = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


class ImageRejected(Exception):
    """The upload is not an image we can use; the message is safe to show the client."""


class EmptyImage(ImageRejected):
    """Zero bytes."""


class UnsupportedImageFormat(ImageRejected):
    """Neither JPEG nor PNG by its magic bytes (BMP, GIF, TIFF, WebP, HTML, anything else)."""


class UndecodableImage(ImageRejected):
    """Starts like a JPEG or PNG but cannot be decoded."""


class TruncatedImage(UndecodableImage):
    """A JPEG or PNG that ends before its pixel data does."""


class TooManyPixels(ImageRejected):
    """The header declares more pixels than the cap (a decompression bomb, or just too big)."""


class TooCostlyToDecode(ImageRejected):
    """Decoding would need more memory than the per-image budget (e.g. a 16-bit giant PNG)."""


class ShowsNoLeaf(ImageRejected):
    """A valid image that cannot show a leaf: the model's answer would be meaningless."""


class ImageTooSmall(ShowsNoLeaf):
    """Too few pixels on the short side (a 1x1 PNG, a thumbnail)."""


class BlankImage(ShowsNoLeaf):
    """Nearly uniform: an all-black (lens covered), all-white or single-colour picture."""


def sniff_format(data: bytes) -> str | None:
    """'JPEG' or 'PNG' by magic bytes, else None. File names and Content-Types are never trusted."""
    if data.startswith(_JPEG_MAGIC):
        return "JPEG"
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    return None


def image_to_tensor(data: bytes, *, height: int, width: int, max_pixels: int,
                    max_decode_bytes: int | None = None, min_short_side: int = 1,
                    min_spread: float = 0.0) -> np.ndarray:
    """Decode a JPEG/PNG upload to a float32 (1, height, width, 3) RGB tensor scaled to [0, 1].

    `max_decode_bytes` caps decode_cost(); `min_short_side` (pixels) and `min_spread` (largest
    per-channel standard deviation of the tensor) refuse pictures that cannot show a leaf."""
    if height < 1 or width < 1 or max_pixels < 1 or min_short_side < 1:
        raise ValueError("height, width, max_pixels and min_short_side must be positive")
    kind = _sniff_or_reject(data)
    try:
        im = _open_header(data, kind, max_pixels=max_pixels)
        if max_decode_bytes is not None:
            cost = _decode_cost(im, kind, height=height, width=width)
            if cost > max_decode_bytes:
                raise _too_costly(cost, max_decode_bytes)
        if min(im.size) < min_short_side:
            raise ImageTooSmall(
                f"The image is {im.width}x{im.height} pixels: too small to show a leaf (at least "
                f"{min_short_side} pixels on the short side); send a photo of one leaf.")
        rgb = _decode_upright_rgb(im, kind, height=height, width=width)
    except ImageRejected:
        raise
    except Exception as exc:  # Pillow reports malformed input through many exception types.
        raise _classify_failure(data, kind, exc) from exc
    if min_spread > 0 and pixel_spread(rgb) < min_spread:
        raise BlankImage("The picture is almost one flat colour (lens covered, too dark or "
                         "blank): it cannot show a leaf; take a photo of one leaf in daylight.")
    return _to_unit_float(rgb)


def pixel_spread(rgb: Image.Image) -> float:
    """The largest per-channel standard deviation of the model's input, in [0, 1] units: the
    tensor's std over its pixels, computed by Pillow from the 8-bit image's histogram (a
    fraction of numpy's reductions over the float tensor: 1.3 ms less CPU per 800x600 request,
    docs/reliability.md)."""
    return max(ImageStat.Stat(rgb).stddev) / 255.0


def decode_cost(data: bytes, *, height: int, width: int, max_pixels: int) -> int:
    """Bytes image_to_tensor allocates at its peak for this upload, from the header alone.

    Raises the same ImageRejected as image_to_tensor for anything the header already condemns."""
    kind = _sniff_or_reject(data)
    try:
        return _decode_cost(_open_header(data, kind, max_pixels=max_pixels), kind,
                            height=height, width=width)
    except ImageRejected:
        raise
    except Exception as exc:
        raise _classify_failure(data, kind, exc) from exc


def _sniff_or_reject(data: bytes) -> str:
    if not data:
        raise EmptyImage("The uploaded file is empty.")
    kind = sniff_format(data)
    if kind is None:
        raise UnsupportedImageFormat("The uploaded file is not a JPEG or PNG image.")
    return kind


def _open_header(data: bytes, kind: str, *, max_pixels: int) -> Image.Image:
    """Image.open with the pixel cap; only the header is parsed. Pillow may raise."""
    try:
        im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(max_pixels) from exc
    # Image.open has parsed the header only: no pixel has been decoded or allocated yet.
    if im.width * im.height > max_pixels:
        raise _too_many_pixels(max_pixels)
    if im.format not in _PILLOW_FORMATS[kind]:  # Cannot happen while magic bytes decide; cheap.
        raise UndecodableImage(f"The uploaded file is not a valid {kind} image.")
    return im


def _decode_cost(im: Image.Image, kind: str, *, height: int, width: int) -> int:
    """Peak bytes of decoding `im` (opened, not loaded) to the target: what Pillow stores for the
    decoded pixels (at the DCT-scaled size for JPEGs) plus the pipeline's copies of them."""
    decoded_width, decoded_height = im.size
    if kind == "JPEG":
        # Upper bound over both orientations: the draft is chosen before EXIF is applied.
        scale = min(dct_scale(im.size, (width, height)), dct_scale(im.size, (height, width)))
        decoded_width, decoded_height = -(-im.width // scale), -(-im.height // scale)
    stored = _STORED_BYTES.get(im.mode, 4)
    extra = _PIPELINE_BYTES
    if im.mode in _SIXTEEN_BIT_GREY:
        extra += _GREY16_BYTES
    elif im.mode in _ALPHA_MODES or "transparency" in im.info:
        extra += _ALPHA_BYTES
    return decoded_width * decoded_height * (stored + extra)


def _decode_upright_rgb(im: Image.Image, kind: str, *, height: int, width: int) -> Image.Image:
    """(Draft) decode, RGB, resize to (width, height) upright. Pillow may raise."""
    if kind == "PNG":
        # A PNG's eXIf chunk may follow the pixel data (Pillow's getexif() would load anyway);
        # loading here keeps decode errors out of _orientation, which forgives broken EXIF.
        im.load()
    orientation = _orientation(im)
    if kind == "JPEG":
        # Draft in stored (pre-rotation) coordinates: a 90-degree turn swaps the target's sides.
        stored = (height, width) if orientation in _SWAPS_AXES else (width, height)
        scale = dct_scale(im.size, stored)
        if scale > 1:
            im.draft(None, (im.width // scale, im.height // scale))
    im.load()
    if orientation in _UPRIGHT:
        # Before the resize: Pillow resizes in two rounded passes, so resize-then-rotate would
        # differ (slightly) from the same photo taken upright.
        im = im.transpose(_UPRIGHT[orientation])
    im = _to_rgb(im)
    im = im.resize((width, height), Image.Resampling.BICUBIC)
    return im


def dct_scale(size: tuple[int, int], target: tuple[int, int]) -> int:
    """The JPEG DCT scaling denominator (1, 2, 4 or 8) to decode `size` at, for a `target` size."""
    margin = min(size[0] / target[0], size[1] / target[1])
    return next((scale for scale, needed in DCT_SCALES if margin / scale >= needed), 1)


def _orientation(im: Image.Image) -> int:
    """EXIF orientation 1..8 (XMP's too, via Pillow); 1 when absent, invalid or unreadable."""
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # A damaged EXIF block does not make the photo unusable.
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any decoded JPEG/PNG mode -> 8-bit RGB; transparent pixels become white."""
    if im.mode in _SIXTEEN_BIT_GREY:
        im = _grey16_to_grey8(im)
    if im.mode in ("P", "L", "RGB") and "transparency" in im.info:
        # A palette tRNS chunk or a colour key: expand it to a real alpha channel.
        im = im.convert("LA" if im.mode == "L" else "RGBA")
    if im.mode in _ALPHA_MODES:
        rgba = im.convert("RGBA") if im.mode != "RGBA" else im
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    # CMYK (Pillow already un-inverts Adobe CMYK JPEGs while decoding), L, 1, P without alpha.
    return im if im.mode == "RGB" else im.convert("RGB")


def _grey16_to_grey8(im: Image.Image) -> Image.Image:
    """16-bit greyscale -> 8-bit 'L' (or 'LA' for a colour-keyed pixel value).

    Pillow's own convert() clips 16-bit values at 255 instead of scaling them, which would turn
    almost every 16-bit photo white.
    """
    values = np.asarray(im)
    if values.dtype.kind == "u" and values.dtype.itemsize == 2:
        # One byte per pixel out, no wider temporaries: a 49 MP 16-bit PNG of 95 KB took 890 MiB
        # through int64 arithmetic (issue 14); the table gives the same values.
        grey = _GREY16_TO_GREY8.take(values)
    else:  # mode "I" (32-bit): rare, small
        grey = ((np.clip(values.astype(np.int64), 0, 65535) + 128) // 257).astype(np.uint8)
    key = im.info.get("transparency")
    if isinstance(key, int):
        alpha = np.where(values == key, 0, 255).astype(np.uint8)
        return Image.fromarray(np.dstack((grey, alpha)), "LA")
    return Image.fromarray(grey, "L")


# 16-bit value -> nearest 8-bit value (v / 257, rounded): the scaling of _grey16_to_grey8.
_GREY16_TO_GREY8 = ((np.arange(65536, dtype=np.uint32) + 128) // 257).astype(np.uint8)


def _to_unit_float(rgb: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> C-contiguous float32 (1, H, W, 3) in [0, 1], in one numpy op."""
    pixels = np.asarray(rgb)
    tensor = np.empty((1, *pixels.shape), dtype=np.float32)
    np.divide(pixels, np.float32(255.0), out=tensor[0], dtype=np.float32)
    return tensor


def _too_costly(cost: int, budget: int) -> TooCostlyToDecode:
    return TooCostlyToDecode(
        f"Decoding this image would need about {cost / 2**20:,.0f} MiB of memory (at most "
        f"{budget / 2**20:,.0f} MiB per image); send a JPEG or a smaller photo.")


def _too_many_pixels(max_pixels: int) -> TooManyPixels:
    return TooManyPixels(
        f"The image has too many pixels (at most {max_pixels:,} allowed); send a smaller photo."
    )


def _classify_failure(data: bytes, kind: str, exc: Exception) -> ImageRejected:
    """A Pillow failure on a JPEG/PNG-looking upload -> truncated or undecodable.

    Pillow's messages do not tell a cut-off file from garbage behind a valid signature ("Truncated
    File Read" for both), so the file's own structure decides.
    """
    cut_off = _png_is_cut_off(data) if kind == "PNG" else _jpeg_is_cut_off(data)
    if cut_off:
        return TruncatedImage(f"The uploaded {kind} image is truncated (the file is incomplete).")
    return UndecodableImage(f"The uploaded {kind} image is corrupt and could not be decoded.")


def _png_is_cut_off(data: bytes) -> bool:
    """Whether well-formed PNG chunks run into the end of the data before IEND."""
    offset = len(_PNG_MAGIC)
    while offset + 8 <= len(data):
        length, chunk_type = struct.unpack_from(">I4s", data, offset)
        if not chunk_type.isalpha():
            return False  # not a chunk: garbage, not a cut
        end = offset + 12 + length
        if end > len(data):
            return True
        crc = struct.unpack_from(">I", data, end - 4)[0]
        if zlib.crc32(memoryview(data)[offset + 4 : end - 4]) != crc:
            return False
        if chunk_type == b"IEND":
            return False
        offset = end
    return True


# JPEG markers with a length field that may precede the first scan (ITU T.81 table B.1).
_JPEG_HEADER_MARKERS = frozenset(
    [*range(0xC0, 0xD0), 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, *range(0xE0, 0xF0), 0xFE]
)


def _jpeg_is_cut_off(data: bytes) -> bool:
    """Whether well-formed JPEG segments run into the end of the data before end-of-image."""
    offset = 2  # after SOI
    while offset + 2 <= len(data):
        if data[offset] != 0xFF:
            return False  # a segment must start with a marker: garbage, not a cut
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data follows, then EOI
            last_scan = data.rfind(b"\xff\xda")
            return data.find(b"\xff\xd9", last_scan) < 0
        if marker not in _JPEG_HEADER_MARKERS:
            return False
        if offset + 4 > len(data):
            return True
        offset += 2 + struct.unpack_from(">H", data, offset + 2)[0]
    return True
