"""What each class looks like: leaf shape (LeafStyle) and the symptom pattern painted on the blade.

CBB  bacterial blight: angular water-soaked/brown necrotic spots with yellow halos, blight and
     wilting at lobe tips and edges.
CBSD brown streak: yellow chlorotic blotches along the secondary veins (feathery vein banding).
CGM  green mite damage: fine pale stippling, soft mottled chlorosis, small deformed leaves.
CMD  mosaic: sharp-edged yellow/pale-green mosaic patches, narrow misshapen distorted lobes.
Healthy: uniform green.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from leafsynth.blade import Veins
from leafsynth.fields import blur, mix, smooth_noise, smoothstep
from leafsynth.leaf import Leaf, LeafMaps, LeafStyle

Painter = Callable[[np.random.Generator, np.ndarray, LeafMaps, Leaf, Veins, float], np.ndarray]


def _cells(maps: LeafMaps, leaf: Leaf, per_radius: float) -> float:
    return per_radius * max(maps.alpha.shape) / max(leaf.radius, 1.0)


def _on_blade(maps: LeafMaps) -> np.ndarray:
    return (maps.lobe >= 0).astype(np.float32)


def healthy(rng, rgb, maps, leaf, vein_set, severity):
    return rgb


def cbb(rng, rgb, maps, leaf, vein_set, severity):
    h, w = maps.alpha.shape
    blade = _on_blade(maps)
    # Blight: tips (and sometimes edges) of a few lobes dry out brown behind a yellow front.
    noise = smooth_noise(rng, (h, w), _cells(maps, leaf, 6))
    n_lobes = len(leaf.lobes)
    hit = rng.choice(n_lobes, size=int(rng.integers(1, max(2, n_lobes // 2 + 1))), replace=False)
    chosen = np.isin(maps.lobe, hit).astype(np.float32)
    start = rng.uniform(0.4, 0.8 - 0.25 * severity)
    front = maps.t + 0.25 * (noise - 0.5) + 0.3 * np.abs(maps.d) * rng.uniform(0, 1)
    necrotic = smoothstep(start, start + 0.04, front) * chosen
    yellow = smoothstep(start - 0.15, start, front) * chosen
    edge = smoothstep(0.8, 0.9, np.abs(maps.d) + 0.3 * (noise - 0.5)) * blade * (
        rng.random() < 0.5)
    brown = np.array((0.42, 0.30, 0.14), np.float32) * rng.uniform(0.7, 1.15)
    rgb = mix(rgb, (0.75, 0.68, 0.18), (yellow - necrotic) * 0.8)
    rgb = mix(rgb, brown, np.maximum(necrotic, edge * 0.9))

    # Angular spots: irregular polygons, water-soaked dark olive or brown, each with a halo.
    spots_img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(spots_img)
    ys, xs = np.nonzero((maps.alpha > 0.9) & (maps.lobe >= 0))
    n_spots = int(rng.integers(3, 6 + 14 * severity)) if ys.size else 0
    for _ in range(n_spots):
        k = int(rng.integers(ys.size))
        r = leaf.radius * rng.uniform(0.03, 0.08)
        n = int(rng.integers(4, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = r * rng.uniform(0.55, 1.3, n)
        pts = [(float(xs[k] + ri * np.cos(a)), float(ys[k] + ri * np.sin(a)))
               for a, ri in zip(angles, radii, strict=True)]
        draw.polygon(pts, fill=255)
    spots = np.asarray(spots_img, np.float32) / 255.0 * blade
    halo = np.clip(blur(spots, leaf.radius * 0.03) * 2.2 - spots, 0, 1) * blade
    spot_colour = (np.array((0.22, 0.24, 0.10), np.float32) if rng.random() < 0.5
                   else np.array((0.38, 0.25, 0.12), np.float32)) * rng.uniform(0.8, 1.2)
    rgb = mix(rgb, (0.78, 0.72, 0.22), halo * rng.uniform(0.5, 0.85))
    rgb = mix(rgb, spot_colour, spots * rng.uniform(0.8, 1.0))
    return rgb


def cbsd(rng, rgb, maps, leaf, vein_set, severity):
    h, w = maps.alpha.shape
    blade = _on_blade(maps)
    noise = smooth_noise(rng, (h, w), _cells(maps, leaf, rng.uniform(4, 8)))
    threshold = rng.uniform(0.55, 0.75) - 0.35 * severity
    blotch = smoothstep(threshold, threshold + 0.2, noise) * blade
    band_width = vein_set.period * rng.uniform(0.12, 0.25)
    band = np.exp(-((vein_set.distance / np.maximum(band_width, 0.5)) ** 2))
    feather = 0.7 + 0.3 * smooth_noise(rng, (h, w), _cells(maps, leaf, 30))
    yellow = np.array((0.82, 0.76, 0.2), np.float32) * rng.uniform(0.85, 1.1)
    amount = blotch * (band * feather * rng.uniform(0.75, 1.0) + 0.15)
    return mix(rgb, yellow, amount)


def cgm(rng, rgb, maps, leaf, vein_set, severity):
    h, w = maps.alpha.shape
    blade = _on_blade(maps)
    # Soft mottled chlorosis (no sharp edges, unlike the mosaic of CMD).
    mottle = smooth_noise(rng, (h, w), _cells(maps, leaf, rng.uniform(5, 10)))
    rgb = mix(rgb, (0.62, 0.70, 0.32), mottle * blade * rng.uniform(0.25, 0.5) * severity)
    # Fine stippling: mite feeding punctures, a dot per cell of ~1/70 of the leaf.
    cell = max(1.0, leaf.radius / rng.uniform(55, 85))
    gh, gw = max(1, int(h / cell)), max(1, int(w / cell))
    dots = rng.random((gh, gw), dtype=np.float32)
    dots_img = Image.fromarray(np.uint8(dots * 255), "L").resize((w, h), Image.Resampling.NEAREST)
    density = (0.15 + 0.35 * severity) * (0.4 + 0.9 * smooth_noise(
        rng, (h, w), _cells(maps, leaf, 3)))
    stipple = (np.asarray(dots_img, np.float32) / 255.0 < density).astype(np.float32) * blade
    return mix(rgb, (0.86, 0.88, 0.62), stipple * rng.uniform(0.5, 0.85))


def cmd(rng, rgb, maps, leaf, vein_set, severity):
    h, w = maps.alpha.shape
    blade = _on_blade(maps)
    noise = smooth_noise(rng, (h, w), _cells(maps, leaf, rng.uniform(7, 14)))
    threshold = rng.uniform(0.55, 0.7) - 0.2 * severity
    patches = smoothstep(threshold - 0.02, threshold + 0.02, noise) * blade
    colour = (np.array((0.74, 0.78, 0.24), np.float32) if rng.random() < 0.6
              else np.array((0.5, 0.66, 0.22), np.float32)) * rng.uniform(0.9, 1.1)
    rgb = mix(rgb, colour, patches * rng.uniform(0.7, 0.95))
    # Curling: dark folds along the lobes.
    folds = 1 - 0.18 * np.abs(np.sin(maps.d * np.pi * rng.uniform(1.0, 2.0)))
    return rgb * folds[..., None]


@dataclass(frozen=True)
class Disease:
    style: LeafStyle
    paint: Painter
    lighten: float = 0.0  # how far the base green moves towards pale yellow-green


DISEASES: dict[str, Disease] = {
    "CBB": Disease(LeafStyle(bend=(0.0, 0.3), width=(0.11, 0.19)), cbb),
    "CBSD": Disease(LeafStyle(), cbsd),
    "CGM": Disease(LeafStyle(size=(0.28, 0.46), lobes=(3, 4, 5, 6, 7), width=(0.1, 0.17),
                             irregularity=(0.05, 0.15), distortion=(0.01, 0.04),
                             length_jitter=0.25), cgm, lighten=0.2),
    "CMD": Disease(LeafStyle(width=(0.06, 0.12), irregularity=(0.1, 0.3), bend=(0.05, 0.3),
                             distortion=(0.03, 0.08), length_jitter=0.25), cmd),
    "Healthy": Disease(LeafStyle(), healthy),
}
