"""Synthetic cassava-leaf photos for the 5 classes: the demo model's data and the tests' fixtures.

    >>> import leafsynth
    >>> image = leafsynth.render("CMD", seed=7, size=(800, 600))   # PIL RGB image
    >>> data = leafsynth.encode(image, "JPEG", quality=90)          # bytes

Deterministic: the same label, seed and size give the same pixels (and the same encoded bytes).
Only Pillow and numpy. Images are drawn at a working size of at most WORK_MAX pixels on the longer
side and resized to the requested size.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from leafsynth import blade, scene
from leafsynth.fields import blur
from leafsynth.leaf import LeafStyle, lay_out, rasterise
from leafsynth.symptoms import DISEASES

__all__ = ["CLASSES", "WORK_MAX", "encode", "render"]

CLASSES: tuple[str, ...] = ("CBB", "CBSD", "CGM", "CMD", "Healthy")
WORK_MAX = 640
FORMATS = {"JPEG": "JPEG", "JPG": "JPEG", "PNG": "PNG"}


def _working_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    shrink = min(1.0, WORK_MAX / max(w, h))
    return max(1, round(w * shrink)), max(1, round(h * shrink))


def _composite(bottom: np.ndarray, top: np.ndarray | tuple, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return bottom * (1 - a) + np.asarray(top, np.float32) * a


def render(label: str, seed: int, size: tuple[int, int] = (512, 512)) -> Image.Image:
    """A photo-like RGB image of one cassava leaf showing `label`'s symptoms (size = (w, h))."""
    if label not in CLASSES:
        raise ValueError(f"unknown label {label!r}; expected one of {', '.join(CLASSES)}")
    w, h = (int(v) for v in size)
    if w < 1 or h < 1:
        raise ValueError(f"size must be positive (width, height), got {size!r}")
    disease = DISEASES[label]
    rng = np.random.default_rng([int(seed) % 2**63, CLASSES.index(label), 0x1EAF])
    ww, wh = _working_size((w, h))
    hw = (wh, ww)

    rgb = scene.background(rng, hw)
    for _ in range(int(rng.integers(0, 3))):  # out-of-focus neighbouring leaves
        other = lay_out(rng, hw, LeafStyle(), zoom=rng.uniform(0.7, 1.3),
                        centre=(rng.uniform(0, ww), rng.uniform(0, wh)))
        maps = rasterise(rng, other, hw)
        alpha = blur(np.maximum(maps.alpha, maps.petiole), other.radius * 0.04)
        rgb = _composite(rgb, blade.pick_green(rng) * rng.uniform(0.45, 0.85), alpha)

    leaf = lay_out(rng, hw, disease.style)
    maps = rasterise(rng, leaf, hw)
    rgb = scene.drop_shadow(rgb, np.maximum(maps.alpha, maps.petiole), rng, leaf.radius)
    rgb = _composite(rgb, blade.petiole_colour(rng), maps.petiole)
    light = rng.uniform(0, 2 * math.pi)
    vein_set = blade.veins(maps, leaf, count=rng.uniform(9, 14))
    leaf_rgb = blade.paint(rng, maps, leaf, blade.pick_green(rng, disease.lighten), vein_set, light)
    severity = rng.uniform(0.4, 1.0)
    leaf_rgb = disease.paint(rng, leaf_rgb, maps, leaf, vein_set, severity)
    rgb = _composite(rgb, leaf_rgb, maps.alpha)

    image = scene.camera(rng, rgb)
    if (ww, wh) != (w, h):
        image = image.resize((w, h), Image.Resampling.BICUBIC)
    return image


def encode(image: Image.Image, fmt: str = "JPEG", **pillow_save_kwargs) -> bytes:
    """The image as JPEG or PNG bytes (extra keyword arguments go to Pillow's save)."""
    key = fmt.upper()
    if key not in FORMATS:
        raise ValueError(f"unsupported format {fmt!r}; expected JPEG or PNG")
    buf = io.BytesIO()
    image.convert("RGB").save(buf, FORMATS[key], **pillow_save_kwargs)
    return buf.getvalue()
