"""The healthy look of a leaf blade: base green, light per lobe, midrib and secondary veins."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from leafsynth.fields import mix, smooth_noise, smoothstep
from leafsynth.leaf import Leaf, LeafMaps

GREENS = np.array([
    (0.20, 0.45, 0.13), (0.16, 0.38, 0.10), (0.25, 0.50, 0.16), (0.13, 0.33, 0.12),
    (0.28, 0.52, 0.20), (0.18, 0.40, 0.18), (0.22, 0.42, 0.10),
], dtype=np.float32)

PETIOLES = np.array([
    (0.55, 0.22, 0.20), (0.45, 0.30, 0.18), (0.40, 0.50, 0.22), (0.60, 0.35, 0.30),
], dtype=np.float32)


@dataclass
class Veins:
    midrib: np.ndarray        # 0..1 strength of the midrib line
    secondary: np.ndarray     # 0..1 strength of the secondary vein lines
    distance: np.ndarray      # pixels to the nearest secondary vein
    period: np.ndarray        # pixels between neighbouring secondary veins


def pick_green(rng: np.random.Generator, lighten: float = 0.0) -> np.ndarray:
    a, b = GREENS[rng.integers(len(GREENS), size=2)]
    green = a + (b - a) * rng.random() + rng.normal(0, 0.02, 3).astype(np.float32)
    return np.clip(green + lighten * (np.array((0.55, 0.65, 0.3), np.float32) - green), 0, 1)


def veins(maps: LeafMaps, leaf: Leaf, count: float) -> Veins:
    """Midrib along d = 0 and chevron secondary veins running from it towards the tip."""
    lengths = np.array([lobe.length for lobe in leaf.lobes], np.float32)
    length = lengths[np.clip(maps.lobe, 0, None)]
    period = length / count
    phase = (maps.t - 0.09 * np.abs(maps.d)) * count
    distance = np.abs(phase - np.round(phase)) * period
    width = max(0.45, leaf.radius * 0.005)
    secondary = (smoothstep(width * 1.5, 0.0, distance)
                 * smoothstep(0.04, 0.1, np.abs(maps.d)) * smoothstep(0.95, 0.8, np.abs(maps.d))
                 * (maps.t > 0.04))
    mid_width = np.maximum(0.5, leaf.radius * 0.012 * (1.1 - maps.t))
    midrib = smoothstep(mid_width * 1.2, mid_width * 0.3, np.abs(maps.v)) * (maps.lobe >= 0)
    return Veins(midrib=midrib.astype(np.float32), secondary=secondary.astype(np.float32),
                 distance=distance.astype(np.float32), period=period.astype(np.float32))


def paint(rng: np.random.Generator, maps: LeafMaps, leaf: Leaf, green: np.ndarray,
          vein_set: Veins, light_angle: float) -> np.ndarray:
    """RGB of a healthy blade (HxWx3 floats); callers lay symptoms over it."""
    h, w = maps.alpha.shape
    rgb = np.broadcast_to(green, (h, w, 3)).astype(np.float32).copy()
    # Lobes facing the light are brighter; the blade folds slightly along each midrib.
    facing = np.array([1 + 0.1 * math.cos(lobe.angle - light_angle) + rng.normal(0, 0.03)
                       for lobe in leaf.lobes], np.float32)
    shade = facing[np.clip(maps.lobe, 0, None)] * (1.04 - 0.1 * np.abs(maps.d))
    cells = 3.0 * max(h, w) / max(leaf.radius, 1.0)
    shade = shade * (0.94 + 0.12 * smooth_noise(rng, (h, w), cells))
    rgb *= shade[..., None]
    vein_colour = np.clip(green * 1.3 + np.array((0.06, 0.05, 0.0), np.float32), 0, 1)
    rgb = mix(rgb, vein_colour, vein_set.midrib * 0.8 + vein_set.secondary * 0.35)
    return rgb


def petiole_colour(rng: np.random.Generator) -> np.ndarray:
    return PETIOLES[rng.integers(len(PETIOLES))] * rng.uniform(0.8, 1.1)
