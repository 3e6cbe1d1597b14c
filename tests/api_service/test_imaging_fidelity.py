"""The article's model gives the same probabilities on our tensors as on its own preprocessing.

In-process TensorFlow on the seed SavedModel: image_to_tensor (draft decode, EXIF, BICUBIC) against
the article's pipeline (full decode, RGB, default-filter resize, / 255) on the real leaf photos and
on 12 MP phone-sized versions of them. The measured differences are written to
test-artifacts/imaging-fidelity.json and quoted in docs/api-benchmarks.md.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import leafsynth
from app.imaging import dct_scale, image_to_tensor
from tests.support.reference import article_preprocess

pytestmark = pytest.mark.slow

TOLERANCE = 0.01
PHONE_SIZE = (4000, 3000)  # 12 MP


def our_tensor(data: bytes) -> np.ndarray:
    return image_to_tensor(data, height=150, width=150, max_pixels=40_000_000)


def jpeg(image: Image.Image, **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, **save_kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def measured(artifacts_dir: Path) -> Iterator[dict[str, float]]:
    results: dict[str, float] = {}
    yield results
    report = artifacts_dir / "imaging-fidelity.json"
    previous = json.loads(report.read_text()) if report.exists() else {}
    report.write_text(json.dumps({**previous, **results}, indent=2, sort_keys=True) + "\n")


def max_probability_difference(predict, ours: bytes, reference: bytes) -> float:
    return float(np.abs(predict(our_tensor(ours)) - predict(article_preprocess(reference))).max())


@pytest.mark.parametrize("index", [0, 1, 2])
def test_real_photos(reference_predict, measured, leaf_photo_paths, index):
    photo = leaf_photo_paths[index]
    data = photo.read_bytes()
    difference = max_probability_difference(reference_predict, data, data)
    measured[f"{photo.name} 800x600"] = difference
    assert difference <= TOLERANCE


def resized(photo: Path, size: tuple[int, int]) -> Image.Image:
    with Image.open(photo) as image:
        return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize(
    ("size", "scale"),
    [
        ((1600, 1200), 2),
        ((2400, 1800), 2),
        ((3200, 2400), 4),
        ((3264, 2448), 4),
        (PHONE_SIZE, 8),
        ((4032, 3024), 8),
    ],
    ids=["1/2-at-margin", "1/2", "1/4-at-margin", "1/4", "12MP-1/8-at-margin", "1/8"],
)
def test_real_photos_upscaled_to_every_dct_scale(
    reference_predict, measured, leaf_photo_paths, index, size, scale
):
    assert dct_scale(size, (150, 150)) == scale
    photo = leaf_photo_paths[index]
    data = jpeg(resized(photo, size))
    difference = max_probability_difference(reference_predict, data, data)
    measured[f"{photo.name} {size[0]}x{size[1]}"] = difference
    assert difference <= TOLERANCE


@pytest.mark.parametrize("index", [0, 1, 2])
def test_12_megapixel_portrait_with_exif_rotation(reference_predict, measured, leaf_photo_paths,
                                                  index):
    # A phone held upright stores a landscape frame tagged "rotate 90 CW" (orientation 6). Ours on
    # that file must match the article's pipeline on the same scene stored upright.
    photo = leaf_photo_paths[index]
    upright = resized(photo, PHONE_SIZE[::-1])
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = jpeg(upright.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())
    difference = max_probability_difference(reference_predict, stored, jpeg(upright))
    measured[f"{photo.name} 3000x4000 EXIF 6"] = difference
    assert difference <= TOLERANCE


@pytest.mark.parametrize("label", leafsynth.CLASSES)
@pytest.mark.parametrize("size", [(800, 600), PHONE_SIZE], ids=["800x600", "12MP"])
def test_synthetic_leaves(reference_predict, measured, label, size):
    data = leafsynth.encode(leafsynth.render(label, seed=11, size=size), "JPEG", quality=92)
    difference = max_probability_difference(reference_predict, data, data)
    measured[f"leafsynth {label} {size[0]}x{size[1]}"] = difference
    assert difference <= TOLERANCE
