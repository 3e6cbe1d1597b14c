"""Accuracy of a published model version on fresh synthetic leaves (seeds training never uses),
loaded the way TF Serving loads it. `python -m training.evaluate <version dir> [--per-class N]`.

The images go through what a client sends: a JPEG photo of a size the model was not trained on,
decoded and squashed to 150x150 with Pillow's BICUBIC filter, scaled to [0, 1].
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import leafsynth
from training.dataset import FRESH_SEED
from training.train import confusion

PHOTO_SIZES = ((512, 384), (384, 512), (320, 320), (800, 600))


def fresh_photo(label: str, seed: int, size: tuple[int, int]) -> np.ndarray:
    image = leafsynth.render(label, seed, size)
    with Image.open(io.BytesIO(leafsynth.encode(image, "JPEG", quality=85))) as photo:
        return np.asarray(photo.convert("RGB").resize((150, 150), Image.Resampling.BICUBIC))


def fresh_set(per_class: int, first_seed: int = FRESH_SEED) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for index, label in enumerate(leafsynth.CLASSES):
        for i in range(per_class):
            seed = first_seed + 1000 * index + i
            images.append(fresh_photo(label, seed, PHOTO_SIZES[i % len(PHOTO_SIZES)]))
            labels.append(index)
    return (np.stack(images) / 255.0).astype(np.float32), np.array(labels)


def evaluate(version_dir: Path, per_class: int, first_seed: int = FRESH_SEED) -> dict:
    from training.export import load_signature

    x, y = fresh_set(per_class, first_seed)
    session, inputs, outputs, _ = load_signature(version_dir)
    try:
        (feed,), (fetch,) = inputs.values(), outputs.values()
        probabilities = np.concatenate([session.run(fetch, {feed: x[i:i + 50]})
                                        for i in range(0, len(x), 50)])
    finally:
        session.close()
    predicted = probabilities.argmax(axis=1)
    matrix = confusion(y, predicted, len(leafsynth.CLASSES))
    return {"images": len(y), "accuracy": round(float((predicted == y).mean()), 4),
            "recall": dict(zip(leafsynth.CLASSES,
                               np.round(np.diag(matrix) / matrix.sum(axis=1), 3).tolist(),
                               strict=True)),
            "confusion": matrix.tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__)
    parser.add_argument("version_dir", type=Path)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=FRESH_SEED)
    args = parser.parse_args(argv)
    print(json.dumps(evaluate(args.version_dir, args.per_class, args.first_seed), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
