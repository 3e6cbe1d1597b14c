"""Random fields on the pixel grid: smooth noise, blur, blending. Pure functions of an rng."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: float) -> np.ndarray:
    """Value noise in [0, 1]: `cells` random values across the longer side, bicubic in between."""
    h, w = shape
    scale = cells / max(h, w)
    gh, gw = max(2, round(h * scale) + 2), max(2, round(w * scale) + 2)
    grid = rng.random((gh, gw), dtype=np.float32)
    field = Image.fromarray(grid, mode="F").resize((w, h), Image.Resampling.BICUBIC)
    out = np.asarray(field, dtype=np.float32)
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / (hi - lo + 1e-6)


def blur(field: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur of a [0, 1] float field (through an 8-bit image: plenty for masks)."""
    if radius <= 0.05:
        return field
    img = Image.fromarray(np.uint8(np.clip(field, 0, 1) * 255 + 0.5), mode="L")
    out = img.filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(out, dtype=np.float32) / 255.0


def smoothstep(edge0: float | np.ndarray, edge1: float | np.ndarray, x: np.ndarray
               ) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def mix(base: np.ndarray, colour: np.ndarray | tuple[float, float, float],
        amount: np.ndarray) -> np.ndarray:
    """Blend an HxWx3 image towards a colour (or image) by a per-pixel amount in [0, 1]."""
    a = np.clip(amount, 0.0, 1.0)[..., None]
    return base * (1.0 - a) + np.asarray(colour, dtype=np.float32) * a
