"""Test photos the page must cope with, made with Pillow from the real leaf photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112
EXIF_MAKE = 0x010F
RED, BLUE = (220, 20, 20), (20, 20, 220)


def twelve_megapixel(leaf_photo: Path, out: Path) -> Path:
    """4000x3000 JPEG of a real leaf, sensor-like noise and camera EXIF: MBs, like a phone's."""
    with Image.open(leaf_photo) as photo:
        big = photo.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(7).normal(0, 6, (3000, 4000, 3))
    pixels = np.clip(np.asarray(big, np.float32) + noise, 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[EXIF_MAKE] = "TestPhone"
    Image.fromarray(pixels).save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out


def sideways(out: Path) -> Path:
    """A 400x200 JPEG stored sideways, EXIF orientation 6: upright it is 200x400, red above blue.

    Stored left half red, right half blue; orientation 6 means "rotate 90 degrees clockwise to
    display", which turns the stored left edge into the top.
    """
    image = Image.new("RGB", (400, 200), BLUE)
    image.paste(RED, (0, 0, 200, 200))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    image.save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out


def half_transparent_png() -> bytes:
    """300x200 PNG: left half fully transparent, right half leaf green."""
    image = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    image.paste((30, 120, 40, 255), (150, 0, 300, 200))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def close_to(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))
