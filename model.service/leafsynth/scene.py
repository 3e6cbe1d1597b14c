"""Everything around the leaf: field backgrounds and the camera (light, colour, blur, JPEG)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from leafsynth.fields import blur, smooth_noise, smoothstep

PALETTES = {
    "soil": [(0.45, 0.33, 0.22), (0.35, 0.26, 0.18), (0.55, 0.45, 0.33), (0.28, 0.22, 0.16)],
    "grass": [(0.25, 0.40, 0.15), (0.35, 0.45, 0.20), (0.15, 0.25, 0.10), (0.5, 0.5, 0.3)],
    "sky": [(0.60, 0.72, 0.85), (0.85, 0.88, 0.90), (0.70, 0.78, 0.80)],
    "shade": [(0.10, 0.12, 0.08), (0.18, 0.20, 0.14), (0.25, 0.22, 0.18)],
}
MIXES = (("soil", "soil"), ("soil", "grass"), ("grass", "grass"), ("grass", "shade"),
         ("sky", "grass"), ("soil", "shade"))


def _colour(rng: np.random.Generator, kind: str) -> np.ndarray:
    palette = PALETTES[kind]
    c = np.array(palette[rng.integers(len(palette))], np.float32)
    return np.clip(c * rng.uniform(0.8, 1.2) + rng.normal(0, 0.03, 3), 0, 1).astype(np.float32)


def background(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A blurred field scene: two tones, texture, grass blades and twigs."""
    h, w = hw
    scale = max(h, w) / 256
    kind_a, kind_b = MIXES[rng.integers(len(MIXES))]
    a, b = _colour(rng, kind_a), _colour(rng, kind_b)
    ys = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    blend = np.clip(0.6 * smooth_noise(rng, hw, 3) + 0.6 * ys * rng.uniform(-1, 1) + 0.2, 0, 1)
    rgb = a * (1 - blend[..., None]) + b * blend[..., None]
    texture = 0.85 + 0.3 * smooth_noise(rng, hw, rng.uniform(20, 60))
    rgb = rgb * texture[..., None]
    img = Image.fromarray(np.uint8(np.clip(rgb, 0, 1) * 255))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(5, 50))):
        kind = (kind_a, kind_b)[rng.integers(2)] if rng.random() < 0.6 else "grass"
        c = tuple(int(v * 255) for v in _colour(rng, kind))
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        length = rng.uniform(0.05, 0.4) * max(h, w)
        angle = rng.uniform(0, 2 * np.pi)
        draw.line((x0, y0, x0 + length * np.cos(angle), y0 + length * np.sin(angle)),
                  fill=c, width=max(1, int(rng.uniform(0.5, 4) * scale)))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.8, 3.5) * scale))
    return np.asarray(img, np.float32) / 255.0


def drop_shadow(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator,
                radius: float) -> np.ndarray:
    """Darken the background under an offset, blurred copy of the leaf's silhouette."""
    h, w = alpha.shape
    dx, dy = (round(float(v)) for v in rng.uniform(-1, 1, 2) * radius * 0.08)
    shifted = np.zeros_like(alpha)
    ys, yd = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    xs, xd = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    shifted[yd, xd] = alpha[ys, xs]
    shadow = blur(shifted, max(0.5, radius * 0.04)) * rng.uniform(0.15, 0.45)
    return rgb * (1 - shadow[..., None])


def camera(rng: np.random.Generator, rgb: np.ndarray) -> Image.Image:
    """Light, white balance, saturation, sensor noise, focus blur and (often) JPEG artefacts."""
    h, w, _ = rgb.shape
    scale = max(h, w) / 256
    rgb = rgb * rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = ((xs / w - 0.5) * np.cos(angle) + (ys / h - 0.5) * np.sin(angle))
    rgb = rgb * (1 + rng.uniform(0, 0.4) * ramp)[..., None]
    if rng.random() < 0.3:  # a cloud or a neighbouring plant's shadow
        edge = rng.uniform(0.4, 0.7)
        shade = smoothstep(edge - 0.05, edge + 0.05, smooth_noise(rng, (h, w), 3))
        rgb = rgb * (1 - shade * rng.uniform(0.2, 0.45))[..., None]
    grey = rgb.mean(axis=2, keepdims=True)
    rgb = grey + (rgb - grey) * rng.uniform(0.75, 1.25)
    rgb = np.clip(rgb, 0, 1) ** rng.uniform(0.85, 1.2)
    rgb = rgb + rng.normal(0, rng.uniform(0, 0.025), rgb.shape).astype(np.float32)
    img = Image.fromarray(np.uint8(np.clip(rgb, 0, 1) * 255 + 0.5))
    focus = rng.uniform(0, 1.0) * scale
    if focus > 0.2:
        img = img.filter(ImageFilter.GaussianBlur(focus))
    if rng.random() < 0.6:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(40, 96)))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img
