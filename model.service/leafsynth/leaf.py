"""Geometry of a palmate cassava leaf: lobes radiating from a hub, a petiole, and per-pixel maps.

The maps give every pixel its lobe, its position along the lobe (t: 0 at the hub, 1 at the tip)
and across it (d: -1 .. 1 from edge to edge, 0 on the midrib), so symptoms can follow the anatomy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from leafsynth.fields import smooth_noise


@dataclass(frozen=True)
class LeafStyle:
    """How a class shapes its leaves (diseases stunt, narrow and distort them)."""

    size: tuple[float, float] = (0.4, 0.62)        # longest lobe, fraction of the shorter side
    lobes: tuple[int, ...] = (5, 6, 7)
    width: tuple[float, float] = (0.13, 0.2)       # lobe half-width / lobe length
    irregularity: tuple[float, float] = (0.0, 0.06)  # edge wobble, fraction of the half-width
    bend: tuple[float, float] = (0.0, 0.12)        # sideways curve of a lobe, fraction of length
    distortion: tuple[float, float] = (0.0, 0.015)  # warp of the whole blade, fraction of size
    length_jitter: float = 0.1


@dataclass(frozen=True)
class Lobe:
    angle: float
    length: float
    width: float
    bend: float
    edge_knots: np.ndarray  # wobble of the edge along the lobe, values in [-1, 1]
    irregularity: float


@dataclass(frozen=True)
class Leaf:
    cx: float
    cy: float
    radius: float
    heading: float
    lobes: tuple[Lobe, ...]
    petiole_length: float
    petiole_width: float
    distortion: float
    hub: float


@dataclass
class LeafMaps:
    alpha: np.ndarray    # coverage of the blade, 0..1
    petiole: np.ndarray  # coverage of the petiole (under the blade), 0..1
    lobe: np.ndarray     # lobe index, -1 off the blade (the hub belongs to lobe 0)
    t: np.ndarray        # along the lobe, 0 hub .. 1 tip
    d: np.ndarray        # across the lobe, -1 .. 1, 0 on the midrib
    v: np.ndarray        # across the lobe in pixels (signed distance from the midrib)


def lay_out(rng: np.random.Generator, canvas_hw: tuple[int, int], style: LeafStyle,
            zoom: float = 1.0, centre: tuple[float, float] | None = None) -> Leaf:
    """Draw the random parameters of one leaf on a canvas of the given size."""
    h, w = canvas_hw
    radius = min(h, w) * rng.uniform(*style.size) * zoom
    heading = rng.uniform(0, 2 * math.pi)
    if centre is None:
        # Lobes point away from the heading's opposite (the petiole): shift the hub back so the
        # blade sits near the middle, with some frames cropping part of it.
        off = rng.uniform(0.0, 0.45) * radius
        cx = w / 2 - math.cos(heading) * off + rng.normal(0, 0.08) * w
        cy = h / 2 - math.sin(heading) * off + rng.normal(0, 0.08) * h
    else:
        cx, cy = centre
    n = int(rng.choice(style.lobes))
    spread = rng.uniform(math.radians(200), math.radians(290)) if n > 3 else rng.uniform(2.0, 3.0)
    irregularity = rng.uniform(*style.irregularity)
    lobes = []
    for i in range(n):
        rel = (i / (n - 1)) * 2 - 1 if n > 1 else 0.0
        angle = heading + rel * spread / 2 + rng.normal(0, 0.08)
        jitter = 1 + rng.uniform(-1, 1) * style.length_jitter
        length = radius * (1 - 0.4 * abs(rel) ** 1.5) * jitter
        lobes.append(Lobe(
            angle=angle,
            length=length,
            width=length * rng.uniform(*style.width),
            bend=rng.uniform(*style.bend) * rng.choice((-1.0, 1.0)),
            edge_knots=rng.uniform(-1, 1, int(rng.integers(5, 10))).astype(np.float32),
            irregularity=irregularity * rng.uniform(0.5, 1.5),
        ))
    return Leaf(
        cx=cx, cy=cy, radius=radius, heading=heading, lobes=tuple(lobes),
        petiole_length=radius * rng.uniform(0.5, 0.9),
        petiole_width=max(0.8, radius * rng.uniform(0.018, 0.03)),
        distortion=rng.uniform(*style.distortion) * radius,
        hub=radius * rng.uniform(0.08, 0.13),
    )


def _profile(t: np.ndarray) -> np.ndarray:
    """Lanceolate half-width along a lobe: narrow at the base, widest at ~40 %, pointed tip."""
    tc = np.clip(t, 0.0, 1.0)
    return np.maximum(np.sin(np.pi * tc ** 0.8), 0.0) ** 0.9


def _lobe_box(leaf: Leaf, lobe: Lobe, h: int, w: int) -> tuple[int, int, int, int] | None:
    """Pixel rows/columns that can hold the lobe (its reach plus width, bend and warp)."""
    tip_x = leaf.cx + math.cos(lobe.angle) * lobe.length
    tip_y = leaf.cy + math.sin(lobe.angle) * lobe.length
    margin = lobe.width * (1 + lobe.irregularity) + abs(lobe.bend) * lobe.length
    margin += leaf.distortion + 2
    x0, x1 = int(min(leaf.cx, tip_x) - margin), int(max(leaf.cx, tip_x) + margin) + 1
    y0, y1 = int(min(leaf.cy, tip_y) - margin), int(max(leaf.cy, tip_y) + margin) + 1
    x0, x1, y0, y1 = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    if x0 >= x1 or y0 >= y1:
        return None
    return y0, y1, x0, x1


def rasterise(rng: np.random.Generator, leaf: Leaf, canvas_hw: tuple[int, int]) -> LeafMaps:
    """Per-pixel maps of a leaf (the rng only draws the blade's warp field)."""
    h, w = canvas_hw
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if leaf.distortion > 0.05:
        cells = 4.0 * max(h, w) / max(leaf.radius, 1.0)
        xs = xs + (smooth_noise(rng, (h, w), cells) - 0.5) * 2 * leaf.distortion
        ys = ys + (smooth_noise(rng, (h, w), cells) - 0.5) * 2 * leaf.distortion
    dx, dy = xs - leaf.cx, ys - leaf.cy

    alpha = np.zeros((h, w), np.float32)
    best = np.full((h, w), np.inf, np.float32)
    lobe_map = np.full((h, w), -1, np.int16)
    t_map = np.zeros((h, w), np.float32)
    d_map = np.zeros((h, w), np.float32)
    v_map = np.zeros((h, w), np.float32)
    for i, lobe in enumerate(leaf.lobes):
        box = _lobe_box(leaf, lobe, h, w)
        if box is None:
            continue
        sl = (slice(box[0], box[1]), slice(box[2], box[3]))
        c, s = math.cos(lobe.angle), math.sin(lobe.angle)
        bx, by = dx[sl], dy[sl]
        u = bx * c + by * s
        t = u / lobe.length
        v = -bx * s + by * c - lobe.bend * lobe.length * np.clip(t, 0, 1) ** 2
        knots = np.linspace(0.0, 1.0, lobe.edge_knots.size)
        wob = np.interp(np.clip(t, 0, 1), knots, lobe.edge_knots).astype(np.float32)
        hw = lobe.width * _profile(t) * (1 + lobe.irregularity * wob)
        inside_t = (t >= 0) & (t <= 1)
        cover = np.clip(hw - np.abs(v) + 0.5, 0.0, 1.0) * inside_t
        rel = np.abs(v) / np.maximum(hw, 1e-3)
        take = (cover > 0) & (rel < best[sl])
        best[sl] = np.where(take, rel, best[sl])
        lobe_map[sl] = np.where(take, np.int16(i), lobe_map[sl])
        t_map[sl] = np.where(take, t, t_map[sl])
        d_map[sl] = np.where(take, np.clip(v / np.maximum(hw, 1e-3), -1, 1), d_map[sl])
        v_map[sl] = np.where(take, v, v_map[sl])
        alpha[sl] = np.maximum(alpha[sl], cover)

    r = np.hypot(dx, dy)
    hub = np.clip(leaf.hub - r + 0.5, 0.0, 1.0)
    in_hub = (hub > 0) & (lobe_map < 0)
    lobe_map = np.where(in_hub, np.int16(0), lobe_map)
    alpha = np.maximum(alpha, hub)

    back = leaf.heading + math.pi
    c, s = math.cos(back), math.sin(back)
    pu = dx * c + dy * s
    pv = -dx * s + dy * c
    petiole = (np.clip(leaf.petiole_width - np.abs(pv) + 0.5, 0, 1)
               * (pu >= 0) * np.clip(leaf.petiole_length - pu + 0.5, 0, 1))
    return LeafMaps(alpha=alpha, petiole=petiole.astype(np.float32), lobe=lobe_map, t=t_map,
                    d=d_map, v=v_map)
