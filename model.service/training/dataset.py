"""Synthetic training data: leafsynth images, preprocessed exactly like the article's serving
path (RGB, Pillow BICUBIC resize to 150x150; scaling to [0, 1] happens at training time).

Seed ranges keep the splits apart: training uses seeds from TRAIN_SEED, validation from VAL_SEED;
tests draw "fresh" images from seeds at or above FRESH_SEED, which training never touches.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence

import numpy as np
from PIL import Image

import leafsynth

INPUT_SIZE = (150, 150)
TRAIN_SEED = 0
VAL_SEED = 1_000_000
FRESH_SEED = 2_000_000_000
# Photos come in several shapes and sizes; the model sees them squashed to 150x150 like the API's.
RENDER_SIZES = ((160, 160), (200, 150), (150, 200), (320, 240), (240, 180), (256, 256))


def render_size(seed: int) -> tuple[int, int]:
    return RENDER_SIZES[seed % len(RENDER_SIZES)]


def model_input(image: Image.Image) -> np.ndarray:
    """uint8 HxWx3 as the model sees it (before /255): the reference preprocessing."""
    return np.asarray(image.convert("RGB").resize(INPUT_SIZE, Image.Resampling.BICUBIC))


def _one(item: tuple[int, int]) -> np.ndarray:
    label_index, seed = item
    return model_input(leafsynth.render(leafsynth.CLASSES[label_index], seed, render_size(seed)))


def items(per_class: int, first_seed: int) -> list[tuple[int, int]]:
    """(class index, seed) pairs, classes interleaved; every image has its own seed."""
    n = len(leafsynth.CLASSES)
    return [(i % n, first_seed + i) for i in range(per_class * n)]


def build(pairs: Sequence[tuple[int, int]], processes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Render the images (in `processes` worker processes) -> (uint8 NxHxWx3, int labels)."""
    labels = np.array([label for label, _ in pairs], np.int32)
    if processes <= 1:
        images = [_one(p) for p in pairs]
    else:
        # spawn: the parent may already hold TensorFlow's threads, which fork would copy badly.
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            images = pool.map(_one, pairs, chunksize=32)
    return np.stack(images), labels
